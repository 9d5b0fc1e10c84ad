"""The harness cell: one method's change, made once and measured at every in-cell setting.

Every harness (bench, photos, the one-exemplar studies: typographic and snow) is a grid of independent
*cells* (method x site(s) x hyperparameter setting x the harness's own unit). A cell is computed the same
way everywhere, here:

1. the method's :class:`~modeledit.edit.Edit` is made once from the cell's exemplars
   (:func:`~modeledit.eval.methods.method_edit`; the statistics C come from the worker's :class:`CellCache`);
2. the method's in-cell grid (a rewrite's strengths, PAINT's alphas: :func:`~modeledit.eval.methods.method_strengths`)
   is walked, each value applied (:func:`~modeledit.eval.methods.scaled_edits`);
3. with it applied, the harness's own ``measure(sites)`` returns the measurement columns;
4. the common columns are added: ``method``, ``site``, ``site_name``, ``site_index``, ``setting`` (JSON, with
   the in-cell value), ``strength`` (the in-cell value: strength or alpha; 1 without a grid), ``edit_*``
   (the edit's own metrics) and ``cell_seconds`` (making the edit, once, plus this setting's measurement);
5. a PAINT row at alpha 1 also stands for the plain fine-tuning when the harness runs both
   (:func:`~modeledit.eval.methods.plain_finetune_row`);
6. a method whose optimisation diverges at this setting (:class:`~modeledit.errors.Diverged`: a learning rate too
   large) gives its rows with ``diverged`` true and no measurement: a result, never selected (the measurement
   columns are missing), and not a failed cell to retry.

A harness keeps only its units, its groups of images and its measurements. :class:`CellCache` is the one
per-worker cache (statistics per site, the suffix evaluator, image sets by key); :func:`run_cells` drives
cells through the executors (local or Ray, with retries) into a :class:`~modeledit.eval.results.ResultStore`.

A cell carries a *list* of sites (``params["sites"]``, or the single ``params["site"]``): the measurement
receives them all and predicts from the shallowest. Today a method edits one site per cell, so a cell with
several sites is refused before any work; a multi-site method (several rules or layers in one solve) is
added in :func:`run_cell`'s edit step and nowhere else.

Example:
    >>> cache = CellCache(lm, stats_source=lambda: ([x_stats], None))
    >>> rows = run_cell(cache, {"method": "edit", "site": "-1", "setting": {}}, CellExemplars(x, xp, m, [3]),
    ...                 grid, head={"unit": "u0"}, measure=lambda sites: {"acc": acc_now(sites[0])})
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from modeledit.errors import Diverged

log = logging.getLogger(__name__)

#: what a cell's ``measure`` returns with the edit applied: the harness's measurement columns
Measure = Callable[[Sequence[Any]], Mapping[str, Any]]


@dataclass
class CellExemplars:
    """The exemplars a method edits from: x and x' in [0, 1] (N, 3, H, W), masks (N, H, W) or None, and
    the class each exemplar should keep (fine-tuning's targets)."""

    x: torch.Tensor
    x_prime: torch.Tensor
    masks: torch.Tensor | None
    targets: Sequence[int]


class CellCache:
    """One worker's cached pieces for its cells: the statistics C per site, the suffix evaluator and the
    image sets it predicts from (by the harness's key).

    ``stats_source()`` returns (batches of images for C, the dataset identity or None); it is read once per
    site. With ``stats_normalize`` the batches are [0, 1] images normalised by the model's own transform,
    otherwise they are already the network's input. ``suffix`` configures the evaluator (None: its
    defaults); with ``from_site`` off, predictions run the full forward.
    """

    def __init__(self, lm: Any, stats_source: Callable[[], tuple[Sequence[torch.Tensor], str | None]],
                 stats_normalize: bool = True, suffix: Any = None, from_site: bool = True, batch_size: int = 128) -> None:
        self.lm = lm
        self.stats_source = stats_source
        self.stats_normalize = stats_normalize
        self.suffix_config = suffix
        self.from_site = from_site
        self.batch_size = batch_size
        self._stats: dict[str, Any] = {}
        self._suffix: Any = None
        self._sets: dict[Hashable, Any] = {}

    def statistics(self, site: Any) -> Any:
        """The second moment C of the keys at ``site`` (computed once per site)."""
        if site.name not in self._stats:
            from modeledit.stats import second_moment

            batches, ident = self.stats_source()
            self._stats[site.name] = second_moment(self.lm.model, site, batches, dataset_id=ident,
                                                   transform=self.lm.normalize if self.stats_normalize else None,
                                                   progress=False)
        return self._stats[site.name]

    def suffix(self) -> Any:
        """The evaluator that predicts an edited model from cached site inputs (one per worker)."""
        if self._suffix is None:
            from modeledit.suffix import SuffixEvaluator

            self._suffix = SuffixEvaluator(self.lm.model, self.lm.normalize, self.suffix_config)
        return self._suffix

    def image_set(self, key: Hashable, x: torch.Tensor, identity: str | None = None) -> Any:
        """``x`` wrapped once for the evaluator under the harness's ``key`` (None with ``from_site`` off)."""
        if not self.from_site:
            return None
        if key not in self._sets:
            self._sets[key] = self.suffix().image_set(x, identity=identity)
        return self._sets[key]

    def predict(self, x: torch.Tensor) -> np.ndarray:
        """Top-1 of the model as it is now, full forward."""
        return self.lm.predict_labels(x, self.batch_size)

    def predict_at(self, key: Hashable, x: torch.Tensor, sites: Sequence[Any], identity: str | None = None) -> np.ndarray:
        """Top-1 of the model as it is now (edits at ``sites`` applied) on ``x``: from the shallowest site's
        cached inputs (the image set under ``key``), or the full forward with ``from_site`` off."""
        if not self.from_site:
            return self.predict(x)
        site = min(sites, key=lambda s: s.index)
        return self.suffix().predict(self.image_set(key, x, identity), site).numpy()


def cell_sites(lm: Any, params: Mapping[str, Any]) -> list[Any]:
    """The cell's sites, resolved on the model: ``params["sites"]`` (a list) or ``params["site"]``."""
    from modeledit.layers import get_site

    names = params.get("sites") or [params["site"]]
    return [get_site(lm.model, s) for s in names]


def make_change(cache: CellCache, method: str, setting: Mapping[str, Any], sites: Sequence[Any], ex: CellExemplars) -> Any:
    """The method's Edit from the exemplars, made once per cell (one site per method today)."""
    from modeledit.eval.methods import method_edit

    if len(sites) != 1:
        raise ValueError(f"a cell edits one site today, got {len(sites)} ({', '.join(s.name for s in sites)}); "
                         "give one site per cell")
    return method_edit(cache.lm, method, setting, sites[0], ex.x, ex.x_prime, ex.masks, ex.targets, stats=cache.statistics)


def run_cell(cache: CellCache, params: Mapping[str, Any], exemplars: CellExemplars, grid: Any, head: Mapping[str, Any],
             measure: Measure, plain_methods: Sequence[str] | None = None, started: float | None = None) -> list[dict[str, Any]]:
    """Every row of one cell (see the module docstring): ``head`` (the unit's columns), the common columns
    and ``measure(sites)`` taken with each in-cell setting applied. ``grid`` holds the in-cell grids
    (``strength_grid``, ``alpha_grid``); ``plain_methods``: the methods asked for, when a PAINT cell's alpha 1
    row should also stand for its plain fine-tuning; ``started``: when the cell's work began (its unit's
    preparation counts towards ``cell_seconds``)."""
    from modeledit.eval.methods import METHODS, method_strengths, plain_finetune_row, scaled_edits

    started = time.perf_counter() if started is None else started
    method, setting = params["method"], params["setting"]
    sites = cell_sites(cache.lm, params)
    strengths = method_strengths(grid, method)
    common = {"method": method, "site": str(params["site"]) if "site" in params else ",".join(map(str, params["sites"])),
              "site_name": "+".join(s.name for s in sites), "site_index": sites[0].index if len(sites) == 1 else -1}
    try:
        base = make_change(cache, method, setting, sites, exemplars)
    except Diverged as exc:
        # a setting that diverges is a result, not a failure: recorded (no measurement), never selected, not retried
        log.warning("%s %s: %s; recorded as diverged", method, json.dumps(setting), exc)
        made = time.perf_counter() - started
        key = METHODS.get(method).scaled[1] if strengths is not None else None
        extras = [{key: v} for v in strengths] if strengths is not None else [{}]
        rows = []
        for extra in extras:
            row = {**head, **common, "setting": json.dumps({**setting, **extra}), "strength": float(next(iter(extra.values()), 1.0)),
                   "diverged": True, "cell_seconds": made}
            rows.append(row)
            plain = plain_finetune_row(plain_methods, method, extra, row, setting) if plain_methods else None
            if plain is not None:
                rows.append(plain)
        return rows
    made = time.perf_counter() - started
    rows = []
    for extra, edit in scaled_edits(cache.lm, method, base, strengths):
        t1 = time.perf_counter()
        with edit.applied(cache.lm.model):
            measured = dict(measure(sites))
        row = {**head, **common, "setting": json.dumps({**setting, **extra}), "strength": float(next(iter(extra.values()), 1.0)),
               **{k: v for k, v in measured.items() if not k.startswith("_")}}
        row.update({f"edit_{k}": v for k, v in edit.metrics.items() if isinstance(v, (int, float, str))})
        row["cell_seconds"] = made + time.perf_counter() - t1
        row.update({k: v for k, v in measured.items() if k.startswith("_")})   # per-image records, not columns
        rows.append(row)
        plain = plain_finetune_row(plain_methods, method, extra, row, setting) if plain_methods else None
        if plain is not None:
            rows.append(plain)
    return rows


# ---------------------------------------------------------------------------------------------------
# driving cells


@dataclass
class Prebuilt:
    """A runner factory that hands out a runner already built in this process once (the driver needed it
    before the run), then builds fresh ones with ``build``; pickled for Ray, only ``build`` travels."""

    build: Callable[[], Any]
    runner: Any = field(default=None, repr=False, compare=False)

    def __call__(self) -> Any:
        if self.runner is not None:
            runner, self.runner = self.runner, None
            return runner
        return self.build()

    def __getstate__(self) -> dict[str, Any]:
        return {"build": self.build, "runner": None}


def run_cells(store: Any, cells: Sequence[Mapping[str, Any]], factory: Callable[[], Any], executor: str = "local",
              strict: bool = True, **executor_kwargs: Any) -> tuple[pd.DataFrame, dict[str, str]]:
    """Compute the cells not yet in ``store`` through an executor (``local`` or ``ray``, with retries);
    returns (the store's table, the cells that failed). With ``strict`` a failed cell raises once the other
    cells are written (a rerun resumes); every cell failing always raises."""
    from modeledit.eval.executors import get_executor

    report = get_executor(executor, **executor_kwargs).run(cells, factory, store)
    failed = dict(report.failed)
    if failed and (strict or not store.n_done()):
        first = next(iter(failed.values()))
        raise RuntimeError(f"{len(failed)} of {len(cells)} cells failed (first error: {first}); the finished cells are in "
                           f"{store.root}, a rerun resumes there")
    return store.table(), failed
