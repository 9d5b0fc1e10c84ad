"""The science summary of bench runs: the paper's selection at each clean budget, with 95% intervals.

Reads bench folders whose cells store per-image outcomes (the format of ``notes/SCIENCE_FORMAT.md``:
rows with ``_outcomes``, units' reference images in ``unedited.json`` or in the cells' ``_unit`` records);
the folders of one model (stages at other sites, exemplar counts, methods) are pooled. Writes:

* ``selection.csv``: per unit (pair x target class x exemplar count x seed), method and budget, the
  setting chosen on validation among those whose *paired* clean change (``clean_drop``) is within the
  budget; "no change" is always a candidate (:func:`~modeledit.eval.protocol.choose_setting`). The main
  comparison selects at each model's deepest site (``--sites all``: the site is one more hyperparameter).
* ``summary.csv``: per model x method x budget x exemplar count, errors corrected on target and other
  classes, same-style (test) and held-out-style images, and the clean drop, each with a 95% interval
  (a hierarchical bootstrap: units resampled, then the images within each unit; the clean images,
  shared by all units, resampled once per replicate), the number of units, of units with no
  qualifying setting / no setting beating no change, and the sites and strengths chosen.
* ``by_site.csv``: the same with the selection restricted to one site (site depth), unconstrained and
  within budgets, on the units run at every site of the method (:func:`common_units`); ``by_exemplars.csv``:
  the main selection per exemplar count on the units run at every count of the method (:func:`common_exemplar_units`);
  ``ablations.csv``: paired differences on the same units and images (rank: edit_full - edit, mask:
  edit_masked - edit, solver: edit_adam - edit, vs: edit - each baseline); ``resolution.csv``: clean-set
  size and what one budget is in images.
* ``science.json``: every number above; ``summary.md``: the tables as markdown; ``figures/``: the paper's figures 6-3, 6-4, 6-7, 6-8 and 6-9 with
  error bars, one set per world classifier.

Example:
    >>> write_science_summary(["results/world/science/world_vgg", "results/world/science/world_resnet"],
    ...                       "results/world/science/summary")

or ``modeledit science results/world/science/world_vgg results/world/science/world_resnet --out
results/world/science/summary`` (:mod:`modeledit.commands.science`; a folder holding bench folders stands for all of them).
"""
from __future__ import annotations

import json
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Hashable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from modeledit.eval.intervals import (LEVEL, N_BOOT, code_counts, corrected_codes, corrected_difference_from_counts,
                                      corrected_from_counts, hierarchical_change_interval, hierarchical_interval, joint_codes)
from modeledit.eval.datasets import check_disjoint  # noqa: F401 (the one disjointness check; re-exported)
from modeledit.eval.methods import comparisons
from modeledit.eval.protocol import NO_GAIN, NONE_QUALIFIES, choose_setting, why_no_change

log = logging.getLogger(__name__)

#: the clean-accuracy budgets (fractions): 0.1 to 5 pp; 0.25 pp is the paper's
BUDGETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05)
PAPER_BUDGET = 0.0025
UNIT_KEYS = ["concept", "style", "target_class", "n_exemplars", "seed"]
#: (group in the cells, label): same style image as the exemplars, held-out style images
GROUPS = ("test", "heldout")
WHO = ("target", "other")
NO_CHANGE = "no change"


def _split_items(spec: str) -> set[Hashable]:
    """What a dataset spec's images are, comparable across specs: world scene indices (each split is its
    own range of scenes), or resolved file paths of a folder."""
    import os

    from modeledit.eval.datasets import load_dataset

    ds = load_dataset(spec)
    if hasattr(ds, "scene_index"):
        return {("scene", ds.scene_index(i)) for i in range(len(ds))}
    samples = getattr(ds, "samples", None)
    if samples is not None:
        return {("file", os.path.realpath(s[0] if isinstance(s, (tuple, list)) else s)) for s in samples}
    raise ValueError(f"cannot tell which images {spec!r} holds (neither world scenes nor a folder of files)")


def _selection_dataset(config: Mapping[str, Any]) -> str | None:
    """The dataset the pair-selection (sensitivity) run used, from its manifest beside ``--sensitivity``."""
    sens = config.get("sensitivity")
    if not sens:
        return None
    manifest = Path(sens).parent / "manifest.json"
    if not manifest.is_file():
        return None
    return json.loads(manifest.read_text()).get("config", {}).get("dataset")


