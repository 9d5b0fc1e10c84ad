"""The whole summary: the tables per model (:func:`science_tables`) and the files (:func:`write_science_summary`).

Part of the science summary (:mod:`modeledit.eval.science`)."""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from modeledit.eval.intervals import LEVEL, N_BOOT
from modeledit.eval.methods import comparisons
from modeledit.eval.science.data import BUDGETS, PAPER_BUDGET, bench_folders, load_bench, merge_benches
from modeledit.eval.science.splits import run_record, selection_table, verify_splits
from modeledit.eval.science.selection import check_consistency, select
from modeledit.eval.science.aggregate import _clusters, aggregate, compare, resolution
from modeledit.eval.science.figures import write_figures
from modeledit.eval.science.text import markdown_summary, sensitivity_markdown

log = logging.getLogger(__name__)


@dataclass
class ScienceResult:
    """Every table of one call of :func:`science_tables` (all models stacked, a ``model`` column)."""

    selection: pd.DataFrame
    summary: pd.DataFrame
    by_site: pd.DataFrame
    ablations: pd.DataFrame
    resolution: pd.DataFrame
    consistency: dict[str, list[str]]
    splits: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_exemplars: pd.DataFrame = field(default_factory=pd.DataFrame)


def main_sites(bench: BenchData, which: str = "deepest") -> list[int] | None:
    """The sites the main comparison selects among: ``"deepest"`` (the deepest site run, the paper's main
    setting; other sites feed the site-depth table) or ``"all"`` (the site is one more hyperparameter)."""
    if which == "all":
        return None
    if which == "deepest":
        return [int(bench.rows["site_index"].max())]
    raise ValueError(f"main sites must be 'deepest' or 'all', got {which!r}")


def common_units(bench: BenchData, site_sel: pd.DataFrame) -> pd.DataFrame:
    """The per-site selection restricted, per method and exemplar count, to the units run at every site
    of that method, so a site-depth comparison is made on the same units (a stage run at fewer sites, or
    on a subset of the units, would otherwise compare different pairs)."""
    keep = []
    rows = bench.rows
    for (method, nex), g in site_sel.groupby(["method", "n_exemplars"], sort=False):
        r = rows[(rows["method"] == method) & (rows["n_exemplars"] == nex)]
        sites = set(r["site_index"])
        per_unit = r.groupby("unit")["site_index"].agg(lambda v: set(v))
        ok = {u for u, v in per_unit.items() if v == sites}
        keep.append(g[g["unit"].isin(ok)])
    return pd.concat(keep, ignore_index=True) if keep else site_sel


def common_exemplar_units(selection: pd.DataFrame) -> pd.DataFrame:
    """The selection restricted, per method, to the units (pair x target class x seed) run at every exemplar
    count of that method, so an exemplar-count comparison is made on the same units (a stage run with other
    exemplar counts on a subset of the pairs would otherwise compare different pairs)."""
    if selection.empty:
        return selection
    keep = []
    base = selection["unit"].map(lambda u: "|".join(u.split("|")[:3] + u.split("|")[4:]))   # the unit key without the count
    for method, g in selection.groupby("method", sort=False):
        counts = set(g["n_exemplars"])
        if len(counts) < 2:      # a method run at one count has nothing to compare
            continue
        per_base = g.groupby(base[g.index])["n_exemplars"].agg(lambda v: set(v))
        ok = {b for b, v in per_base.items() if v == counts}
        keep.append(g[base[g.index].isin(ok)])
    return pd.concat(keep, ignore_index=True) if keep else selection.iloc[:0]


