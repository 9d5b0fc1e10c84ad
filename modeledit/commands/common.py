"""Arguments shared by several subcommands."""
from __future__ import annotations

import argparse

from modeledit.models import LoadedModel, load_model


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model name (see `modeledit models`), e.g. mobilenet_v2, world_vgg, timm:resnet18, clip:RN50")
    p.add_argument("--weights", default=None, help="weights: torchvision enum name (IMAGENET1K_V1), open_clip tag, or a local checkpoint path")
    p.add_argument("--classes", default=None, help="comma-separated class names (CLIP zero-shot head, or a custom checkpoint)")


def load_from_args(args: argparse.Namespace) -> LoadedModel:
    kwargs = {}
    if getattr(args, "classes", None):
        kwargs["class_names"] = [c.strip() for c in args.classes.split(",") if c.strip()]
    return load_model(args.model, weights=args.weights, **kwargs)
