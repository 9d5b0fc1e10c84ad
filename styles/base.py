"""The stylizer protocol and the in-mask compositing every backend shares.

A stylizer maps a content batch (N, 3, H, W) in [0, 1] and one style image (3, h, w) in [0, 1] to a
stylized batch of the content's size in [0, 1]. :func:`apply_in_mask` pastes the stylized pixels into a
region, blended with the original at 0.8 as in the paper, leaving every pixel outside bit-identical.

Example:
    >>> from modeledit.styles import get_stylizer, apply_in_mask
    >>> out = apply_in_mask(x, get_stylizer("magenta").stylize(x, style), masks)
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

#: the paper's blend of the stylized image with the original inside the concept's mask
DEFAULT_BLEND = 0.8


@runtime_checkable
class Stylizer(Protocol):
    """``stylize(content (N,3,H,W) in [0,1], style (3,h,w) in [0,1]) -> (N,3,H,W) in [0,1]``."""

    name: str

    def stylize(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor: ...


def _check_rgb(t: torch.Tensor, dims: int, what: str, shape: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor {shape} in [0, 1], got {type(t).__name__}")
    if t.dim() != dims or t.shape[dims - 3] != 3:
        raise ValueError(f"{what} must be {shape} RGB in [0, 1], got shape {tuple(t.shape)}")
    if not t.dtype.is_floating_point:
        raise TypeError(f"{what} must be a float tensor in [0, 1], got {t.dtype}; divide uint8 by 255")
    return t


def check_content(content: torch.Tensor) -> torch.Tensor:
    """Validate a content batch: float (N, 3, H, W) in [0, 1]."""
    return _check_rgb(content, 4, "content", "(N, 3, H, W)")


def check_style(style: torch.Tensor) -> torch.Tensor:
    """Validate a style image: float (3, h, w) in [0, 1]."""
    return _check_rgb(style, 3, "a style image", "(3, h, w)")


def check_masks(masks: torch.Tensor, n: int, height: int, width: int) -> torch.Tensor:
    """Validate masks for a batch of ``n`` images of ``height`` x ``width``; returns (N, 1, H, W) float."""
    if not isinstance(masks, torch.Tensor):
        raise TypeError(f"masks must be a torch.Tensor (N, H, W), got {type(masks).__name__}")
    m = masks
    if m.dim() == 4 and m.shape[1] == 1:
        m = m[:, 0]
    if m.dim() == 2:
        m = m.unsqueeze(0)
    if m.dim() != 3 or m.shape[0] != n or tuple(m.shape[1:]) != (height, width):
        raise ValueError(
            f"masks of shape {tuple(masks.shape)} do not fit {n} image(s) of {height}x{width}; pass one HxW mask per image"
        )
    return m.to(torch.float32).clamp(0, 1).unsqueeze(1)


def apply_in_mask(original: torch.Tensor, stylized: torch.Tensor, mask: torch.Tensor, blend: float = DEFAULT_BLEND) -> torch.Tensor:
    """Blend ``stylized`` into ``original`` inside ``mask``: ``x + m * blend * (s - x)``.

    Pixels where the mask is 0 are exactly the original's (bit for bit). ``mask`` is (N, H, W) or
    (H, W), bool or float in [0, 1] (soft masks feather the edge).

    Example:
        >>> out = apply_in_mask(x, s, masks)            # 0.8 stylized + 0.2 original inside the masks
    """
    check_content(original)
    if stylized.shape != original.shape:
        raise ValueError(f"stylized batch {tuple(stylized.shape)} does not match the original {tuple(original.shape)}")
    if not 0.0 <= blend <= 1.0:
        raise ValueError(f"blend must be in [0, 1], got {blend}")
    n, _, h, w = original.shape
    m = check_masks(mask, n, h, w).to(original.device, original.dtype) * blend
    mixed = original + m * (stylized.to(original.dtype) - original)
    return torch.where(m > 0, mixed.clamp(0, 1), original)
