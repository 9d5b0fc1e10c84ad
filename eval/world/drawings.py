"""Object drawings of the benchmark world: polygons in a local box [-1, 1]^2 (y down), each tagged with a
part name and a colour role, and the colour ranges of each class's body.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

# ------------------------------------------------------------------------------------------------
# object drawings: polygons in a local box [-1, 1]^2 (y down), tagged with a part name and a colour role

Shape = tuple[str | None, str, list[tuple[float, float]]]  # (part or None, colour role, polygon)


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 18) -> list[tuple[float, float]]:
    return [(cx + rx * math.cos(2 * math.pi * k / n), cy + ry * math.sin(2 * math.pi * k / n)) for k in range(n)]


def _rect(x0: float, y0: float, x1: float, y1: float) -> list[tuple[float, float]]:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _wheel(cx: float, cy: float, r: float) -> Shape:
    return ("wheel", "wheel", _ellipse(cx, cy, r, r, 14))


def _car(rng: np.random.Generator) -> list[Shape]:
    return [
        (None, "body", [(-1, 0.05), (1, 0.05), (1, 0.5), (-1, 0.5)]),
        (None, "body", [(-0.6, 0.08), (-0.35, -0.35), (0.35, -0.35), (0.62, 0.08)]),
        ("window", "window", [(-0.48, 0.02), (-0.3, -0.26), (-0.04, -0.26), (-0.04, 0.02)]),
        ("window", "window", [(0.04, 0.02), (0.04, -0.26), (0.3, -0.26), (0.5, 0.02)]),
        _wheel(-0.55, 0.5, 0.25), _wheel(0.55, 0.5, 0.25),
    ]


def _bus(rng: np.random.Generator) -> list[Shape]:
    shapes: list[Shape] = [(None, "body", _rect(-1, -0.5, 1, 0.45)), (None, "accent", _rect(-1, 0.12, 1, 0.2))]
    shapes += [("window", "window", _rect(-0.9 + 0.38 * k, -0.38, -0.62 + 0.38 * k, -0.02)) for k in range(5)]
    return shapes + [_wheel(-0.6, 0.45, 0.2), _wheel(0.6, 0.45, 0.2)]


def _truck(rng: np.random.Generator) -> list[Shape]:
    return [
        (None, "accent", _rect(-1, -0.55, 0.3, 0.35)),
        (None, "body", _rect(0.34, -0.2, 1, 0.4)),
        ("window", "window", _rect(0.5, -0.1, 0.9, 0.1)),
        _wheel(-0.65, 0.42, 0.2), _wheel(-0.1, 0.42, 0.2), _wheel(0.68, 0.42, 0.2),
    ]


def _tractor(rng: np.random.Generator) -> list[Shape]:
    return [
        (None, "body", _rect(-0.2, -0.05, 0.95, 0.35)),
        (None, "body", _rect(-0.65, -0.75, -0.05, 0.05)),
        ("window", "window", _rect(-0.55, -0.65, -0.15, -0.25)),
        (None, "dark", _rect(0.6, -0.45, 0.7, -0.05)),
        _wheel(-0.45, 0.35, 0.48), _wheel(0.62, 0.5, 0.28),
    ]


def _sailboat(rng: np.random.Generator) -> list[Shape]:
    return [
        (None, "body", [(-1, 0.3), (1, 0.3), (0.7, 0.65), (-0.7, 0.65)]),
        (None, "dark", _rect(-0.04, -0.95, 0.04, 0.3)),
        (None, "light", [(0.08, -0.9), (0.08, 0.24), (0.8, 0.24)]),
        (None, "accent", [(-0.08, -0.7), (-0.08, 0.24), (-0.6, 0.24)]),
    ]


def _ship(rng: np.random.Generator) -> list[Shape]:
    shapes: list[Shape] = [
        (None, "body", [(-1, 0.1), (1, 0.1), (0.8, 0.55), (-0.85, 0.55)]),
        (None, "light", _rect(-0.55, -0.35, 0.5, 0.1)),
        (None, "accent", _rect(0.05, -0.75, 0.28, -0.35)),
    ]
    return shapes + [("window", "window", _rect(-0.45 + 0.33 * k, -0.24, -0.25 + 0.33 * k, -0.04)) for k in range(3)]


def _duck(rng: np.random.Generator) -> list[Shape]:
    return [
        (None, "body", _ellipse(-0.05, 0.3, 0.75, 0.38)),
        (None, "body", _ellipse(0.55, -0.3, 0.27, 0.25)),
        (None, "beak", [(0.75, -0.38), (1.0, -0.28), (0.75, -0.2)]),
        (None, "dark", _ellipse(0.6, -0.36, 0.05, 0.05, 8)),
    ]


def _airplane(rng: np.random.Generator) -> list[Shape]:
    shapes: list[Shape] = [
        (None, "accent", [(-0.25, 0), (0.25, 0), (-0.1, 0.85), (-0.4, 0.85)]),
        (None, "accent", [(-0.25, 0), (0.25, 0), (-0.1, -0.85), (-0.4, -0.85)]),
        (None, "body", _ellipse(0, 0, 1.0, 0.2)),
        (None, "body", [(-1.0, 0.05), (-0.7, 0.05), (-0.95, -0.55)]),
    ]
    return shapes + [("window", "window", _ellipse(-0.45 + 0.25 * k, -0.04, 0.07, 0.07, 8)) for k in range(5)]


def _bird(rng: np.random.Generator) -> list[Shape]:
    up = float(rng.uniform(-0.9, 0.9))
    return [
        (None, "body", _ellipse(0, 0, 0.55, 0.25)),
        (None, "body", _ellipse(0.55, -0.15, 0.2, 0.18)),
        (None, "beak", [(0.72, -0.2), (0.95, -0.12), (0.72, -0.06)]),
        (None, "accent", [(-0.25, -0.05), (0.2, -0.05), (-0.35, up)]),
        (None, "body", [(-0.5, 0), (-0.95, -0.2), (-0.95, 0.2)]),
    ]


def _balloon(rng: np.random.Generator) -> list[Shape]:
    return [
        (None, "body", _ellipse(0, -0.35, 0.62, 0.6)),
        (None, "accent", _ellipse(0, -0.35, 0.22, 0.6)),
        (None, "dark", [(-0.45, 0.05), (0.45, 0.05), (0.12, 0.55), (-0.12, 0.55)]),
        (None, "wood", _rect(-0.18, 0.55, 0.18, 0.85)),
    ]


def _cow(rng: np.random.Generator) -> list[Shape]:
    shapes: list[Shape] = [(None, "body", _rect(x, 0.15, x + 0.14, 0.8)) for x in (-0.6, -0.35, 0.3, 0.5)]
    shapes += [(None, "body", _ellipse(0, 0.0, 0.75, 0.38)), (None, "body", _ellipse(0.85, -0.25, 0.2, 0.22))]
    shapes += [(None, "dark", _ellipse(float(rng.uniform(-0.5, 0.5)), float(rng.uniform(-0.15, 0.15)), 0.18, 0.13, 10)) for _ in range(3)]
    return shapes + [(None, "dark", [(0.75, -0.45), (0.8, -0.65), (0.88, -0.45)])]


def _tree(rng: np.random.Generator) -> list[Shape]:
    return [
        (None, "wood", _rect(-0.13, 0.05, 0.13, 1.0)),
        (None, "body", _ellipse(0, -0.35, 0.6, 0.55)),
        (None, "body", _ellipse(-0.4, -0.05, 0.35, 0.3)),
        (None, "body", _ellipse(0.4, -0.05, 0.35, 0.3)),
    ]


def _crab(rng: np.random.Generator) -> list[Shape]:
    shapes: list[Shape] = [(None, "body", _rect(-0.85 + 0.25 * k + (0.6 if k > 2 else 0), 0.3, -0.78 + 0.25 * k + (0.6 if k > 2 else 0), 0.7)) for k in range(6)]
    return shapes + [
        (None, "body", _ellipse(0, 0.2, 0.55, 0.35)),
        (None, "body", _ellipse(-0.75, -0.3, 0.22, 0.18)), (None, "body", _ellipse(0.75, -0.3, 0.22, 0.18)),
        (None, "dark", _ellipse(-0.15, -0.1, 0.07, 0.07, 8)), (None, "dark", _ellipse(0.15, -0.1, 0.07, 0.07, 8)),
    ]


def _umbrella(rng: np.random.Generator) -> list[Shape]:
    half = [(0.9 * math.cos(math.pi * (1 + k / 12)), -0.1 + 0.7 * math.sin(math.pi * (1 + k / 12))) for k in range(13)]
    stripe = [(0.0, -0.1), (0.9 * math.cos(math.pi * 1.4), -0.1 + 0.7 * math.sin(math.pi * 1.4)), (0.9 * math.cos(math.pi * 1.6), -0.1 + 0.7 * math.sin(math.pi * 1.6))]
    return [(None, "dark", _rect(-0.04, -0.1, 0.04, 0.95)), (None, "body", half), (None, "light", stripe)]


def _sandcastle(rng: np.random.Generator) -> list[Shape]:
    shapes: list[Shape] = [
        (None, "body", _rect(-0.8, 0.05, 0.8, 0.85)),
        (None, "body", _rect(-0.85, -0.5, -0.4, 0.05)), (None, "body", _rect(0.4, -0.5, 0.85, 0.05)),
        (None, "dark", _ellipse(0, 0.85, 0.2, 0.35)),
    ]
    shapes += [(None, "body", _rect(x, -0.65, x + 0.12, -0.5)) for x in (-0.85, -0.68, -0.52, 0.4, 0.57, 0.73)]
    return shapes + [(None, "accent", [(-0.05, -0.7), (-0.05, 0.05), (0.05, 0.05), (0.05, -0.45), (0.35, -0.57)])]


def _chair(rng: np.random.Generator) -> list[Shape]:
    return [
        (None, "body", _rect(-0.5, -0.05, 0.5, 0.12)), (None, "body", _rect(0.36, -0.95, 0.5, -0.05)),
        (None, "body", _rect(-0.5, 0.12, -0.38, 0.95)), (None, "body", _rect(0.38, 0.12, 0.5, 0.95)),
        (None, "accent", _rect(0.38, -0.8, 0.48, -0.2)),
    ]


def _table(rng: np.random.Generator) -> list[Shape]:
    return [
        (None, "body", _rect(-1, -0.25, 1, -0.05)), (None, "body", _rect(-0.9, -0.05, -0.75, 0.75)),
        (None, "body", _rect(0.75, -0.05, 0.9, 0.75)), (None, "accent", _rect(-0.2, -0.55, 0.2, -0.25)),
    ]


def _lamp(rng: np.random.Generator) -> list[Shape]:
    return [
        (None, "dark", _rect(-0.05, -0.35, 0.05, 0.75)), (None, "dark", _ellipse(0, 0.8, 0.42, 0.12)),
        (None, "body", [(-0.38, -0.95), (0.38, -0.95), (0.6, -0.3), (-0.6, -0.3)]),
        (None, "light", _rect(-0.6, -0.36, 0.6, -0.3)),
    ]


DRAWINGS: dict[str, Callable[[np.random.Generator], list[Shape]]] = {
    "car": _car, "bus": _bus, "truck": _truck, "cow": _cow, "tree": _tree, "tractor": _tractor,
    "sailboat": _sailboat, "ship": _ship, "duck": _duck, "airplane": _airplane, "bird": _bird, "balloon": _balloon,
    "crab": _crab, "umbrella": _umbrella, "sandcastle": _sandcastle, "chair": _chair, "table": _table, "lamp": _lamp,
}

#: class -> (hue range of the body colour in [0, 1], saturation range, value range)
BODY_COLOURS: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "cow": ((0.05, 0.1), (0.0, 0.6), (0.45, 0.95)), "tree": ((0.22, 0.4), (0.5, 0.9), (0.25, 0.6)),
    "duck": ((0.08, 0.17), (0.1, 0.8), (0.5, 1.0)), "crab": ((0.95, 1.05), (0.6, 0.95), (0.6, 0.95)),
    "sandcastle": ((0.1, 0.14), (0.35, 0.6), (0.6, 0.85)), "bird": ((0.0, 1.0), (0.3, 0.9), (0.3, 0.9)),
    "table": ((0.05, 0.1), (0.4, 0.8), (0.3, 0.7)), "chair": ((0.0, 1.0), (0.3, 0.8), (0.3, 0.8)),
}
DEFAULT_COLOURS = ((0.0, 1.0), (0.45, 0.95), (0.45, 0.95))
FIXED_COLOURS = {"window": (150, 200, 235), "wheel": (30, 30, 32), "dark": (40, 35, 30), "beak": (240, 160, 30), "wood": (110, 75, 40), "light": (240, 240, 235)}
