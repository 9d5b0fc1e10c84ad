"""``modeledit snow``: adapt a classifier to snowy roads from one synthetic exemplar, vs fine-tuning."""
from __future__ import annotations

import argparse

from modeledit.commands.common import add_force_argument, check_out, add_method_arguments, add_weights_argument, grid_overrides, positive_int, split_list
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
    from modeledit.commands.choices import add_registry_flag

    add_registry_flag(p, "--stylizer", "stylizer", "stylizer backend for the exemplar", default="texture")
    add_method_arguments(p)
    p.add_argument("--seed", type=int, default=0, help="seed for the exemplar and the world scenes")
    p.add_argument("--out", required=True, help="results folder (resumable)")
    from modeledit.commands.common import add_device_arguments, add_executor_arguments

    add_executor_arguments(p)
    add_device_arguments(p, batch=True)
    add_force_argument(p)


def APPLIES(args: argparse.Namespace) -> dict:  # noqa: N802 - the flag table of modeledit.commands.applies
    from modeledit.commands.applies import grid_rules

    photos = (lambda a: a.mode == "photos", "--mode photos (world mode makes its own exemplar from a world scene)")
    world = (lambda a: a.mode == "world", "--mode world (photos mode evaluates the photos under --photos)")
    from modeledit.commands.common import EXECUTOR_APPLIES

    return {**EXECUTOR_APPLIES, "--photos": photos, "--exemplar": photos, "--exemplar-mask": photos, "--n-val": world, "--n-test": world,
            **grid_rules(["edit", "finetune_local", "finetune_global"])}


def run(args: argparse.Namespace) -> int:
    from modeledit.eval.snow import SnowConfig, run_snow

    from modeledit.atomic import atomic_path
    from modeledit.commands.common import executor_from_args
    from modeledit.eval.validate import check_values
    from modeledit.outdir import prepare_out

    check_out(args.out)
    cfg = SnowConfig(model=args.model, weights=args.weights, mode=args.mode, exemplar_class=args.exemplar_class,
                     photos=args.photos, n_val=args.n_val, n_test=args.n_test, exemplar=args.exemplar, exemplar_mask=args.exemplar_mask, clean=args.clean, stats_dataset=args.stats_dataset,
                     style=args.style, stylizer=args.stylizer, methods=split_list(args.methods), sites=split_list(args.sites),
                     max_clean_drop=args.max_clean_drop, seed=args.seed, **grid_overrides(args))
    check_values(cfg)
    executor = executor_from_args(args)
    folder = prepare_out(args.out, command="snow", force=args.force, inputs={
        "--photos": args.photos, "--exemplar": args.exemplar, "--exemplar-mask": args.exemplar_mask, "--clean": args.clean,
        "--stats-dataset": args.stats_dataset})
    with folder:
        table, summary = run_snow(cfg, args.out, **executor)
    out = Path(args.out)
    for name, frame in (("cells.csv", table), ("summary.csv", summary)):
        with atomic_path(out / name) as tmp:
            frame.to_csv(tmp, index=False)
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0
