"""Typographic attacks: a word on a paper patch pasted onto images (thesis 6.3.3, figures 6-11, 6-12).

:func:`paste_text` returns the attacked image, the same image with a *blank* patch (no text, the edit's
"original" for the fix) and the patch mask. Fonts are the DejaVu faces matplotlib ships, so it works
offline; ``"hand"`` imitates handwriting (oblique face, per-letter jitter and tilt).

Example:
    >>> attacked, blank, mask = paste_text(image01, TextSpec("ipod", font="hand"), rng=np.random.default_rng(0))
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

FONTS = {
    "sans": "DejaVuSans-Bold.ttf",
    "serif": "DejaVuSerif-Bold.ttf",
    "mono": "DejaVuSansMono-Bold.ttf",
    "hand": "DejaVuSans-Oblique.ttf",
}


def font_path(font: str) -> Path:
    import matplotlib

    if font not in FONTS:
        raise KeyError(f"unknown font {font!r}; valid: {sorted(FONTS)}")
    return Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf" / FONTS[font]


@dataclass(frozen=True)
class TextSpec:
    """What to paste: ``size`` is the letter height as a fraction of the image height; ``position`` the
    patch's top-left corner in fractions of the image (``None``: random, inside the image)."""

    word: str
    font: str = "sans"
    size: float = 0.2
    position: tuple[float, float] | None = None
    ink: tuple[int, int, int] = (20, 20, 30)
    paper: tuple[int, int, int] = (245, 243, 232)

    def __post_init__(self) -> None:
        if not self.word.strip():
            raise ValueError("the attack word is empty")
        if not 0.03 <= self.size <= 0.9:
            raise ValueError(f"text size must be a fraction of the image height in [0.03, 0.9], got {self.size}")
        if self.font not in FONTS:
            raise KeyError(f"unknown font {self.font!r}; valid: {sorted(FONTS)}")


def _text_layer(spec: TextSpec, height: int, rng: np.random.Generator) -> Image.Image:
    px = max(6, int(round(spec.size * height)))
    font = ImageFont.truetype(str(font_path(spec.font)), px)
    if spec.font != "hand":
        l, t, r, b = font.getbbox(spec.word)
        im = Image.new("L", (r - l + 2, b - t + 2), 0)
        ImageDraw.Draw(im).text((1 - l, 1 - t), spec.word, font=font, fill=255)
        return im
    letters = []
    for ch in spec.word:
        l, t, r, b = font.getbbox(ch)
        g = Image.new("L", (max(r - l, 1) + 4, px * 2), 0)
        ImageDraw.Draw(g).text((2 - l, px // 2), ch, font=font, fill=255)
        letters.append(g.rotate(float(rng.uniform(-12, 12)), resample=Image.BILINEAR, expand=False))
    w = sum(g.width for g in letters) - 2 * (len(letters) - 1)
    im = Image.new("L", (w, px * 2), 0)
    x = 0
    for g in letters:
        im.paste(255, (x, int(rng.integers(-px // 8, px // 8 + 1))), g)
        x += g.width - 2
    return im.crop(im.getbbox() or (0, 0, 1, 1))


def paste_text(image01: torch.Tensor, spec: TextSpec, rng: np.random.Generator | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(attacked, blank, mask) for one (3, H, W) image in [0, 1]; ``mask`` is the paper patch (H, W) bool."""
    if image01.dim() != 3 or image01.shape[0] != 3:
        raise ValueError(f"expected one (3, H, W) image, got shape {tuple(image01.shape)}")
    rng = rng or np.random.default_rng(0)
    _, h, w = image01.shape
    text = _text_layer(spec, h, rng)
    pad = max(1, int(0.03 * h))
    pw, ph = min(text.width + 2 * pad, w), min(text.height + 2 * pad, h)
    if spec.position is None:
        x0, y0 = int(rng.integers(0, w - pw + 1)), int(rng.integers(0, h - ph + 1))
    else:
        x0, y0 = int(spec.position[0] * (w - pw)), int(spec.position[1] * (h - ph))
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[y0:y0 + ph, x0:x0 + pw] = True
    paper = torch.tensor(spec.paper, dtype=image01.dtype).view(3, 1, 1) / 255.0
    blank = image01.clone()
    blank[:, mask] = paper.view(3, 1).expand(3, int(mask.sum()))
    alpha = np.zeros((h, w), np.float32)
    t = np.asarray(text, np.float32)[: ph - pad, : pw - pad] / 255.0
    alpha[y0 + pad:y0 + pad + t.shape[0], x0 + pad:x0 + pad + t.shape[1]] = t[: h - y0 - pad, : w - x0 - pad]
    a = torch.from_numpy(alpha).to(image01.dtype)
    ink = torch.tensor(spec.ink, dtype=image01.dtype).view(3, 1, 1) / 255.0
    attacked = blank * (1 - a) + ink * a
    return attacked, blank, mask
