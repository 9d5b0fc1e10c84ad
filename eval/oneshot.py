"""Studies built on one exemplar pair (typographic fix, snow adaptation): every method x site x setting
edits the model from the same exemplar, and is measured on named *groups* of images.

A group is images with the labels that count as right for it, so every measurement is an accuracy:
"accuracy under attack" (attacked images, true labels), "attack success" (attacked images, the attack
class as label), "clean accuracy of the attack class", and so on. Settings are chosen on the validation
group within the clean accuracy budget, as in the main protocol.

Every method of the comparison changes only the edit site and what follows it, so edited predictions are
computed from the site's cached inputs (:class:`modeledit.suffix.SuffixEvaluator`: the images' prefix runs
once per site, each cell only the rest; ``from_site=False`` runs the full forward). Groups that share one
image tensor (e.g. attack success and accuracy under attack) are predicted once per evaluation.

Example:
    >>> study = OneShotStudy(lm, exemplar, groups={"val": (xv, yv), "test": (xt, yt)}, clean=(xc, yc))
    >>> row = study({"method": "edit", "site": "-1", "setting": {}})
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from modeledit.eval.intervals import flip_change_interval
from modeledit.eval.methods import PAINT_OF, MethodGrid, grid_cells
from modeledit.eval.protocol import choose_setting, why_no_change


@dataclass
class Exemplar:
    """x (original), x' (transformed), mask (H, W) bool, in [0, 1], and the image's true class."""

    x: torch.Tensor
    x_prime: torch.Tensor
    mask: torch.Tensor
    label: int


class OneShotStudy:
    """Measures the groups before any edit, then computes one (method, site, setting) cell per call
    (:func:`~modeledit.eval.cell.run_cell`; this study only says what its groups are and how they are measured)."""

    def __init__(self, lm: Any, exemplar: Exemplar, groups: Mapping[str, tuple[torch.Tensor, np.ndarray]],
                 clean: tuple[torch.Tensor, np.ndarray], val_group: str = "val", batch_size: int = 128,
                 stats_images: torch.Tensor | torch.utils.data.Dataset | None = None, grid: MethodGrid | None = None,
                 from_site: bool = True, stats_id: str | None = None) -> None:
        from modeledit.device import runtime_batch_size
        from modeledit.eval.cell import CellCache
        from modeledit.suffix import SuffixCacheConfig

        batch_size = runtime_batch_size(batch_size)   # the command's --batch-size, where given
        if val_group not in groups:
            raise KeyError(f"the validation group {val_group!r} is not among the groups {sorted(groups)}")
        self.lm, self.ex, self.groups, self.clean = lm, exemplar, dict(groups), clean
        self.val_group, self.batch_size = val_group, batch_size
        self.grid = grid or MethodGrid()   # its strength / alpha grids are evaluated inside each cell
        if stats_images is None:
            raise ValueError("pass stats_images: images for the key statistics, disjoint from every evaluation set "
                             "(the clean set included), e.g. the world's train split")
        self.stats_images, self.stats_id = stats_images, stats_id
        bs = batch_size
        # C from the network's input (normalised here); cached on disk under ``stats_id`` (a dataset's key), where given
        self.cache = CellCache(lm, self._stats_batches, stats_normalize=False, suffix=SuffixCacheConfig(batch_size=bs),
                               from_site=from_site, batch_size=bs)
        # a PAINT cell also yields the plain fine-tuning's rows (its alpha = 1) when the cells were made by
        # :func:`study_cells` without separate fine-tuning cells
        self.plain_rows = False
        self.pre_ok = self.correct()
        self.pre = _accuracies(self.pre_ok)

    def _stats_batches(self) -> tuple[Iterator[torch.Tensor], str | None]:
        """The statistics images as normalised batches, read lazily: a dataset (e.g. the world's train split) is read
        only if C is not already cached on disk under ``stats_id``."""
        from modeledit.eval.datasets import collate_items

        imgs, bs = self.stats_images, self.batch_size

        def batches() -> Iterator[torch.Tensor]:
            for i in range(0, len(imgs), bs):
                b = imgs[i:i + bs] if isinstance(imgs, torch.Tensor) else collate_items([imgs[j] for j in range(i, min(i + bs, len(imgs)))])[0]
                yield self.lm.normalize(b)
        return batches(), self.stats_id

    @property
    def from_site(self) -> bool:
        """Whether edited predictions come from the site's cached inputs (the cell cache's setting)."""
        return self.cache.from_site

    @from_site.setter
    def from_site(self, value: bool) -> None:
        self.cache.from_site = bool(value)

    def predict(self, x: torch.Tensor) -> np.ndarray:
        return self.cache.predict(x)

    def correct(self, sites: Sequence[Any] | None = None) -> dict[str, np.ndarray]:
        """Per group (and ``clean``), whether each image is predicted right under the group's labels: the model
        as it is now, from the inputs of ``sites`` on when given (edits there applied), else the full forward."""
        preds: dict[int, np.ndarray] = {}
        out = {}
        for name, (x, y) in {**self.groups, "clean": self.clean}.items():
            if not len(x):
                out[name] = np.zeros(0, bool)
                continue
            if id(x) not in preds:   # groups sharing one tensor share its predictions
                # the study holds its tensors as long as it lives: their ids name them
                preds[id(x)] = (self.predict(x) if sites is None else
                                self.cache.predict_at(id(x), x, sites, identity=f"oneshot-{id(x)}"))
            out[name] = preds[id(x)] == np.asarray(y)
        return out

    def statistics(self, site: Any) -> Any:
        return self.cache.statistics(site)

    def measure(self, sites: Sequence[Any]) -> dict[str, Any]:
        """The groups' accuracies with the edit at ``sites`` applied, and the paired flips against before."""
        post_ok = self.correct(sites)
        post = _accuracies(post_ok)
        row: dict[str, Any] = {f"pre_{k}": v for k, v in self.pre.items()}
        row.update({f"post_{k}": v for k, v in post.items()})
        for k, ok in post_ok.items():   # paired flips on the same images, for the intervals of the summary
            row[f"flips_{k}_good"] = int((ok & ~self.pre_ok[k]).sum())
            row[f"flips_{k}_bad"] = int((~ok & self.pre_ok[k]).sum())
            row[f"n_{k}"] = len(ok)
        row["clean_drop"] = self.pre["clean"] - post["clean"]
        row["val_gain"] = post[self.val_group] - self.pre[self.val_group]
        return row

    def __call__(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        from modeledit.eval.cell import CellExemplars, run_cell

        ex = CellExemplars(self.ex.x[None], self.ex.x_prime[None], self.ex.mask[None], [self.ex.label])
        return run_cell(self.cache, params, ex, self.grid, {"exemplar_class": self.lm.class_names[self.ex.label]},
                        self.measure, plain_methods=self.grid.methods if self.plain_rows else None)


def _accuracies(correct: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Per group, its accuracy from the per-image outcomes (NaN for an empty group)."""
    return {k: float(v.mean()) if len(v) else float("nan") for k, v in correct.items()}


def summarize_oneshot(table: pd.DataFrame, max_clean_drop: float) -> pd.DataFrame:
    """Per method, the setting with the best validation gain within the clean budget (else: no change), with
    each group's paired change ``change_<group>`` and its 95% interval (``_lo``/``_hi``; bootstrap over the
    group's images from the flip counts) when the cells recorded flips."""
    groups = sorted(c[4:] for c in table.columns if c.startswith("pre_"))
    rows = []
    for method, g in table.groupby("method", sort=True):
        measured = g[g["diverged"] != True] if "diverged" in g else g   # noqa: E712 - NaN (no flag) is measured
        base = (measured if len(measured) else g).iloc[0]
        best = choose_setting(g.to_dict("records"), max_clean_drop, score="val_gain")
        changed = best is not None
        if best is None:  # no setting within the budget, or none beats no change: the method makes no change
            reason = why_no_change(g.to_dict("records"), max_clean_drop, score="val_gain")
            best = {**{f"post_{k}": base[f"pre_{k}"] for k in groups}, "site_name": "-", "setting": f"{reason}: no change",
                    "clean_drop": 0.0}
        r: dict[str, Any] = {"method": method, "changed": changed}
        for k in groups:
            r[f"pre_{k}"], r[f"post_{k}"] = base[f"pre_{k}"], best[f"post_{k}"]
            if f"n_{k}" in g:   # the paired change post - pre on the same images, 95% bootstrap interval
                n = int(base[f"n_{k}"])
                good, bad = (int(best[f"flips_{k}_good"]), int(best[f"flips_{k}_bad"])) if changed else (0, 0)
                r.update(flip_change_interval(good, bad, n).as_dict(f"change_{k}") if n
                         else {f"change_{k}{end}": float("nan") for end in ("", "_lo", "_hi")})
        r.update(site_name=best["site_name"], setting=best["setting"], clean_drop=best["clean_drop"])
        rows.append(r)
    return pd.DataFrame(rows)


def method_cells(methods: Sequence[str], sites: Sequence[str], settings: Any) -> list[dict[str, Any]]:
    """(method, site, setting) cells; ``settings(method)`` lists a method's hyperparameter settings."""
    return [{"method": m, "site": str(s), "setting": st} for m in methods for s in sites for st in settings(m)]


def study_cells(store: Any, cfg: MethodGrid) -> tuple[list[dict[str, Any]], bool]:
    """(cells, whether PAINT cells must also give the plain fine-tuning's rows) of a one-shot study in ``store``.

    A fine-tuning whose PAINT variant also runs with alpha 1 is trained once: its rows come from the PAINT
    cells (:func:`~modeledit.eval.methods.grid_cells`). A folder begun before that (it holds a plain
    fine-tuning cell, or a PAINT cell without the plain rows) keeps one cell per method, so it resumes as it was.
    """
    every = method_cells(cfg.methods, cfg.sites, cfg.settings)
    shared = grid_cells(cfg)
    if len(shared) == len(every):
        return every, False
    skipped = [c for c in every if c not in shared]
    painted = [c for c in shared if c["method"] in PAINT_OF.values() and store.done(c)]
    older = any(store.done(c) for c in skipped) or any(
        all(r.get("method") == c["method"] for r in store.read(c)["rows"]) for c in painted)
    return (every, False) if older else (shared, True)


@dataclass
class StudyFactory:
    """Picklable runner factory of a one-shot study: ``build(config)`` gives (study, example images), once per
    worker. The example images of a study built in this process are kept in ``images`` (None elsewhere)."""

    build: Callable[[Any], tuple[OneShotStudy, Any]]
    config: Any
    plain_rows: bool = False
    images: Any = field(default=None, repr=False, compare=False)

    def __call__(self) -> OneShotStudy:
        study, self.images = self.build(self.config)
        study.plain_rows = self.plain_rows
        return study

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "images": None}


def run_study(store: Any, cfg: MethodGrid, build: Callable[[Any], tuple[OneShotStudy, Any]], executor: str = "local",
              **executor_kwargs: Any) -> tuple[pd.DataFrame, Any]:
    """Every cell of a one-shot study not yet in ``store``, through an executor (:func:`~modeledit.eval.cell.run_cells`);
    returns (the table, the example images when the study was built in this process, else None)."""
    from modeledit.eval.cell import run_cells

    cells, plain_rows = study_cells(store, cfg)
    factory = StudyFactory(build, cfg, plain_rows)
    with store.discarded_if_empty():
        table, _ = run_cells(store, cells, factory, executor, **executor_kwargs)
    return table, factory.images
