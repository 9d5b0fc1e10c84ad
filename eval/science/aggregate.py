"""Errors corrected with two-stage bootstrap intervals (:func:`aggregate`), paired differences (:func:`compare`)
and what one budget is in images (:func:`resolution`).

Part of the science summary (:mod:`modeledit.eval.science`)."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from modeledit.eval.intervals import (LEVEL, N_BOOT, code_counts, corrected_difference_from_counts, corrected_from_counts,
                                      hierarchical_change_interval, hierarchical_interval, joint_codes)
from modeledit.eval.protocol import NO_GAIN, NONE_QUALIFIES
from modeledit.eval.science.data import BUDGETS, GROUPS, NO_CHANGE, WHO
from modeledit.eval.science.selection import _post, clean_flips, unit_codes


def _chosen(sel: pd.DataFrame) -> str:
    """The settings chosen, counted: 'features.15 s=0.5 x3; no change x2'."""
    labels = [NO_CHANGE if not c else f"{s}" + ("" if pd.isna(st) or st == 1.0 else f" s={st:g}")
              for c, s, st in zip(sel["changed"], sel["site_name"], sel["strength"])]
    return "; ".join(f"{k} x{v}" for k, v in sorted(Counter(labels).items(), key=lambda kv: (-kv[1], kv[0])))


def _clusters(units: Sequence[str], resample: str) -> list[str] | None:
    """Cluster labels of units for the bootstrap: None (resample units) or each unit's concept-style pair."""
    if resample == "units":
        return None
    if resample == "pairs":
        return ["|".join(u.split("|")[:2]) for u in units]
    raise ValueError(f"resample must be 'units' or 'pairs', got {resample!r}")


def aggregate(bench: BenchData, selection: pd.DataFrame, by: Sequence[str] = ("method", "budget", "n_exemplars"),
              n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL, resample: str = "units") -> pd.DataFrame:
    """Per group of selected units: the mean over units of each metric with its interval.

    Errors corrected: hierarchical bootstrap (units, then images within units); units without an error
    to correct are excluded and counted (``*_units_nan``). Clean drop: units resampled, the shared clean
    images resampled once per replicate. Same ``seed`` for every group (common random numbers).
    ``resample="pairs"``: the first stage draws concept-style pairs (each with all its units) instead of units.
    """
    out = []
    for key, sel in selection.groupby(list(by), sort=True, dropna=False):
        rec: dict[str, Any] = {"model": bench.model, **dict(zip(by, key if isinstance(key, tuple) else (key,)))}
        units, rows = sel["unit"].tolist(), sel["row"].astype(int).tolist()
        for g in GROUPS:
            for w in WHO:
                name = f"{g}_{w}_corrected"
                if any(g not in bench.unit_arrays(u) for u in units):
                    rec.update({name: np.nan, f"{name}_lo": np.nan, f"{name}_hi": np.nan, f"{name}_units_nan": np.nan})
                    continue
                counts = np.stack([code_counts(unit_codes(bench, u, r, g, w)) for u, r in zip(units, rows)])
                est = hierarchical_interval(counts, corrected_from_counts, n_boot, seed, level, _clusters(units, resample))
                rec.update(est.as_dict(name))
                rec[f"{name}_units_nan"] = est.n_excluded
                per_unit = corrected_from_counts(counts)   # the range over units, for prose that must cover every unit
                finite = per_unit[np.isfinite(per_unit)]
                rec[f"{name}_unit_min"] = float(finite.min()) if finite.size else np.nan
                rec[f"{name}_unit_max"] = float(finite.max()) if finite.size else np.nan
        flips = [clean_flips(bench, r) for r in rows]
        drop = hierarchical_change_interval([f[0] for f in flips], [f[1] for f in flips], bench.clean_n, n_boot, seed, level,
                                            _clusters(units, resample)).negated()
        rec.update(drop.as_dict("clean_drop"))
        # the net drop can hide offsetting flips: how many clean images each chosen edit broke and fixed, on average
        rec.update(clean_bad_mean=float(np.mean([len(f[1]) for f in flips])), clean_good_mean=float(np.mean([len(f[0]) for f in flips])))
        rec.update(n_units=len(sel), n_changed=int(sel["changed"].sum()),
                   n_none_qualifies=int((sel["reason"] == NONE_QUALIFIES).sum()), n_no_gain=int((sel["reason"] == NO_GAIN).sum()),
                   chosen=_chosen(sel))
        out.append(rec)
    return pd.DataFrame(out)


def compare(bench: BenchData, selection: pd.DataFrame, base: str, variant: str, by: Sequence[str] = ("budget", "n_exemplars"),
            n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL, resample: str = "units") -> pd.DataFrame:
    """Paired differences variant - base on the units both were run on: errors corrected (same images,
    so per-image joint outcomes; hierarchical bootstrap) and clean drop (crossed on the shared clean set)."""
    a = selection[selection["method"] == base]
    b = selection[selection["method"] == variant]
    join = list(by) + ["unit"]
    m = a.merge(b, on=join, suffixes=("_a", "_b"))
    out = []
    for key, sel in m.groupby(list(by), sort=True, dropna=False):
        rec: dict[str, Any] = {"model": bench.model, "base": base, "variant": variant,
                               **dict(zip(by, key if isinstance(key, tuple) else (key,)))}
        units, ra, rb = sel["unit"].tolist(), sel["row_a"].astype(int).tolist(), sel["row_b"].astype(int).tolist()
        for g in GROUPS:
            for w in WHO:
                name = f"{g}_{w}_corrected"
                if any(g not in bench.unit_arrays(u) for u in units):
                    continue
                counts = []
                for u, x, y in zip(units, ra, rb):
                    arr = bench.unit_arrays(u)[g]
                    keep = arr["orig_ok"] & (arr["target"] if w == "target" else ~arr["target"])
                    yy, pre = arr["y"][keep], arr["pre"][keep]
                    pa, pb = _post(bench, x, g, arr["pre"])[keep], _post(bench, y, g, arr["pre"])[keep]
                    counts.append(code_counts(joint_codes(pre != yy, pa != yy, pb != yy), 8))
                est = hierarchical_interval(np.stack(counts), corrected_difference_from_counts, n_boot, seed, level,
                                            _clusters(units, resample))
                rec.update(est.as_dict(f"diff_{name}"))
                rec[f"diff_{name}_units_nan"] = est.n_excluded
        fa = [clean_flips(bench, r) for r in ra]
        fb = [clean_flips(bench, r) for r in rb]
        # change_b - change_a = (good_b + bad_a) - (bad_b + good_a), per unit
        good = [gb + ba for (ga, ba), (gb, bb) in zip(fa, fb)]
        bad = [bb + ga for (ga, ba), (gb, bb) in zip(fa, fb)]
        rec.update(hierarchical_change_interval(good, bad, bench.clean_n, n_boot, seed, level,
                                                _clusters(units, resample)).negated().as_dict("diff_clean_drop"))
        rec["n_units"] = len(sel)
        out.append(rec)
    return pd.DataFrame(out)


def resolution(bench: BenchData, budgets: Sequence[float] = BUDGETS) -> pd.DataFrame:
    """What the budgets mean on this clean set: clean size, unedited accuracy, images per budget, one image in pp."""
    acc = float(bench.rows["clean_acc_pre"].iloc[0])
    return pd.DataFrame([{"model": bench.model, "clean_n": bench.clean_n, "clean_acc_pre": acc, "budget": b,
                          "budget_pp": 100 * b, "budget_images": b * bench.clean_n, "one_image_pp": 100 / bench.clean_n}
                         for b in budgets])
