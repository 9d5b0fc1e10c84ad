"""Person segmentation with MediaPipe's ``selfie_segmentation.tflite``, offline.

The model file ships inside the wheel ``mediapipe==0.10.21`` (install with ``--no-deps``: only the
file is used; mediapipe itself is never imported) and runs with ``ai_edge_litert``'s interpreter:
256x256x3 float input in [0, 1], 256x256x1 person probability out.

Example:
    >>> seg = get_segmenter("mediapipe")
    >>> [i.concept for i in seg.segment(skimage.data.astronaut())]
    ['person']
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from modeledit.segmenters.base import Instance, check_image, filter_concepts

MODEL_RELPATH = Path("modules") / "selfie_segmentation" / "selfie_segmentation.tflite"


def selfie_model_path() -> Path:
    """Where the installed ``mediapipe`` wheel keeps ``selfie_segmentation.tflite`` (without importing it)."""
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the MediaPipe models are not installed; run `pip install --no-deps mediapipe==0.10.21` (or `make venv`)")
    path = Path(list(spec.submodule_search_locations)[0]) / MODEL_RELPATH
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; mediapipe 1.x wheels ship no models, install `mediapipe==0.10.21` with --no-deps")
    return path


class MediapipeSegmenter:
    """One ``person`` instance: pixels whose person probability is at least ``threshold``."""

    name = "mediapipe"

    def __init__(self, threshold: float = 0.5, model_path: str | None = None, num_threads: int = 2) -> None:
        from modeledit.deps import optional_import

        litert = optional_import("ai_edge_litert.interpreter", "segment")
        self.threshold = float(threshold)
        self.interpreter = litert.Interpreter(model_path=str(model_path or selfie_model_path()), num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self._in = self.interpreter.get_input_details()[0]
        self._out = self.interpreter.get_output_details()[0]

    def probability(self, image: np.ndarray) -> np.ndarray:
        """Person probability HxW float32 in [0, 1] at the image's size."""
        import cv2

        img = check_image(image)
        _, ih, iw, _ = self._in["shape"]
        x = cv2.resize(img, (int(iw), int(ih)), interpolation=cv2.INTER_AREA).astype(np.float32)[None] / 255.0
        self.interpreter.set_tensor(self._in["index"], x)
        self.interpreter.invoke()
        prob = self.interpreter.get_tensor(self._out["index"])[0, ..., 0]
        return np.clip(cv2.resize(prob, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR), 0, 1)

    def segment(self, image: np.ndarray, concepts: Sequence[str] | None = None, meta: Mapping | None = None) -> list[Instance]:
        prob = self.probability(image)
        mask = prob >= self.threshold
        if not mask.any():
            return []
        return filter_concepts([Instance(mask, "person", float(prob[mask].mean()))], concepts)
