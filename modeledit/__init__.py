"""modeledit: edit an image classifier's prediction rules, and test them with concept counterfactuals.

Everything a user needs is importable from here. Images are in [0, 1] at every public boundary
(tensors, arrays, PIL images or paths) and models are :class:`LoadedModel` s, which normalise inside.
Importing the package is cheap: names load on first use, and TensorFlow, detectron2 or open_clip
are only imported by the backends that need them.

Example:
    >>> import modeledit
    >>> lm = modeledit.load_model("mobilenet_v2")                      # real ImageNet weights, offline
    >>> edit = modeledit.rewrite(lm, "features.14", "road.png", "road_snow.png", mask="road_mask.png", stats="val_images/")
    >>> with edit.applied(lm):
    ...     print(lm.topk(modeledit.read_tensor("snowy_car.png", lm))[0][0])
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (loaded on first access)
_EXPORTS = {
    # models
    "load_model": "modeledit.models",
    "LoadedModel": "modeledit.models",
    "available_models": "modeledit.models",
    "register_model": "modeledit.models",
    # edit sites
    "list_sites": "modeledit.layers",
    "get_site": "modeledit.layers",
    "capture": "modeledit.layers",
    "capture_sites": "modeledit.layers",
    "EditSite": "modeledit.layers",
    # the editor, its statistics, its baselines, the Edit value
    "Exemplars": "modeledit.exemplars",
    "second_moment": "modeledit.stats",
    "ImageFolder": "modeledit.image_folder",
    "rewrite": "modeledit.editor",
    "EditConfig": "modeledit.editor",
    "finetune": "modeledit.finetuning",
    "FinetuneConfig": "modeledit.finetuning",
    "Edit": "modeledit.edit",
    "EditSequence": "modeledit.edit",
    # counterfactuals
    "restyle": "modeledit.counterfactuals",
    "paste_text": "modeledit.counterfactuals",
    "TextSpec": "modeledit.counterfactuals",
    "generate_counterfactuals": "modeledit.counterfactuals",
    "load_counterfactuals": "modeledit.counterfactuals",
    "get_segmenter": "modeledit.segmenters",
    "concept_mask": "modeledit.segmenters",
    "get_stylizer": "modeledit.styles",
    "get_style": "modeledit.styles",
    # images and masks
    "read_image": "modeledit.images",
    "read_tensor": "modeledit.images",
    "save_image": "modeledit.images",
    "box_mask": "modeledit.masks",
    "ellipse_mask": "modeledit.masks",
    "read_mask": "modeledit.masks",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'modeledit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS))
