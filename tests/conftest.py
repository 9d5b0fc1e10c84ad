"""Shared fixtures: real photos from scikit-image and the real MobileNetV2."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

os.environ.setdefault("MODELEDIT_CACHE", os.path.join(os.path.dirname(__file__), "..", ".modeledit-cache", "tests"))
# make test runs two xdist workers on the two cores: one torch thread each; a plain pytest run uses both cores
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1) // _WORKERS))


@pytest.fixture(scope="session")
def mobilenet():
    from modeledit import load_model

    return load_model("mobilenet_v2")


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    import skimage.data as d

    return {"chelsea": d.chelsea(), "coffee": d.coffee(), "astronaut": d.astronaut(), "rocket": d.rocket()}
