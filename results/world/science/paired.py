"""Paired comparisons the science summary does not write, recomputed from the committed per-cell files.

The summary (``summary/by_site.csv``, ``summary/by_exemplars.csv``) gives each site and each exemplar count
its own interval; claims 3 (depth) and 6 (exemplar count) were first read by comparing those intervals. Here
the same selections are compared as paired differences on the same units (and, where the units share their
test images, the same images), with the summary's bootstrap (pairs, then images; 2,000 replicates, seed 0).
Exemplar counts are paired by unit (pair x target class), not by image: each count
draws its own exemplars, and its test images exclude them.
It also answers a reviewer's question the summary cannot: the selection's clean change was measured on the
same 10,000 clean images it is reported on; here the selection is redone with the clean change measured on
one half of them (even indices) and the chosen settings' clean change is reported on the other half.

Writes ``summary/paired_sites.csv`` (each shallower site minus the deepest), ``summary/paired_rank_by_site.csv``
(unrestricted minus rank 1 at every site), ``summary/paired_exemplars.csv`` and ``summary/clean_heldout_half.csv``.

    python results/world/science/paired.py        # from the repository root; a few minutes on one core
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from modeledit.eval.intervals import (N_BOOT, _masked_mean, code_counts, corrected_from_counts, draw_units,
                                      hierarchical_change_interval, multinomial_counts, percentile_interval)
from modeledit.eval.science import (PAPER_BUDGET, _clusters, common_units, compare, load_bench, main_sites,
                                    merge_benches, select, unit_codes)

ROOT = Path(__file__).resolve().parent
MODELS = ("world_vgg", "world_resnet")
FOLDERS = ("A_deep", "B_sites", "C_exemplars", "D_adam_rrr")
BUDGETS = (PAPER_BUDGET, math.inf)
RESAMPLE = "pairs"


def _bench(model: str):
    return merge_benches([load_bench(ROOT / model / f) for f in FOLDERS])


def paired_sites(b) -> pd.DataFrame:
    """Edit (rank 1), 3 exemplars: each shallower site minus the deepest, on the units run at every site."""
    sel = pd.concat([select(b, x, per_site=True, methods=["edit"]) for x in BUDGETS], ignore_index=True)
    sel = common_units(b, sel)
    sel = sel[sel["n_exemplars"] == 3].copy()
    sel["method"] = sel["site"]
    sites = sel.drop_duplicates("site_index").sort_values("site_index")["site"].tolist()
    deepest = sites[-1]
    out = [compare(b, sel, deepest, s, resample=RESAMPLE) for s in sites[:-1]]
    return pd.concat(out, ignore_index=True)


def paired_rank_by_site(b) -> pd.DataFrame:
    """Unrestricted minus rank 1 (edit_full - edit) at each site, 3 exemplars, on the units run at every site."""
    sel = pd.concat([select(b, x, per_site=True, methods=["edit", "edit_full"]) for x in BUDGETS], ignore_index=True)
    sel = common_units(b, sel)
    sel = sel[sel["n_exemplars"] == 3]
    out = []
    for (idx, site), g in sel.groupby(["site_index", "site"]):
        c = compare(b, g, "edit", "edit_full", resample=RESAMPLE)
        c.insert(1, "site", site)
        out.append(c)
    return pd.concat(out, ignore_index=True)


def unit_difference(counts_a: np.ndarray, counts_b: np.ndarray, clusters: list[str], n_boot: int = N_BOOT, seed: int = 0):
    """Mean over units of errors corrected by b minus by a, where a unit's two sides were measured on
    different images: a two-stage bootstrap (clusters with replacement, then each side's images within each
    drawn unit, independently). Returns (value, low, high, units used, units excluded)."""
    va, vb = corrected_from_counts(counts_a), corrected_from_counts(counts_b)
    keep = np.isfinite(va) & np.isfinite(vb)
    ca, cb = counts_a[keep], counts_b[keep]
    cl = [c for c, k in zip(clusters, keep) if k]
    rng = np.random.default_rng(seed)
    units = draw_units(rng, n_boot, len(ca), cl)
    present = units >= 0
    units = np.where(present, units, 0)
    da = multinomial_counts(rng, ca.sum(-1)[units], ca[units])
    db = multinomial_counts(rng, cb.sum(-1)[units], cb[units])
    boots = _masked_mean(corrected_from_counts(db) - corrected_from_counts(da), present)
    lo, hi, _ = percentile_interval(boots)
    return float((vb - va)[keep].mean()), lo, hi, int(keep.sum()), int((~keep).sum())


def paired_exemplars(b) -> pd.DataFrame:
    """Edit at the deepest site: count b minus count a on the units (pair x target x seed) run at every count.
    Units of different counts draw different exemplars and hold different test images (their splits exclude
    the exemplars), so they are paired by unit, not by image (:func:`unit_difference`)."""
    deep = main_sites(b)
    sel = pd.concat([select(b, x, methods=["edit"], sites=deep) for x in BUDGETS], ignore_index=True)
    sel["base"] = sel["unit"].map(lambda u: "|".join(u.split("|")[:3] + u.split("|")[4:]))
    counts = sorted(set(sel["n_exemplars"]))
    per = sel.groupby("base")["n_exemplars"].agg(lambda v: set(v))
    sel = sel[sel["base"].isin(set(per[per.map(lambda v: v == set(counts))].index))]
    out = []
    for budget, g in sel.groupby("budget"):
        by_count = {n: gg.set_index("base") for n, gg in g.groupby("n_exemplars")}
        bases = sorted(by_count[counts[0]].index)
        clusters = ["|".join(x.split("|")[:2]) for x in bases]
        for a, v in ((1, 3), (3, 10), (1, 10)):
            rec = {"model": b.model, "method": "edit", "budget": budget, "count_a": a, "count_b": v}
            for grp in ("test", "heldout"):
                for who in ("target", "other"):
                    ca = np.stack([code_counts(unit_codes(b, by_count[a].loc[x, "unit"], int(by_count[a].loc[x, "row"]), grp, who))
                                   for x in bases])
                    cb = np.stack([code_counts(unit_codes(b, by_count[v].loc[x, "unit"], int(by_count[v].loc[x, "row"]), grp, who))
                                   for x in bases])
                    val, lo, hi, n, excl = unit_difference(ca, cb, clusters)
                    name = f"diff_{grp}_{who}_corrected"
                    rec.update({name: val, f"{name}_lo": lo, f"{name}_hi": hi, f"{name}_units_nan": excl})
            rec["n_units"] = len(bases)
            out.append(rec)
    return pd.DataFrame(out)


def clean_heldout_half(b) -> pd.DataFrame:
    """Main comparison (deepest site, 3 exemplars, 0.25 pp): select with the clean change on the even-indexed
    clean images, report it on the odd-indexed ones (and, for reference, on the even ones)."""
    n = b.clean_n
    halves = {"selection half (even)": 0, "held-out half (odd)": 1}
    rows = b.rows.copy()

    def drop(row: int, parity: int) -> float:
        o = b.outcomes[row]
        bad = sum(1 for i in o.get("clean_bad", []) if i % 2 == parity)
        good = sum(1 for i in o.get("clean_good", []) if i % 2 == parity)
        return (bad - good) / (n / 2)

    original = b.rows
    b.rows = rows.assign(clean_drop=[drop(int(r), 0) for r in rows["row"]])
    try:
        sel = select(b, PAPER_BUDGET, sites=main_sites(b))
    finally:
        b.rows = original
    sel = sel[sel["n_exemplars"] == 3]
    full = select(b, PAPER_BUDGET, sites=main_sites(b))
    full = full[full["n_exemplars"] == 3].set_index(["unit", "method"])["row"]
    out = []
    for method, g in sel.groupby("method"):
        units, chosen = g["unit"].tolist(), g["row"].astype(int).tolist()
        rec = {"model": b.model, "method": method, "budget": PAPER_BUDGET, "n_units": len(g), "n_changed": int(g["changed"].sum()),
               "same_choice_as_full_selection": int(sum(full.get((u, method), -2) == r for u, r in zip(units, chosen)))}
        for label, parity in halves.items():
            good = [[i // 2 for i in b.outcomes[r].get("clean_good", []) if i % 2 == parity] if r >= 0 else [] for r in chosen]
            bad = [[i // 2 for i in b.outcomes[r].get("clean_bad", []) if i % 2 == parity] if r >= 0 else [] for r in chosen]
            est = hierarchical_change_interval(good, bad, n // 2, N_BOOT, 0, clusters=_clusters(units, RESAMPLE)).negated()
            key = "heldout" if parity else "selection"
            rec.update(est.as_dict(f"clean_drop_{key}"))
        out.append(rec)
    return pd.DataFrame(out)


def main() -> int:
    sites, exemplars, clean, rank = [], [], [], []
    for m in MODELS:
        b = _bench(m)
        print(m, "loaded", file=sys.stderr)
        sites.append(paired_sites(b))
        rank.append(paired_rank_by_site(b))
        exemplars.append(paired_exemplars(b))
        clean.append(clean_heldout_half(b))
    out = ROOT / "summary"
    pd.concat(sites, ignore_index=True).to_csv(out / "paired_sites.csv", index=False)
    pd.concat(exemplars, ignore_index=True).to_csv(out / "paired_exemplars.csv", index=False)
    pd.concat(clean, ignore_index=True).to_csv(out / "clean_heldout_half.csv", index=False)
    pd.concat(rank, ignore_index=True).to_csv(out / "paired_rank_by_site.csv", index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
