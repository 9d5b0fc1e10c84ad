"""Stylizer backends behind one protocol (``modeledit.styles``), imported on first use; and the style bank.

Example:
    >>> from modeledit.styles import get_stylizer, get_style, apply_in_mask
    >>> style = get_style("snow").images[0]                # (3, h, w) in [0, 1]
    >>> out = apply_in_mask(x, get_stylizer("magenta").stylize(x, style), masks)
"""
from __future__ import annotations

from typing import Any

from modeledit.registry import Registry
from modeledit.styles.base import DEFAULT_BLEND, Stylizer, apply_in_mask

#: name -> "module:Class", imported only when the backend is asked for; plugins: entry-point group
#: ``modeledit.stylizers``
STYLIZERS = Registry("stylizer", group="modeledit.stylizers")
STYLIZERS.register("magenta", "modeledit.styles.magenta:MagentaStylizer", "Magenta arbitrary style transfer, torch port of the shipped networks")
STYLIZERS.register("magenta-onnx", "modeledit.styles.magenta:MagentaOnnxStylizer", "Magenta arbitrary style transfer on onnxruntime")
STYLIZERS.register("tfhub", "modeledit.styles.tfhub:TFHubStylizer", "Magenta arbitrary style transfer from TF Hub (needs modeledit[tfhub])")
STYLIZERS.register("texture", "modeledit.styles.texture:TextureStylizer", "pastes the style image as a tiled texture")


def available_stylizers() -> list[str]:
    """Names :func:`get_stylizer` accepts."""
    return STYLIZERS.names()


def get_stylizer(name: str, **kwargs: Any) -> Stylizer:
    """Build the stylizer registered under ``name`` with backend-specific ``kwargs``.

    Example:
        >>> st = get_stylizer("magenta")                      # offline Magenta networks, torch port
        >>> st = get_stylizer("tfhub", handle="/models/arbitrary-image-stylization")
    """
    return STYLIZERS.build(name, **kwargs)


def get_style(name: str):  # noqa: ANN201 - re-exported from the bank, imported lazily
    """A named style from the bank (see :mod:`modeledit.styles.bank`)."""
    from modeledit.styles.bank import get_style as _get

    return _get(name)


def available_styles() -> list[str]:
    """Names of the styles in the bank, built-in and registered."""
    from modeledit.styles.bank import available_styles as _avail

    return _avail()


def folder_style(path: Any) -> Any:
    """A folder of style images as one style, named by its path (``get_style(path)`` gives the same)."""
    from modeledit.styles.bank import folder_style as _folder

    return _folder(path)


__all__ = [
    "Stylizer", "STYLIZERS", "DEFAULT_BLEND", "apply_in_mask", "available_stylizers", "get_stylizer",
    "get_style", "available_styles", "folder_style",
]
