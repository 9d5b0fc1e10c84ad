"""``modeledit typographic``: paste a class name on images, measure the attack, fix it from one exemplar."""
from __future__ import annotations

import argparse

from modeledit.commands.common import add_force_argument, check_out, add_list, add_method_arguments, add_weights_argument, fraction, grid_overrides, split_list
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", default="world_vgg_text", help="e.g. world_vgg_text, or clip:RN50 with --weights and --classes")
    add_weights_argument(p, extra="e.g. a local open_clip RN50 file, or for clip:world-RN one written by `modeledit world train clip`")
    p.add_argument("--classes", default=None, help="comma-separated class names (CLIP zero-shot head)")
    p.add_argument("--dataset", default="world:test:900", help="labelled images (world:SPLIT[:N] or an ImageFolder tree)")
    p.add_argument("--clean", default="world:val:600", help="images for clean accuracy")
    p.add_argument("--stats-dataset", default="world:train:1500", help="images for the second-moment statistics C (disjoint from --dataset and --clean)")
    p.add_argument("--attack-class", default="car", help="the class whose name is pasted")
    p.add_argument("--word", default=None, help="the pasted word (default: the attack class's name)")
    add_list(p, "--fonts", default="sans,serif,hand", what="font",
             help="attack fonts, taken in turn (typed: sans, serif, mono, hand; world_clip: those and world)")
    p.add_argument("--paster", default="typed", choices=["typed", "world_tag", "world_clip"],
                   help="typed fonts at random places, the world's own tag (world_vgg_text), or the world CLIP's attack "
                        "(`modeledit world clip-eval`: the word fitted to the width; font world = the world's tag as a band)")
    p.add_argument("--size", type=fraction, default=0.2, help="letter height as a fraction of the image")
    add_method_arguments(p)
    p.add_argument("--seed", type=int, default=0, help="seed for the exemplar and the pasted text")
    p.add_argument("--out", required=True, help="results folder (resumable)")
    from modeledit.commands.common import add_device_arguments, add_executor_arguments

    add_executor_arguments(p)
    add_device_arguments(p, batch=True)
    add_force_argument(p)


def APPLIES(args: argparse.Namespace) -> dict:  # noqa: N802 - the flag table of modeledit.commands.applies
    from modeledit.commands.applies import grid_rules
    from modeledit.commands.common import EXECUTOR_APPLIES

    return {**EXECUTOR_APPLIES, "--fonts": (lambda a: a.paster != "world_tag", "--paster typed or world_clip (the world's tag has its own font)"),
            "--size": (lambda a: a.paster == "typed", "--paster typed (the world's pasters size their own text)"),
            **grid_rules(["edit", "finetune_local", "finetune_global"])}


def run(args: argparse.Namespace) -> int:
    from modeledit.eval.typographic import TypographicConfig, run_typographic

    from modeledit.atomic import atomic_path
    from modeledit.commands.common import executor_from_args
    from modeledit.eval.validate import check_values
    from modeledit.outdir import prepare_out

    check_out(args.out)
    cfg = TypographicConfig(
        model=args.model, weights=args.weights, class_names=split_list(args.classes) or None,
        dataset=args.dataset, clean=args.clean, stats_dataset=args.stats_dataset, attack_class=args.attack_class, word=args.word,
        fonts=args.fonts, paster=args.paster, size=args.size, methods=split_list(args.methods), sites=split_list(args.sites),
        max_clean_drop=args.max_clean_drop, seed=args.seed, **grid_overrides(args),
    )
    check_values(cfg)
    executor = executor_from_args(args)
    folder = prepare_out(args.out, command="typographic", force=args.force, inputs={
        "--weights": args.weights, "--dataset": args.dataset, "--clean": args.clean, "--stats-dataset": args.stats_dataset})
    with folder:
        table, summary = run_typographic(cfg, args.out, **executor)
    out = Path(args.out)
    for name, frame in (("cells.csv", table), ("summary.csv", summary)):
        with atomic_path(out / name) as tmp:
            frame.to_csv(tmp, index=False)
    cols = ["method", "pre_attack_acc", "post_attack_acc", "pre_attack_success", "post_attack_success", "pre_clean", "post_clean",
            "post_own_class_acc", "spurious_rule", "site_name", "setting"]
    print(summary[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0
