"""Restyle only a region of an image: the concept-level counterfactual, in memory (thesis 3.2.2, B.1.3).

One operation under one name: the style image is rendered over the whole picture by a stylizer (the
Magenta network by default), then blended in only where the mask is set; outside the mask every pixel
stays exactly equal. Transform styles ("black and white") need no stylizer. Images are (N, 3, H, W)
in [0, 1] (one image convention at every public boundary), masks (N, H, W) or (H, W), bool or 0/1.

Example:
    >>> from modeledit import restyle
    >>> x_cf = restyle(x01, masks, "snow", style_image=1)        # (N, 3, H, W) in [0, 1]
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch


@lru_cache(maxsize=4)
def _cached_stylizer(name: str) -> Any:
    from modeledit.styles import get_stylizer

    return get_stylizer(name)


def resolve_stylizer(stylizer: Any) -> Any:
    """A stylizer instance from a registry name (built once per process and reused) or an instance."""
    if isinstance(stylizer, str):
        return _cached_stylizer(stylizer)
    if not hasattr(stylizer, "stylize"):
        raise TypeError(f"stylizer must be a registry name or have .stylize(content, style), got {type(stylizer).__name__}")
    return stylizer


def _check_region_masks(masks: Any, n: int, h: int, w: int, device: torch.device | None = None) -> torch.Tensor:
    m = masks if isinstance(masks, torch.Tensor) else torch.as_tensor(np.asarray(masks), device=device or torch.device("cpu"))
    if m.dim() == 2:
        m = m.unsqueeze(0)
    if m.dim() != 3 or m.shape[0] != n or tuple(m.shape[1:]) != (h, w):
        raise ValueError(f"masks of shape {tuple(m.shape)} do not fit {n} image(s) of {h}x{w}; pass one HxW mask per image")
    empty = [i for i in range(n) if not bool((m[i] > 0).any())]
    if empty:
        raise ValueError(f"mask(s) of image(s) {empty[:5]} are empty; restyle only images where the concept is present")
    return m


def stylize(images01: torch.Tensor, style: Any, style_image: int = 0, stylizer: Any = "magenta") -> torch.Tensor:
    """The whole images rendered in one style image (the part of :func:`restyle` before masking).

    ``style``: a style name from the bank or a :class:`~modeledit.styles.bank.Style`.
    """
    from modeledit.styles.bank import Style, get_style
    from modeledit.styles.base import check_content

    check_content(images01)
    st = style if isinstance(style, Style) else get_style(style)
    if st.kind == "transform":
        return st.apply_transform(images01)
    if not 0 <= int(style_image) < len(st.images):
        raise KeyError(f"style {st.name!r} has images 0..{len(st.images) - 1}, not {style_image}")
    return resolve_stylizer(stylizer).stylize(images01, st.images[int(style_image)])


def restyle(images01: torch.Tensor, masks: Any, style: Any, style_image: int = 0, stylizer: Any = "magenta",
            blend: float = 0.8) -> torch.Tensor:
    """Restyle the masked region of each image with one style image; outside pixels stay exactly equal.

    ``images01`` (N, 3, H, W) or (3, H, W) in [0, 1]; ``masks`` one (H, W) mask per image (bool, 0/1;
    tensor or array); ``style`` a style name from the bank (``modeledit.styles.available_styles()``)
    or a Style; ``style_image`` which of the style's images; ``stylizer`` a registry name or instance.

    Example:
        >>> y = restyle(x01, masks, "snow", 0)      # (N, 3, H, W) in [0, 1]
    """
    from modeledit.images import check_batch01
    from modeledit.styles.base import apply_in_mask

    single = isinstance(images01, torch.Tensor) and images01.dim() == 3
    x = check_batch01(images01, "images to restyle")
    n, _, h, w = x.shape
    m = _check_region_masks(masks, n, h, w, x.device)
    out = apply_in_mask(x, stylize(x, style, style_image, stylizer), m.to(x.device), blend=blend)
    return out[0] if single else out
