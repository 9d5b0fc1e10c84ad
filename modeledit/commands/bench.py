"""``modeledit bench``: editing vs local and global fine-tuning with the paper's protocol."""
from __future__ import annotations

import argparse

from modeledit.commands.common import add_force_argument, add_label_arguments, check_out, add_list, add_method_arguments, add_weights_argument, grid_overrides, nonneg_int, positive_int, split_list
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", default="world_vgg", help="model name (see `modeledit models`)")
    add_weights_argument(p)
    p.add_argument("--dataset", default="world:test", help="images for exemplars, validation and test")
    p.add_argument("--clean", default="world:val:600", help="images for clean accuracy")
    p.add_argument("--stats-dataset", default="world:train:1500", help="images for the second-moment statistics C")
    p.add_argument("--sensitivity", default=None, help="a sensitivity table.csv to select pairs from (and their target classes)")
    add_list(p, "--pairs", item=_pair, what="concept:style pair", help="concept:style pairs, e.g. road:snow,grass:wooden (default: selected from --sensitivity)")
    p.add_argument("--max-pairs", type=_max_pairs, default=3, help="pairs selected from the sensitivity table, those with "
                   "the largest mean drop first, or 'all' (every admitted pair); a folder resumes with a larger value")
    p.add_argument("--n-targets", type=positive_int, default=None, help="target classes per pair, drawn (seeded) among its affected "
                   "classes, each its own unit (default: one per seed, drawn with it)")
    add_list(p, "--n-exemplars", item=positive_int, what="exemplar count", default="3", help="exemplar counts, e.g. 1,3,10")
    add_list(p, "--seeds", item=nonneg_int, what="seed", default="0", help="seeds (exemplar draws), e.g. 0,1,2")
    add_method_arguments(p)
    add_label_arguments(p)
    from modeledit.commands.choices import add_registry_flag

    add_registry_flag(p, "--segmenter", "segmenter", "segmenter backend", default="oracle")
    add_registry_flag(p, "--stylizer", "stylizer", "stylizer backend", default="magenta")
    p.add_argument("--out", required=True, help="results folder (resumable)")
    from modeledit.commands.common import add_device_arguments, add_executor_arguments

    add_executor_arguments(p)
    add_device_arguments(p, batch=True)
    add_force_argument(p)


def APPLIES(args: argparse.Namespace) -> dict:  # noqa: N802 - the flag table of modeledit.commands.applies
    from modeledit.commands.applies import grid_rules
    from modeledit.commands.common import EXECUTOR_APPLIES

    return {
        **EXECUTOR_APPLIES,
        "--min-confidence": (lambda a: a.labels == "predicted", "--labels predicted"),
        "--max-pairs": (lambda a: not a.pairs, "pairs selected from --sensitivity (not with --pairs)"),
        **grid_rules(["edit", "finetune_local", "finetune_global"]),
    }


def _max_pairs(text: str) -> int | None:
    return None if text.strip().lower() == "all" else positive_int(text)


def _pair(text: str) -> list[str]:
    parts = [t.strip() for t in text.split(":")]
    if len(parts) != 2 or not all(parts):
        raise ValueError("write it as concept:style, e.g. road:snow")
    return parts


def config_from_args(args: argparse.Namespace):
    from modeledit.eval.bench import BenchConfig
    from modeledit.eval.protocol import ProtocolConfig

    kw = dict(
        model=args.model, weights=args.weights, dataset=args.dataset, clean=args.clean, stats_dataset=args.stats_dataset,
        pairs=args.pairs or [], sensitivity=args.sensitivity, max_pairs=args.max_pairs,
        protocol=ProtocolConfig(max_clean_drop=args.max_clean_drop),
        n_exemplars=args.n_exemplars, seeds=args.seeds, n_targets=args.n_targets,
        methods=split_list(args.methods), sites=split_list(args.sites),
        segmenter=args.segmenter, stylizer=args.stylizer, labels=args.labels, min_confidence=args.min_confidence,
    )
    return BenchConfig(**kw, **grid_overrides(args, BenchConfig))


def run(args: argparse.Namespace) -> int:
    from modeledit.eval.bench import budget_curve, display_summary, run_bench, summarize
    from modeledit.eval.plots import plot_budget, plot_methods, plot_vs

    from modeledit.atomic import atomic_path
    from modeledit.eval.validate import check_values
    from modeledit.outdir import prepare_out

    from modeledit.commands.common import executor_from_args

    check_out(args.out)
    cfg = config_from_args(args)
    check_values(cfg)
    folder = prepare_out(args.out, command="bench", force=args.force, inputs={
        "--dataset": args.dataset, "--clean": args.clean, "--stats-dataset": args.stats_dataset, "--sensitivity": args.sensitivity})
    executor = executor_from_args(args)
    with folder:
        result = run_bench(cfg, args.out, **executor)
    table = result.table
    out = Path(args.out)
    if result.failed:   # no summary from part of the cells: the finished ones are kept, the same command resumes
        print(json.dumps({"failed_cells": result.failed}, indent=1))
        print(f"{len(result.failed)} cells failed; no summary written (the finished cells are kept in {out / 'cells'}); "
              "rerun the same command to retry them")
        return 1
    with atomic_path(out / "cells.csv") as tmp:
        table.to_csv(tmp, index=False)
    summary = summarize(table, cfg.protocol.max_clean_drop)
    with atomic_path(out / "summary.csv") as tmp:
        summary.to_csv(tmp, index=False)
    figs = out / "figures"
    plot_methods(summary, figs / "methods.png")
    plot_budget(budget_curve(table), figs / "budget.png")
    if len(cfg.sites) > 1:
        plot_vs(summarize(table, cfg.protocol.max_clean_drop, by=["concept", "style", "n_exemplars", "seed", "method", "site_index"]),
                "site_index", figs / "vs_site.png", "edit site index (depth)")
    if len(cfg.n_exemplars) > 1:
        plot_vs(summary, "n_exemplars", figs / "vs_exemplars.png", "exemplars")
    cols = ["concept", "style", "n_exemplars", "method", "target_class", "test_target_corrected", "test_other_corrected",
            "heldout_other_corrected", "clean_drop", "site_name", "setting"]
    print(display_summary(summary, cols))
    return 0
