"""Stylizer backends behind one protocol (``modeledit.styles``), imported on first use; and the style bank.

Example:
    >>> from modeledit.styles import get_stylizer, get_style, apply_in_mask
    >>> style = get_style("snow").images[0]                # (3, h, w) in [0, 1]
    >>> out = apply_in_mask(x, get_stylizer("magenta").stylize(x, style), masks)
"""
from __future__ import annotations

from typing import Any

from modeledit.styles.base import DEFAULT_BLEND, Stylizer, apply_in_mask

# registry: name -> "module:Class"; the module is imported only when the backend is asked for
STYLIZERS: dict[str, str] = {
    "magenta": "modeledit.styles.magenta:MagentaStylizer",
    "magenta-onnx": "modeledit.styles.magenta:MagentaOnnxStylizer",
    "tfhub": "modeledit.styles.tfhub:TFHubStylizer",
    "texture": "modeledit.styles.texture:TextureStylizer",
}


def available_stylizers() -> list[str]:
    """Names :func:`get_stylizer` accepts."""
    return sorted(STYLIZERS)


def get_stylizer(name: str, **kwargs: Any) -> Stylizer:
    """Build the stylizer registered under ``name`` with backend-specific ``kwargs``.

    Example:
        >>> st = get_stylizer("magenta")                      # offline Magenta networks, torch port
        >>> st = get_stylizer("tfhub", handle="/models/arbitrary-image-stylization")
    """
    from modeledit.registry import build_lazy

    return build_lazy(STYLIZERS, name, "stylizer", **kwargs)


def get_style(name: str):  # noqa: ANN201 - re-exported from the bank, imported lazily
    """A named style from the bank (see :mod:`modeledit.styles.bank`)."""
    from modeledit.styles.bank import get_style as _get

    return _get(name)


def available_styles() -> list[str]:
    """Names of the styles in the bank, built-in and registered."""
    from modeledit.styles.bank import available_styles as _avail

    return _avail()


def register_style_folder(name: str, path: Any) -> None:
    """Register a folder of style images as the style ``name``."""
    from modeledit.styles.bank import register_style_folder as _reg

    _reg(name, path)


__all__ = [
    "Stylizer", "STYLIZERS", "DEFAULT_BLEND", "apply_in_mask", "available_stylizers", "get_stylizer",
    "get_style", "available_styles", "register_style_folder",
]
