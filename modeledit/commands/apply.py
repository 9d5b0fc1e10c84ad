"""``modeledit apply MODEL EDIT IMAGE...``: top-5 predictions with the edit applied (and without, for reference).

The edit file is verified before anything is applied (:meth:`modeledit.edit.Edit.load`: its digests, format,
fields, method, operations, sites, tensor names and shapes, finiteness, the base weights and the size of the
change); anything wrong is one line and exit code 2, with the model untouched.
"""
from __future__ import annotations

import argparse
import json

import torch

from modeledit.commands.common import add_device_arguments, add_model_arguments, load_from_args


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    p.add_argument("edit", help="edit file written by `modeledit edit --out` (with or without the .safetensors suffix)")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--force", action="store_true", help="apply even if the model's weights differ from the edit's base")
    p.add_argument("--json", action="store_true", help="one JSON object per image: {image, before: top5, after: top5}")
    add_device_arguments(p)


def run(args: argparse.Namespace) -> int:
    from modeledit.edit import Edit
    from modeledit.images import read_image

    lm = load_from_args(args)
    edit = Edit.load(args.edit, model=lm.model, force=args.force)
    batch = torch.stack([lm.preprocess(read_image(p)) for p in args.images])
    before = lm.topk(batch, 5)
    with edit.applied(lm.model, force=args.force):
        after = lm.topk(batch, 5)
    results = [{"image": p, "before": b, "after": a} for p, b, a in zip(args.images, before, after)]
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    for r in results:
        print(f"{r['image']}  (edit: {edit.method} at {', '.join(edit.sites)})")
        for a, b in zip(r["after"], r["before"]):
            print(f"  {a['prob']:6.3f}  {a['label']} ({a['index']})    was {b['prob']:6.3f}  {b['label']}")
    return 0
