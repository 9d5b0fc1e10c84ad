"""``modeledit counterfactuals --images DIR --concept C --style S --out DIR``: write a counterfactual dataset."""
from __future__ import annotations

import argparse
from modeledit.commands.common import add_force_argument, check_out, add_list, fraction, nonneg_int, positive_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--images", required=True, help="folder of images, or an ImageFolder tree (subfolders = classes)")
    add_list(p, "--concepts", "--concept", what="concept", required=True, help="concepts to restyle, comma-separated or repeated, e.g. person,road")
    add_list(p, "--styles", "--style", what="style", required=True, help="styles from the bank, comma-separated or repeated, e.g. snow,wooden")
    from modeledit.commands.choices import add_registry_flag

    add_registry_flag(p, "--segmenter", "segmenter", "segmenter backend", default="mediapipe")
    p.add_argument("--segmenter-arg", action="append", metavar="KEY=VALUE",
                   help="keyword for the segmenter, e.g. root=masks/ or box=10,10,200,200 (comma-separated numbers are a tuple; repeatable)")
    add_registry_flag(p, "--stylizer", "stylizer", "stylizer backend", default="magenta")
    add_list(p, "--style-images", item=nonneg_int, what="image index", help="indices of each style's images to use, comma-separated (default: all)")
    p.add_argument("--max-size", type=nonneg_int, default=512, help="downscale images whose long side exceeds this (0 keeps sizes)")
    p.add_argument("--batch-size", type=positive_int, default=8, help="images per segmenter/stylizer batch (also the unit kept on Ctrl-C)")
    p.add_argument("--blend", type=fraction, default=0.8, help="stylized/original blend inside the mask (paper: 0.8)")
    p.add_argument("--skip-bad-images", action="store_true", help="skip unreadable images instead of stopping")
    p.add_argument("--out", required=True, help="output dataset folder, outside --images (an interrupted run there is resumed)")
    from modeledit.commands.common import add_device_arguments

    add_device_arguments(p, precision=False)
    add_force_argument(p)


def run(args: argparse.Namespace) -> int:
    from modeledit.counterfactuals import CounterfactualConfig, generate_counterfactuals, load_counterfactuals

    from modeledit.outdir import prepare_out
    from modeledit.segmenters.args import parse_segmenter_args

    check_out(args.out)
    seg_kwargs = parse_segmenter_args(args.segmenter, args.segmenter_arg)
    folder = prepare_out(args.out, command="counterfactuals", force=args.force,
                         inputs={"--images": args.images, **{f"--segmenter-arg {k}": v for k, v in seg_kwargs.items() if isinstance(v, str)}})
    cfg = CounterfactualConfig(
        batch_size=args.batch_size, blend=args.blend, max_size=args.max_size or None,
        style_images=args.style_images,
        on_error="skip" if args.skip_bad_images else "raise",
    )
    with folder:
        out = generate_counterfactuals(args.images, args.segmenter, args.stylizer, args.concepts, args.styles, args.out, cfg,
                                       segmenter_kwargs=seg_kwargs)
    ds = load_counterfactuals(out)
    t = ds.table
    print(f"{len(t)} counterfactuals from {t['image_id'].nunique() if len(t) else 0} images -> {out}")
    if len(t):
        print(t.groupby(["concept", "style"]).size().rename("records").to_string())
    if ds.config.get("skipped"):
        print(f"skipped {len(ds.config['skipped'])} unreadable images: {', '.join(ds.config['skipped'][:10])}")
    return 0