def verify_splits(benches: Sequence["BenchData"]) -> dict[str, Any]:
    """Check that one model's splits never share an image: the pair-selection set, the bench's dataset
    (exemplars, validation, test), the clean set and the statistics set, and within every unit its
    exemplars, validation and test images (held-out-style images are the test images in other styles).

    Returns what was checked (the datasets by role and the number of units); raises ValueError naming
    the overlapping splits. A role whose dataset a run did not record is listed under ``not_recorded``.
    """
    roles: dict[str, set[str]] = {"selection": set(), "bench": set(), "clean": set(), "statistics": set()}
    for b in benches:
        c = b.config
        for role, spec in (("selection", _selection_dataset(c)), ("bench", c.get("dataset")), ("clean", c.get("clean")),
                           ("statistics", c.get("stats_dataset"))):
            if spec:
                roles[role].add(str(spec))
    items = {f"{role} ({spec})": _split_items(spec) for role, specs in roles.items() for spec in sorted(specs)}
    check_disjoint(items)
    n_units = 0
    for b in benches:
        for key, rec in b.units.items():
            check_disjoint({f"{key}: {g}": rec.get(g, {}).get("idx", []) for g in ("val", "test")}
                           | {f"{key}: exemplars": rec.get("exemplars", [])})
            n_units += 1
    return {"datasets": {role: sorted(specs) for role, specs in roles.items() if specs},
            "not_recorded": [role for role, specs in roles.items() if not specs], "units_checked": n_units,
            "disjoint": True}


#: the bench settings a run record repeats per folder (the rest is in each folder's manifest.json)
RUN_KEYS = ("dataset", "clean", "stats_dataset", "sensitivity", "max_pairs", "n_targets", "n_exemplars", "seeds", "methods",
            "sites", "strength_grid", "alpha_grid", "finetune_grid", "adam_grid", "lambda_grid", "protocol")


def run_record(by_model: Mapping[str, Sequence["BenchData"]]) -> dict[str, Any]:
    """The manifest of a science run, per model and folder: its settings, the pairs and target classes its
    units cover, their exemplar counts and seeds, and the clean-set size."""
    out: dict[str, Any] = {}
    for model, benches in by_model.items():
        folders = {}
        for b in benches:
            units = [dict(zip(UNIT_KEYS, u.split("|"))) for u in sorted(b.units)]   # the fields of _unit_key
            pairs = sorted({f"{u['concept']}|{u['style']}" for u in units})
            folders[b.folder.name] = {
                "settings": {k: b.config[k] for k in RUN_KEYS if k in b.config},
                "selection_dataset": _selection_dataset(b.config), "clean_n": b.clean_n, "pairs": pairs,
                "targets": {p: sorted({u["target_class"] for u in units if f"{u['concept']}|{u['style']}" == p}) for p in pairs},
                "n_exemplars": sorted({int(u["n_exemplars"]) for u in units}), "seeds": sorted({int(u["seed"]) for u in units}),
                "units": len(units), "rows": len(b.rows)}
        out[model] = folders
    return out


def selection_table(benches: Sequence["BenchData"]) -> pd.DataFrame:
    """The pair-selection sensitivity of one model, per concept x style: the mean accuracy drop over the
    classes whose images contain the concept often enough (the protocol's ``min_presence``), how many such
    classes, and whether the selection rule admits the pair. Empty when no run names a sensitivity table."""
    from modeledit.eval.protocol import ProtocolConfig, select_pairs

    for b in benches:
        sens = b.config.get("sensitivity")
        if sens and Path(sens).is_file():
            table = pd.read_csv(sens)
            proto = ProtocolConfig.from_json(b.config.get("protocol", {}))
            present = table[table["presence"] >= proto.min_presence]
            out = present.groupby(["concept", "style"], sort=True).agg(mean_drop=("drop", "mean"), n_classes=("drop", "size")).reset_index()
            admitted = {(r["concept"], r["style"]) for r in select_pairs(table, proto).to_dict("records")}
            out["admitted"] = [(c, st) in admitted for c, st in zip(out["concept"], out["style"])]
            out.insert(0, "model", b.model)
            out["dataset"] = _selection_dataset(b.config)
            return out
    return pd.DataFrame()


