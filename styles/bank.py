"""The style bank: named styles, each with at least three style images (or a pixel transform).

Built-in styles follow the paper's list (Santurkar et al. 2021, appendix B.1.3): "black and white"
(a transform, not a stylization), "floral", "fall colors", "furry", "graffiti", "gravel", "snow",
"wooden", plus "metallic", "rusty", "grass" and "brick". Their images come from scikit-image's
texture photographs (grass, gravel, brick) and from deterministic procedural textures
(:mod:`modeledit.styles.procedural`), generated on demand at 256x256. A folder of images is a style too:
name it by its path (``get_style("my_styles/stained_glass")``). The bank keeps no state: a folder style is
its path, so it travels in a harness's config to every worker (Ray included). Exemplars use image 0; tests
hold out the others.

Example:
    >>> from modeledit.styles.bank import get_style, available_styles
    >>> s = get_style("snow")
    >>> s.kind, len(s.images), tuple(s.images[0].shape)
    ('images', 3, (3, 256, 256))
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from modeledit.image_folder import IMAGE_SUFFIXES

STYLE_SIZE = 256


@dataclass
class Style:
    """A named style: its images ``(3, h, w)`` in [0, 1] with source ids, or a pixel ``transform``."""

    name: str
    images: list[torch.Tensor]
    kind: str = "images"  # "images" (stylize with a style image) or "transform" (apply a pixel transform)
    sources: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return max(1, len(self.images))

    def apply_transform(self, x01: torch.Tensor) -> torch.Tensor:
        """Apply a transform style to a batch (N, 3, H, W); a TypeError for image styles."""
        if self.kind != "transform":
            raise TypeError(f"style {self.name!r} is an image style; stylize with a stylizer instead")
        return TRANSFORMS[self.name](x01)


def grayscale(x01: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma, repeated on three channels ("black and white")."""
    w = torch.tensor([0.299, 0.587, 0.114], dtype=x01.dtype, device=x01.device).view(1, 3, 1, 1)
    return (x01 * w).sum(1, keepdim=True).expand_as(x01).clone()


# registry of transform styles (name -> function on (N, 3, H, W) batches in [0, 1])
TRANSFORMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"black and white": grayscale}

# built-in image styles: name -> source ids ("skimage:NAME:TINT" or "procedural:NAME:SEED")
BUILTIN: dict[str, tuple[str, ...]] = {
    "floral": ("procedural:floral:0", "procedural:floral:1", "procedural:floral:2"),
    "fall colors": ("procedural:fall colors:0", "procedural:fall colors:1", "procedural:fall colors:2"),
    "furry": ("procedural:furry:0", "procedural:furry:1", "procedural:furry:2"),
    "graffiti": ("procedural:graffiti:0", "procedural:graffiti:1", "procedural:graffiti:2"),
    "gravel": ("skimage:gravel:stone", "procedural:gravel:0", "procedural:gravel:1"),
    "snow": ("procedural:snow:0", "procedural:snow:1", "procedural:snow:2"),
    "wooden": ("procedural:wooden:0", "procedural:wooden:1", "procedural:wooden:2"),
    "metallic": ("procedural:metallic:0", "procedural:metallic:1", "procedural:metallic:2"),
    "rusty": ("procedural:rusty:0", "procedural:rusty:1", "procedural:rusty:2"),
    "grass": ("skimage:grass:green", "procedural:grass:0", "procedural:grass:1"),
    "brick": ("skimage:brick:red", "procedural:brick:0", "procedural:brick:1"),
}

_TINTS = {"stone": ((0.10, 0.09, 0.08), (0.92, 0.88, 0.82)), "green": ((0.04, 0.15, 0.02), (0.55, 0.85, 0.30)),
          "red": ((0.20, 0.06, 0.03), (0.90, 0.55, 0.40))}

def _norm(name: str) -> str:
    return " ".join(str(name).strip().lower().replace("_", " ").replace("-", " ").split())


def available_styles() -> list[str]:
    """Every built-in style name: transforms and image styles (any folder of images is a style as well)."""
    return sorted(set(TRANSFORMS) | set(BUILTIN))


@lru_cache(maxsize=64)
def _source_array(source: str) -> np.ndarray:
    kind, name, arg = source.split(":")
    if kind == "procedural":
        from modeledit.styles.procedural import TEXTURES

        return TEXTURES[name](seed=int(arg), size=STYLE_SIZE)
    import cv2
    import skimage.data

    gray = getattr(skimage.data, name)().astype(np.float32) / 255.0
    gray = cv2.resize(gray, (STYLE_SIZE, STYLE_SIZE), interpolation=cv2.INTER_AREA)
    dark, light = (np.asarray(v, np.float32) for v in _TINTS[arg])
    return np.clip(dark + gray[..., None] * (light - dark), 0, 1)


def _read_style_image(path: Path) -> torch.Tensor:
    from modeledit.images import read_image, to_tensor01

    try:
        return to_tensor01(read_image(path))
    except (ValueError, FileNotFoundError) as exc:
        raise ValueError(f"style image {str(path)!r} cannot be read ({exc}); remove or replace it") from None


def _folder_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def get_style(name: str) -> Style:
    """The style ``name`` with its images (fresh tensors, safe to modify): a built-in style, or a folder of
    style images named by its path (built-in names come first: write ``./snow`` for a folder called snow).

    Example:
        >>> get_style("black and white").kind
        'transform'
        >>> get_style("my_styles/stained_glass").sources[:1]
        ['my_styles/stained_glass/a.png']
    """
    key = _norm(name)
    if key in TRANSFORMS:
        return Style(key, [], "transform", [f"transform:{key}"])
    if key not in BUILTIN and Path(str(name)).is_dir():
        return folder_style(name)
    if key in BUILTIN:
        srcs = list(BUILTIN[key])
        imgs = [torch.from_numpy(_source_array(s).copy()).permute(2, 0, 1).contiguous().float() for s in srcs]
        return Style(key, imgs, "images", srcs)
    from modeledit.registry import close_matches

    raise KeyError(f"unknown style {name!r}; closest: {close_matches(key, available_styles()) or '-'}; "
                   "or give the path of a folder of style images")


def folder_style(path: str | os.PathLike) -> Style:
    """Every image in folder ``path`` as one style, named by the path; read now, so a bad file fails early.

    Example:
        >>> folder_style("my_styles/stained_glass/").kind
        'images'
    """
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"style folder {str(folder)!r} does not exist; pass a folder of style images")
    paths = _folder_images(folder)
    if not paths:
        raise ValueError(f"style folder {str(folder)!r} holds no images ({', '.join(IMAGE_SUFFIXES)}); add at least one")
    return Style(str(path), [_read_style_image(p) for p in paths], "images", [str(p) for p in paths])
