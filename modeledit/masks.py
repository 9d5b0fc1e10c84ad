"""Concept masks by hand: a box, an ellipse, or a mask image, as (H, W) bool tensors.

For one-off photos where no segmenter knows the concept (segmenters live in
:mod:`modeledit.segmenters`). A mask marks the concept's pixels of one image; it must have the image's
size (``read_mask`` refuses another size unless asked to resize).

Example:
    >>> from modeledit import box_mask, ellipse_mask, read_mask
    >>> m = box_mask((224, 224), (40, 120, 200, 224))          # x0, y0, x1, y1: the lower part
    >>> m = ellipse_mask((224, 224), center=(112, 100), axes=(60, 90))
    >>> m = read_mask("road_mask.png", size=(224, 224), resize=True)
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch


def _hw(size: int | Sequence[int]) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if h < 1 or w < 1:
        raise ValueError(f"mask size must be positive (height, width), got {size}")
    return h, w


def box_mask(size: int | Sequence[int], box: Sequence[float]) -> torch.Tensor:
    """(H, W) bool mask, True inside ``box`` = (x0, y0, x1, y1) in pixels (x1, y1 exclusive)."""
    h, w = _hw(size)
    if len(box) != 4:
        raise ValueError(f"box must be (x0, y0, x1, y1), got {box}")
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, x1 = max(0, min(x0, x1)), min(w, max(x0, x1))
    y0, y1 = max(0, min(y0, y1)), min(h, max(y0, y1))
    m = torch.zeros(h, w, dtype=torch.bool)
    m[y0:y1, x0:x1] = True
    if not bool(m.any()):
        raise ValueError(f"box {tuple(box)} covers no pixel of a {w}x{h} image")
    return m


def ellipse_mask(size: int | Sequence[int], center: Sequence[float], axes: Sequence[float]) -> torch.Tensor:
    """(H, W) bool mask, True inside the axis-aligned ellipse with ``center`` (x, y) and half-``axes`` (ax, ay)."""
    h, w = _hw(size)
    (cx, cy), (ax, ay) = center, axes
    if ax <= 0 or ay <= 0:
        raise ValueError(f"ellipse axes must be positive, got {tuple(axes)}")
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32) + 0.5, torch.arange(w, dtype=torch.float32) + 0.5, indexing="ij")
    m = ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1.0
    if not bool(m.any()):
        raise ValueError(f"ellipse at {tuple(center)} with axes {tuple(axes)} covers no pixel of a {w}x{h} image")
    return m


def read_mask(path: str | os.PathLike, size: int | Sequence[int] | None = None, resize: bool = False) -> torch.Tensor:
    """A mask image (non-zero = concept) as an (H, W) bool tensor; with ``size`` it must have that
    (height, width), or is resized to it (nearest neighbour) when ``resize`` is set."""
    from PIL import Image

    from modeledit.images import open_image

    im = open_image(path, "mask").convert("L")
    if size is not None:
        h, w = _hw(size)
        if im.size != (w, h):
            if not resize:
                raise ValueError(f"mask {str(path)!r} is {im.size[0]}x{im.size[1]} but the image is {w}x{h}; give a mask of the "
                                 "image's size, or pass resize=True")
            im = im.resize((w, h), Image.NEAREST)
    m = torch.from_numpy(np.asarray(im) > 0)
    if not bool(m.any()):
        raise ValueError(f"mask {str(path)!r} is empty (no non-zero pixel); mark the concept's pixels")
    return m
