"""``modeledit sensitivity``: per-class accuracy drops when one concept is restyled."""
from __future__ import annotations

import argparse
from pathlib import Path

from modeledit.commands.common import add_device_arguments, add_force_argument, add_label_arguments, check_out, add_list, add_model_arguments, load_from_args, nonneg_int, positive_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    p.add_argument("--dataset", default="world:test", help="world:SPLIT[:N] or an image folder (ImageFolder tree for labels)")
    add_list(p, "--concepts", "--concept", what="concept", required=True, help="concept names, comma-separated or repeated, e.g. road,grass")
    add_list(p, "--styles", "--style", what="style", required=True, help="style names from the style bank, comma-separated or repeated, e.g. snow,wooden")
    p.add_argument("--style-image", type=nonneg_int, default=0, help="which one image of each style is used (the others are held out)")
    from modeledit.commands.choices import add_registry_flag

    add_registry_flag(p, "--segmenter", "segmenter", "segmenter backend (oracle = the world's true masks)", default="oracle")
    add_registry_flag(p, "--stylizer", "stylizer", "stylizer backend", default="magenta")
    add_label_arguments(p)
    p.add_argument("--batch-size", type=positive_int, default=32, help="images per batch (also the unit kept on Ctrl-C)")
    p.add_argument("--bootstrap", type=positive_int, default=1000, help="bootstrap resamples for the 95%% intervals")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--out", required=True, help="results folder (resumable; table.csv, table.json, figures)")
    add_force_argument(p)
    add_device_arguments(p, data=True)


#: flags that apply only in some modes (modeledit.commands.applies)
APPLIES = {"--min-confidence": (lambda a: a.labels == "predicted", "--labels predicted")}


def run(args: argparse.Namespace) -> int:
    from modeledit.eval.datasets import load_dataset
    from modeledit.eval.plots import plot_class_rules, plot_concept_classes, plot_concept_style_heatmap
    from modeledit.eval.sensitivity import SensitivityConfig, concept_sensitivity

    from modeledit.outdir import prepare_out

    check_out(args.out)
    folder = prepare_out(args.out, command="sensitivity", inputs={"--dataset": args.dataset}, force=args.force)
    lm = load_from_args(args)
    cfg = SensitivityConfig(
        concepts=args.concepts, styles=args.styles,
        style_image=args.style_image, segmenter=args.segmenter, stylizer=args.stylizer,
        batch_size=args.batch_size, n_boot=args.bootstrap, seed=args.seed,
        labels=args.labels, min_confidence=args.min_confidence, dataset=args.dataset,
    )
    ds = load_dataset(args.dataset, class_names=lm.class_names, size=lm.input_size)
    with folder:
        table = concept_sensitivity(lm, ds, cfg, out_dir=args.out)
    out = Path(args.out)
    from modeledit.atomic import atomic_path

    with atomic_path(out / "table.csv") as tmp:   # a table is never half-written
        table.to_csv(tmp, index=False)
    with atomic_path(out / "table.json") as tmp:
        table.to_json(tmp, orient="records", indent=1)
    figs = out / "figures"
    for c in cfg.concepts:
        plot_concept_classes(table, c, figs / f"concept_{c}.png")
    plot_concept_style_heatmap(table, figs / "heatmap.png")
    worst = table.dropna(subset=["drop"]).sort_values("drop", ascending=False)
    for cls in worst["class_name"].drop_duplicates().head(3):
        plot_class_rules(table, cls, figs / f"class_{cls}.png")
    shown = worst[["concept", "style", "class_name", "presence", "acc_clean", "acc_transformed", "drop", "drop_low", "drop_high"]].head(12)
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"table: {out / 'table.csv'}  figures: {figs}")
    return 0