# ---------------------------------------------------------------------------------------------------
# reading a bench folder


@dataclass
class BenchData:
    """One bench folder: the rows (scalars, ``row`` = position in :attr:`outcomes`), their per-image
    outcomes, the units' reference images, the class names of the model."""

    folder: Path
    model: str
    config: dict[str, Any]
    rows: pd.DataFrame
    outcomes: list[dict[str, Any]]
    units: dict[str, dict[str, Any]]
    class_names: list[str]
    clean_n: int
    _arrays: dict[str, dict[str, dict[str, np.ndarray]]] = field(default_factory=dict, repr=False)

    def unit_arrays(self, unit: str) -> dict[str, dict[str, np.ndarray]]:
        """Per group: y, orig_ok, pre as arrays, and ``target`` (whether y is the unit's target class)."""
        if unit not in self._arrays:
            if unit not in self.units:
                raise KeyError(f"{self.folder}: no reference images for unit {unit!r} (unedited.json or a cell's _unit); "
                               "was the run interrupted before that unit's first cell?")
            rec = self.units[unit]
            target = self.class_names.index(unit.split("|")[2])
            out = {}
            for g, v in rec.items():
                if not isinstance(v, Mapping) or "y" not in v:
                    continue
                y = np.asarray(v["y"], dtype=np.int64)
                out[g] = {"y": y, "orig_ok": np.asarray(v["orig_ok"], dtype=bool), "pre": np.asarray(v["pre"], dtype=np.int64),
                          "target": y == target}
            self._arrays[unit] = out
        return self._arrays[unit]


def _class_names(model: str, weights: str | None) -> list[str]:
    from modeledit.models import load_model

    return list(load_model(model, weights=weights).class_names)


def load_bench(folder: str | Path, class_names: Sequence[str] | None = None) -> BenchData:
    """Read a bench folder of the science format (see the module docstring).

    ``class_names``: the model's classes (labels in the cells are indices); by default from the model
    the manifest names (``load_model``).
    """
    root = Path(folder)
    cells_dir = root / "cells"
    if not cells_dir.is_dir():
        raise FileNotFoundError(f"{root} is not a bench folder (no cells/); pass the --out folder of a bench run")
    manifest = json.loads((root / "manifest.json").read_text()) if (root / "manifest.json").is_file() else {}
    config = manifest.get("config", {})
    units: dict[str, dict[str, Any]] = {}
    if (root / "unedited.json").is_file():
        units.update(json.loads((root / "unedited.json").read_text()).get("units", {}))
    rows, outcomes = [], []
    for f in sorted(cells_dir.glob("*.json")):
        try:
            cell = json.loads(f.read_text())
        except json.JSONDecodeError:   # a file being written by another process is never under its final name; skip junk
            log.warning("skipping unreadable cell %s", f)
            continue
        for r in cell.get("rows", []):
            if "_unit" in r:
                u = dict(r["_unit"])
                units.setdefault(u.pop("key"), u)
            if "_outcomes" not in r:
                raise ValueError(f"{f} has rows without per-image outcomes (_outcomes): it was written before the science "
                                 "format; re-run the bench into a new folder")
            outcomes.append(r["_outcomes"])
            rows.append({k: v for k, v in r.items() if not k.startswith("_")} | {"row": len(rows)})
    table = pd.DataFrame(rows)
    if table.empty:
        raise ValueError(f"{root} holds no finished cell yet")
    model = str(table["model"].iloc[0]) if "model" in table else str(config.get("model", root.name))
    if "strength" not in table:
        table["strength"] = 1.0
    table["strength"] = table["strength"].fillna(1.0)
    table["unit"] = [_unit_key(r) for r in table[UNIT_KEYS].to_dict("records")]
    orphans = ~table["unit"].isin(list(units))
    if orphans.any():   # a unit whose reference images are in no cell yet (a run in progress): its rows cannot be read
        log.warning("%s: %d rows of %d units without reference images (no unedited.json entry or _unit record) left out",
                    root, int(orphans.sum()), table.loc[orphans, "unit"].nunique())
        table = table[~orphans].reset_index(drop=True)
    names = list(class_names) if class_names is not None else _class_names(config.get("model", model), config.get("weights"))
    clean_n = int(table["clean_n"].iloc[0])
    return BenchData(root, model, config, table, outcomes, units, names, clean_n)


