"""The run record and the split check: which images each split of a model's benches used, and that they never
overlap.

Part of the science summary (:mod:`modeledit.eval.science`)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from modeledit.eval.datasets import check_disjoint
from modeledit.eval.science.data import UNIT_KEYS


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
