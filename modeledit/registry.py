"""Lazy backend registries: a name maps to a ``"module:Class"`` string imported only when asked for.

The segmenter and stylizer registries (``modeledit.segmenters.SEGMENTERS``,
``modeledit.styles.STYLIZERS``) use it, so importing the package never imports a backend's
dependencies (TensorFlow, detectron2, LiteRT).

Example:
    >>> build_lazy({"texture": "modeledit.styles.texture:TextureStylizer"}, "texture", "stylizer", tile=64)
"""
from __future__ import annotations

import importlib
from typing import Any, Mapping


def build_lazy(registry: Mapping[str, str], name: str, kind: str, **kwargs: Any) -> Any:
    """Import ``registry[name]`` ("module:Class") and build it with ``kwargs``; KeyError with close matches."""
    if name not in registry:
        from modeledit.models import close_matches

        raise KeyError(f"unknown {kind} {name!r}; closest: {close_matches(name, list(registry)) or '-'}; valid: {sorted(registry)}")
    module, cls = registry[name].split(":")
    return getattr(importlib.import_module(module), cls)(**kwargs)
