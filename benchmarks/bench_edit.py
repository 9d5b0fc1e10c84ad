"""Benchmark of the rank-one editor: closed-form vs adam solver, adam steps/s, the full-rank closed form,
and statistics throughput.

For each (model, site): the same exemplars (real photos with a region replaced by a real texture,
scikit-image), the same statistics C, rank 1, whole-image objective; the ``closed_form`` solver and
``adam`` at the paper's setting (lr 1e-4, 20000 steps). Records both objectives (the paper's L1 on
the exemplars), the seconds of each solver and their ratio.

Adam steps/s (part ``adam_speed``): the adam loop of main before the bound-site rewrite (commit 5c5b81e:
autograd through ``site_forward``, which resolves modules by name on every call, on every position),
copied verbatim below as ``legacy_adam``, against the current ``solve_adam``; both on the same site,
exemplars and directions, interleaved over rounds, median steps/s of each; whole-image and masked.

Full rank (part ``full_rank``): ``rank="full"`` and rank 8 with the closed form at every MobileNetV2 site,
whole-image and masked, 224 px, one exemplar: seconds and objectives.

Statistics throughput: images/s of ``second_moment`` at several sites vs a plain forward pass of the
whole model over the same batches.

``mobilenet_v2`` uses its real ImageNet weights. ``vgg16_bn`` has no offline weights: it is random
init with BatchNorm statistics re-estimated on the photos (so activations have a realistic scale),
run at 64 px to keep 20000 adam steps affordable on CPU. Results go to ``results/bench_edit.json``
(rewritten after every measurement, so a partial run still leaves valid JSON).

    python benchmarks/bench_edit.py [--steps 20000] [--threads 1] [--out results/bench_edit.json]
        [--parts throughput,solvers,adam_speed,full_rank]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings
from pathlib import Path

import torch

from modeledit.atomic import write_text_atomic
import torch.nn.functional as F

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "hubble_deep_field", "immunohistochemistry", "colorwheel",
          "page", "text", "moon", "brick", "grass", "gravel", "horse", "coins")


def load_photos(size: int) -> torch.Tensor:
    import skimage.data as d

    from modeledit.images import to_tensor01

    out = []
    for name in PHOTOS:
        try:
            a = getattr(d, name)()
        except Exception:  # some skimage images need a download: skip them offline
            continue
        x = to_tensor01(a)
        x = x.expand(3, -1, -1) if x.shape[0] == 1 else x[:3]
        out.append(F.interpolate(x[None].float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0])
    return torch.stack(out)


def augment(x: torch.Tensor) -> torch.Tensor:
    """Photos, mirror images and four zoomed quadrant crops."""
    s = x.shape[-1]
    crops = [F.interpolate(x[:, :, a:a + s // 2, b:b + s // 2], size=(s, s), mode="bilinear", align_corners=False)
             for a in (0, s // 2) for b in (0, s // 2)]
    return torch.cat([x, x.flip(-1), *crops])


def exemplars(lm, size: int, n: int):
    import skimage.data as d

    from modeledit.exemplars import Exemplars

    photos = load_photos(size)
    x = photos[1:1 + n]  # chelsea, coffee, ...
    from modeledit.images import to_tensor01

    tex = F.interpolate(to_tensor01(d.grass()).expand(3, -1, -1)[None], size=(size, size), mode="bilinear", antialias=True)[0]
    mask = torch.zeros(n, 1, size, size)
    mask[..., size * 5 // 16: size * 13 // 16, size // 4: size * 7 // 8] = 1
    return Exemplars(x, x * (1 - mask) + tex * mask, mask)


def recalibrate_bn(lm, images: torch.Tensor) -> None:
    for m in lm.model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None
            m.reset_running_stats()
    lm.model.train()
    with torch.no_grad():
        for i in range(0, len(images), 16):
            lm.model(lm.normalize(images[i:i + 16]))
    lm.model.eval()


def solver_rows(name, lm, size, sites, n_ex, steps, lr, stats_images, save, cf_repeats=5):
    from modeledit.layers import get_site
    from modeledit.editor import EditConfig, rewrite
    from modeledit.stats import second_moment

    ex = exemplars(lm, size, n_ex)
    rows = []
    for idx in sites:
        site = get_site(lm.model, idx)
        batches = [stats_images[i:i + 16] for i in range(0, len(stats_images), 16)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            st = second_moment(lm.model, site, batches, transform=lm.normalize, progress=False)
            cfs = [rewrite(lm, site, ex, config=EditConfig(solver="closed_form"), stats=st) for _ in range(cf_repeats)]
            ad = rewrite(lm, site, ex, config=EditConfig(solver="adam", lr=lr, steps=steps), stats=st)
        cf = cfs[0]
        cf_wall = statistics.median(e.metrics["solve_seconds"] for e in cfs)
        cf_cpu = statistics.median(e.metrics["solve_cpu_seconds"] for e in cfs)
        row = {
            "model": name, "site": site.name, "layer": site.layer, "activation": site.activation,
            "key_dim": site.key_channels, "value_dim": site.value_channels, "input_size": size, "exemplars": n_ex,
            "stats_keys": st.count, "objective_before": cf.metrics["objective_before"],
            "closed_form_objective": cf.metrics["objective_after"], "adam_objective": ad.metrics["objective_after"],
            "closed_form_seconds": cf_wall, "adam_seconds": ad.metrics["solve_seconds"],
            "closed_form_seconds_runs": [e.metrics["solve_seconds"] for e in cfs],
            "closed_form_cpu_seconds": cf_cpu, "adam_cpu_seconds": ad.metrics["solve_cpu_seconds"],
            "closed_form_total_seconds": cf.metrics["seconds"], "adam_total_seconds": ad.metrics["seconds"],
            "speedup": ad.metrics["solve_seconds"] / cf_wall,
            "speedup_cpu": ad.metrics["solve_cpu_seconds"] / cf_cpu,
            "closed_form_no_worse": cf.metrics["objective_after"] <= ad.metrics["objective_after"],
            "adam_steps": steps, "adam_lr": lr,
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
        save(rows)
    return rows


def throughput_rows(name, lm, images, sites, rounds=5):
    """Images/s of a plain forward pass and of ``second_moment`` at each site; the passes are
    interleaved over ``rounds`` and the fastest of each kept (the machine is shared)."""
    from modeledit.layers import get_site
    from modeledit.stats import second_moment

    batches = [images[i:i + 16] for i in range(0, len(images), 16)]
    site_objs = [get_site(lm.model, i) for i in sites]

    def forward():
        with torch.no_grad():
            for b in batches:
                lm.model(lm.normalize(b))

    def timed(fn):
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    forward()  # warm-up
    t_fwd, t_st = [], {s.name: [] for s in site_objs}
    for _ in range(rounds):
        t_fwd.append(timed(forward))
        for s in site_objs:
            t_st[s.name].append(timed(lambda: second_moment(lm.model, s, batches, transform=lm.normalize, cache=False, progress=False)))
    rows = []
    for s in site_objs:
        rows.append({"model": name, "site": s.name, "images": len(images), "input_size": images.shape[-1],
                     "forward_images_per_s": len(images) / min(t_fwd), "stats_images_per_s": len(images) / min(t_st[s.name]),
                     "ratio": min(t_fwd) / min(t_st[s.name])})
        print(json.dumps(rows[-1]), flush=True)
    return rows


# ---------------------------------------------------------------------------------------------
# the adam loop of main before this change (commit 5c5b81e), verbatim but for the names


def _legacy_resolve(model, name):
    return dict(model.named_modules())[name]


def _legacy_weight(model, site):
    w = _legacy_resolve(model, site.layer).weight
    return w if w.dim() == 4 else w[:, :, None, None]


def _legacy_affine(model, site):
    layer = _legacy_resolve(model, site.layer)
    cout = site.value_channels
    dev, dt = layer.weight.device, layer.weight.dtype
    scale = torch.ones(cout, device=dev, dtype=dt)
    shift = layer.bias.detach().clone() if getattr(layer, "bias", None) is not None else torch.zeros(cout, device=dev, dtype=dt)
    if site.norm:
        bn = _legacy_resolve(model, site.norm)
        s = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps) if bn.affine else 1.0 / torch.sqrt(bn.running_var + bn.eps)
        b = bn.bias.detach() if bn.affine else torch.zeros_like(s)
        shift = s * (shift - bn.running_mean) + b
        scale = s
    return scale.detach(), shift.detach()


def _legacy_geometry(model, site):
    layer = _legacy_resolve(model, site.layer)
    if isinstance(layer, torch.nn.Conv2d):
        return dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=layer.groups)
    return dict(stride=1, padding=0, dilation=1, groups=1)


def _legacy_site_forward(model, site, key, skip, weight=None):
    if weight is None:
        weight = _legacy_weight(model, site)
    scale, shift = _legacy_affine(model, site)
    z = F.conv2d(key, weight, None, **_legacy_geometry(model, site))
    z = z * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)
    if skip is not None:
        z = z + skip
    return F.relu(z) if site.activation == "relu" else z


def legacy_adam(model, site, t, dirs, lr, steps, project_every=10):
    """main's solve_adam loop (5c5b81e) without its tqdm bar: returns the final ΔW."""
    w0 = _legacy_weight(model, site).detach()
    q, _ = torch.linalg.qr(dirs.double())
    q = q.to(w0.dtype)

    def project(dw):
        return torch.einsum("oaij,ar,br->obij", dw, q, q)

    delta = torch.zeros_like(w0, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=lr)
    norm = t.weight.sum() * t.value.shape[1]
    for step in range(steps):
        opt.zero_grad(set_to_none=True)
        out = _legacy_site_forward(model, site, t.key, t.skip, w0 + delta)
        loss = ((out - t.value).abs() * t.weight).sum() / norm
        loss.backward()
        opt.step()
        if (step + 1) % max(1, project_every) == 0:
            with torch.no_grad():
                delta.copy_(project(delta))
    return delta.detach()


