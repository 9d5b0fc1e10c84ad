"""Benchmark of sweep cells: the full forward vs evaluating from the site on (modeledit.suffix).

One bench cell (eval/bench.py ``BenchRunner``) makes an edit from a pair's exemplars and predicts the
edited model on the pair's validation, test and held-out-style sets and on a clean set; here the clean
set is 10,000 world validation images. For each model (``world_vgg``, ``world_resnet``) and site (an
early, the middle and the deepest one) the same closed-form rank-1 cell runs with both paths,
interleaved (naive, cached, cached, naive, ...), after one warm-up cell that builds the pair, the
statistics and the site cache (its time is reported apart). Reported per site: the median cell time of
each path, cells per minute, their ratio, peak memory of each path and a check that both paths give
identical predictions on every image (clean and pair sets: the predictions of every timed cell of one path
are compared with every cell of the other, and all the cells' numbers too), with the largest logit
difference under one edit on the pair's sets and 500 clean images.
Fine-tuning steps per second (global scope, 3 exemplars) through the whole network and through the
suffix only are measured the same way.

Memory: during each cell a thread samples, every 2 ms, the bytes malloc has handed out (glibc
``mallinfo2``, where torch's CPU tensors live) and the resident set. ``naive_peak_mb`` /
``cached_peak_extra_mb`` are the peak allocation above the cell's start (activations, temporaries);
the cached path also holds its cache between cells (``cache_mb``), so ``cached_peak_mb`` =
``cache_mb + cached_peak_extra_mb``. Both are above the shared baseline (``baseline_rss_mb``: Python,
the model, the images).

The 10,000 clean images are rendered once and cached as a uint8 tensor file under
``$MODELEDIT_CACHE/world`` (``modeledit.eval.world.data.render_tensors``), not in git.

    python benchmarks/bench_sweep.py [--models world_vgg,world_resnet] [--repeats 3] [--clean 10000]
                                     [--out results/bench_sweep.json]
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import statistics
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

#: the first pair of the committed world run (results/world/run.sh)
PAIR = {"concept": "grass", "style": "graffiti", "candidates": ["cow", "tractor", "tree"]}


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                                               "uordblks", "fordblks", "keepcost")]


class MemorySampler:
    """Peak memory of this process while a block runs, sampled every ``interval`` seconds from another thread:
    the resident set (/proc/self/statm) and the bytes malloc has handed out and not taken back (glibc
    ``mallinfo2``: ``uordblks + hblkhd``; torch's CPU tensors live there). The latter is what a block
    allocates, unlike the resident set it is not hidden by pages the allocator kept from earlier blocks."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.page = os.sysconf("SC_PAGE_SIZE")
        try:
            libc = ctypes.CDLL("libc.so.6")
            libc.mallinfo2.restype = _Mallinfo2
            self._mallinfo = libc.mallinfo2
        except (OSError, AttributeError):   # not glibc >= 2.33: resident set only
            self._mallinfo = None

    def rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def allocated(self) -> int:
        if self._mallinfo is None:
            return 0
        m = self._mallinfo()
        return int(m.uordblks + m.hblkhd)

    def measure(self, fn: Callable[[], Any]) -> tuple[Any, float, dict[str, float]]:
        """(result, seconds, {"rss_start", "rss_peak", "alloc_start", "alloc_peak"} in MB)."""
        start = (self.rss(), self.allocated())
        peak = list(start)
        stop = threading.Event()

        def sample() -> None:
            peak[0], peak[1] = max(peak[0], self.rss()), max(peak[1], self.allocated())

        def watch() -> None:
            while not stop.is_set():
                sample()
                time.sleep(self.interval)

        t = threading.Thread(target=watch, daemon=True)
        t.start()
        t0 = time.perf_counter()
        try:
            out = fn()
        finally:
            dt = time.perf_counter() - t0
            stop.set()
            t.join()
            sample()
        mb = 2**20
        return out, dt, {"rss_start": start[0] / mb, "rss_peak": peak[0] / mb, "alloc_start": start[1] / mb, "alloc_peak": peak[1] / mb}


def make_runner(model: str, n_clean: int, n_test: int, n_stats: int, cache_mb: float) -> Any:
    """A BenchRunner whose clean set is ``n_clean`` world val images read from a cached tensor file."""
    from modeledit.eval.bench import BenchConfig, BenchRunner
    from modeledit.eval.world.data import WorldDataset, render_tensors
    from modeledit.suffix import SuffixCacheConfig

    class SweepRunner(BenchRunner):
        """Reads the clean set from the tensor file and records every edited prediction of the last cell."""

        def __init__(self, config: BenchConfig) -> None:
            super().__init__(config)
            self.recorded: list[np.ndarray] = []

        def predict_edited(self, x: torch.Tensor, site: Any, images: Any = None) -> np.ndarray:
            out = super().predict_edited(x, site, images)
            self.recorded.append(out)
            return out

        def clean_set(self) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
            if getattr(self, "_sweep_clean", None) is None:
                x, y = render_tensors(WorldDataset("val", n=n_clean), progress=False)
                x = x.float().div_(255.0)
                self._sweep_clean = (x, y, self.predict(x))
            return self._sweep_clean

    cfg = BenchConfig(model=model, dataset=f"world:test:{n_test}", clean=f"world:val:{n_clean}", stats_dataset=f"world:train:{n_stats}",
                      methods=["edit"], n_exemplars=[3], cache=SuffixCacheConfig(budget_mb=cache_mb))
    return SweepRunner(cfg)


def cell(site: str, method: str = "edit", setting: dict | None = None) -> dict[str, Any]:
    return dict(PAIR, n_exemplars=3, seed=0, method=method, site=site, setting=setting or {})


def same_rows(a: dict, b: dict) -> bool:
    keys = [k for k in a if not k.endswith("seconds")]
    return all((a[k] == b[k]) or (isinstance(a[k], float) and np.isnan(a[k]) and np.isnan(b[k])) for k in keys)


def logit_difference(runner: Any, site: Any, n_clean: int = 500) -> float:
    """Largest |logit| difference between the paths under one edit, on the pair's sets and ``n_clean`` clean images."""
    p = runner.pair(PAIR["concept"], PAIR["style"], PAIR["candidates"], 3, 0)
    edit = runner.make_edit("edit", {}, site, p)
    cx, _, _ = runner.clean_set()
    groups, _, _ = p.unedited
    ev = runner.suffix()
    sets = [ev.image_set(cx[:n_clean]), *p.image_sets.values()]
    diff = 0.0
    with edit.applied(runner.lm.model):
        for images in sets:
            cached = ev.logits(images, site)
            bs = runner.cfg.batch_size
            naive = torch.cat([runner.lm.predict(images.x[i:i + bs]) for i in range(0, len(images), bs)])
            diff = max(diff, float((cached - naive).abs().max()))
    return diff


def finetune_steps(runner: Any, site: Any, steps: int, repeats: int) -> dict[str, Any]:
    """Global fine-tuning steps per second through the whole network and through the suffix only."""
    from modeledit.exemplars import Exemplars
    from modeledit.finetuning import FinetuneConfig, finetune

    p = runner.pair(PAIR["concept"], PAIR["style"], PAIR["candidates"], 3, 0)
    same = runner.cfg.exemplar_style_image
    lm = runner.lm
    ex = Exemplars(torch.stack([p.originals[i] for i in p.exemplars]), torch.stack([p.transformed[same][i] for i in p.exemplars]))
    times: dict[bool, list[float]] = {True: [], False: []}
    edits = {}
    for r in range(repeats):
        for from_site in ((False, True) if r % 2 == 0 else (True, False)):
            cfg = FinetuneConfig(scope="global", lr=1e-3, steps=steps, from_site=from_site)
            t0 = time.perf_counter()
            edits[from_site] = finetune(lm, site, ex, target=p.target_class, config=cfg)
            times[from_site].append(time.perf_counter() - t0)
    naive, fast = statistics.median(times[False]), statistics.median(times[True])
    diff = max(float((edits[True].changes[n].tensors["value"] - edits[False].changes[n].tensors["value"]).abs().max())
               for n in edits[True].changes)
    return {"steps": steps, "naive_steps_per_s": steps / naive, "suffix_steps_per_s": steps / fast, "ratio": naive / fast,
            "max_abs_param_diff": diff, "note": "seconds include the steps and the loss before/after on the exemplars"}


def share_pairs(donor: Any, runner: Any) -> None:
    """Give ``runner`` the concept masks and restyled pair sets ``donor`` made (they do not depend on the
    model: same world images, same classes); the unedited predictions are the runner's own."""
    import dataclasses

    runner._masks.update(donor._masks)
    runner._pairs.update({k: dataclasses.replace(p, unedited=None, image_sets={}) for k, p in donor._pairs.items()})


def bench_model(model: str, sites: list[int] | None, args: argparse.Namespace, sampler: MemorySampler, log: Callable,
                out: dict[str, Any], save: Callable[[], None], donor: Any = None) -> Any:
    """Fill ``out`` (saved after every site) and return the runner (its pair sets serve the next model)."""
    from modeledit.layers import list_sites

    runner = make_runner(model, args.clean, args.test_images, args.stats_images, args.cache_mb)
    if donor is not None:
        share_pairs(donor, runner)
    all_sites = list_sites(runner.lm.model)
    n = len(all_sites)
    # deepest first: a run cut short keeps the sites that matter most
    picks = sites if sites is not None else [n - 1, (n - 1) // 2, 0]
    labels = ["deepest", "middle", "early"] if sites is None else [f"site{i}" for i in picks]
    t0 = time.perf_counter()
    runner.clean_set()
    setup = {"clean_set_seconds": time.perf_counter() - t0}
    out.update({"model": model, "sites": [], "setup": setup, "baseline_rss_mb": sampler.rss() / 2**20})
    for label, idx in zip(labels, picks):
        site = all_sites[idx]
        runner.cfg.from_site = True
        _, warm, _ = sampler.measure(lambda: runner(cell(str(idx)))[0])
        ev = runner.suffix()
        p = runner.pair(PAIR["concept"], PAIR["style"], PAIR["candidates"], 3, 0)
        times: dict[str, list[float]] = {"naive": [], "cached": []}
        extra: dict[str, float] = {"naive": 0.0, "cached": 0.0}
        rss_extra: dict[str, float] = {"naive": 0.0, "cached": 0.0}
        rows: dict[str, list[dict]] = {"naive": [], "cached": []}
        preds: dict[str, list[np.ndarray]] = {"naive": [], "cached": []}
        repeats = args.early_repeats if label == "early" and args.early_repeats else args.repeats
        for r in range(repeats):
            for path in (("naive", "cached") if r % 2 == 0 else ("cached", "naive")):
                runner.cfg.from_site = path == "cached"
                runner.recorded = []
                res, dt, mem = sampler.measure(lambda: runner(cell(str(idx)))[0])
                preds[path].append(np.concatenate(runner.recorded))
                times[path].append(dt)
                extra[path] = max(extra[path], mem["alloc_peak"] - mem["alloc_start"])
                rss_extra[path] = max(rss_extra[path], mem["rss_peak"] - mem["rss_start"])
                rows[path].append(res)
        runner.cfg.from_site = True
        check = {"images": int(len(preds["naive"][0])),
                 "identical": all(np.array_equal(a, b) for a in preds["naive"] for b in preds["cached"]),
                 "cells_identical": all(same_rows(a, b) for a in rows["naive"] for b in rows["cached"]),
                 "max_abs_logit_diff": logit_difference(runner, site)}
        med = {k: statistics.median(v) for k, v in times.items()}
        # the predictions alone: the cell minus making the edit (the same computation on both paths)
        evals = {k: statistics.median(t - r["edit_seconds"] for t, r in zip(times[k], rows[k])) for k in times}
        images = args.clean + sum(len(v) for v in (p.val, p.test)) + len(p.test) * len(runner.cfg.heldout_style_images)
        entry = {
            "position": label, "site_index": idx, "site": site.name, "layer": site.layer, "skip": site.skip,
            "crossing_tensors": ev.split(site).inputs if ev.split(site) else None,
            "images_per_cell": images, "repeats": repeats,
            "naive_cell_seconds": times["naive"], "cached_cell_seconds": times["cached"],
            "naive_cells_per_min": 60 / med["naive"], "cached_cells_per_min": 60 / med["cached"],
            "ratio": med["naive"] / med["cached"],
            "naive_predict_seconds": evals["naive"], "cached_predict_seconds": evals["cached"],
            "predict_ratio": evals["naive"] / evals["cached"],
            "first_cached_cell_seconds": warm, "cache_mb": ev.memory_bytes / 2**20, "cache_disk_mb": ev.disk_bytes() / 2**20,
            "naive_peak_mb": extra["naive"], "cached_peak_mb": ev.memory_bytes / 2**20 + extra["cached"],
            "naive_peak_extra_mb": extra["naive"], "cached_peak_extra_mb": extra["cached"],
            "naive_rss_growth_mb": rss_extra["naive"], "cached_rss_growth_mb": rss_extra["cached"],
            "edit_seconds": statistics.median(r["edit_seconds"] for r in rows["cached"]),
            "check": check,
        }
        out["sites"].append(entry)
        log(f"{model} {label} {site.name}: naive {med['naive']:.2f}s cached {med['cached']:.2f}s ratio {entry['ratio']:.1f}x "
            f"(predictions alone {entry['predict_ratio']:.1f}x, edit {entry['edit_seconds']:.1f}s) "
            f"identical={check['identical'] and check['cells_identical']} cache {entry['cache_mb']:.0f} MB")
        if args.finetune_steps:
            entry["finetune_global"] = finetune_steps(runner, site, args.finetune_steps, 1)
            log(f"  finetune global: {entry['finetune_global']['naive_steps_per_s']:.1f} -> "
                f"{entry['finetune_global']['suffix_steps_per_s']:.1f} steps/s")
        ev.clear()          # the next site starts from an empty cache (its own first cell builds it)
        out["suffix_stats"] = dict(runner.suffix().stats)
        save()
    return runner


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="world_vgg,world_resnet")
    ap.add_argument("--sites", default=None, help="site indices (default: first, middle (n-1)//2, last)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved naive/cached cell pairs per site (median)")
    ap.add_argument("--early-repeats", type=int, default=1, help="pairs at the early site (0: --repeats); it gains little")
    ap.add_argument("--clean", type=int, default=10000)
    ap.add_argument("--test-images", type=int, default=900, help="world test images the pair's sets are drawn from")
    ap.add_argument("--stats-images", type=int, default=600, help="world train images for the editor's statistics")
    ap.add_argument("--cache-mb", type=float, default=2048)
    ap.add_argument("--finetune-steps", type=int, default=30, help="0: skip the fine-tuning measurement")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="results/bench_sweep.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from modeledit.provenance import package_versions

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    result: dict[str, Any] = {
        "command": "python benchmarks/bench_sweep.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None and k != "out"),
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
                    "load_average_at_start": os.getloadavg()},
        "versions": package_versions(),
        "notes": __doc__.split("\n\n", 1)[1].split("\n\n    python")[0],
        "pair": PAIR, "method": "edit (closed form, rank 1, whole image, 3 exemplars)",
        "models": [],
    }
    sampler = MemorySampler()
    sites = [int(s) for s in args.sites.split(",")] if args.sites else None

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:6.0f}s] {msg}", flush=True)

    def save() -> None:
        result["seconds"] = time.perf_counter() - t_start
        result["machine"]["load_average_at_end"] = os.getloadavg()
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1))
        os.replace(tmp, out)

    donor = None
    for model in args.models.split(","):
        result["models"].append({})
        donor = bench_model(model, sites, args, sampler, log, result["models"][-1], save, donor)
    save()
    log(f"wrote {out}")


if __name__ == "__main__":
    main()
