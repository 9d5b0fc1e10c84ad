"""The segmenter protocol: an RGB image in, concept instances (binary mask, concept, score) out.

Also the paper's presence rules (Santurkar et al. 2021, appendix B.1.3): a pixel belongs to a concept
when the model's score is at least 0.8 (COCO-stuff model) or 0.15 (LVIS model); a concept is present in
an image when it covers at least 100 pixels at 224x224, scaled with the image's area.

Example:
    >>> from modeledit.segmenters import get_segmenter, concept_present
    >>> seg = get_segmenter("mediapipe")
    >>> [(i.concept, round(i.score, 2)) for i in seg.segment(skimage.data.astronaut())]
    [('person', 0.97)]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

#: pixel score thresholds the paper used, per vocabulary of the segmentation model
PIXEL_THRESHOLD = {"coco": 0.8, "lvis": 0.15}
#: a concept is present when it covers at least this many pixels at REFERENCE_SIZE x REFERENCE_SIZE
MIN_PIXELS = 100
REFERENCE_SIZE = 224


@dataclass
class Instance:
    """One segmented region: a boolean HxW ``mask``, its canonical ``concept`` name and a ``score``."""

    mask: np.ndarray
    concept: str
    score: float

    def __post_init__(self) -> None:
        m = np.asarray(self.mask)
        if m.ndim != 2:
            raise ValueError(f"an instance mask must be HxW, got shape {m.shape}")
        self.mask = m.astype(bool, copy=False)
        self.score = float(self.score)


@runtime_checkable
class Segmenter(Protocol):
    """Anything with a ``name`` and ``segment(image, concepts=None, meta=None) -> list[Instance]``.

    ``image`` is HxWx3 uint8 RGB; ``concepts`` restricts the output to those canonical names (None: all);
    ``meta`` carries per-image side information (e.g. the benchmark world's record for the oracle).
    """

    name: str

    def segment(
        self, image: np.ndarray, concepts: Sequence[str] | None = None, meta: Mapping | None = None
    ) -> list[Instance]: ...


def min_pixels(height: int, width: int, min_pixels_at_224: int = MIN_PIXELS) -> int:
    """The paper's 100-pixels-at-224x224 presence threshold scaled to an image of ``height`` x ``width``."""
    return max(1, int(round(min_pixels_at_224 * (height * width) / float(REFERENCE_SIZE * REFERENCE_SIZE))))


def concept_present(mask: np.ndarray, min_pixels_at_224: int = MIN_PIXELS) -> bool:
    """True when ``mask`` (HxW bool) covers enough pixels for the concept to count as present.

    Example:
        >>> concept_present(np.ones((64, 64), bool))      # 4096 px >= 100 * 64*64/224**2 = 8
        True
    """
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be HxW, got shape {m.shape}")
    return int(m.astype(bool).sum()) >= min_pixels(m.shape[0], m.shape[1], min_pixels_at_224)


def check_image(image: np.ndarray) -> np.ndarray:
    """Validate an HxWx3 uint8 RGB array (the segmenters' input) and return it contiguous."""
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(
            f"segmenters take HxWx3 RGB images, got shape {arr.shape}; convert grayscale/RGBA with modeledit.images.to_pil first"
        )
    if arr.dtype != np.uint8:
        raise TypeError(f"segmenters take uint8 images, got {arr.dtype}; scale [0,1] floats by 255 and cast to uint8")
    return np.ascontiguousarray(arr)


def merge_instances(instances: Sequence[Instance], concept: str, shape: tuple[int, int]) -> np.ndarray:
    """The union of all instances of ``concept`` as one HxW bool mask (all False when there is none)."""
    out = np.zeros(shape, bool)
    for inst in instances:
        if inst.concept == concept:
            if inst.mask.shape != tuple(shape):
                raise ValueError(f"instance mask of shape {inst.mask.shape} does not match the image {tuple(shape)}")
            out |= inst.mask
    return out


def filter_concepts(instances: list[Instance], concepts: Sequence[str] | None) -> list[Instance]:
    """Keep the instances whose concept is in ``concepts`` (canonicalised); all when None."""
    if concepts is None:
        return instances
    from modeledit.segmenters.vocab import canonical_concept

    wanted = {canonical_concept(c, strict=False) for c in concepts}
    return [i for i in instances if i.concept in wanted]


def resolve_concepts(segmenter: object, names: Sequence[str]) -> list[str]:
    """Canonical names of ``names`` for ``segmenter``, refused (KeyError) when it cannot find one of them.

    A segmenter says what it can find with a ``concepts`` attribute (a tuple of names: mediapipe finds
    only ``person``; files, the names of its mask files), or ``any_concept = True`` (grabcut: the name is
    a label the user gives); otherwise names must be in the vocabulary (:mod:`modeledit.segmenters.vocab`).

    Example:
        >>> resolve_concepts(get_segmenter("mediapipe"), ["people"])
        ['person']
    """
    from modeledit.segmenters.vocab import canonical_concept

    label = getattr(segmenter, "name", type(segmenter).__name__)
    if getattr(segmenter, "any_concept", False):
        out = [canonical_concept(n, strict=False) for n in names]
    else:
        known = getattr(segmenter, "concepts", None)
        out = []
        for n in names:
            try:
                c = canonical_concept(n)
            except KeyError:  # not in the vocabulary: may still be a name this segmenter knows (a file's label)
                c = " ".join(str(n).strip().lower().replace("_", " ").split()) if known is not None else None
            if known is not None and c not in known:
                from modeledit.registry import close_matches

                close = close_matches(str(n), list(known))
                shown = list(known) if len(known) <= 12 else f"{len(known)} names, closest {close or '-'}"
                raise KeyError(f"the {label} segmenter cannot find {n!r}; it finds: {shown}. Choose a segmenter that "
                               "knows it (torchvision: COCO objects; oracle: the world's concepts; grabcut: any name, with a box; "
                               "files: your own masks, named CONCEPT.png)")
            if c is None:
                c = canonical_concept(n)  # raises the vocabulary's KeyError with close matches
            out.append(c)
    return list(dict.fromkeys(out))
