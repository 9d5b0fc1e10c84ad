"""Benchmark of the joint solve of many rules (modeledit.rules.rewrite_rules) against one solve per rule.

Two sites: world_vgg's deepest site (features.15, 3x3 conv, 96 key channels, 8 x 8 map at 64 px; each rule three
world scenes whose context is swapped for another context's texture) and MobileNetV2's features.14 at 224 px (1x1
conv, 576 key channels, 7 x 7 map; each rule one scikit-image photo with a random box replaced by a real texture).
Keys are collected once per rule (:func:`modeledit.rules.collect_rules`, timed apart): the solves run on cached keys.

For k = 1, 10, 100, 1000 rules and each solver (``linear``: the one shared ridge solve, every k; ``closed_form``: the
editor's exact solver, only where its per-channel IRLS stays quick: k = 1 at the VGG site (k = 10 took ~100 s there), k <= 10 at MobileNetV2), rounds alternate the joint
solve of the k rules and the k separate solves of the same rules (one round at k = 1000; at most ``--separate-max`` of them timed per round,
the total scaled to k; the JSON says how many), and the medians are reported, with rules/s of the joint solve (wall
time of the whole ``rewrite_rules`` call: directions, solve, per-rule objectives). One torch thread; the machine's 1-minute
load average is recorded beside each row (the shared 2-core machine: read timings under load as upper bounds).
``--device cuda`` runs the same on a GPU (timings after the GPU's queued work finishes; benchmarks/gpu_check.sh).

    python benchmarks/bench_rules.py [--ks 1,10,100,1000] [--rounds 3] [--out results/bench_rules.json]
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

import numpy as np
import torch

from modeledit.atomic import write_text_atomic


def world_rules(lm, n: int, per_rule: int = 3, seed: int = 0):
    """``n`` rules of world_vgg: scenes of one class whose context is swapped for another context's texture."""
    from modeledit.eval.world import World
    from modeledit.eval.world.scene import CONTEXTS, HOMES
    from modeledit.exemplars import Exemplars
    from modeledit.rules import Rule

    w, rng, rules = World(), np.random.default_rng(seed), []
    to = lambda a: torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).float() / 255  # noqa: E731
    for i in range(n):
        ctx = CONTEXTS[i % len(CONTEXTS)]
        label = HOMES[ctx][(i // len(CONTEXTS)) % 3]
        tex = [c for c in CONTEXTS if c != ctx][int(rng.integers(len(CONTEXTS) - 1))]
        idx = [int(v) for v in rng.integers(0, 10 ** 6, per_rule)]
        xs = [w.render(j, label=label, context=ctx).image for j in idx]
        xps = [w.render_with(j, {ctx: tex}, label=label, context=ctx).image for j in idx]
        rules.append(Rule(f"{label}:{ctx}>{tex}:{i}", Exemplars(to(xs), to(xps))))
    return rules


def photo_rules(n: int, size: int = 224, seed: int = 0):
    """``n`` one-image rules: a scikit-image photo (random crop, flip) with a random box replaced by a real texture."""
    import skimage.data as d
    import torch.nn.functional as F

    from modeledit.exemplars import Exemplars
    from modeledit.images import to_tensor01
    from modeledit.rules import Rule

    def load(name: str) -> torch.Tensor:
        x = to_tensor01(getattr(d, name)())
        x = x.expand(3, -1, -1) if x.shape[0] == 1 else x[:3]
        return F.interpolate(x[None].float(), size=(size + 32, size + 32), mode="bilinear", antialias=True, align_corners=False)[0]

    photos = [load(p) for p in ("astronaut", "chelsea", "coffee", "rocket", "camera", "horse", "coins", "moon")]
    textures = [load(t)[:, :size, :size] for t in ("grass", "brick", "gravel")]
    rng, rules = np.random.default_rng(seed), []
    for i in range(n):
        p = photos[i % len(photos)]
        a, b = (int(v) for v in rng.integers(0, 32, 2))
        x = p[:, a:a + size, b:b + size].clamp(0, 1)
        x = x.flip(-1) if rng.random() < 0.5 else x
        h, w = (int(v) for v in rng.integers(size // 4, size // 2, 2))
        y0, x0 = (int(v) for v in rng.integers(0, size - size // 2, 2))
        m = torch.zeros(1, size, size)
        m[:, y0:y0 + h, x0:x0 + w] = 1
        xp = x * (1 - m) + textures[i % len(textures)] * m
        rules.append(Rule(f"photo{i}", Exemplars(x[None], xp[None].clamp(0, 1), m[None])))
    return rules


def timed(fn, device: torch.device | None = None) -> tuple[float, object]:
    """Wall time of ``fn()``; on a GPU after its queued work has finished."""
    sync = (lambda: torch.cuda.synchronize(device)) if device is not None and device.type == "cuda" else (lambda: None)
    sync()
    t = time.perf_counter()
    out = fn()
    sync()
    return time.perf_counter() - t, out


def bench_case(name: str, lm, site, rules, stats, ks, rounds: int, separate_max: int, solvers: dict[str, int]) -> dict:
    from modeledit.rules import collect_rules, rewrite_rules

    dev = lm.device
    t_collect, keys = timed(lambda: collect_rules(lm, rules, site), dev)
    case = {"model": name, "site": site.name, "key_channels": site.key_channels, "rules_collected": len(keys),
            "exemplars_per_rule": int(rules[0].exemplars.x.shape[0]), "input_size": int(rules[0].exemplars.x.shape[-1]),
            "collect_seconds_per_rule": t_collect / len(keys), "results": []}
    for solver, kmax in solvers.items():
        for k in ks:
            if k > kmax or k > len(keys):
                continue
            sub = keys[:k]
            sep = sub[:min(k, separate_max)]
            joint, separate, last = [], [], None
            load = [os.getloadavg()[0]]
            for _ in range(rounds if k <= 100 else 1):                # interleaved: joint, separate, joint, ...
                t, last = timed(lambda: rewrite_rules(lm, sub, site, stats=stats, solver=solver), dev)
                joint.append(t)
                t, _ = timed(lambda: [rewrite_rules(lm, [r], site, stats=stats, solver=solver) for r in sep], dev)
                separate.append(t * k / len(sep))
                load.append(os.getloadavg()[0])
            rel = [r["objective_after"] / r["objective_before"] for r in last.metrics["rules"]]
            row = {"solver": solver, "k": k, "joint_seconds_median": statistics.median(joint), "joint_seconds": joint,
                   "joint_solve_seconds": last.metrics["solve_seconds"], "joint_rank": last.metrics["rank"],
                   "separate_seconds_median": statistics.median(separate), "separate_seconds": separate,
                   "separate_timed": len(sep), "rounds": len(joint), "load_average_1min": load,
                   "joint_rules_per_second": k / statistics.median(joint),
                   "separate_rules_per_second": k / statistics.median(separate),
                   "speedup": statistics.median(separate) / statistics.median(joint),
                   "joint_objective_ratio_mean": float(np.mean(rel)), "joint_objective_ratio_max": float(np.max(rel))}
            case["results"].append(row)
            print(f"{name} {solver} k={k}: joint {row['joint_seconds_median']:.3f}s ({row['joint_rules_per_second']:.0f} rules/s), "
                  f"separate {row['separate_seconds_median']:.3f}s, x{row['speedup']:.1f}", flush=True)
    return case


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ks", default="1,10,100,1000")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--separate-max", type=int, default=100)
    ap.add_argument("--cases", default="world_vgg,mobilenet_v2")
    ap.add_argument("--out", default="results/bench_rules.json")
    ap.add_argument("--device", default="cpu", help="cpu (the committed run), cuda, cuda:N or auto (benchmarks/gpu_check.sh: cuda)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    from modeledit import load_model
    from modeledit.device import describe_device, resolve_device
    from modeledit.layers import get_site
    from modeledit.stats import second_moment

    dev = resolve_device(args.device)

    ks = [int(k) for k in args.ks.split(",")]
    out = {"description": __doc__.split("\n\n")[0],
           "command": "python benchmarks/bench_rules.py " + f"--ks {args.ks} --rounds {args.rounds} --device {args.device}",
           "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(), "torch_threads": 1,
                       "torch": torch.__version__, "device": str(dev), "device_name": describe_device(dev)},
           "goal": ">= 1000 rules/s for the joint solve on cached keys (MEMIT reports 0.32 s per fact for its batch solve on a GPU: "
                   "a different model class)", "cases": []}
    for case in args.cases.split(","):
        if case == "world_vgg":
            from modeledit.eval.datasets import load_dataset

            lm = load_model("world_vgg", device=dev)
            site = get_site(lm.model, -1)
            ds = load_dataset("world:train:512", class_names=lm.class_names, size=lm.input_size)
            x = torch.stack([ds[i][0] for i in range(len(ds))])
            rules = world_rules(lm, max(ks))
        else:
            lm = load_model("mobilenet_v2", device=dev)
            site = get_site(lm.model, "features.14")
            rules = photo_rules(max(ks))
            x = torch.cat([r.exemplars.x for r in rules[:64]] + [r.exemplars.x_prime for r in rules[:64]])
        st = second_moment(lm, site, [x[i:i + 64] for i in range(0, len(x), 64)], progress=False)
        solvers = {"linear": max(ks), "closed_form": 1 if case == "world_vgg" else 10}   # its per-channel IRLS: k=10 at VGG ~100 s
        out["cases"].append(bench_case(case, lm, site, rules, st, ks, args.rounds, args.separate_max, solvers))
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.out, json.dumps(out, indent=1))
    best = [r for c in out["cases"] for r in c["results"] if r["solver"] == "linear" and r["k"] == max(ks)]
    out["goal_met"] = {f"{c['model']}": r["joint_rules_per_second"] >= 1000 for c, r in zip(out["cases"], best)}
    write_text_atomic(args.out, json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
