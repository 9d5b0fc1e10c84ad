"""Segmenter backends behind one protocol (``modeledit.segmenters``), imported on first use.

Example:
    >>> from modeledit.segmenters import get_segmenter, available_segmenters
    >>> available_segmenters()
    ['detectron2', 'files', 'foreground', 'grabcut', 'mediapipe', 'oracle', 'torchvision']
    >>> seg = get_segmenter("grabcut", box=(10, 10, 200, 200), concept="cat")
"""
from __future__ import annotations

from typing import Any

from modeledit.segmenters.base import (
    MIN_PIXELS,
    PIXEL_THRESHOLD,
    Instance,
    Segmenter,
    check_image,
    concept_present,
    merge_instances,
    min_pixels,
)
from modeledit.registry import Registry

#: name -> "module:Class", imported only when the backend is asked for; other packages add backends
#: through the ``modeledit.segmenters`` entry-point group (the benchmark world's ``oracle`` does)
SEGMENTERS = Registry("segmenter", group="modeledit.segmenters")
SEGMENTERS.register("detectron2", "modeledit.segmenters.detectron2_backend:Detectron2Segmenter", "LVIS/COCO Mask R-CNN from detectron2's model zoo (installed by hand)")
SEGMENTERS.register("torchvision", "modeledit.segmenters.torchvision_backend:TorchvisionSegmenter", "torchvision Mask R-CNN (COCO), enum weights or a local checkpoint")
SEGMENTERS.register("mediapipe", "modeledit.segmenters.mediapipe_backend:MediapipeSegmenter", "MediaPipe selfie segmentation: person, offline")
SEGMENTERS.register("files", "modeledit.segmenters.files:FileSegmenter", "masks from PNG files or a COCO json")
SEGMENTERS.register("grabcut", "modeledit.segmenters.grabcut:GrabCutSegmenter", "OpenCV GrabCut from a box")
SEGMENTERS.register("foreground", "modeledit.segmenters.foreground:ForegroundSegmenter",
                    "object: GrabCut from a centre box (an ellipse when it fails), any photo, offline")

#: the segmenter :func:`concept_mask` uses for a concept when none is named
DEFAULT_SEGMENTER = {"object": "foreground"}


def available_segmenters() -> list[str]:
    """Names :func:`get_segmenter` accepts."""
    return SEGMENTERS.names()


def get_segmenter(name: str, **kwargs: Any) -> Segmenter:
    """Build the segmenter registered under ``name`` with backend-specific ``kwargs``.

    Example:
        >>> seg = get_segmenter("files", root="masks/")
    """
    return SEGMENTERS.build(name, **kwargs)


def concept_mask(image: Any, concept: str, segmenter: Any = None, meta: Any = None, **kwargs: Any) -> Any:
    """The union of a segmenter's instances of ``concept`` in one image, as an (H, W) bool tensor.

    ``image``: a (3, H, W) tensor in [0, 1], an HxWx3 array, a PIL image or a path; ``segmenter``: a
    registry name (built with ``kwargs``) or an instance; by default ``foreground`` for ``object`` and
    ``mediapipe`` otherwise. A ValueError when the concept is not found.

    Example:
        >>> mask = concept_mask(lm.preprocess(skimage.data.astronaut()), "person")     # MediaPipe, offline
        >>> mask = concept_mask(lm.preprocess(skimage.data.coffee()), "object")        # GrabCut from a centre box
    """
    import numpy as np
    import torch

    from modeledit.images import to_pil

    arr = np.asarray(to_pil(image))
    segmenter = segmenter or DEFAULT_SEGMENTER.get(concept, "mediapipe")
    seg = get_segmenter(segmenter, **kwargs) if isinstance(segmenter, str) else segmenter
    m = merge_instances(seg.segment(arr, [concept], meta), concept, arr.shape[:2])
    if not m.any():
        raise ValueError(f"the {getattr(seg, 'name', 'segmenter')!r} segmenter found no {concept!r} in this image; "
                         "draw the mask by hand (modeledit.box_mask, ellipse_mask, read_mask) or try another segmenter")
    return torch.from_numpy(m)


__all__ = [
    "concept_mask",
    "Instance", "Segmenter", "SEGMENTERS", "available_segmenters", "get_segmenter", "concept_present",
    "min_pixels", "merge_instances", "check_image", "MIN_PIXELS", "PIXEL_THRESHOLD",
]