def science_tables(benches: Sequence[BenchData], budgets: Sequence[float] = BUDGETS,
                   site_budgets: Sequence[float] = (math.inf, PAPER_BUDGET, 0.01), n_boot: int = N_BOOT, seed: int = 0,
                   level: float = LEVEL, sites: str = "deepest", resample: str = "units") -> ScienceResult:
    """The tables of the summary for each bench (one per model; see the module docstring). ``sites``: which
    sites the main selection (summary, ablations) chooses among, see :func:`main_sites`; ``resample``: the
    first bootstrap stage draws units or concept-style pairs (:func:`aggregate`)."""
    _clusters([], resample)
    sels, sums, sites_, abl, res, exs, cons = [], [], [], [], [], [], {}
    for b in benches:
        chosen_sites = main_sites(b, sites)
        sel = pd.concat([select(b, x, sites=chosen_sites) for x in budgets], ignore_index=True)
        sel["sites"] = "all" if chosen_sites is None else ",".join(map(str, chosen_sites))
        sels.append(sel)
        chosen = sorted({int(r) for r in sel["row"] if r >= 0})
        cons[b.model] = check_consistency(b, chosen)
        for p in cons[b.model][:5]:
            log.warning("%s: %s", b.model, p)
        sums.append(aggregate(b, sel, n_boot=n_boot, seed=seed, level=level, resample=resample))
        ex_sel = common_exemplar_units(sel)
        if not ex_sel.empty:
            exs.append(aggregate(b, ex_sel, n_boot=n_boot, seed=seed, level=level, resample=resample))
        site_sel = common_units(b, pd.concat([select(b, x, per_site=True) for x in site_budgets], ignore_index=True))
        sites_.append(aggregate(b, site_sel, by=("method", "budget", "n_exemplars", "site_index", "site"), n_boot=n_boot,
                               seed=seed, level=level, resample=resample))
        for name, base, variant in comparisons():   # from the method registry: ablations, then the edit vs each baseline
            if {base, variant} <= set(sel["method"]):
                c = compare(b, sel, base, variant, n_boot=n_boot, seed=seed, level=level, resample=resample)
                c.insert(1, "ablation", name)
                abl.append(c)
        res.append(resolution(b, budgets))
    cat = lambda parts: pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()  # noqa: E731
    return ScienceResult(cat(sels), cat(sums), cat(sites_), cat(abl), cat(res), cons, by_exemplars=cat(exs))


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON records: NaN -> None, infinite budgets -> 'none'."""
    out = []
    for r in df.to_dict("records"):
        clean = {}
        for k, v in r.items():
            if isinstance(v, (float, np.floating)):
                v = None if math.isnan(v) else ("none" if math.isinf(v) else float(v))
            elif isinstance(v, np.integer):
                v = int(v)
            elif isinstance(v, np.bool_):
                v = bool(v)
            clean[k] = v
        out.append(clean)
    return out


def write_science_summary(folders: Sequence[str | Path], out_dir: str | Path, budgets: Sequence[float] = BUDGETS,
                          n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL, figure_budget: float = PAPER_BUDGET,
                          class_names: Mapping[str, Sequence[str]] | None = None, sites: str = "deepest",
                          resample: str = "units") -> ScienceResult:
    """Read bench folders (or their parents; a model's folders are merged, see :func:`merge_benches`), write the summary CSVs (interval columns ``*_lo`` /
    ``*_hi``), ``science.json`` with every number and the figures under ``out_dir``.

    ``figure_budget``: the budget of figures 6-3, 6-7 (besides unconstrained), 6-8 and 6-9.
    ``class_names``: per folder (as given) the model's classes, instead of loading the model. ``sites``:
    the main comparison at each model's deepest site (default) or among all sites (:func:`main_sites`).
    ``resample``: the bootstrap's first stage draws units (default) or concept-style pairs (more conservative
    when a pair's target classes are alike).

    Example:
        >>> write_science_summary(["results/world/bench_vgg"], "results/world/science", n_boot=1000)
    """
    from modeledit.atomic import write_json_atomic, write_text_atomic
    from modeledit.provenance import package_versions

    paths = bench_folders(folders)
    loaded = [load_bench(f, None if class_names is None else class_names.get(str(f))) for f in paths]
    by_model: dict[str, list[BenchData]] = {}
    for b in loaded:
        by_model.setdefault(b.model, []).append(b)
    splits = {m: verify_splits(v) for m, v in by_model.items()}   # a leak stops the summary before any number
    sens = [selection_table(v) for v in by_model.values()]
    benches = [merge_benches(v) for v in by_model.values()]
    models = [b.model for b in benches]
    result = science_tables(benches, budgets, n_boot=n_boot, seed=seed, level=level, sites=sites, resample=resample)
    result.splits = splits
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("selection", "summary", "by_site", "by_exemplars", "ablations", "resolution"):
        df = getattr(result, name)
        write_text_atomic(out / f"{name}.csv", df.to_csv(index=False))
    sens = [t for t in sens if not t.empty]
    if sens:
        write_text_atomic(out / "sensitivity.csv", pd.concat(sens, ignore_index=True).to_csv(index=False))
    write_text_atomic(out / "summary.md", markdown_summary(result) + "".join(sensitivity_markdown(t) for t in sens))
    figures = write_figures(result, out / "figures", figure_budget)
    write_json_atomic(out / "science.json", {
        "folders": {m: [str(b.folder) for b in v] for m, v in by_model.items()}, "models": models, "main_sites": sites, "budgets": list(budgets), "n_boot": n_boot, "seed": seed,
        "level": level, "figure_budget": figure_budget, "resample": resample,
        "intervals": f"errors corrected: mean over units of each unit's (N_pre - N_post) / N_pre; {100 * level:g}% percentile "
                     f"interval of a hierarchical bootstrap ({resample} with replacement, then images within each unit); units without "
                     "an error to correct excluded (*_units_nan). Clean drop: mean over units of (bad - good) / clean_n; "
                     f"{resample} resampled, the shared clean images resampled once per replicate for all units.",
        "selection_rule": "per unit and method, among rows with clean_drop <= budget the max val_corrected; no change "
                          "(score 0, drop 0) always a candidate, winning ties and negatives",
        "consistency": result.consistency, "splits": result.splits, "run": run_record(by_model),
        "resolution": _records(result.resolution), "summary": _records(result.summary), "by_site": _records(result.by_site),
        "by_exemplars": _records(result.by_exemplars), "ablations": _records(result.ablations), "selection": _records(result.selection),
        "figures": [str(p.relative_to(out)) for p in figures], "versions": package_versions(),
    })
    return result
