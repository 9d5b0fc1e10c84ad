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
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

if TYPE_CHECKING:
    from PIL import Image


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


#: files whose compression leaves near-zero noise around a mask's edges: read with the half-range rule
LOSSY_FORMATS = ("JPEG", "MPO")
#: colour spaces Pillow converts to RGB with rounding (black may come back as 1 or 2): half-range rule too
CONVERTED_MODES = ("CMYK", "YCbCr", "LAB", "HSV")


def mask_array(im: "Image.Image", name: str = "mask") -> np.ndarray:
    """An opened mask image (any PIL mode) as an HxW bool array, by the rule of :func:`read_mask`."""
    from modeledit.images import ALPHA_MODES, FILE_FLOAT_SLACK, FORMAT_KEY, GREY16_MODES, float01

    mode = im.mode
    if mode == "F":
        return float01(np.asarray(im, dtype=np.float64), name, FILE_FLOAT_SLACK) > 0.5
    if mode in GREY16_MODES or mode in ("I", "1"):
        clear = im.info.get("transparency")   # a PNG tRNS value is the one transparent value: the alpha rule
        return np.asarray(im) != (clear if isinstance(clear, int) and mode != "1" else 0)
    lossy = im.info.get(FORMAT_KEY, im.format) in LOSSY_FORMATS or mode in CONVERTED_MODES
    if mode in ALPHA_MODES or "transparency" in im.info:
        rgba = np.asarray(im.convert("LA").convert("RGBA") if mode == "La" else im.convert("RGBA"))
        if (rgba[..., 3] < 255).any():  # a cut-out or a layer painted on transparency: the alpha is the mask
            return rgba[..., 3] > (127 if lossy else 0)
        arr = rgba[..., :3]
    else:
        arr = np.asarray(im if mode in ("L", "RGB") else im.convert("RGB"))
    arr = arr.max(axis=2) if arr.ndim == 3 else arr
    return arr > (127 if lossy else 0)


def read_mask(path: str | os.PathLike, size: int | Sequence[int] | None = None, resize: bool = False) -> torch.Tensor:
    """A mask image as an (H, W) bool tensor (True = the concept's pixels); with ``size`` it must have
    that (height, width), or is resized to it (nearest neighbour) when ``resize`` is set.

    Every mask the library reads from a file goes through here. Which pixels are the concept, by PIL mode:

    * integer masks (``1``, ``L``, ``P``, ``I;16``, ``I``, ``RGB``): any non-zero value; for colour (and
      ``P``, by the colours its palette shows) any non-zero channel;
    * float masks (``F``, e.g. a float TIFF): values above 0.5; the values must lie in [0, 1] (NaN, or
      another range, is refused), so a mask of 0.9 marks its pixels;
    * with an alpha channel that is not opaque everywhere (``LA``, ``PA``, ``RGBA``, a ``transparency``
      entry): the alpha alone, non-zero = concept (a cut-out marks its opaque part); an alpha that is
      opaque everywhere is ignored and the colour decides;
    * lossy files (JPEG) and colour spaces Pillow converts with rounding (``CMYK``, ``YCbCr``, ``LAB``,
      ``HSV``): more than half the range (> 127 of 255), since they leave near-zero noise where the mask
      is black. Save masks as PNG to avoid this.

    An empty mask (no concept pixel) is refused.

    Example:
        >>> m = read_mask("road_mask.png", size=(224, 224), resize=True)
    """
    from PIL import Image

    from modeledit.images import open_image

    im = open_image(path, "mask")
    m = mask_array(im, f"mask {str(path)!r}")
    if size is not None:
        h, w = _hw(size)
        if m.shape != (h, w):
            if not resize:
                raise ValueError(f"mask {str(path)!r} is {m.shape[1]}x{m.shape[0]} but the image is {w}x{h}; give a mask of the "
                                 "image's size, or pass resize=True")
            m = np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize((w, h), Image.NEAREST)) > 0
    if not m.any():
        raise ValueError(f"mask {str(path)!r} is empty (no pixel is marked, by the rule of modeledit.read_mask); mark the "
                         "concept's pixels")
    return torch.from_numpy(np.ascontiguousarray(m))
