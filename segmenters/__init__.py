"""Segmenter backends behind one protocol (``modeledit.segmenters``), imported on first use.

Example:
    >>> from modeledit.segmenters import get_segmenter, available_segmenters
    >>> available_segmenters()
    ['detectron2', 'files', 'grabcut', 'mediapipe', 'oracle', 'torchvision']
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

# registry: name -> "module:Class"; the module is imported only when the backend is asked for
SEGMENTERS: dict[str, str] = {
    "detectron2": "modeledit.segmenters.detectron2_backend:Detectron2Segmenter",
    "torchvision": "modeledit.segmenters.torchvision_backend:TorchvisionSegmenter",
    "mediapipe": "modeledit.segmenters.mediapipe_backend:MediapipeSegmenter",
    "files": "modeledit.segmenters.files:FileSegmenter",
    "grabcut": "modeledit.segmenters.grabcut:GrabCutSegmenter",
    "oracle": "modeledit.segmenters.oracle:OracleSegmenter",
}


def available_segmenters() -> list[str]:
    """Names :func:`get_segmenter` accepts."""
    return sorted(SEGMENTERS)


def get_segmenter(name: str, **kwargs: Any) -> Segmenter:
    """Build the segmenter registered under ``name`` with backend-specific ``kwargs``.

    Example:
        >>> seg = get_segmenter("files", root="masks/")
    """
    from modeledit.registry import build_lazy

    return build_lazy(SEGMENTERS, name, "segmenter", **kwargs)


__all__ = [
    "Instance", "Segmenter", "SEGMENTERS", "available_segmenters", "get_segmenter", "concept_present",
    "min_pixels", "merge_instances", "check_image", "MIN_PIXELS", "PIXEL_THRESHOLD",
]
