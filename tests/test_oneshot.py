"""The one-shot study (eval/oneshot.py)."""
from __future__ import annotations

import numpy as np
import pytest


def test_oneshot_study_needs_its_own_statistics_images():
    import torch

    from modeledit import load_model
    from modeledit.eval.oneshot import Exemplar, OneShotStudy

    lm = load_model("world_vgg")
    x = torch.rand(2, 3, 64, 64)
    ex = Exemplar(x[0], x[1], torch.ones(64, 64), 0)
    with pytest.raises(ValueError, match="disjoint from every evaluation set"):
        OneShotStudy(lm, ex, {"val": (x, np.zeros(2, int))}, (x, np.zeros(2, int)))
