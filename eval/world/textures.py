"""Context textures of the benchmark world (real scikit-image textures for road, grass and floor;
procedural water, sky, sand and snow), drawn deterministically from a generator.

Example:
    >>> bank = TextureBank()
    >>> bank.draw("road", np.random.default_rng(0), 64).shape
    (64, 64, 3)
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


def hsv_colour(h: float, s: float, v: float) -> np.ndarray:
    import colorsys

    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v)) * 255.0


# ------------------------------------------------------------------------------------------------
# textures


def _smooth_noise(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    """Gaussian-filtered white noise, normalised to [0, 1]."""
    from scipy.ndimage import gaussian_filter

    n = gaussian_filter(rng.standard_normal((size, size)), scale, mode="wrap")
    return (n - n.min()) / max(n.max() - n.min(), 1e-6)


def _real_texture(name: str) -> np.ndarray:
    import skimage.data

    return getattr(skimage.data, name)().astype(np.float32) / 255.0


def _crop(tex: np.ndarray, rng: np.random.Generator, size: int, zoom: float) -> np.ndarray:
    from PIL import Image

    c = int(min(tex.shape[0], size * zoom))
    y, x = rng.integers(0, tex.shape[0] - c + 1), rng.integers(0, tex.shape[1] - c + 1)
    patch = tex[y:y + c, x:x + c]
    return np.asarray(Image.fromarray((patch * 255).astype(np.uint8)).resize((size, size), Image.BILINEAR), np.float32) / 255.0


def _tint(gray: np.ndarray, colour: Sequence[float], contrast: float) -> np.ndarray:
    g = (gray - gray.mean()) * contrast
    return np.clip(np.asarray(colour, np.float32)[None, None, :] + 255.0 * g[..., None], 0, 255)


class TextureBank:
    """Draws a texture for a concept: ``bank.draw("road", rng, size) -> HxWx3 float in [0, 255]``.

    The scikit-image source textures are read once per bank (``World`` owns one bank).
    """

    def __init__(self) -> None:
        self._real: dict[str, np.ndarray] = {}
        self._makers: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
            "road": self._road, "grass": self._grass, "water": self._water, "sky": self._sky,
            "sand": self._sand, "floor": self._floor, "snow": self._snow,
        }

    @property
    def names(self) -> list[str]:
        return list(self._makers)

    def real(self, name: str) -> np.ndarray:
        if name not in self._real:
            self._real[name] = _real_texture(name)
        return self._real[name]

    def draw(self, name: str, rng: np.random.Generator, size: int) -> np.ndarray:
        if name not in self._makers:
            raise KeyError(f"unknown texture {name!r}; valid: {self.names} (or pass an HxWx3 array)")
        return self._makers[name](rng, size).astype(np.float32)

    def _road(self, rng: np.random.Generator, size: int) -> np.ndarray:
        v = rng.uniform(70, 120)
        return _tint(_crop(self.real("gravel"), rng, size, rng.uniform(1.5, 3.0)), (v, v, v * 1.03), 0.9)

    def _grass(self, rng: np.random.Generator, size: int) -> np.ndarray:
        col = hsv_colour(rng.uniform(0.22, 0.33), rng.uniform(0.55, 0.85), rng.uniform(0.45, 0.7))
        return _tint(_crop(self.real("grass"), rng, size, rng.uniform(1.5, 3.0)), col, 1.3)

    def _floor(self, rng: np.random.Generator, size: int) -> np.ndarray:
        col = hsv_colour(rng.uniform(0.03, 0.09), rng.uniform(0.4, 0.7), rng.uniform(0.45, 0.75))
        return _tint(_crop(self.real("brick"), rng, size, rng.uniform(2.0, 4.0)), col, 1.2)

    def _water(self, rng: np.random.Generator, size: int) -> np.ndarray:
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        f, phase = rng.uniform(0.5, 0.9), rng.uniform(0, 2 * np.pi)
        waves = np.sin(yy * f + 0.6 * np.sin(xx * 0.15 + phase) * 3.0)
        g = 0.5 + 0.25 * waves + 0.25 * (_smooth_noise(rng, size, 1.5) - 0.5)
        col = hsv_colour(rng.uniform(0.53, 0.6), rng.uniform(0.6, 0.9), rng.uniform(0.45, 0.7))
        return _tint(g, col, 0.5)

    def _sky(self, rng: np.random.Generator, size: int) -> np.ndarray:
        yy = np.linspace(0, 1, size, dtype=np.float32)[:, None] * np.ones((1, size), np.float32)
        base = hsv_colour(rng.uniform(0.55, 0.6), rng.uniform(0.35, 0.6), rng.uniform(0.8, 0.95))
        img = base[None, None, :] * (1.0 - 0.25 * yy[..., None]) + 255 * 0.2 * yy[..., None]
        clouds = np.clip((_smooth_noise(rng, size, size / 12) - rng.uniform(0.5, 0.7)) * 3.0, 0, 1)
        return np.clip(img * (1 - clouds[..., None]) + 245.0 * clouds[..., None], 0, 255)

    def _sand(self, rng: np.random.Generator, size: int) -> np.ndarray:
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        ripples = 0.5 + 0.5 * np.sin((yy + 0.3 * xx) * rng.uniform(0.3, 0.5) + 2.0 * _smooth_noise(rng, size, 4))
        g = 0.6 * rng.random((size, size)) + 0.4 * ripples
        col = hsv_colour(rng.uniform(0.1, 0.14), rng.uniform(0.3, 0.5), rng.uniform(0.78, 0.92))
        return _tint(g, col, 0.35)

    def _snow(self, rng: np.random.Generator, size: int) -> np.ndarray:
        g = 0.7 * _smooth_noise(rng, size, 3) + 0.3 * rng.random((size, size))
        v = rng.uniform(225, 245)
        return _tint(g, (v - 6, v - 2, v + 6), 0.25)
