"""``modeledit typographic``: paste a class name on images, measure the attack, fix it from one exemplar."""
from __future__ import annotations

import argparse

from modeledit.commands.common import check_out, add_list, add_method_arguments, fraction, grid_overrides, split_list
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", default="world_vgg_text", help="e.g. world_vgg_text, or clip:RN50 with --weights and --classes")
    p.add_argument("--weights", default=None, help="a checkpoint: e.g. a local open_clip RN50 file, or for clip:world-RN one written by "
                   "`modeledit world train clip` (default: the model's offline default, for clip:world-RN the shipped one)")
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
    from modeledit.commands.common import add_device_arguments

    add_device_arguments(p)


def run(args: argparse.Namespace) -> int:
    from modeledit.eval.typographic import TypographicConfig, run_typographic

    check_out(args.out)
    cfg = TypographicConfig(
        model=args.model, weights=args.weights, class_names=split_list(args.classes) or None,
        dataset=args.dataset, clean=args.clean, stats_dataset=args.stats_dataset, attack_class=args.attack_class, word=args.word,
        fonts=args.fonts, paster=args.paster, size=args.size, methods=split_list(args.methods), sites=split_list(args.sites),
        max_clean_drop=args.max_clean_drop, seed=args.seed, **grid_overrides(args),
    )
    table, summary = run_typographic(cfg, args.out)
    out = Path(args.out)
    table.to_csv(out / "cells.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    cols = ["method", "pre_attack_acc", "post_attack_acc", "pre_attack_success", "post_attack_success", "pre_clean", "post_clean",
            "post_own_class_acc", "spurious_rule", "site_name", "setting"]
    print(summary[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0
