"""``modeledit snow``: adapt a classifier to snowy roads from one synthetic exemplar, vs fine-tuning."""
from __future__ import annotations

import argparse

from modeledit.commands.common import check_out, add_method_arguments, add_weights_argument, grid_overrides, positive_int, split_list
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", default="world_vgg", help="model name (see `modeledit models`)")
    add_weights_argument(p)
    p.add_argument("--mode", default="world", choices=["world", "photos"], help="world scenes, or a folder of real photos")
    p.add_argument("--exemplar-class", default="cow", help="the exemplar's class (world mode: any non-vehicle class)")
    p.add_argument("--photos", default=None, help="photos mode: ImageFolder tree of real photos named by the model's classes")
    p.add_argument("--exemplar", default=None, help="photos mode: the exemplar image")
    p.add_argument("--exemplar-mask", default=None, help="photos mode: the exemplar's road mask (PNG)")
    p.add_argument("--clean", default="world:val:600", help="images for clean accuracy")
    p.add_argument("--stats-dataset", default="world:train:1500", help="images for the second-moment statistics C (disjoint from every evaluation set)")
    p.add_argument("--n-val", type=positive_int, default=300, help="world mode: snowy vehicle scenes for validation")
    p.add_argument("--n-test", type=positive_int, default=900, help="world mode: snowy vehicle scenes for test")
    p.add_argument("--style", default="snow", help="the exemplar's style from the style bank")
    p.add_argument("--stylizer", default="texture", help="stylizer backend for the exemplar")
    add_method_arguments(p)
    p.add_argument("--seed", type=int, default=0, help="seed for the exemplar and the world scenes")
    p.add_argument("--out", required=True, help="results folder (resumable)")
    from modeledit.commands.common import add_device_arguments

    add_device_arguments(p)


def run(args: argparse.Namespace) -> int:
    from modeledit.eval.snow import SnowConfig, run_snow

    check_out(args.out)
    cfg = SnowConfig(model=args.model, weights=args.weights, mode=args.mode, exemplar_class=args.exemplar_class,
                     photos=args.photos, n_val=args.n_val, n_test=args.n_test, exemplar=args.exemplar, exemplar_mask=args.exemplar_mask, clean=args.clean, stats_dataset=args.stats_dataset,
                     style=args.style, stylizer=args.stylizer, methods=split_list(args.methods), sites=split_list(args.sites),
                     max_clean_drop=args.max_clean_drop, seed=args.seed, **grid_overrides(args))
    table, summary = run_snow(cfg, args.out)
    out = Path(args.out)
    table.to_csv(out / "cells.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0