def is_bench_folder(folder: str | Path) -> bool:
    """Whether ``folder`` is a bench results folder (cells/ and a manifest whose config has methods)."""
    root = Path(folder)
    if not (root / "cells").is_dir() or not (root / "manifest.json").is_file():
        return False
    try:
        return "methods" in json.loads((root / "manifest.json").read_text()).get("config", {})
    except json.JSONDecodeError:
        return False


def bench_folders(paths: Sequence[str | Path]) -> list[Path]:
    """The bench folders among ``paths``: a bench folder itself, or every bench folder one or two levels
    below it (e.g. ``results/world/science`` -> ``world_vgg/A_deep``, ...; sensitivity folders are skipped)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if is_bench_folder(p):
            found.append(p)
            continue
        if not p.is_dir():
            raise FileNotFoundError(f"{p} does not exist; pass bench folders (the --out of `modeledit bench`) or their parent")
        below = sorted({q.parent for q in [*p.glob("*/cells"), *p.glob("*/*/cells")] if is_bench_folder(q.parent)})
        if not below:
            raise FileNotFoundError(f"{p} holds no bench folder (cells/ with a bench manifest); pass the --out of `modeledit bench`")
        found.extend(below)
    return found


def merge_benches(benches: Sequence[BenchData]) -> BenchData:
    """One model's folders as one pool of rows (e.g. stages at different sites or exemplar counts). The same
    unit must have the same reference images in every folder, and the clean sets the same size; rows that
    repeat a (unit, method, site, setting) already read are dropped."""
    if len(benches) == 1:
        return benches[0]
    models = {b.model for b in benches}
    if len(models) != 1:
        raise ValueError(f"cannot merge folders of different models {sorted(models)}")
    if len({b.clean_n for b in benches}) != 1:
        raise ValueError(f"the folders of {benches[0].model} measure clean accuracy on different clean sets "
                         f"({[b.clean_n for b in benches]} images); merge only runs of one configuration")
    units: dict[str, dict[str, Any]] = {}
    for b in benches:
        for k, rec in b.units.items():
            if k in units and any(units[k].get(g, {}).get("idx") != rec.get(g, {}).get("idx") for g in ("val", "test", "heldout")):
                raise ValueError(f"unit {k} has different images in {b.folder} than in another folder of {b.model}; "
                                 "were they run on different datasets or seeds?")
            units.setdefault(k, rec)
    parts, outcomes = [], []
    for b in benches:
        t = b.rows.copy()
        t["row"] = t["row"] + len(outcomes)
        t["folder"] = b.folder.name
        parts.append(t)
        outcomes.extend(b.outcomes)
    rows = pd.concat(parts, ignore_index=True)
    dup = rows.duplicated(["unit", "method", "site_index", "setting", "strength"], keep="first")
    if dup.any():
        log.info("%s: %d rows repeat a (unit, method, site, setting) of another folder; keeping the first", benches[0].model, int(dup.sum()))
    rows = rows[~dup].reset_index(drop=True)
    first = benches[0]
    return BenchData(first.folder.parent, first.model, first.config, rows, outcomes, units, first.class_names, first.clean_n)


def _unit_key(r: Mapping[str, Any]) -> str:
    return "|".join([str(r["concept"]), str(r["style"]), str(r["target_class"]), str(int(r["n_exemplars"])), str(int(r["seed"]))])


# ---------------------------------------------------------------------------------------------------
# selection


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


# ---------------------------------------------------------------------------------------------------
# aggregation with intervals


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


# ---------------------------------------------------------------------------------------------------
# the whole summary


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


# ---------------------------------------------------------------------------------------------------
# text


def _pp(frame: Mapping[str, Any], col: str) -> str:
    """'23.1 [12.0, 35.2]' (percent, or percentage points for the clean drop); '-' when undefined."""
    v = frame.get(col)
    if v is None or pd.isna(v):
        return "-"
    lo, hi = frame.get(f"{col}_lo"), frame.get(f"{col}_hi")
    f = lambda x: f"{round(100 * x, 1) + 0.0:.1f}"  # noqa: E731  (+ 0.0: no "-0.0")
    if lo is None or pd.isna(lo):
        return f(v)
    return f"{f(v)} [{f(lo)}, {f(hi)}]"


def sensitivity_markdown(table: pd.DataFrame) -> str:
    """One model's selection table (:func:`selection_table`) as a concept x style grid of mean drops (pp);
    a star marks the pairs the selection rule admits."""
    if table.empty:
        return ""
    styles = sorted(table["style"].unique())
    lines = ["", f"## {table['model'].iloc[0]}: pair selection on {table['dataset'].iloc[0]}", "",
             "Mean accuracy drop (pp) over the classes whose images contain the concept in at least the protocol's share; "
             "* = admitted by the selection rule", "", "| concept | " + " | ".join(styles) + " |", "|" + " --- |" * (len(styles) + 1)]
    for concept, g in table.groupby("concept", sort=True):
        cell = {r["style"]: f"{100 * r['mean_drop']:.0f}" + ("*" if r["admitted"] else "") for r in g.to_dict("records")}
        lines.append(f"| {concept} | " + " | ".join(cell.get(st, "-") for st in styles) + " |")
    return "\n".join(lines) + "\n"


def markdown_summary(result: ScienceResult) -> str:
    """The summary as markdown tables (percent, 95% intervals in brackets), for reading and the README."""
    cols = ["test_target_corrected", "test_other_corrected", "heldout_target_corrected", "heldout_other_corrected"]
    head = "| method | target, same style | other, same style | target, held-out | other, held-out | clean drop (pp) | units: changed / none qualifies / no gain | chosen |"
    lines = []
    for model, res in result.resolution.groupby("model", sort=True):
        r0 = res.iloc[0]
        lines += [f"## {model}", "",
                  f"Clean set: {int(r0['clean_n'])} images (unedited accuracy {100 * r0['clean_acc_pre']:.2f}%); one image = "
                  f"{r0['one_image_pp']:.3f} pp; budgets in images: "
                  + ", ".join(f"{b['budget_pp']:g} pp = {b['budget_images']:g}" for b in res.to_dict("records")), ""]
        s = result.summary[result.summary["model"] == model]
        for (nex, budget), g in s.groupby(["n_exemplars", "budget"], sort=True):
            lines += [f"### {nex} exemplars, clean budget {_budget_label(budget)}", "", head, "|" + " --- |" * 8]
            for r in g.to_dict("records"):
                lines.append(f"| {r['method']} | " + " | ".join(_pp(r, c) for c in cols) + f" | {_pp(r, 'clean_drop')} | "
                             f"{r['n_changed']} / {r['n_none_qualifies']} / {r['n_no_gain']} of {r['n_units']} | {r['chosen']} |")
            lines.append("")
        a = result.ablations[result.ablations["model"] == model] if not result.ablations.empty else result.ablations
        if not a.empty:
            lines += ["### ablations (variant - base, paired on the same units and images)", "",
                      "| ablation | exemplars | budget | target, same style | other, same style | target, held-out | other, held-out | clean drop (pp) | units |",
                      "|" + " --- |" * 9]
            for r in a.to_dict("records"):
                lines.append(f"| {r['ablation']}: {r['variant']} - {r['base']} | {r['n_exemplars']} | {_budget_label(r['budget'])} | "
                             + " | ".join(_pp(r, f"diff_{c}") for c in cols) + f" | {_pp(r, 'diff_clean_drop')} | {r['n_units']} |")
            lines.append("")
        ex = result.by_exemplars[result.by_exemplars["model"] == model] if not result.by_exemplars.empty else result.by_exemplars
        if not ex.empty:
            lines += ["### exemplar counts (on the units run at every count of the method)", "",
                      "| method | budget | exemplars | " + " | ".join(
                          ["target, same style", "other, same style", "target, held-out", "other, held-out", "clean drop (pp)", "units changed"])
                      + " |", "|" + " --- |" * 9]
            for r in ex.sort_values(["method", "budget", "n_exemplars"]).to_dict("records"):
                lines.append(f"| {r['method']} | {_budget_label(r['budget'])} | {r['n_exemplars']} | "
                             + " | ".join(_pp(r, c) for c in cols) + f" | {_pp(r, 'clean_drop')} | {r['n_changed']} of {r['n_units']} |")
            lines.append("")
        bs = result.by_site[result.by_site["model"] == model] if not result.by_site.empty else result.by_site
        if not bs.empty:
            lines += ["### best setting per site", "", "| method | exemplars | budget | site | " + " | ".join(
                ["target, same style", "other, same style", "target, held-out", "other, held-out", "clean drop (pp)", "units changed"])
                + " |", "|" + " --- |" * 10]
            for r in bs.sort_values(["method", "n_exemplars", "budget", "site_index"]).to_dict("records"):
                lines.append(f"| {r['method']} | {r['n_exemplars']} | {_budget_label(r['budget'])} | {r['site_index']}: {r['site']} | "
                             + " | ".join(_pp(r, c) for c in cols) + f" | {_pp(r, 'clean_drop')} | {r['n_changed']} of {r['n_units']} |")
            lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# figures


def _main_exemplars(summary: pd.DataFrame) -> int:
    """The exemplar count of the main figures: the paper's 3 when run, else the most common."""
    counts = summary["n_exemplars"].value_counts()
    return 3 if 3 in counts.index else int(counts.index[0])


