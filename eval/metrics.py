"""The measurements of the paper's protocol, as small pure functions on prediction arrays.

Example:
    >>> errors_corrected(orig_pre=[1, 1, 0], trans_pre=[0, 0, 0], trans_post=[1, 0, 0])
    0.5
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


def _b(a: Sequence[bool] | np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=bool)


def errors_corrected(orig_pre: Sequence[bool], trans_pre: Sequence[bool], trans_post: Sequence[bool]) -> float:
    """(N_pre - N_post) / N_pre (thesis 6.3), over transformed examples whose original the unedited model gets right.

    Arguments are per-example correctness: of the original under the unedited model, of the transformed
    example before and after the edit. N_pre/N_post count errors on the transformed examples. Returns NaN
    when there was no error to correct; negative when the method adds errors.
    """
    ok = _b(orig_pre)
    n_pre = int((ok & ~_b(trans_pre)).sum())
    n_post = int((ok & ~_b(trans_post)).sum())
    return float("nan") if n_pre == 0 else (n_pre - n_post) / n_pre


def error_counts(orig_pre: Sequence[bool], trans_pre: Sequence[bool], trans_post: Sequence[bool]) -> tuple[int, int]:
    ok = _b(orig_pre)
    return int((ok & ~_b(trans_pre)).sum()), int((ok & ~_b(trans_post)).sum())


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float


def accuracy_drop_ci(clean: Sequence[bool], transformed: Sequence[bool], n_boot: int = 1000, seed: int = 0,
                     level: float = 0.95) -> Interval:
    """Accuracy(clean) - accuracy(transformed) on paired examples, with a percentile bootstrap interval."""
    c, t = _b(clean).astype(float), _b(transformed).astype(float)
    if c.shape != t.shape or c.size == 0:
        raise ValueError(f"need the same non-zero number of clean and transformed results, got {c.size} and {t.size}")
    diff = c - t
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, diff.size, size=(n_boot, diff.size))
    boots = diff[idx].mean(axis=1)
    a = (1 - level) / 2
    return Interval(float(diff.mean()), float(np.quantile(boots, a)), float(np.quantile(boots, 1 - a)))
