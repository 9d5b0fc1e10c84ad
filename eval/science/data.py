"""Reading bench folders: the constants of the summary, :class:`BenchData` (rows, per-image outcomes, unit
records), loading and merging a model's folders.

Part of the science summary (:mod:`modeledit.eval.science`)."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from modeledit.atomic import finished_files


log = logging.getLogger(__name__)


#: the clean-accuracy budgets (fractions): 0.1 to 5 pp; 0.25 pp is the paper's
BUDGETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05)


PAPER_BUDGET = 0.0025


UNIT_KEYS = ["concept", "style", "target_class", "n_exemplars", "seed"]


#: (group in the cells, label): same style image as the exemplars, held-out style images
GROUPS = ("test", "heldout")


WHO = ("target", "other")


NO_CHANGE = "no change"


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
    for f in finished_files(cells_dir):
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
