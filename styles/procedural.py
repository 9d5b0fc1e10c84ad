"""Procedural style textures, generated deterministically from a seed (no files, no network).

Each generator returns an HxWx3 float32 array in [0, 1]. They stand in for the style photographs the
paper used (snow, wood grain, graffiti, foliage, fur, flowers, metal) where no such photos ship offline.

A style's images must be genuinely different pictures of that style (held-out style images test
generalisation), so generators whose seeds alone gave near-identical textures draw a *variant* from
the seed (``seed % 3``: e.g. snow 0 fresh drifts, 1 packed snow with ruts, 2 falling flakes over powder);
variant 0 is the original texture, so every style's image 0 is unchanged.

Example:
    >>> tex = TEXTURES["snow"](seed=0, size=256)       # (256, 256, 3) in [0, 1]
"""
from __future__ import annotations

from typing import Callable

import numpy as np


def _smooth_noise(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    """Band-limited noise in [0, 1]: white noise blurred with a Gaussian of ``scale`` pixels."""
    import cv2

    n = rng.standard_normal((size, size)).astype(np.float32)
    k = int(scale * 3) | 1
    n = cv2.GaussianBlur(n, (k, k), scale, borderType=cv2.BORDER_REFLECT)
    n -= n.min()
    return n / max(float(n.max()), 1e-6)


def _fractal(rng: np.random.Generator, size: int, scales=(32.0, 12.0, 4.0, 1.5), weights=(0.45, 0.3, 0.17, 0.08)) -> np.ndarray:
    out = sum(w * _smooth_noise(rng, size, s) for s, w in zip(scales, weights))
    out -= out.min()
    return out / max(float(out.max()), 1e-6)


def _tint(gray: np.ndarray, dark: tuple[float, float, float], light: tuple[float, float, float]) -> np.ndarray:
    d, l = np.asarray(dark, np.float32), np.asarray(light, np.float32)
    return (d + gray[..., None] * (l - d)).astype(np.float32)


def snow(seed: int = 0, size: int = 256) -> np.ndarray:
    """Snow: variant 0 fresh drifts (near-white, bluish shadows, sparkle); 1 packed, grey-blue snow with
    dark wheel ruts; 2 big falling flakes over fine powder under a blue dusk light."""
    import cv2

    rng = np.random.default_rng(1000 + seed)
    variant = seed % 3
    if variant == 0:
        base = _fractal(rng, size, (48.0, 16.0, 3.0, 1.0), (0.5, 0.3, 0.12, 0.08))
        img = _tint(base, (0.70, 0.76, 0.86), (0.98, 0.99, 1.0))
        flakes = rng.random((size, size)) > 0.985
        img[flakes] = 1.0
        return np.clip(img, 0, 1)
    if variant == 1:
        base = _fractal(rng, size, (20.0, 6.0, 2.0, 1.0), (0.35, 0.3, 0.2, 0.15))
        img = _tint(base, (0.42, 0.46, 0.52), (0.86, 0.88, 0.92))
        ruts = np.zeros((size, size), np.float32)
        for _ in range(4):
            x0 = rng.uniform(0, size)
            pts = np.stack([x0 + np.cumsum(rng.normal(0, 2.0, 24)), np.linspace(-10, size + 10, 24)], 1).astype(np.int32)
            cv2.polylines(ruts, [pts], False, 1.0, int(size / 28) + 1, cv2.LINE_AA)
            cv2.polylines(ruts, [pts + np.array([int(size / 9), 0], np.int32)], False, 1.0, int(size / 28) + 1, cv2.LINE_AA)
        ruts = cv2.GaussianBlur(ruts, (0, 0), 1.5)[..., None]
        slush = _tint(_smooth_noise(rng, size, 1.2), (0.22, 0.22, 0.24), (0.48, 0.47, 0.46))
        return np.clip(img * (1 - ruts) + slush * ruts, 0, 1).astype(np.float32)
    base = _fractal(rng, size, (6.0, 2.0, 1.0), (0.4, 0.35, 0.25))
    img = _tint(base, (0.45, 0.55, 0.78), (0.80, 0.86, 0.98))
    flakes = np.zeros((size, size), np.float32)
    for _ in range(int(size * size / 160)):
        c = tuple(int(v) for v in rng.uniform(0, size, 2))
        cv2.circle(flakes, c, int(rng.integers(1, max(2, size // 40))), float(rng.uniform(0.6, 1.0)), -1, cv2.LINE_AA)
    flakes = cv2.GaussianBlur(flakes, (0, 0), 0.8)[..., None]
    return np.clip(img * (1 - flakes) + flakes, 0, 1).astype(np.float32)


def wooden(seed: int = 0, size: int = 256) -> np.ndarray:
    """Wood: variant 0 growth rings distorted by noise, in brown tones; 1 dark walnut planks with straight
    grain and gaps; 2 pale pine with knots, grain running across."""
    rng = np.random.default_rng(2000 + seed)
    variant = seed % 3
    if variant:
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
        warp = _fractal(rng, size, (30.0, 8.0), (0.7, 0.3))
        lines = 0.5 + 0.5 * np.sin((yy + 0.04 * warp) * rng.uniform(90, 130))
        g = 0.6 * lines ** 2 + 0.4 * _smooth_noise(rng, size, 0.8)
        if variant == 1:
            img = _tint(g, (0.12, 0.06, 0.03), (0.45, 0.27, 0.14))
            plank = int(size / rng.uniform(4.5, 6))
            for y0 in range(plank, size, plank):
                img[max(0, y0 - 2):y0 + 1] = (0.04, 0.02, 0.01)
            return np.clip(img, 0, 1).astype(np.float32)
        for _ in range(3):
            cx, cy, r = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.03, 0.07)
            d = np.sqrt((xx - cx) ** 2 + ((yy - cy) * 2.5) ** 2)
            g = np.where(d < r, 0.15 + 0.5 * (0.5 + 0.5 * np.sin(d * 300)), g)
        return np.ascontiguousarray(np.rot90(np.clip(_tint(g, (0.62, 0.45, 0.26), (0.97, 0.86, 0.64)), 0, 1), 1)).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    cx, cy = rng.uniform(-0.8, -0.2), rng.uniform(0.2, 0.8)
    warp = _fractal(rng, size, (40.0, 10.0), (0.7, 0.3))
    r = np.sqrt((xx - cx) ** 2 * 0.15 + (yy - cy) ** 2 * 6.0) + 0.25 * warp
    rings = 0.5 + 0.5 * np.sin(r * rng.uniform(35, 55))
    grain = _smooth_noise(rng, size, 0.8)
    g = 0.75 * rings ** 1.5 + 0.25 * grain
    return np.clip(_tint(g, (0.36, 0.20, 0.09), (0.80, 0.58, 0.33)), 0, 1)


def graffiti(seed: int = 0, size: int = 256) -> np.ndarray:
    """Graffiti: thick saturated spray strokes and outlines over a concrete wall."""
    import cv2

    rng = np.random.default_rng(3000 + seed)
    wall = _tint(_fractal(rng, size), (0.45, 0.45, 0.47), (0.70, 0.70, 0.72))
    img = (wall * 255).astype(np.uint8).copy()
    palette = [(230, 30, 60), (30, 160, 240), (250, 210, 20), (40, 200, 80), (200, 40, 220), (255, 120, 0), (10, 10, 10)]
    for _ in range(14):
        pts = np.cumsum(rng.normal(0, size / 7, (6, 2)), 0) + rng.uniform(0, size, 2)
        color = palette[int(rng.integers(len(palette)))]
        th = int(rng.integers(size // 40 + 2, size // 12 + 3))
        cv2.polylines(img, [pts.astype(np.int32)], False, (0, 0, 0), th + 4, cv2.LINE_AA)
        cv2.polylines(img, [pts.astype(np.int32)], False, color, th, cv2.LINE_AA)
    return img.astype(np.float32) / 255.0


def fall_colors(seed: int = 0, size: int = 256) -> np.ndarray:
    """Autumn foliage: overlapping leaf blobs in red, orange, yellow and brown."""
    import cv2

    rng = np.random.default_rng(4000 + seed)
    variant = seed % 3
    # variant 0: mixed leaves; 1: big red-maroon leaves; 2: small yellow leaves, dark ground showing through
    ground = [((0.25, 0.12, 0.04), (0.55, 0.30, 0.08)), ((0.20, 0.05, 0.05), (0.45, 0.12, 0.10)), ((0.05, 0.04, 0.03), (0.22, 0.16, 0.08))][variant]
    img = (_tint(_fractal(rng, size), *ground) * 255).astype(np.uint8).copy()
    palette = [[(200, 40, 20), (230, 110, 20), (240, 180, 30), (170, 60, 20), (150, 90, 30), (220, 150, 60)],
               [(170, 20, 30), (120, 10, 25), (210, 40, 30), (150, 30, 60)],
               [(250, 220, 40), (240, 200, 80), (230, 240, 90), (200, 170, 30)]][variant]
    count, big = [(350, 18), (900, 8), (160, 40)][variant]
    for _ in range(int(size * size / count)):
        c = tuple(int(v) for v in np.clip(np.array(palette[int(rng.integers(len(palette)))]) + rng.normal(0, 18, 3), 0, 255))
        center = tuple(int(v) for v in rng.uniform(0, size, 2))
        axes = (int(rng.integers(4, size // big + 6)), int(rng.integers(3, size // (big * 5 // 3) + 4)))
        cv2.ellipse(img, center, axes, float(rng.uniform(0, 180)), 0, 360, c, -1, cv2.LINE_AA)
    return img.astype(np.float32) / 255.0


def floral(seed: int = 0, size: int = 256) -> np.ndarray:
    """A flower meadow: five-petal blossoms in several colours over green foliage."""
    import cv2

    rng = np.random.default_rng(5000 + seed)
    img = (_tint(_fractal(rng, size), (0.06, 0.22, 0.05), (0.30, 0.55, 0.18)) * 255).astype(np.uint8).copy()
    palette = [(235, 60, 120), (250, 250, 250), (250, 200, 40), (170, 80, 220), (240, 90, 40), (255, 150, 190)]
    for _ in range(int(size * size / 1400)):
        cx, cy = rng.uniform(0, size, 2)
        r = rng.uniform(size / 40, size / 16)
        col = palette[int(rng.integers(len(palette)))]
        rot = rng.uniform(0, 2 * np.pi)
        for k in range(5):
            a = rot + 2 * np.pi * k / 5
            c = (int(cx + 0.9 * r * np.cos(a)), int(cy + 0.9 * r * np.sin(a)))
            cv2.ellipse(img, c, (int(r * 0.75) + 1, int(r * 0.45) + 1), float(np.degrees(a)), 0, 360, col, -1, cv2.LINE_AA)
        cv2.circle(img, (int(cx), int(cy)), int(r * 0.35) + 1, (250, 190, 30), -1, cv2.LINE_AA)
    return img.astype(np.float32) / 255.0


def furry(seed: int = 0, size: int = 256) -> np.ndarray:
    """Fur: many short, flowing hair strokes following a smooth direction field."""
    import cv2

    rng = np.random.default_rng(6000 + seed)
    base_col = np.array([(0.55, 0.38, 0.22), (0.75, 0.70, 0.62), (0.30, 0.22, 0.16)][seed % 3], np.float32)
    img = (np.clip(base_col * (0.6 + 0.4 * _fractal(rng, size))[..., None], 0, 1) * 255).astype(np.uint8).copy()
    angle = _smooth_noise(rng, size, 40.0) * np.pi * 1.5
    for _ in range(int(size * size / 14)):
        x, y = rng.uniform(0, size, 2)
        a = angle[int(y) % size, int(x) % size] + rng.normal(0, 0.15)
        ln = rng.uniform(size / 40, size / 18)
        shade = np.clip(base_col * rng.uniform(0.45, 1.5), 0, 1) * 255
        cv2.line(img, (int(x), int(y)), (int(x + ln * np.cos(a)), int(y + ln * np.sin(a))),
                 tuple(int(v) for v in shade), 1, cv2.LINE_AA)
    return img.astype(np.float32) / 255.0


def metallic(seed: int = 0, size: int = 256) -> np.ndarray:
    """Brushed metal: anisotropic streaks with a soft specular band."""
    import cv2

    rng = np.random.default_rng(7000 + seed)
    n = rng.standard_normal((size, size)).astype(np.float32)
    streak = cv2.GaussianBlur(n, (0, 0), sigmaX=size / 10, sigmaY=0.7)
    streak = (streak - streak.min()) / max(float(np.ptp(streak)), 1e-6)
    yy = np.linspace(-1, 1, size, dtype=np.float32)[:, None]
    spec = np.exp(-((yy - rng.uniform(-0.5, 0.5)) ** 2) / 0.08)
    g = np.clip(0.35 + 0.35 * streak + 0.35 * spec, 0, 1)
    tone = [((0.30, 0.32, 0.35), (0.92, 0.94, 0.97)), ((0.35, 0.25, 0.12), (0.98, 0.85, 0.55)), ((0.28, 0.28, 0.28), (0.85, 0.85, 0.85))][seed % 3]
    img = _tint(g, *tone)
    return np.ascontiguousarray(np.clip(np.rot90(img, k=seed % 2), 0, 1))


def rusty(seed: int = 0, size: int = 256) -> np.ndarray:
    """Rust: orange-brown corrosion patches eating into grey steel."""
    rng = np.random.default_rng(8000 + seed)
    rust_amount = _fractal(rng, size)
    steel = _tint(_fractal(rng, size, (8.0, 2.0), (0.6, 0.4)), (0.35, 0.35, 0.37), (0.60, 0.60, 0.62))
    rust = _tint(_fractal(rng, size, (6.0, 1.5), (0.6, 0.4)), (0.30, 0.10, 0.03), (0.78, 0.40, 0.12))
    m = np.clip((rust_amount - 0.35) * 4, 0, 1)[..., None]
    return np.clip(steel * (1 - m) + rust * m, 0, 1).astype(np.float32)


def gravel(seed: int = 0, size: int = 256) -> np.ndarray:
    """Gravel: packed pebbles (shaded Voronoi cells) in grey-brown tones."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(9000 + seed)
    variant = seed % 3
    if variant == 1:  # large rounded river pebbles in ochre and slate, dark gaps
        n = int(size * size / 500)
        pts = rng.uniform(0, size, (n, 2))
        yy, xx = np.mgrid[0:size, 0:size]
        d, idx = cKDTree(pts).query(np.stack([yy.ravel(), xx.ravel()], 1), k=2)
        edge = np.clip((d[:, 1] - d[:, 0]) / 8.0, 0, 1).reshape(size, size) ** 0.5
        cols = np.array([(0.72, 0.55, 0.30), (0.35, 0.38, 0.42), (0.60, 0.35, 0.22), (0.85, 0.80, 0.68)], np.float32)
        col = cols[rng.integers(len(cols), size=n)][idx[:, 0]].reshape(size, size, 3)
        return np.clip(col * edge[..., None] * (0.8 + 0.3 * _smooth_noise(rng, size, 2.0))[..., None], 0, 1).astype(np.float32)
    n = int(size * size / (90 if variant == 0 else 30))
    pts = rng.uniform(0, size, (n, 2))
    yy, xx = np.mgrid[0:size, 0:size]
    d, idx = cKDTree(pts).query(np.stack([yy.ravel(), xx.ravel()], 1), k=2)
    edge = np.clip((d[:, 1] - d[:, 0]) / 3.0, 0, 1).reshape(size, size)
    shade = rng.uniform(0.35, 0.95, n)[idx[:, 0]].reshape(size, size)
    hue = rng.uniform(-0.06, 0.06, (n, 3))[idx[:, 0]].reshape(size, size, 3)
    g = shade * (0.35 + 0.65 * edge) * (0.85 + 0.15 * _smooth_noise(rng, size, 1.0))
    return np.clip(_tint(g, (0.05, 0.05, 0.05), (0.85, 0.80, 0.72)) + hue * edge[..., None], 0, 1).astype(np.float32)


def grass(seed: int = 0, size: int = 256) -> np.ndarray:
    """Grass: dense thin blades in varied greens."""
    import cv2

    rng = np.random.default_rng(10000 + seed)
    variant = seed % 3
    # variant 0: dense upright green blades; 1: long dry straw-coloured blades bent by wind; 2: short bright lawn
    ground, blade, (count, lo, hi, tilt, spread) = [
        (((0.05, 0.18, 0.03), (0.20, 0.40, 0.08)), (60, 150, 40), (25, 25, 10, 0.0, 0.3)),
        (((0.25, 0.20, 0.08), (0.55, 0.45, 0.20)), (190, 160, 80), (40, 8, 4, 0.7, 0.15)),
        (((0.10, 0.35, 0.05), (0.35, 0.65, 0.12)), (110, 210, 50), (12, 60, 30, 0.0, 0.6)),
    ][variant]
    img = (_tint(_fractal(rng, size), *ground) * 255).astype(np.uint8).copy()
    for _ in range(int(size * size / count)):
        x, y = rng.uniform(0, size, 2)
        ln = rng.uniform(size / lo, size / hi)
        a = -np.pi / 2 + tilt + rng.normal(0, spread)
        col = np.clip(np.array(blade) * rng.uniform(0.5, 1.4) + rng.normal(0, 10, 3), 0, 255)
        cv2.line(img, (int(x), int(y)), (int(x + ln * np.cos(a)), int(y + ln * np.sin(a))), tuple(int(v) for v in col), 1, cv2.LINE_AA)
    return img.astype(np.float32) / 255.0


def brick(seed: int = 0, size: int = 256) -> np.ndarray:
    """A brick wall: staggered courses of red-brown bricks with mortar joints."""
    rng = np.random.default_rng(11000 + seed)
    variant = seed % 3
    # variant 0: red-brown bricks, pale mortar; 1: big yellow-ochre bricks, dark mortar; 2: small dark-purple bricks
    brick_col, mortar, courses = [((0.62, 0.24, 0.14), (0.72, 0.70, 0.66), (9, 13)), ((0.85, 0.68, 0.35), (0.15, 0.14, 0.13), (5, 7)),
                                  ((0.30, 0.12, 0.20), (0.55, 0.55, 0.58), (16, 20))][variant]
    bh = int(size / rng.uniform(*courses))
    bw = bh * 2 + int(rng.integers(0, bh))
    img = np.empty((size, size, 3), np.float32)
    img[:] = mortar
    noise = _fractal(rng, size, (6.0, 1.2), (0.6, 0.4))
    for row, y0 in enumerate(range(0, size, bh)):
        off = (bw // 2) * (row % 2)
        for x0 in range(-off, size, bw):
            col = np.array(brick_col) * rng.uniform(0.75, 1.15)
            ys, xs = slice(y0 + 2, min(size, y0 + bh - 1)), slice(max(0, x0 + 2), min(size, x0 + bw - 1))
            img[ys, xs] = col
    return np.clip(img * (0.8 + 0.4 * noise[..., None]), 0, 1)


TEXTURES: dict[str, Callable[..., np.ndarray]] = {
    "snow": snow, "wooden": wooden, "graffiti": graffiti, "fall colors": fall_colors, "floral": floral,
    "furry": furry, "metallic": metallic, "rusty": rusty, "gravel": gravel, "grass": grass, "brick": brick,
}
