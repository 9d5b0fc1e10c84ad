"""The paper's evaluation protocol (thesis 6.3.1-6.3.2, appendix E.1.4) as testable pieces.

* :func:`select_pairs` picks concept-style pairs from a sensitivity table: the concept affects at least
  ``min_classes`` classes, each with the concept in at least ``min_presence`` of its test images and an
  accuracy drop of at least ``min_drop``, leaving out excluded concept-class pairs.
* :func:`split_pair` draws N exemplars from one target class and splits every other image with the
  concept 30/70 into validation and test, per class.
* :func:`choose_setting` picks a method's hyperparameters on validation among settings whose clean
  accuracy drop stays within the budget; when none qualifies the method makes no change.

Example:
    >>> cfg = ProtocolConfig(min_classes=3, min_presence=0.2, min_drop=0.15)
    >>> pairs = select_pairs(sensitivity_table, cfg)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from modeledit.config import JsonConfig


@dataclass
class ProtocolConfig(JsonConfig):
    min_classes: int = 3
    min_presence: float = 0.20
    min_drop: float = 0.15
    exclude: list[tuple[str, str]] = field(default_factory=list)  # (concept, class) pairs to leave out
    val_fraction: float = 0.30
    max_clean_drop: float = 0.0025
    seed: int = 0

    def __post_init__(self) -> None:
        self.exclude = [tuple(x) for x in self.exclude]

def select_pairs(table: pd.DataFrame, cfg: ProtocolConfig) -> pd.DataFrame:
    """Concept-style pairs that qualify, one row per (concept, style) with its affected classes.

    ``table`` has one row per concept x style x class with columns ``concept, style, class_name,
    presence`` (fraction of the class's images containing the concept) and ``drop`` (accuracy drop).
    """
    need = {"concept", "style", "class_name", "presence", "drop"}
    missing = need - set(table.columns)
    if missing:
        raise ValueError(f"sensitivity table lacks columns {sorted(missing)}")
    excluded = {(c, k) for c, k in cfg.exclude}
    keep = table[(table["presence"] >= cfg.min_presence) & (table["drop"] >= cfg.min_drop)]
    keep = keep[[(c, k) not in excluded for c, k in zip(keep["concept"], keep["class_name"])]]
    rows = []
    for (concept, style), g in keep.groupby(["concept", "style"], sort=True):
        if g["class_name"].nunique() >= cfg.min_classes:
            rows.append({"concept": concept, "style": style, "classes": sorted(g["class_name"].unique()),
                         "n_classes": int(g["class_name"].nunique()), "mean_drop": float(g["drop"].mean())})
    return pd.DataFrame(rows, columns=["concept", "style", "classes", "n_classes", "mean_drop"])


@dataclass(frozen=True)
class PairSplit:
    target_class: Any
    exemplars: list[int]
    val: list[int]
    test: list[int]


def split_pair(indices: Sequence[int], labels: Sequence[Any], candidates: Sequence[Any], n_exemplars: int,
               val_fraction: float = 0.30, seed: int = 0, target: Any = None) -> PairSplit:
    """Exemplars from one target class (``target``, or drawn at random among ``candidates``); the rest split
    per class into validation and test. The exemplars are in neither.

    ``indices``/``labels``: the images that contain the concept and their classes.
    """
    if len(indices) != len(labels):
        raise ValueError("indices and labels must have the same length")
    rng = np.random.default_rng(seed)
    idx = np.asarray(indices)
    lab = np.asarray(labels, dtype=object)
    eligible = [c for c in candidates if (lab == c).sum() > n_exemplars]
    if not eligible:
        raise ValueError(f"no candidate class has more than {n_exemplars} images with the concept")
    pick = eligible[int(rng.integers(len(eligible)))]
    if target is None:
        target = pick
    elif target not in eligible:
        raise ValueError(f"target class {target!r} is not a candidate with more than {n_exemplars} images with the concept; "
                         f"candidates: {eligible}")
    pool = idx[lab == target]
    ex = sorted(rng.choice(pool, size=n_exemplars, replace=False).tolist())
    rest_mask = ~np.isin(idx, ex)
    val, test = [], []
    for c in sorted(set(lab[rest_mask].tolist()), key=str):
        members = idx[rest_mask & (lab == c)].copy()
        rng.shuffle(members)
        k = int(round(val_fraction * len(members)))
        val += members[:k].tolist()
        test += members[k:].tolist()
    return PairSplit(target, ex, sorted(val), sorted(test))


def _measured(r: Mapping[str, Any], key: str) -> float:
    """A row's measurement, NaN where it has none (a diverged setting's rows)."""
    v = r.get(key)
    return float("nan") if v is None else float(v)


def choose_setting(results: Sequence[Mapping[str, Any]], max_clean_drop: float = 0.0025,
                   score: str = "val_corrected", clean_drop: str = "clean_drop") -> Mapping[str, Any] | None:
    """The setting with the best validation score among those within the clean-accuracy budget: the one
    selection rule of every summary (bench, science, photos, the one-exemplar studies).

    "No change" is always a candidate: it costs no clean accuracy and scores 0, and it comes first, so
    ties go to it. Returns ``None`` (the method makes no change) when no setting qualifies or when the
    best one does not score above 0; :func:`why_no_change` says which. Ties between settings go to the
    smaller clean drop, then the shallower site (``site_index``), then the smaller in-cell strength
    (``strength``; rows without one count as larger), then the first given.
    """
    ok = [r for r in results if _measured(r, clean_drop) <= max_clean_drop + 1e-12 and not np.isnan(_measured(r, score))]
    if not ok:
        return None

    def last_if_missing(r: Mapping[str, Any], key: str) -> float:
        v = r.get(key)
        return float("inf") if v is None or (isinstance(v, float) and np.isnan(v)) else float(v)

    order = sorted(range(len(ok)), key=lambda k: (-ok[k][score], ok[k][clean_drop], last_if_missing(ok[k], "site_index"),
                                                  last_if_missing(ok[k], "strength"), k))
    best = ok[order[0]]
    return best if best[score] > NO_CHANGE_SCORE else None


def first_measured(g: pd.DataFrame, column: str) -> Any:
    """The first value of ``column`` among a group's measured rows (a diverged setting's rows carry no
    measurement, see :func:`modeledit.eval.cell.run_cell`); NaN when no row has one."""
    values = g[column].dropna() if column in g else pd.Series(dtype=float)
    return values.iloc[0] if len(values) else float("nan")


#: the validation score of making no change (every error stays)
NO_CHANGE_SCORE = 0.0
NONE_QUALIFIES = "no setting qualifies"
NO_GAIN = "no setting beats no change"


def why_no_change(results: Sequence[Mapping[str, Any]], max_clean_drop: float = 0.0025, score: str = "val_corrected",
                  clean_drop: str = "clean_drop") -> str:
    """Why :func:`choose_setting` chose no change: no setting within the budget, or none scoring above 0."""
    ok = [r for r in results if _measured(r, clean_drop) <= max_clean_drop + 1e-12 and not np.isnan(_measured(r, score))]
    return NO_GAIN if ok else NONE_QUALIFIES


def choose_targets(candidates: Sequence[str], n: int, seed: int = 0) -> list[str]:
    """``n`` distinct target classes drawn at random (seeded) among a pair's affected classes (all when fewer)."""
    rng = np.random.default_rng(seed)
    order = list(rng.permutation(sorted(candidates)))
    return [str(c) for c in order[: max(1, int(n))]]
