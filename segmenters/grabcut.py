"""A classical fallback that needs no model: OpenCV GrabCut from a box or a seed mask.

For a user's one-off photo: draw a box around the concept (or give a rough mask) and name it: any
name works (``object``, ``foreground``, ``my mug``), it is a label, not a vocabulary lookup. Without a
``concept`` the segmenter labels its region with the concept it is asked for.
The box/seed can be fixed at construction or passed per image in ``meta`` (``"box"``, ``"seed_mask"``).

Example:
    >>> seg = get_segmenter("grabcut", concept="cat", box=(60, 20, 380, 300))   # x0, y0, x1, y1
    >>> inst = seg.segment(skimage.data.chelsea())[0]
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from modeledit.segmenters.base import Instance, check_image, filter_concepts
from modeledit.segmenters.vocab import canonical_concept

DEFAULT_CONCEPT = "object"


class GrabCutSegmenter:
    """GrabCut (Rother et al. 2004) seeded by a box ``(x0, y0, x1, y1)`` or a rough boolean mask."""

    name = "grabcut"
    any_concept = True

    def __init__(self, concept: str | None = None, box: Sequence[int] | None = None, seed_mask: np.ndarray | None = None, iterations: int = 5) -> None:
        self.concept = canonical_concept(concept, strict=False) if concept else None
        self.box = tuple(int(v) for v in box) if box is not None else None
        self.seed_mask = None if seed_mask is None else np.asarray(seed_mask, bool)
        self.iterations = int(iterations)

    def segment(self, image: np.ndarray, concepts: Sequence[str] | None = None, meta: Mapping | None = None) -> list[Instance]:
        import cv2

        img = check_image(image)
        h, w = img.shape[:2]
        meta = meta or {}
        box = tuple(int(v) for v in meta["box"]) if "box" in meta else self.box
        seed = np.asarray(meta["seed_mask"], bool) if "seed_mask" in meta else self.seed_mask
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        if seed is not None:
            if seed.shape != (h, w):
                raise ValueError(f"seed mask of shape {seed.shape} does not match the image {h}x{w}; resize it to the image")
            if not seed.any():
                raise ValueError("the seed mask is empty; mark at least part of the concept")
            m = np.where(seed, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
            cv2.grabCut(img[:, :, ::-1].copy(), m, None, bgd, fgd, self.iterations, cv2.GC_INIT_WITH_MASK)
        elif box is not None:
            x0, y0, x1, y1 = box
            if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
                raise ValueError(f"box {box} is not inside the {w}x{h} image; give (x0, y0, x1, y1) with x0 < x1 <= width")
            m = np.zeros((h, w), np.uint8)
            cv2.grabCut(img[:, :, ::-1].copy(), m, (x0, y0, x1 - x0, y1 - y0), bgd, fgd, self.iterations, cv2.GC_INIT_WITH_RECT)
        else:
            raise ValueError("grabcut needs a box or a seed mask: pass box=(x0, y0, x1, y1) or seed_mask=, or put them in meta")
        mask = (m == cv2.GC_FGD) | (m == cv2.GC_PR_FGD)
        if not mask.any():
            return []
        label = self.concept or (canonical_concept(concepts[0], strict=False) if concepts else DEFAULT_CONCEPT)
        return filter_concepts([Instance(mask, label, 1.0)], concepts)
