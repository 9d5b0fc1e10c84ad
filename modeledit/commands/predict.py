"""``modeledit predict MODEL IMAGE... [--json]``: top-5 labels with probabilities."""
from __future__ import annotations

import argparse
import json

import torch

from modeledit.commands.common import add_device_arguments, add_model_arguments, load_from_args


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--json", action="store_true", help="one JSON object per image: {image, top5: [{label, index, prob}]}")
    add_device_arguments(p)


def run(args: argparse.Namespace) -> int:
    from modeledit.images import read_image

    lm = load_from_args(args)
    batch = torch.stack([lm.preprocess(read_image(p)) for p in args.images])
    results = [{"image": p, "top5": t} for p, t in zip(args.images, lm.topk(batch, 5))]
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    for r in results:
        print(r["image"])
        for t in r["top5"]:
            print(f"  {t['prob']:6.3f}  {t['label']} ({t['index']})")
    return 0
