"""The protocol's selection on a bench's rows (:func:`select`, through
:func:`~modeledit.eval.protocol.choose_setting`), per-image codes and the consistency check of the rows against
their outcomes.

Part of the science summary (:mod:`modeledit.eval.science`)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from modeledit.eval.intervals import code_counts, corrected_codes, corrected_from_counts
from modeledit.eval.protocol import choose_setting, why_no_change
from modeledit.eval.science.data import GROUPS, NO_CHANGE, UNIT_KEYS, WHO


def select(bench: BenchData, budget: float, per_site: bool = False, methods: Sequence[str] | None = None,
           sites: Sequence[int] | None = None) -> pd.DataFrame:
    """Per unit x method (x site when ``per_site``): the setting the protocol chooses within ``budget``.

    Among all rows (site, setting, strength) whose paired clean drop is at most ``budget``, the one with
    the most validation errors corrected; "no change" (score 0, clean drop 0) is always a candidate and
    wins ties and negatives. Ties between settings go to the smaller clean drop (then the shallower site,
    the smaller strength, the first row): the one rule of :func:`~modeledit.eval.protocol.choose_setting`,
    which the bench's summary uses too. ``row`` = -1 and ``reason`` (no setting qualifies / none beats no change)
    when no change is made. ``sites``: only rows at these site indices (default: every site is a candidate).
    """
    t = bench.rows if methods is None else bench.rows[bench.rows["method"].isin(list(methods))]
    if sites is not None:
        t = t[t["site_index"].isin(list(sites))]
    by = ["unit", "method"] + (["site_index", "site_name"] if per_site else [])
    out = []
    for key, g in t.groupby(by, sort=True):
        records = g.sort_values("row", kind="stable").to_dict("records")
        for r in records:   # as the bench's summary: no validation error to correct scores as no change
            r["val_corrected"] = 0.0 if pd.isna(r["val_corrected"]) else r["val_corrected"]
        best = choose_setting(records, budget)
        first = records[0]
        rec = {**{k: first[k] for k in UNIT_KEYS}, "model": bench.model, "unit": first["unit"], "method": first["method"],
               "budget": budget}
        if per_site:
            rec.update(site_index=int(first["site_index"]), site=str(first["site_name"]))
        if best is None:
            rec.update(changed=False, reason=why_no_change(records, budget), row=-1, site_name=NO_CHANGE, strength=np.nan,
                       setting=NO_CHANGE, clean_drop_row=0.0, val_corrected=0.0)
        else:
            rec.update(changed=True, reason="setting", row=int(best["row"]), site_name=str(best["site_name"]),
                       strength=float(best["strength"]), setting=str(best["setting"]), clean_drop_row=float(best["clean_drop"]),
                       val_corrected=float(best["val_corrected"]))
        out.append(rec)
    return pd.DataFrame(out)


def _post(bench: BenchData, row: int, group: str, pre: np.ndarray) -> np.ndarray:
    if row < 0:
        return pre
    return np.asarray(bench.outcomes[row][group]["post"], dtype=np.int64)


def unit_codes(bench: BenchData, unit: str, row: int, group: str, who: str) -> np.ndarray:
    """Per-image codes (intervals.corrected_codes) of one unit's images of ``group`` ('test', 'heldout')
    and ``who`` ('target', 'other', 'all') whose original the unedited model gets right, under row
    ``row`` (-1: no change)."""
    a = bench.unit_arrays(unit)[group]
    keep = a["orig_ok"] & (a["target"] if who == "target" else ~a["target"] if who == "other" else True)
    post = _post(bench, row, group, a["pre"])
    return corrected_codes(a["pre"][keep] != a["y"][keep], post[keep] != a["y"][keep])


def clean_flips(bench: BenchData, row: int) -> tuple[list[int], list[int]]:
    """(good, bad) clean images of a row: wrong -> right, right -> wrong (none for no change)."""
    if row < 0:
        return [], []
    o = bench.outcomes[row]
    return list(o.get("clean_good", [])), list(o.get("clean_bad", []))


def check_consistency(bench: BenchData, rows: Iterable[int] | None = None, tol: float = 1e-9) -> list[str]:
    """Rows whose per-image outcomes disagree with their own counts (errors corrected, clean drop): each a
    message. An empty list means the outcomes are read as the runner meant them."""
    problems = []
    t = bench.rows if rows is None else bench.rows[bench.rows["row"].isin(list(rows))]
    for r in t.to_dict("records"):
        for g in GROUPS:
            if g not in bench.unit_arrays(r["unit"]):
                continue
            for w in WHO:
                counts = code_counts(unit_codes(bench, r["unit"], r["row"], g, w))
                mine, theirs = float(corrected_from_counts(counts)), r.get(f"{g}_{w}_corrected")
                n_pre = int(counts[2] + counts[3])
                if theirs is None:
                    continue
                if n_pre != r.get(f"{g}_{w}_n_pre", n_pre) or not (
                        (math.isnan(mine) and pd.isna(theirs)) or abs(mine - float(theirs)) <= tol):
                    problems.append(f"row {r['row']} ({r['unit']}, {r['method']}): {g}_{w} from outcomes {mine:.4f} "
                                    f"(N_pre {n_pre}) vs cell {theirs} (N_pre {r.get(f'{g}_{w}_n_pre')})")
        good, bad = clean_flips(bench, r["row"])
        if "clean_drop" in r and abs((len(bad) - len(good)) / bench.clean_n - r["clean_drop"]) > 1e-6:
            problems.append(f"row {r['row']} ({r['unit']}, {r['method']}): clean flips give a drop of "
                            f"{(len(bad) - len(good)) / bench.clean_n:.5f} vs clean_drop {r['clean_drop']:.5f}")
    return problems
