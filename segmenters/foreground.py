"""A generic foreground concept, ``object``: GrabCut from a centre box, for photos whose objects no
offline segmenter knows (MediaPipe finds only ``person``).

Photos taken of one thing usually have it in the middle. GrabCut (Rother et al. 2004) is seeded with a
box covering the central ``1 - 2 * margin`` of each side (everything outside is background) and run with
a fixed random seed, so the same image gives the same mask. The largest connected regions covering at
least ``min_region`` of the image are kept. GrabCut fails on some photos: it returns (almost) nothing,
or the whole box when foreground and background look alike. Then the segmenter falls back to the
ellipse inscribed in the box, and says so in the instance's score (1.0: GrabCut, 0.5: the fallback).

Example:
    >>> seg = get_segmenter("foreground")
    >>> inst = seg.segment(to_uint8(lm.preprocess(skimage.data.coffee())))[0]     # the model's 224 px view
    >>> inst.concept, inst.score, round(float(inst.mask.mean()), 2)
    ('object', 1.0, 0.29)
    >>> mask = modeledit.concept_mask(lm.preprocess(skimage.data.coffee()), "object")   # the same, as a tensor
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from modeledit.segmenters.base import Instance, check_image, filter_concepts

#: the concept this segmenter finds
CONCEPT = "object"
#: instance scores: GrabCut's mask, or the centre ellipse it fell back to
GRABCUT_SCORE, FALLBACK_SCORE = 1.0, 0.5


def centre_box(height: int, width: int, margin: float) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the box leaving ``margin`` of each side outside."""
    x0, y0 = int(round(margin * width)), int(round(margin * height))
    return x0, y0, max(x0 + 1, width - x0), max(y0 + 1, height - y0)


def ellipse_in_box(height: int, width: int, box: Sequence[int]) -> np.ndarray:
    """The (H, W) bool ellipse inscribed in ``box``."""
    x0, y0, x1, y1 = box
    yy, xx = np.mgrid[0:height, 0:width]
    cx, cy, rx, ry = (x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2, max((x1 - x0) / 2, 0.5), max((y1 - y0) / 2, 0.5)
    return ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0


class ForegroundSegmenter:
    """``object``: GrabCut from a centre box, the inscribed ellipse when GrabCut fails (see the module docstring).

    ``margin``: share of each side left outside the box; ``min_area``/``max_area``: GrabCut's mask must
    cover between these shares of the box, else the fallback is used; ``min_region``: connected regions
    smaller than this share of the image are dropped; ``seed``: OpenCV's random seed (GrabCut's GMMs).
    """

    name = "foreground"
    concepts = (CONCEPT,)

    def __init__(self, margin: float = 0.1, min_area: float = 0.2, max_area: float = 0.92, min_region: float = 0.01,
                 iterations: int = 5, seed: int = 0) -> None:
        if not 0.0 <= float(margin) < 0.5:
            raise ValueError(f"margin is the share of each side outside the box, in [0, 0.5), got {margin}")
        if not 0.0 <= float(min_area) < float(max_area) <= 1.0:
            raise ValueError(f"need 0 <= min_area < max_area <= 1, got {min_area} and {max_area}")
        self.margin, self.min_area, self.max_area = float(margin), float(min_area), float(max_area)
        self.min_region, self.iterations, self.seed = float(min_region), int(iterations), int(seed)

    def grabcut(self, image: np.ndarray, box: Sequence[int]) -> np.ndarray:
        """GrabCut's foreground (H, W) bool from ``box``, small regions dropped (may be empty)."""
        import cv2

        img = check_image(image)
        h, w = img.shape[:2]
        x0, y0, x1, y1 = box
        m = np.zeros((h, w), np.uint8)
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.setRNGSeed(self.seed)
        try:
            cv2.grabCut(img[:, :, ::-1].copy(), m, (x0, y0, x1 - x0, y1 - y0), bgd, fgd, self.iterations, cv2.GC_INIT_WITH_RECT)
        except cv2.error:  # degenerate images (a flat colour) make its GMM fitting fail: no GrabCut mask
            return np.zeros((h, w), bool)
        mask = (m == cv2.GC_FGD) | (m == cv2.GC_PR_FGD)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
        keep = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= self.min_region * h * w]
        return np.isin(labels, keep) if keep else np.zeros((h, w), bool)

    def segment(self, image: np.ndarray, concepts: Sequence[str] | None = None, meta: Mapping | None = None) -> list[Instance]:
        img = check_image(image)
        h, w = img.shape[:2]
        box = tuple(int(v) for v in (meta or {}).get("box", centre_box(h, w, self.margin)))
        box_area = max(1, (box[2] - box[0]) * (box[3] - box[1]))
        mask = self.grabcut(img, box)
        share = float(mask.sum()) / box_area
        if self.min_area <= share <= self.max_area:
            inst = Instance(mask, CONCEPT, GRABCUT_SCORE)
        else:
            inst = Instance(ellipse_in_box(h, w, box), CONCEPT, FALLBACK_SCORE)
        return filter_concepts([inst], concepts)
