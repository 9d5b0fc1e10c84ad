"""modeledit: edit an image classifier's prediction rules, and test them with concept counterfactuals.

Importing the package is cheap: submodules load on first use, and TensorFlow, detectron2 or
open_clip are only imported by the backends that need them.

Example:
    >>> import modeledit
    >>> lm = modeledit.load_model("mobilenet_v2")
    >>> [s.name for s in modeledit.list_sites(lm.model)][:2]
    ['features.1', 'features.2']
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (loaded on first access)
_EXPORTS = {
    "load_model": "modeledit.models",
    "LoadedModel": "modeledit.models",
    "available_models": "modeledit.models",
    "register_model": "modeledit.models",
    "list_sites": "modeledit.layers",
    "get_site": "modeledit.layers",
    "resolve_module": "modeledit.layers",
    "capture": "modeledit.layers",
    "capture_sites": "modeledit.layers",
    "EditSite": "modeledit.layers",
    "read_image": "modeledit.images",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'modeledit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS))
