"""Person segmentation with MediaPipe's ``selfie_segmentation.tflite``, offline.

The model file ships inside the wheel ``mediapipe==0.10.21`` (install with ``--no-deps``: only the
file is used; mediapipe itself is never imported) and runs with ``ai_edge_litert``'s interpreter:
256x256x3 float input in [0, 1], 256x256x1 person probability out.

What it does on photos without a person: the selfie model is a foreground model trained on people, so
on other photos it also lights up. Two thresholds keep most of that out: connected regions smaller than
``min_area`` (1% of the image) are dropped, and the person is kept only if the mean probability over
what remains is at least ``min_score`` (0.9). Measured on scikit-image's photos (pixel threshold 0.5):
astronaut (0.985) and camera (0.959) keep their person; coffee (a cup, 0.858), horse (0.695),
hubble_deep_field, immunohistochemistry, moon and stereo_motorcycle give nothing; but one large,
centred, high-contrast object still passes as "person": chelsea (a cat, 0.945, 91% of the image),
coins, retina, logo. For such photos use a box with the ``grabcut`` segmenter or your own masks
(``files``).

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
    """One ``person`` instance: pixels whose person probability is at least ``threshold``, in connected
    regions covering at least ``min_area`` of the image, kept when their mean probability is at least
    ``min_score`` (see the module docstring for what this does on photos without a person)."""

    name = "mediapipe"
    concepts = ("person",)

    def __init__(self, threshold: float = 0.5, model_path: str | None = None, num_threads: int = 2,
                 min_score: float = 0.9, min_area: float = 0.01) -> None:
        from modeledit.deps import native_stderr_quiet, optional_import

        for label, v in (("threshold", threshold), ("min_score", min_score), ("min_area", min_area)):
            if not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"mediapipe {label} must be between 0 and 1, got {v}")
        litert = optional_import("ai_edge_litert.interpreter", "segment")
        self.threshold = float(threshold)
        self.min_score = float(min_score)
        self.min_area = float(min_area)
        with native_stderr_quiet():     # LiteRT's "INFO: Created TensorFlow Lite XNNPACK delegate" unless -v
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
        import cv2

        prob = self.probability(image)
        mask = prob >= self.threshold
        if not mask.any():
            return []
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
        keep = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= self.min_area * mask.size]
        mask = np.isin(labels, keep) if keep else np.zeros_like(mask)
        if not mask.any():
            return []
        score = float(prob[mask].mean())
        if score < self.min_score:
            return []
        return filter_concepts([Instance(mask, "person", score)], concepts)
