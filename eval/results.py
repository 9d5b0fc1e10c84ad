"""A results folder that survives crashes: one JSON file per finished cell, written atomically.

A harness (or a sweep) is a set of independent *cells*. Each cell has parameters; its id is a stable
hash of them. The executors (:mod:`modeledit.eval.executors`, driven by :func:`modeledit.eval.cell.run_cells`)
skip cells already written and write each new result once through :meth:`ResultStore.write` (temp file +
rename, so a killed run never leaves a half-written file); ``table()`` reads every cell back as one tidy
pandas DataFrame. The folder's ``manifest.json`` records which harness wrote it (``harness``), the
configuration, seeds and package versions.

Example:
    >>> store = ResultStore("results/run1", config={"seed": 0}, harness="bench")
    >>> store.write({"lr": 1e-3}, [{"lr": 1e-3, "acc": 0.9}])
    >>> store.table()
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import pandas as pd

from modeledit.atomic import finished_files, write_json_atomic
from modeledit.device import runtime_record
from modeledit.provenance import package_versions, weights_record

log = logging.getLogger(__name__)


def cell_id(params: Mapping[str, Any]) -> str:
    """A stable id for a cell's parameters (order-independent)."""
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _file_sha256(path: Any) -> str | None:
    """The SHA-256 of the file at ``path`` (None for no path or no such file)."""
    if not isinstance(path, str) or not path or not Path(path).is_file():
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class ResultStore:
    """One folder of cell results; see the module docstring."""

    def __init__(self, root: str | os.PathLike, config: Mapping[str, Any] | None = None,
                 scale_keys: Sequence[str] = (), harness: str | None = None, model: Any = None,
                 file_keys: Sequence[str] = ()) -> None:
        """``harness``: the harness writing the folder, recorded in a new manifest (``modeledit report`` reads it).
        ``model``: the model the cells run on (a LoadedModel); a new manifest records where its weights came from
        (:func:`modeledit.provenance.weights_record`) and a folder begun on other weights is refused.
        ``scale_keys``: configuration keys that only choose how many cells a run has (e.g. how many of the
        selected pairs), never what a cell computes; cells are keyed by their own parameters, so a folder run
        with one value resumes under another (its manifest records the new value and the earlier ones under
        ``"extended_from"``). ``file_keys``: configuration keys naming an input file (e.g. the bench's sensitivity
        table); the manifest records each file's SHA-256, and the same file under another path (a folder copied or
        moved, a run from another directory) is the same configuration. Any other difference refuses the folder."""
        self.root = Path(root)
        self._created = not self.root.exists()
        self.cells_dir = self.root / "cells"
        self.cells_dir.mkdir(parents=True, exist_ok=True)
        manifest = self.root / "manifest.json"
        if config is not None:
            new = json.loads(json.dumps(dict(config), default=str))
            old = json.loads(manifest.read_text()) if manifest.is_file() else None
            hashes = {k: _file_sha256(new.get(k)) for k in file_keys}
            if old is not None and old.get("config") != new:
                old_config = old.get("config") or {}
                differ = {k for k in set(old_config) | set(new) if old_config.get(k) != new.get(k)}
                moved = {k for k in differ & set(file_keys) if hashes[k] and old.get("file_sha256", {}).get(k) == hashes[k]}
                if moved:
                    log.info("%s: the same %s under another path (%s)", self.root, ", ".join(sorted(moved)),
                             ", ".join(f"{old_config.get(k)} -> {new.get(k)}" for k in sorted(moved)))
                    old = {**old, "config": {**old_config, **{k: new.get(k) for k in moved}}}
                    differ -= moved
                if not differ:        # only input files under another path: the manifest records the new paths
                    write_json_atomic(manifest, old)
                elif not self.n_done():
                    log.info("%s holds the manifest of a run that finished no cell; replacing it", self.root)
                    old = None
                elif differ <= set(scale_keys):
                    log.info("%s: extending the run (%s)", self.root,
                             ", ".join(f"{k} {old_config.get(k)} -> {new.get(k)}" for k in sorted(differ)))
                    history = [*old.get("extended_from", []), {k: old_config.get(k) for k in sorted(differ)}]
                    write_json_atomic(manifest, {**old, "config": dict(config), "extended_from": history})
                else:
                    raise ValueError(
                        f"{self.root} holds results of another configuration (differs in {', '.join(sorted(differ))}); "
                        "use a new --out folder, or pass --force to replace this one"
                    )
            weights = weights_record(model) if model is not None else None
            if old is not None and weights is not None and isinstance(old.get("weights"), dict) and self.n_done():
                was = old["weights"]
                same = (was.get("weights_sha256") == weights["weights_sha256"] if was.get("weights_sha256") and weights["weights_sha256"]
                        else was.get("weights") == weights["weights"])
                if not same and was.get("weights") == weights["weights"] == "random":
                    raise ValueError(f"{self.root} holds results of another random draw of the weights (random init differs "
                                     "from run to run); rerun with --deterministic (seeded), use a checkpoint, or use a new --out folder")
                if not same:
                    raise ValueError(f"{self.root} holds results of other weights ({was.get('weights')}, not {weights['weights']}); "
                                     "use a new --out folder or delete it")
            run = runtime_record(model)   # device and prediction precision (modeledit.device)
            was_precision = (old or {}).get("runtime", {}).get("precision", "fp32")
            if old is not None and self.n_done() and was_precision != run["precision"]:
                raise ValueError(f"{self.root} holds results predicted at --precision {was_precision}, not {run['precision']}; "
                                 f"rerun with --precision {was_precision} or use a new --out folder")
            if old is None:
                write_json_atomic(manifest, {**({"harness": harness} if harness else {}), "config": dict(config),
                                             **({"file_sha256": hashes} if hashes else {}),
                                             **({"weights": weights} if weights is not None else {}), "runtime": run,
                                             "versions": package_versions()})

    def n_done(self) -> int:
        return len(finished_files(self.cells_dir)) if self.cells_dir.is_dir() else 0

    @contextlib.contextmanager
    def discarded_if_empty(self) -> Iterator["ResultStore"]:
        """On any exit (error, Ctrl-C) that leaves no finished cell, remove the manifest and the folders this
        store created: a run that did no work leaves nothing to block the next one."""
        try:
            yield self
        finally:
            if not self.n_done():
                (self.root / "manifest.json").unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    self.cells_dir.rmdir()
                if self._created:
                    with contextlib.suppress(OSError):
                        self.root.rmdir()

    def path(self, params: Mapping[str, Any]) -> Path:
        return self.cells_dir / f"{cell_id(params)}.json"

    def done(self, params: Mapping[str, Any]) -> bool:
        return self.path(params).is_file()

    def write(self, params: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], **extra: Any) -> None:
        write_json_atomic(self.path(params), {"params": dict(params), "rows": [dict(r) for r in rows], **extra})

    def read(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return json.loads(self.path(params).read_text())

    def pending(self, cells: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        return [c for c in cells if not self.done(c)]

    def cells(self) -> Iterator[dict[str, Any]]:
        """Every finished cell's JSON, in file order."""
        for f in finished_files(self.cells_dir):      # not a killed writer's temporary file
            yield json.loads(f.read_text())

    def table(self) -> pd.DataFrame:
        """One row per result row; keys starting with "_" (per-image outcomes, reference records) are left out."""
        rows = [{k: v for k, v in r.items() if not k.startswith("_")} for cell in self.cells() for r in cell["rows"]]
        return pd.DataFrame(rows)

    def extras(self, key: str) -> list[Any]:
        """The values rows carry under ``key`` (e.g. "_unit"), in file order."""
        return [r[key] for cell in self.cells() for r in cell["rows"] if key in r]

    def manifest(self) -> dict[str, Any]:
        path = self.root / "manifest.json"
        return json.loads(path.read_text()) if path.is_file() else {}
