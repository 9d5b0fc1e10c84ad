"""``modeledit photos``: the protocol on every colour photo that ships offline, with the real MobileNetV2."""
from __future__ import annotations

import argparse

from modeledit.commands.common import (add_force_argument, add_list, add_method_arguments, add_weights_argument, check_out, fraction, grid_overrides,
                                       nonneg_int, positive_int, split_list)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", default="mobilenet_v2", help="model name (see `modeledit models`)")
    add_weights_argument(p)
    add_list(p, "--photos", what="photo", help="photos to use (default: every shipped colour photo; see eval/photos.py PHOTOS)")
    add_list(p, "--styles", "--style", what="style", help="Magenta styles for the foreground (default: floral,graffiti)")
    add_list(p, "--n-exemplars", item=positive_int, what="exemplar count", help="exemplar photos per edit (default: 1,3)")
    add_list(p, "--seeds", item=nonneg_int, what="seed", help="exemplar draws (default: 0)")
    p.add_argument("--min-confidence", type=fraction, default=None, help="keep views whose top-1 probability is at least this "
                   "(the top-1 is their label; default 0.25)")
    add_method_arguments(p)
    p.set_defaults(methods=None, sites=None, max_clean_drop=None)   # the study's own defaults (PhotosConfig)
    p.add_argument("--quick", action="store_true", help="a tiny configuration (five photos, one style; noisy) for a first look")
    p.add_argument("--out", required=True, help="results folder (resumable)")
    from modeledit.commands.common import add_device_arguments, add_executor_arguments

    add_executor_arguments(p)
    add_device_arguments(p, batch=True)
    add_force_argument(p)


def APPLIES(args: argparse.Namespace) -> dict:  # noqa: N802 - the flag table of modeledit.commands.applies
    from modeledit.commands.applies import grid_rules

    def study_methods(a: argparse.Namespace) -> list[str]:
        from modeledit.eval.photos import PhotosConfig

        return list((PhotosConfig.quick() if a.quick else PhotosConfig()).methods)

    from modeledit.commands.common import EXECUTOR_APPLIES

    return {**EXECUTOR_APPLIES, **grid_rules(study_methods)}


def config_from_args(args: argparse.Namespace):
    from modeledit.eval.photos import PhotosConfig

    base = PhotosConfig.quick() if args.quick else PhotosConfig()
    kw = {k: v for k, v in dict(photos=args.photos, styles=args.styles, n_exemplars=args.n_exemplars, seeds=args.seeds,
                                min_confidence=args.min_confidence, methods=split_list(args.methods) or None,
                                sites=split_list(args.sites) or None, max_clean_drop=args.max_clean_drop).items() if v is not None}
    kw.update(grid_overrides(args, PhotosConfig))
    import dataclasses

    return dataclasses.replace(base, model=args.model, weights=args.weights, **kw)


def run(args: argparse.Namespace) -> int:
    from modeledit.eval.photos import run_photos
    from modeledit.eval.report import display_table

    from modeledit.commands.common import executor_from_args
    from modeledit.eval.validate import check_values
    from modeledit.outdir import prepare_out

    check_out(args.out)
    cfg = config_from_args(args)
    check_values(cfg)
    executor = executor_from_args(args)
    with prepare_out(args.out, command="photos", force=args.force):
        _, _, methods = run_photos(cfg, args.out, **executor)
    print(display_table(methods, ["n_exemplars", "method", "units_changed", "test_corrected", "heldout_corrected", "locality"]))
    print(f"results: {args.out} (summary.json, methods.csv, summary.csv, cells.csv, views.csv, masks.png, grid.png)")
    return 0