def adam_speed_rows(name, lm, size, sites, n_ex, stats_images, steps=200, rounds=5, lr=1e-4):
    """Adam steps/s, main's loop (before) vs the bound-site loop (after), interleaved, medians."""
    from modeledit.exemplars import collect
    from modeledit.layers import get_site
    from modeledit.editor import EditConfig, _flat_keys, _stats_matrix, solve_adam, update_direction
    from modeledit.stats import second_moment

    ex = exemplars(lm, size, n_ex)
    rows = []
    for idx in sites:
        site = get_site(lm.model, idx)
        batches = [stats_images[i:i + 16] for i in range(0, len(stats_images), 16)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            st = second_moment(lm.model, site, batches, transform=lm.normalize, progress=False)
            c, _ = _stats_matrix(st, site, 1e-4)
        for mode in ("whole", "masked"):
            t = collect(lm, site, ex, mode)
            keys, kw = _flat_keys(t)
            dirs = update_direction(keys, kw, c, 1).to(t.key.dtype)
            cfg = EditConfig(solver="adam", lr=lr, steps=steps)
            before, after = [], []
            legacy_adam(lm.model, site, t, dirs, lr, 5)
            solve_adam(lm.model, site, t, dirs, EditConfig(solver="adam", lr=lr, steps=5))
            for _ in range(rounds):
                t0 = time.perf_counter()
                legacy_adam(lm.model, site, t, dirs, lr, steps)
                before.append(steps / (time.perf_counter() - t0))
                t0 = time.perf_counter()
                solve_adam(lm.model, site, t, dirs, cfg)
                after.append(steps / (time.perf_counter() - t0))
            row = {"model": name, "site": site.name, "activation": site.activation, "kernel": list(lm.model.get_submodule(site.layer).weight.shape[2:]) or [1, 1],
                   "input_size": size, "mode": mode, "positions": int(t.value[:, 0].numel()), "objective_positions": int((t.weight > 0).sum()),
                   "steps_per_round": steps, "rounds": rounds,
                   "before_steps_per_s": statistics.median(before), "after_steps_per_s": statistics.median(after),
                   "speedup": statistics.median(after) / statistics.median(before)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def full_rank_rows(name, lm, size, stats_images, save, modes=("whole", "masked")):
    """rank="full" vs rank 8, closed form, at every site: seconds and objectives."""
    from modeledit.layers import list_sites
    from modeledit.editor import EditConfig, rewrite
    from modeledit.stats import second_moment

    ex = exemplars(lm, size, 1)
    rows = []
    for site in list_sites(lm.model):
        batches = [stats_images[i:i + 16] for i in range(0, len(stats_images), 16)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            st = second_moment(lm.model, site, batches, transform=lm.normalize, progress=False)
            for mode in modes:
                r8 = rewrite(lm, site, ex, config=EditConfig(rank=8, mode=mode), stats=st)
                full = rewrite(lm, site, ex, config=EditConfig(rank="full", mode=mode), stats=st)
                row = {"model": name, "site": site.name, "key_dim": site.key_channels, "value_dim": site.value_channels,
                       "input_size": size, "mode": mode, "objective_before": full.metrics["objective_before"],
                       "rank8_objective": r8.metrics["objective_after"], "full_objective": full.metrics["objective_after"],
                       "rank8_seconds": r8.metrics["solve_seconds"], "full_seconds": full.metrics["solve_seconds"],
                       "full_total_seconds": full.metrics["seconds"],
                       "full_no_worse": full.metrics["objective_after"] <= r8.metrics["objective_after"] * (1 + 1e-6)}
                print(json.dumps(row), flush=True)
                rows.append(row)
                save(rows)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: steady timings on a shared machine)")
    ap.add_argument("--out", default="results/bench_edit.json")
    ap.add_argument("--parts", default="throughput,solvers,adam_speed,full_rank",
                    help="which parts to (re)measure; others are kept from --out")
    ap.add_argument("--speed-rounds", type=int, default=5, help="interleaved rounds of the adam steps/s comparison")
    ap.add_argument("--speed-steps", type=int, default=200, help="adam steps per round of the steps/s comparison")
    args = ap.parse_args()
    all_parts = ("throughput", "solvers", "adam_speed", "full_rank")
    parts = set(args.parts.split(","))
    if not parts <= set(all_parts):
        ap.error(f"unknown parts {sorted(parts - set(all_parts))}; choose from {all_parts}")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from modeledit import load_model
    from modeledit.provenance import package_versions

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = f"python benchmarks/bench_edit.py --steps {args.steps} --lr {args.lr} --threads {args.threads}"
    result = {
        "command": command,
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": args.threads, "platform": platform.platform(),
                    "load_average_at_start": os.getloadavg()},
        "versions": package_versions(),
        "notes": ("mobilenet_v2: real ImageNet weights (torchvision IMAGENET1K_V1), 224 px. vgg16_bn: NO offline weights, "
                  "random init (seed 0) with BatchNorm statistics re-estimated on the photos, 64 px. Rank 1, whole-image "
                  "objective, statistics over scikit-image photos with flips and crops. Seconds are solver time only "
                  "(*_total_seconds include key collection and the update direction); the closed form's seconds are the median "
                  "of 5 runs (steady state, as in a sweep), adam's one run of all its steps; *_cpu_seconds are process CPU time, "
                  "less sensitive to the other users' load than wall-clock time. adam_speed: 'before' is main's adam "
                  "loop at commit 5c5b81e (copied in this script), 'after' the current solve_adam; interleaved rounds, medians. "
                  "machine.load_average_at_start/_at_end record the load: wall-clock times carry it."),
        "solvers": [], "throughput": [], "adam_speed": [], "full_rank": [],
    }
    if parts != set(all_parts) and out.is_file():
        kept = json.loads(out.read_text())
        result.update({k: kept[k] for k in all_parts if k not in parts and k in kept})
        result["command"] = command + f" --parts {args.parts}" + (
            f" (kept from an earlier run: {', '.join(k for k in all_parts if k not in parts)})")

    def save(_rows=None):
        result["machine"]["load_average_at_end"] = os.getloadavg()   # at the last save
        write_text_atomic(out, json.dumps(result, indent=1))

    mnet = load_model("mobilenet_v2")
    photos224 = augment(load_photos(224))
    if "throughput" in parts:
        result["throughput"] = throughput_rows("mobilenet_v2", mnet, photos224, [3, 9, 16])
        save()
    vgg = None
    if parts & {"solvers", "adam_speed"}:
        vgg = load_model("vgg16_bn", weights="random")
        photos64 = augment(load_photos(64))
        recalibrate_bn(vgg, photos64)
    if "adam_speed" in parts:
        rows = adam_speed_rows("mobilenet_v2", mnet, 224, [6, 13, 16], 1, photos224, args.speed_steps, args.speed_rounds, args.lr)
        result["adam_speed"] = rows
        save()
        result["adam_speed"] = rows + adam_speed_rows("vgg16_bn", vgg, 64, [7, 12], 1, photos64, args.speed_steps, args.speed_rounds, args.lr)
        save()
    if "full_rank" in parts:
        def save_full(frows):
            result["full_rank"] = list(frows)
            save()

        full_rank_rows("mobilenet_v2", mnet, 224, photos224, save_full)
    if "solvers" in parts:
        result["solvers"] = []

        def save_mnet(mrows):
            result["solvers"] = list(mrows)
            save()

        solver_rows("mobilenet_v2", mnet, 224, [6, 13, 16], 1, args.steps, args.lr, photos224, save_mnet)
        rows = result["solvers"]

        def save_vgg(vrows):
            result["solvers"] = rows + vrows
            save()

        solver_rows("vgg16_bn", vgg, 64, [7, 12], 1, args.steps, args.lr, photos64, save_vgg)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
