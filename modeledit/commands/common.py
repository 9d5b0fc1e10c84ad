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


def add_method_arguments(p: argparse.ArgumentParser, sites: str = "-1") -> None:
    """The comparison's methods, edit sites and clean-accuracy budget (bench, typographic, snow)."""
    p.add_argument("--methods", default="edit,finetune_local,finetune_global",
                   help="comma-separated: edit, edit_adam, edit_full, edit_masked, finetune_local, finetune_global")
    p.add_argument("--sites", default=sites, help="comma-separated edit sites (index or name, see `modeledit layers`)")
    p.add_argument("--max-clean-drop", type=float, default=0.0025, help="clean accuracy budget for choosing hyperparameters")
    p.add_argument("--finetune-grid", default=None, help="fine-tuning lr:steps,... (default: the harness's grid)")
    p.add_argument("--adam-grid", default=None, help="lr:steps,... for edit_adam (default: the harness's grid)")


def grid_overrides(args: argparse.Namespace) -> dict[str, list[list[float]]]:
    """Config fields for the --finetune-grid / --adam-grid flags that were given."""
    out = {}
    for flag, key in (("finetune_grid", "finetune_grid"), ("adam_grid", "adam_grid")):
        text = getattr(args, flag, None)
        if text:
            try:
                out[key] = [[float(a), int(b)] for a, b in (item.split(":") for item in split_list(text))]
            except ValueError:
                raise ValueError(f"--{flag.replace('_', '-')} takes lr:steps pairs separated by commas, e.g. 1e-3:500,1e-4:500; got {text!r}") from None
    return out


def split_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]
