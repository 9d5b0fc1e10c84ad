"""Texture pasting: fill the region with a texture modulated by the original's shading.

This is how the paper's single snowy-road exemplar was made: the texture replaces the colours while
the content's low-frequency luminance (shadows, lighting) is kept, so the object still reads as lit.

Example:
    >>> st = get_stylizer("texture", tile=128)
    >>> y = st.stylize(x01, get_style("snow").images[0])
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from modeledit.styles.base import check_content, check_style


def _luma(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = max(1, int(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    x = F.pad(x, (r, r, r, r), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1))
    return F.conv2d(x, k.view(1, 1, -1, 1))


class TextureStylizer:
    """``texture * shading``: the style image tiled at ``tile`` px (default: half the short side),
    times the content's blurred luminance over its mean (``shading_strength`` 0 = flat texture)."""

    name = "texture"

    def __init__(self, tile: int | None = None, shading_sigma: float = 2.0, shading_strength: float = 1.0) -> None:
        if tile is not None and tile < 4:
            raise ValueError(f"tile must be at least 4 pixels, got {tile}")
        self.tile = tile
        self.shading_sigma = float(shading_sigma)
        self.shading_strength = float(shading_strength)

    @torch.no_grad()
    def stylize(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        check_content(content)
        check_style(style)
        n, _, h, w = content.shape
        tile = self.tile or max(8, min(h, w) // 2)
        s = F.interpolate(style[None].to(content.device, content.dtype), size=(tile, tile), mode="bilinear",
                          align_corners=False, antialias=True)
        reps = (-(-h // tile), -(-w // tile))
        tex = s.repeat(1, 1, reps[0], reps[1])[..., :h, :w]
        tex = tex / _luma(tex).mean().clamp_min(1e-3) * _luma(s).mean()
        lum = _blur(_luma(content.clamp(0, 1)), self.shading_sigma)
        shading = (lum / lum.mean(dim=(2, 3), keepdim=True).clamp_min(1e-3)).clamp(0.1, 3.0)
        shading = 1 + self.shading_strength * (shading - 1)
        return (tex * shading).clamp(0, 1)
