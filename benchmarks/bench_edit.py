"""Benchmark of the rank-one editor: closed-form vs adam solver, and statistics throughput.

For each (model, site): the same exemplars (real photos with a region replaced by a real texture,
scikit-image), the same statistics C, rank 1, whole-image objective; the ``closed_form`` solver and
``adam`` at the paper's setting (lr 1e-4, 20000 steps). Records both objectives (the paper's L1 on
the exemplars), the seconds of each solver and their ratio. Statistics throughput: images/s of
``second_moment`` at several sites vs a plain forward pass of the whole model over the same batches.

``mobilenet_v2`` uses its real ImageNet weights. ``vgg16_bn`` has no offline weights: it is random
init with BatchNorm statistics re-estimated on the photos (so activations have a realistic scale),
run at 64 px to keep 20000 adam steps affordable on CPU. Results go to ``results/bench_edit.json``
(rewritten after every measurement, so a partial run still leaves valid JSON).

    python benchmarks/bench_edit.py [--steps 20000] [--threads 1] [--out results/bench_edit.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
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


def solver_rows(name, lm, size, sites, n_ex, steps, lr, stats_images, save):
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
            cf = rewrite(lm, site, ex, config=EditConfig(solver="closed_form"), stats=st)
            ad = rewrite(lm, site, ex, config=EditConfig(solver="adam", lr=lr, steps=steps), stats=st)
        row = {
            "model": name, "site": site.name, "layer": site.layer, "activation": site.activation,
            "key_dim": site.key_channels, "value_dim": site.value_channels, "input_size": size, "exemplars": n_ex,
            "stats_keys": st.count, "objective_before": cf.metrics["objective_before"],
            "closed_form_objective": cf.metrics["objective_after"], "adam_objective": ad.metrics["objective_after"],
            "closed_form_seconds": cf.metrics["solve_seconds"], "adam_seconds": ad.metrics["solve_seconds"],
            "closed_form_total_seconds": cf.metrics["seconds"], "adam_total_seconds": ad.metrics["seconds"],
            "speedup": ad.metrics["solve_seconds"] / cf.metrics["solve_seconds"],
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: steady timings on a shared machine)")
    ap.add_argument("--out", default="results/bench_edit.json")
    ap.add_argument("--parts", default="throughput,solvers", help="which parts to (re)measure; others are kept from --out")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from modeledit import load_model
    from modeledit.provenance import package_versions

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "command": f"python benchmarks/bench_edit.py --steps {args.steps} --lr {args.lr} --threads {args.threads}",
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": args.threads, "platform": platform.platform()},
        "versions": package_versions(),
        "notes": ("mobilenet_v2: real ImageNet weights (torchvision IMAGENET1K_V1), 224 px. vgg16_bn: NO offline weights, "
                  "random init (seed 0) with BatchNorm statistics re-estimated on the photos, 64 px. Rank 1, whole-image "
                  "objective, statistics over scikit-image photos with flips and crops. Seconds are solver time only "
                  "(*_total_seconds include key collection and the update direction)."),
        "solvers": [], "throughput": [],
    }
    if parts != {"throughput", "solvers"} and out.is_file():
        kept = json.loads(out.read_text())
        result.update({k: kept[k] for k in ("solvers", "throughput") if k not in parts and k in kept})
        result["command"] = kept.get("command", "") + f"; then --parts {args.parts}"

    def save(_rows=None):
        write_text_atomic(out, json.dumps(result, indent=1))

    mnet = load_model("mobilenet_v2")
    photos224 = augment(load_photos(224))
    if "throughput" in parts:
        result["throughput"] = throughput_rows("mobilenet_v2", mnet, photos224, [3, 9, 16])
        save()
    if "solvers" not in parts:
        print(f"wrote {out}")
        return
    result["solvers"] = []

    def save_mnet(mrows):
        result["solvers"] = list(mrows)
        save()

    solver_rows("mobilenet_v2", mnet, 224, [6, 13, 16], 1, args.steps, args.lr, photos224, save_mnet)
    vgg = load_model("vgg16_bn", weights=None)
    photos64 = augment(load_photos(64))
    recalibrate_bn(vgg, photos64)
    rows = result["solvers"]

    def save_vgg(vrows):
        result["solvers"] = rows + vrows
        save()

    solver_rows("vgg16_bn", vgg, 64, [7, 12], 1, args.steps, args.lr, photos64, save_vgg)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
