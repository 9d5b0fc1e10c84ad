"""Device benchmark (issue 26): the CPU and, where one is visible, a CUDA GPU, side by side on one machine.

Parts (each measured on every device; rounds interleaved across devices and variants; medians):

* ``throughput``: images/s of the streamed second moment C (``modeledit.stats.second_moment`` at the deepest
  site) against a plain forward pass of the same model over the same batches, and their ratio
  (world_vgg at 64 px; MobileNetV2 real weights at 224 px; a ResNet-50 with random weights at 224 px on GPUs).
* ``edit_latency``: a rank-1 closed-form rewrite with C given (MobileNetV2 real weights at 224 px, world_vgg,
  a ResNet-50 with random weights at 224 px, each at its deepest site: layer4's last block for the ResNet):
  the solver's own seconds after the keys are computed (``metrics["solve_seconds"]``) and the whole
  ``rewrite`` call (keys and values of one exemplar included).
* ``bench_cells``: bench cells per minute at world_vgg's deepest site with the world's clean set
  (``world:clean``, 10,000 images): one pair (road restyled as snow), methods edit and edit_masked, the
  cell's own work only (the worker's model, statistics, counterfactuals and cached site inputs are built
  once per worker, before timing, as in a sweep). On the CPU the 10,000-image set is too slow to run in this
  script's budget: cells are measured with 400 clean images and their clean-set predictions, timed beside
  each cell, scaled to 10,000 (stated in the JSON as ``extrapolated``, with how).
* ``precision``: fp32 against bf16 (and fp16 on CUDA) prediction passes of world_vgg on the world's clean
  images: images/s of each, and the share of identical top-1 predictions with fp32.

    python benchmarks/bench_device.py [--out results/bench_device.json] [--devices cpu,cuda] [--rounds 3]
        [--parts throughput,edit_latency,bench_cells,precision] [--cpu-clean 400] [--agree-n 10000] [--update]

The JSON is rewritten after every part (a partial run leaves valid JSON) and records the machine
(``modeledit.device.describe``), torch's thread count and the command.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from modeledit.atomic import write_text_atomic
from modeledit.device import Runtime, cuda_count, describe, using

PARTS = ("throughput", "edit_latency", "bench_cells", "precision")


def sync(dev: str) -> None:
    if torch.device(dev).type == "cuda":
        torch.cuda.synchronize(dev)


def timed(dev: str, fn: Callable[[], Any]) -> tuple[float, Any]:
    sync(dev)
    t0 = time.perf_counter()
    out = fn()
    sync(dev)
    return time.perf_counter() - t0, out


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def world_images(split: str, n: int) -> torch.Tensor:
    from modeledit.eval.world.data import WorldDataset, render_tensors

    x, _ = render_tensors(WorldDataset(split, n=n, with_masks=False), progress=False)
    return x.float() / 255


def resized(x: torch.Tensor, size: int) -> torch.Tensor:
    return x if x.shape[-1] == size else F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def load(name: str, dev: str, size: int):
    from modeledit import load_model

    weights = "random" if name == "resnet50" else None
    lm = load_model(name, weights=weights, device=dev)
    return lm


# ---------------------------------------------------------------------------------------------------


def part_throughput(devices: list[str], rounds: int, base: torch.Tensor) -> list[dict[str, Any]]:
    from modeledit.layers import get_site
    from modeledit.stats import second_moment

    rows = []
    gpu = any(torch.device(d).type == "cuda" for d in devices)
    # the same model and batch size on every device; more batches where a GPU makes them cheap
    setups = [("world_vgg", 64, 128, 8 if gpu else 2), ("mobilenet_v2", 224, 32, 8 if gpu else 1)]
    if gpu:
        setups.append(("resnet50", 224, 64, 8))
    for name, size, bs, nb in setups:
        x = resized(base[: bs * nb], size)
        batches = [x[i:i + bs] for i in range(0, len(x), bs)]
        devs = [d for d in devices if name != "resnet50" or torch.device(d).type == "cuda"]
        models = {d: load(name, d, size) for d in devs}
        sites = {d: get_site(models[d].model, -1) for d in devs}

        def forward(d: str) -> None:
            lm = models[d]
            with torch.no_grad():
                for b in batches:
                    lm.model(lm.normalize(b.to(d)))

        def stats(d: str) -> None:
            second_moment(models[d].model, sites[d], batches, transform=models[d].normalize, cache=False, progress=False)

        times: dict[tuple[str, str], list[float]] = {(d, k): [] for d in devs for k in ("forward", "stats")}
        for d in devs:   # warm-up (cuDNN autotuning, allocator)
            forward(d), stats(d)
        for _ in range(rounds):
            for d in devs:
                for kind, fn in (("forward", forward), ("stats", stats)):
                    times[(d, kind)].append(timed(d, lambda: fn(d))[0])
        for d in devs:
            f, s = median(times[(d, "forward")]), median(times[(d, "stats")])
            rows.append({"device": d, "model": name, "size": size, "batch_size": bs, "images": len(x), "site": sites[d].name,
                         "forward_img_s": round(len(x) / f, 1), "stats_img_s": round(len(x) / s, 1),
                         "stats_over_forward": round(f / s, 3), "forward_s": [round(t, 4) for t in times[(d, "forward")]],
                         "stats_s": [round(t, 4) for t in times[(d, "stats")]]})
            print(json.dumps(rows[-1]), flush=True)
        del models
    return rows


def part_edit_latency(devices: list[str], rounds: int, base: torch.Tensor) -> list[dict[str, Any]]:
    from modeledit.editor import EditConfig, rewrite
    from modeledit.exemplars import Exemplars
    from modeledit.layers import get_site
    from modeledit.stats import second_moment

    rows = []
    for name, size, note in (("mobilenet_v2", 224, "real ImageNet weights"), ("world_vgg", 64, "shipped weights"),
                             ("resnet50", 224, "random weights (no offline ImageNet weights), for scale")):
        x = resized(base[:16], size)
        ex = Exemplars(x[:1], x[1:2].flip(-1) * 0.5 + x[:1] * 0.5)
        models = {d: load(name, d, size) for d in devices}
        sites = {d: get_site(models[d].model, -1) for d in devices}
        st = {d: second_moment(models[d].model, sites[d], [x[:8], x[8:]], transform=models[d].normalize, cache=False, progress=False)
              for d in devices}
        solve: dict[str, list[float]] = {d: [] for d in devices}
        total: dict[str, list[float]] = {d: [] for d in devices}
        for d in devices:
            rewrite(models[d], sites[d], ex, config=EditConfig(), stats=st[d])   # warm-up
        for _ in range(rounds):
            for d in devices:
                t, e = timed(d, lambda: rewrite(models[d], sites[d], ex, config=EditConfig(), stats=st[d]))
                total[d].append(t)
                solve[d].append(float(e.metrics["solve_seconds"]))
        for d in devices:
            rows.append({"device": d, "model": name, "weights": note, "size": size, "site": sites[d].name, "layer": sites[d].layer,
                         "key_channels": sites[d].key_channels, "rank": 1, "solver": "closed_form",
                         "solve_ms": round(1000 * median(solve[d]), 2), "rewrite_ms": round(1000 * median(total[d]), 2),
                         "solve_ms_all": [round(1000 * t, 2) for t in solve[d]]})
            print(json.dumps(rows[-1]), flush=True)
        del models, st
    return rows


def _bench_runner(dev: str, n_clean: int, test_n: int, stats_n: int):
    from modeledit.eval.bench import BenchConfig, BenchRunner, bench_cells
    from modeledit.styles.bank import available_styles

    style = "snow" if "snow" in available_styles() else sorted(available_styles())[0]
    cfg = BenchConfig(dataset=f"world:test:{test_n}", clean=f"world:clean:{n_clean}", stats_dataset=f"world:train:{stats_n}",
                      pairs=[["road", style]], methods=["edit", "edit_masked"], sites=["-1"])
    with using(Runtime(device=dev)):
        runner = BenchRunner(cfg)
    cells = bench_cells(cfg, [{"concept": "road", "style": style, "candidates": ["car", "bus", "truck"]}])
    return runner, cells


def part_bench_cells(devices: list[str], rounds: int, cpu_clean: int, gpu_clean: int) -> list[dict[str, Any]]:
    from modeledit.layers import get_site

    rows = []
    for d in devices:
        gpu = torch.device(d).type == "cuda"
        sizes = [gpu_clean] if gpu else [cpu_clean]
        # the pair's images and the statistics: the bench's defaults on a GPU, fewer on the CPU (they are set-up, not cell time)
        test_n, stats_n = (1800, 1500) if gpu else (300, 300)
        per_size = {}
        for n in sizes:
            t0 = time.perf_counter()
            runner, cells = _bench_runner(d, n, test_n, stats_n)
            with using(Runtime(device=d)):
                runner(cells[0])   # warm-up: the pair's counterfactuals, statistics, cached site inputs (once per worker)
                setup = time.perf_counter() - t0
                secs, clean = [], []
                ev, site = runner.suffix(), get_site(runner.lm.model, "-1")
                clean_set = ev.image_set(runner.clean_set()[0])   # the cell's own cached clean set (same images, same key)
                for _ in range(rounds):
                    for c in cells:
                        secs.append(timed(d, lambda: runner(c))[0])
                        clean.append(timed(d, lambda: ev.predict(clean_set, site))[0])
            per_size[n] = {"clean_images": n, "cell_s": round(median(secs), 3), "cell_s_all": [round(s, 3) for s in secs],
                           "cells_per_minute": round(60 / median(secs), 2), "setup_s": round(setup, 1),
                           "clean_predict_s": round(median(clean), 4), "clean_predict_s_all": [round(s, 4) for s in clean]}
            print(json.dumps({"device": d, **per_size[n]}), flush=True)
            del runner
        row: dict[str, Any] = {"device": d, "model": "world_vgg", "site": "deepest (-1)", "methods": ["edit", "edit_masked"],
                               "pair_images": f"world:test:{test_n}", "statistics": f"world:train:{stats_n}",
                               "measured": list(per_size.values())}
        if 10_000 in per_size:
            row.update(cells_per_minute_10k=per_size[10_000]["cells_per_minute"], extrapolated=False)
        else:   # the clean set enters a cell only through its edited predictions (from the cached site inputs)
            n1, a = next(iter(per_size.items()))
            per_image = a["clean_predict_s"] / n1
            t10k = a["cell_s"] + per_image * (10_000 - n1)
            row.update(cells_per_minute_10k=round(60 / t10k, 2), cell_s_10k=round(t10k, 3), extrapolated=True,
                       how=(f"measured with {n1} clean images; the cell's clean-set predictions (suffix from the site's cached "
                            f"inputs, {1000 * per_image:.3f} ms per image, timed beside each cell) scaled to 10,000 images and added "
                            "to the measured cell time; the clean set's one-off site-input cache (a prefix forward over it, once "
                            "per worker) is set-up, not cell time"))
        rows.append(row)
    return rows


def part_precision(devices: list[str], rounds: int, agree_n: int, speed_n: int) -> list[dict[str, Any]]:
    from modeledit import load_model

    rows = []
    x = world_images("clean", agree_n)
    for d in devices:
        precs = ["fp32", "bf16"] + (["fp16"] if torch.device(d).type == "cuda" else [])
        models = {p: load_model("world_vgg", device=d).to(d, precision=p) for p in precs}
        bs = 256 if torch.device(d).type == "cuda" else 128
        preds = {p: models[p].predict_labels(x, bs) for p in precs}
        xs = x[:speed_n]
        speed: dict[str, list[float]] = {p: [] for p in precs}
        for _ in range(rounds):
            for p in precs:
                speed[p].append(timed(d, lambda: models[p].predict_labels(xs, bs))[0])
        for p in precs:
            rows.append({"device": d, "model": "world_vgg", "precision": p, "img_s": round(len(xs) / median(speed[p]), 1),
                         "speed_images": len(xs), "agreement_with_fp32": round(float((preds[p] == preds["fp32"]).mean()), 5),
                         "agreement_images": len(x), "differ": int((preds[p] != preds["fp32"]).sum()),
                         "speedup_over_fp32": round(median(speed["fp32"]) / median(speed[p]), 3)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def goals(record: dict[str, Any]) -> dict[str, Any]:
    """The issue's GPU goals against what was measured (None where a side is missing)."""
    parts = record.get("parts", {})
    rows = lambda part: parts.get(part, {}).get("rows", [])  # noqa: E731
    gpu = lambda r: r["device"].startswith("cuda")  # noqa: E731
    out: dict[str, Any] = {}
    thr = [r for r in rows("throughput") if gpu(r)]
    out["gpu_stats_over_forward_min (goal >= 0.8)"] = min((r["stats_over_forward"] for r in thr), default=None)
    lat = [r for r in rows("edit_latency") if gpu(r) and r["model"] == "resnet50"]
    out["gpu_resnet50_layer4_rank1_solve_ms (goal < 50)"] = lat[0]["solve_ms"] if lat else None
    cells = {("gpu" if gpu(r) else "cpu"): r.get("cells_per_minute_10k") for r in rows("bench_cells")}
    out["bench_cells_per_minute_10k"] = cells
    out["gpu_over_cpu_cells_per_minute (goal >= 20)"] = (round(cells["gpu"] / cells["cpu"], 1)
                                                         if cells.get("gpu") and cells.get("cpu") else None)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="results/bench_device.json")
    ap.add_argument("--devices", default=None, help="comma-separated (default: cpu, and cuda when a GPU is visible)")
    ap.add_argument("--parts", default=",".join(PARTS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cpu-clean", type=int, default=400, help="clean-set size measured on the CPU (scaled to 10,000)")
    ap.add_argument("--update", action="store_true", help="keep the other parts of an existing --out file (each part records "
                    "when it ran and the machine's load then)")
    ap.add_argument("--gpu-clean", type=int, default=10_000)
    ap.add_argument("--agree-n", type=int, default=None, help="clean images for the fp32/bf16 agreement (default: all 10,000 "
                    "with a GPU; 384 on a CPU-only machine: bf16 autocast on a CPU without bf16 instructions is about 15x slower than "
                    "fp32 there, and 10,000 images do not fit the run's budget)")
    ap.add_argument("--speed-n", type=int, default=None, help="images per timed prediction pass in the precision part "
                    "(default 2048 with a GPU, 128 without)")
    args = ap.parse_args(argv)
    devices = args.devices.split(",") if args.devices else ["cpu"] + (["cuda"] if cuda_count() else [])
    gpu = any(torch.device(d).type == "cuda" for d in devices)
    agree_n = args.agree_n or (10_000 if gpu else 384)
    speed_n = args.speed_n or (2048 if gpu else 128)
    parts = [p for p in args.parts.split(",") if p]
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False   # fp32 means fp32
    if cuda_count():
        torch.backends.cudnn.benchmark = True
    out = Path(args.out)
    record: dict[str, Any] = {
        "machine": describe(devices), "devices": devices, "command": " ".join(["python", *sys.argv]), "rounds": args.rounds,
        "notes": ["medians over interleaved rounds; CPU and GPU measured in the same process on the same machine",
                  "TF32 off on GPUs (fp32 is fp32); cuDNN benchmark mode on for GPU timings"],
        "gpu_missing": None if cuda_count() else "no CUDA GPU visible on this machine: CPU side only (run benchmarks/gpu_check.sh on a GPU machine)",
        "parts": {},
    }
    if args.update and out.is_file():
        old = json.loads(out.read_text())
        record["parts"] = {k: v for k, v in old.get("parts", {}).items() if k not in parts}
        record["earlier_commands"] = [*old.get("earlier_commands", []), old.get("command")]
    t_all = time.perf_counter()
    base = world_images("val", 1024 if gpu else 256)
    for part in parts:
        t0 = time.perf_counter()
        if part == "throughput":
            rows = part_throughput(devices, args.rounds, base)
        elif part == "edit_latency":
            rows = part_edit_latency(devices, args.rounds, base)
        elif part == "bench_cells":
            rows = part_bench_cells(devices, max(1, args.rounds - 1), args.cpu_clean, args.gpu_clean)
        elif part == "precision":
            rows = part_precision(devices, args.rounds if gpu else 2, agree_n, speed_n)
        else:
            raise SystemExit(f"unknown part {part!r}; parts: {', '.join(PARTS)}")
        record["parts"][part] = {"rows": rows, "seconds": round(time.perf_counter() - t0, 1),
                                 "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                 "load_average_1_5_15": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None}
        record["total_seconds"] = round(time.perf_counter() - t_all, 1)
        record["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out, json.dumps(record, indent=1) + "\n")
    record["goals"] = goals(record)
    write_text_atomic(out, json.dumps(record, indent=1) + "\n")
    print(json.dumps(record["goals"], indent=1))
    print(f"wrote {out} in {time.perf_counter() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