def _err(frame: pd.DataFrame, col: str) -> np.ndarray:
    v, lo, hi = frame[col].to_numpy(float), frame[f"{col}_lo"].to_numpy(float), frame[f"{col}_hi"].to_numpy(float)
    return 100 * np.vstack([np.clip(v - lo, 0, None), np.clip(hi - v, 0, None)])


def _budget_label(b: float) -> str:
    return "no budget" if math.isinf(b) else f"{100 * b:g} pp"


def write_figures(result: ScienceResult, out_dir: str | Path, budget: float = PAPER_BUDGET) -> list[Path]:
    """Figures 6-3, 6-4, 6-7, 6-8, 6-9 with 95% error bars for each model of ``result``."""
    from modeledit.eval.plots import _plt, _save

    plt = _plt()
    out = Path(out_dir)
    paths: list[Path] = []
    if result.summary.empty:
        return paths
    series = [("test_target_corrected", "target, same style"), ("test_other_corrected", "other classes, same style"),
              ("heldout_target_corrected", "target, held-out style"), ("heldout_other_corrected", "other classes, held-out style")]
    for model, s in result.summary.groupby("model", sort=True):
        nex = _main_exemplars(s)
        main = s[s["n_exemplars"] == nex]
        # 6-3: method x target/other x same/held-out style, at the budget
        at = main[np.isclose(main["budget"], budget)].set_index("method")
        if not at.empty:
            fig, ax = plt.subplots(figsize=(1.4 * len(at) + 2.5, 3.6))
            width = 0.8 / len(series)
            x = np.arange(len(at))
            for k, (col, label) in enumerate(series):
                ax.bar(x + k * width, 100 * at[col].to_numpy(float), width, yerr=_err(at, col), capsize=2, label=label)
            ax.set_xticks(x + 0.4 - width / 2, at.index, rotation=20, ha="right")
            ax.axhline(0, color="k", lw=0.6)
            ax.set_ylabel("% errors corrected (95% CI)")
            ax.set_title(f"{model}: {nex} exemplars, clean budget {_budget_label(budget)}")
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
            paths.append(_save(fig, out / f"fig6_3_{model}.png"))
        # 6-4: other classes vs the clean budget, one curve per method, with bands
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
        for ax, col, label in zip(axes, ("test_other_corrected", "heldout_other_corrected"), ("same style", "held-out style")):
            for method, g in main.groupby("method", sort=True):
                g = g.sort_values("budget")
                line, = ax.plot(100 * g["budget"], 100 * g[col], marker="o", label=method)
                ax.fill_between(100 * g["budget"], 100 * g[f"{col}_lo"], 100 * g[f"{col}_hi"], color=line.get_color(), alpha=0.15)
            ticks = sorted(100 * main["budget"].unique())
            ax.set_xscale("log")
            ax.set_xlim(ticks[0] / 1.3, ticks[-1] * 1.3)     # explicit: a panel without data has no limits of its own
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            ax.xaxis.set_minor_formatter(plt.NullFormatter())
            ax.axhline(0, color="k", lw=0.6)
            ax.set_xlabel("clean accuracy budget (pp)")
            ax.set_title(f"other classes, {label}")
        axes[0].set_ylabel("% errors corrected (95% CI)")
        axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        fig.suptitle(f"{model}: {nex} exemplars", y=1.02)
        paths.append(_save(fig, out / f"fig6_4_{model}.png"))
        # 6-7: vs site depth (best setting per site), unconstrained and at the budget
        bs = result.by_site[(result.by_site["model"] == model) & (result.by_site["n_exemplars"] == nex)] if not result.by_site.empty else None
        if bs is not None and not bs.empty:
            budgets = [b for b in sorted(bs["budget"].unique(), key=lambda v: (not math.isinf(v), v)) if math.isinf(b) or np.isclose(b, budget)]
            fig, axes = plt.subplots(1, len(budgets), figsize=(5 * len(budgets), 3.4), sharey=True, squeeze=False)
            for ax, b in zip(axes[0], budgets):
                for method, g in bs[np.isclose(bs["budget"], b) | (np.isinf(bs["budget"]) & math.isinf(b))].groupby("method", sort=True):
                    g = g.sort_values("site_index")
                    ax.errorbar(g["site_index"].astype(str) + ":" + g["site"], 100 * g["test_other_corrected"],
                                yerr=_err(g, "test_other_corrected"), marker="o", capsize=3, label=method)
                ax.axhline(0, color="k", lw=0.6)
                ax.set_xlabel("edit site (index: layer)")
                ax.set_title(_budget_label(b))
                ax.tick_params(axis="x", labelrotation=20)
            axes[0][0].set_ylabel("% errors corrected, other classes (95% CI)")
            axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
            fig.suptitle(f"{model}: {nex} exemplars, best setting per site", y=1.02)
            paths.append(_save(fig, out / f"fig6_7_{model}.png"))
        # 6-8: vs exemplar count at the budget, on the units run at every count (by_exemplars)
        ex = result.by_exemplars
        at_b = ex[(ex["model"] == model) & np.isclose(ex["budget"], budget)] if not ex.empty else ex
        if not at_b.empty and at_b["n_exemplars"].nunique() > 1:
            fig, ax = plt.subplots(figsize=(5.5, 3.4))
            for method, g in at_b.groupby("method", sort=True):
                g = g.sort_values("n_exemplars")
                ax.errorbar(g["n_exemplars"], 100 * g["test_other_corrected"], yerr=_err(g, "test_other_corrected"),
                            marker="o", capsize=3, label=method)
            ax.axhline(0, color="k", lw=0.6)
            counts = sorted(at_b["n_exemplars"].unique())
            ax.set_xscale("log")
            ax.set_xlim(counts[0] / 1.3, counts[-1] * 1.3)
            ax.set_xticks(counts, [str(v) for v in counts])
            ax.xaxis.set_minor_formatter(plt.NullFormatter())
            ax.set_xlabel("exemplars")
            ax.set_ylabel("% errors corrected, other classes (95% CI)")
            n_units = ", ".join(f"{m} {int(g['n_units'].iloc[0])}" for m, g in at_b.groupby("method", sort=True))
            ax.set_title(f"{model}: clean budget {_budget_label(budget)}\nunits run at every count: {n_units}", fontsize=9)
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
            paths.append(_save(fig, out / f"fig6_8_{model}.png"))
        # 6-9: rank and mask ablations at the budget
        abl = at[at.index.isin(["edit", "edit_full", "edit_masked"])]
        if len(abl) > 1:
            abl = abl.loc[[m for m in ("edit", "edit_full", "edit_masked") if m in abl.index]]
            fig, ax = plt.subplots(figsize=(6, 3.4))
            width = 0.8 / len(series)
            x = np.arange(len(abl))
            for k, (col, label) in enumerate(series):
                ax.bar(x + k * width, 100 * abl[col].to_numpy(float), width, yerr=_err(abl, col), capsize=2, label=label)
            ax.set_xticks(x + 0.4 - width / 2, ["rank 1, whole image" if m == "edit" else "full rank" if m == "edit_full"
                                                 else "rank 1, mask only" for m in abl.index])
            ax.axhline(0, color="k", lw=0.6)
            ax.set_ylabel("% errors corrected (95% CI)")
            ax.set_title(f"{model}: rank and mask, {nex} exemplars, {_budget_label(budget)}")
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
            paths.append(_save(fig, out / f"fig6_9_{model}.png"))
    return paths
