"""Editing vs fine-tuning with the paper's protocol (thesis 6.3.1-6.3.2, appendix E.1.3-E.1.4).

For each concept-style pair (chosen from a sensitivity table by :func:`~modeledit.eval.protocol.select_pairs`
or given), each exemplar count and seed: N exemplars from one random target class are restyled with the
style's first image; every other image with the concept is split 30/70 into validation and test; test
sets exist in the exemplars' style image and in held-out images of the same style. Every method (the
rewrite with either solver and its ablations, local and global fine-tuning) is run over edit sites x its
own hyperparameter grid; each run is one crash-safe *cell*. :func:`summarize` then picks, per pair and
method, the setting with the most validation errors corrected among those whose clean accuracy drops by
at most the budget (none qualifying: the method makes no change) and reports its test numbers.

Example:
    >>> cfg = BenchConfig(model="world_vgg", pairs=[["road", "snow"]], n_exemplars=[3])
    >>> result = run_bench(cfg, out_dir="results/bench")
    >>> summarize(result.table, cfg.protocol.max_clean_drop)
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from modeledit.eval.metrics import error_counts, errors_corrected
from modeledit.eval.protocol import ProtocolConfig, choose_setting, first_measured, select_pairs, split_pair, why_no_change
from modeledit.eval.methods import ComparisonGrid, check_methods, grid_cells
from modeledit.eval.results import ResultStore
from modeledit.finetuning import FINETUNE_GRID
from modeledit.suffix import SuffixCacheConfig

log = logging.getLogger(__name__)

@dataclass(kw_only=True)
class BenchConfig(ComparisonGrid):
    """The bench's data, pairs, exemplar draws and protocol, and the comparison's grid (:class:`ComparisonGrid`:
    methods, sites, the hyperparameter grids; the bench tries more fine-tuning and adam settings by default).
    The clean-accuracy budget is the protocol's (``protocol.max_clean_drop``).

    A results folder's manifest holds this config flat (every field at the top level, as it always has);
    :meth:`from_manifest` reads it back, from any bench version's manifest."""

    finetune_grid: list[tuple[float, int]] = field(default_factory=lambda: [list(g) for g in FINETUNE_GRID])
    adam_grid: list[tuple[float, int]] = field(default_factory=lambda: [[1e-3, 10000], [1e-4, 20000]])
    model: str = "world_vgg"
    weights: str | None = None
    dataset: str = "world:test"
    clean: str = "world:val:600"
    stats_dataset: str = "world:train:1500"
    pairs: list[list[str]] = field(default_factory=list)       # [[concept, style], ...]; empty: select
    sensitivity: str | None = None                             # a sensitivity table.csv to select pairs from
    max_pairs: int | None = 3                                 # the top pairs by mean drop; None: every admitted pair
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    n_exemplars: list[int] = field(default_factory=lambda: [3])
    seeds: list[int] = field(default_factory=lambda: [0])
    exemplar_style_image: int = 0
    heldout_style_images: list[int] = field(default_factory=lambda: [1, 2])
    segmenter: str = "oracle"
    stylizer: str = "magenta"
    batch_size: int = 128
    from_site: bool = True                                     # edited predictions from cached site inputs (modeledit.suffix)
    cache: SuffixCacheConfig = field(default_factory=SuffixCacheConfig)
    #: target classes per pair: None draws one per seed (the paper's protocol); N draws N distinct classes
    #: (seeded by ``protocol.seed``) among the pair's affected classes, each its own unit
    n_targets: int | None = None
    #: "given" or "predicted": the model's own top-1 on each original of --dataset and --clean is its label
    #: (kept where its probability is at least ``min_confidence``); see :func:`modeledit.eval.datasets.with_labels`
    labels: str = "given"
    min_confidence: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.protocol, Mapping):
            self.protocol = ProtocolConfig(**self.protocol)
        if isinstance(self.cache, Mapping):
            self.cache = SuffixCacheConfig(**self.cache)
        check_methods(self.methods)
        if any(n < 1 for n in self.n_exemplars):
            raise ValueError(f"exemplar counts must be positive, got {self.n_exemplars}")
        if self.exemplar_style_image in self.heldout_style_images:
            raise ValueError("the exemplars' style image cannot also be a held-out style image")

    @classmethod
    def from_manifest(cls, config: Mapping[str, Any]) -> "BenchConfig":
        """The config a bench folder's ``manifest.json`` records (its ``"config"``), from any bench version: fields
        a manifest leaves out (those added later, or omitted at their defaults such as ``labels``) take their
        defaults, record-only keys (``label_source``) are set aside, a key no version wrote is a ValueError.

        Example:
            >>> cfg = BenchConfig.from_manifest(json.loads(Path("results/world/bench/manifest.json").read_text())["config"])
        """
        data = {k: v for k, v in config.items() if k not in RECORD_ONLY}
        for old, new in RENAMED.items():
            if old in data:
                data.setdefault(new, data.pop(old))
        return cls.from_json(data)


#: manifest keys that record how a run went, not what it was asked for (:meth:`BenchConfig.from_manifest`)
RECORD_ONLY = ("label_source",)
#: bench manifest keys written under another name by earlier versions (none yet: every version wrote the fields
#: under their names; a rename adds its old name here so earlier folders still load)
RENAMED: dict[str, str] = {}


def manifest_config(cfg: BenchConfig) -> dict[str, Any]:
    """What a bench folder's manifest records as its config: ``cfg`` flat, less the fields at defaults that earlier
    versions did not write (so their folders resume): ``labels``/``min_confidence`` with the given labels."""
    manifest = asdict(cfg)
    if cfg.labels == "given" and not cfg.min_confidence:
        manifest.pop("labels")
        manifest.pop("min_confidence")
    return manifest


# ---------------------------------------------------------------------------------------------------
# one worker's state: the model, the images, the pairs' counterfactuals, cached across cells


@dataclass
class PairData:
    concept: str
    style: str
    target_class: int
    exemplars: list[int]
    val: list[int]
    test: list[int]
    originals: dict[int, torch.Tensor]
    masks: dict[int, np.ndarray]
    transformed: dict[int, dict[int, torch.Tensor]]   # style image -> index -> image
    labels: dict[int, int]
    unedited: tuple | None = None                     # (groups, predictions, predictions on originals), cached
    image_sets: dict[str, Any] = field(default_factory=dict)   # group -> modeledit.suffix.ImageSet


class BenchRunner:
    """Computes cells; built once per worker (model, datasets, statistics and counterfactuals cached)."""

    def __init__(self, config: BenchConfig) -> None:
        from modeledit.device import runtime_batch_size
        from modeledit.models import load_model

        # --batch-size (the command's runtime) sets the images per batch on the device, the site cache's included
        if runtime_batch_size(config.batch_size) != config.batch_size:
            size = runtime_batch_size(config.batch_size)
            config = dataclasses.replace(config, batch_size=size, cache=dataclasses.replace(config.cache, batch_size=size))
        self.cfg = config
        self.lm = load_model(config.model, weights=config.weights)
        self.data, self.clean = labelled_datasets(config, self.lm)
        self._clean_x: torch.Tensor | None = None
        self._clean_y: torch.Tensor | None = None
        self._clean_pre: np.ndarray | None = None
        self._clean_images: Any = None
        self._masks: dict[str, dict[int, np.ndarray]] = {}
        self._pairs: dict[tuple, PairData] = {}
        self._segmenter = None
        self._stylizer = None
        self._units_sent: set[str] = set()
        from modeledit.eval.cell import CellCache

        self.cache = CellCache(self.lm, self._stats_batches, suffix=config.cache, from_site=config.from_site,
                               batch_size=config.batch_size)

    # -- cached pieces

    def clean_set(self) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        if self._clean_x is None:
            items = [self.clean[i] for i in range(len(self.clean))]
            self._clean_x = torch.stack([it[0] for it in items])
            self._clean_y = torch.tensor([int(it[1]) for it in items], device=self._clean_x.device)
            self._clean_pre = self.predict(self._clean_x)
        return self._clean_x, self._clean_y, self._clean_pre

    def predict(self, x: torch.Tensor) -> np.ndarray:
        return self.lm.predict_labels(x, self.cfg.batch_size)

    def suffix(self) -> Any:
        """The evaluator that predicts edited models from cached site inputs (one per worker)."""
        return self.cache.suffix()

    def predict_edited(self, x: torch.Tensor, site: Any, images: Any = None) -> np.ndarray:
        """Predictions of the model as it is now (an edit at ``site`` applied): from the site's cached
        inputs (``images``: an ImageSet of ``x``, made once) or, with ``from_site`` off, the full forward."""
        if not self.cfg.from_site:
            return self.predict(x)
        return self.suffix().predict(images if images is not None else x, site).numpy()

    def image_set(self, x: torch.Tensor) -> Any:
        return self.suffix().image_set(x) if self.cfg.from_site else None

    def concept_masks(self, concept: str) -> dict[int, np.ndarray]:
        if concept not in self._masks:
            from modeledit.eval.sensitivity import concept_masks
            from modeledit.segmenters import get_segmenter

            self._segmenter = self._segmenter or get_segmenter(self.cfg.segmenter)
            self._masks[concept] = concept_masks(self.data, self._segmenter, [concept], progress=False)[concept]
        return self._masks[concept]

    def stylizer(self) -> Any:
        if self._stylizer is None:
            from modeledit.styles import get_stylizer

            self._stylizer = get_stylizer(self.cfg.stylizer)
        return self._stylizer

    def pair(self, concept: str, style: str, candidates: Sequence[str], n_ex: int, seed: int, target: str | None = None) -> PairData:
        key = (concept, style, tuple(candidates), n_ex, seed, target)
        if key in self._pairs:
            return self._pairs[key]
        from modeledit.counterfactuals import restyle
        from modeledit.eval.datasets import labels_of

        masks = self.concept_masks(concept)
        idx = sorted(masks)
        all_labels = labels_of(self.data)
        labels = {i: int(all_labels[i]) for i in idx}
        names = self.lm.class_names
        cand_idx = [names.index(c) for c in candidates]
        split = split_pair(idx, [labels[i] for i in idx], cand_idx, n_ex, self.cfg.protocol.val_fraction, seed,
                           target=None if target is None else names.index(target))
        used = sorted(split.exemplars + split.val + split.test)
        originals = {i: self.data[i][0] for i in used}
        transformed: dict[int, dict[int, torch.Tensor]] = {}
        for s_img in [self.cfg.exemplar_style_image, *self.cfg.heldout_style_images]:
            transformed[s_img] = {}
            for start in range(0, len(used), self.cfg.batch_size):
                chunk = used[start:start + self.cfg.batch_size]
                x = torch.stack([originals[i] for i in chunk])
                m = np.stack([masks[i] for i in chunk])
                xt = restyle(x, m, style, s_img, self.stylizer())
                transformed[s_img].update({i: xt[k] for k, i in enumerate(chunk)})
        pd_ = PairData(concept, style, int(split.target_class), split.exemplars, split.val, split.test,
                       originals, {i: masks[i] for i in used}, transformed, labels)
        self._pairs[key] = pd_
        return pd_

    def _stats_batches(self) -> tuple[Iterator[torch.Tensor], str]:
        """Batches of ``stats_dataset`` for the statistics C, read lazily (not at all when C is cached on disk), and
        the dataset's content identity (a changed folder never reuses stale statistics)."""
        from modeledit.eval.datasets import collate_items, dataset_key, load_dataset

        ds = load_dataset(self.cfg.stats_dataset, class_names=self.lm.class_names, size=self.lm.input_size)
        bs = self.cfg.batch_size
        batches = (collate_items([ds[i] for i in range(s, min(s + bs, len(ds)))])[0] for s in range(0, len(ds), bs))
        return batches, dataset_key(self.cfg.stats_dataset, ds)

    def statistics(self, site: Any) -> Any:
        return self.cache.statistics(site)

    # -- one cell

    def exemplars(self, p: PairData) -> Any:
        """The pair's exemplars: originals, restyled with the exemplars' style image, their masks, the target class."""
        from modeledit.eval.cell import CellExemplars

        same = self.cfg.exemplar_style_image
        return CellExemplars(torch.stack([p.originals[i] for i in p.exemplars]), torch.stack([p.transformed[same][i] for i in p.exemplars]),
                             torch.stack([torch.as_tensor(p.masks[i], device=p.originals[i].device) for i in p.exemplars]), [p.target_class] * len(p.exemplars))

    def make_edit(self, method: str, setting: Mapping[str, Any], site: Any, p: PairData) -> Any:
        from modeledit.eval.cell import make_change

        return make_change(self.cache, method, setting, [site], self.exemplars(p))

    def __call__(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """One cell (:func:`~modeledit.eval.cell.run_cell`): the pair's groups measured under each in-cell setting."""
        import time

        from modeledit.eval.cell import run_cell

        t0 = time.perf_counter()
        p = self.pair(params["concept"], params["style"], params["candidates"], params["n_exemplars"], params["seed"],
                      params.get("target"))
        cx, cy, cpre = self.clean_set()
        groups, pre, orig_pre = self._unedited(p)
        if self.cfg.from_site and not p.image_sets:
            p.image_sets = {g: self.image_set(x) for g, (x, _) in groups.items()}
        if self.cfg.from_site and self._clean_images is None:
            self._clean_images = self.image_set(cx)
        y_clean = cy.numpy()

        def measure(sites: Sequence[Any]) -> dict[str, Any]:
            site = min(sites, key=lambda s: s.index)   # edited predictions from the shallowest site's inputs
            post = {g: self.predict_edited(x, site, p.image_sets.get(g)) for g, (x, _) in groups.items()}
            cpost = self.predict_edited(cx, site, self._clean_images)
            row: dict[str, Any] = dict(clean_acc_pre=float((cpre == y_clean).mean()), clean_acc_post=float((cpost == y_clean).mean()))
            row["clean_drop"] = row["clean_acc_pre"] - row["clean_acc_post"]
            ok_pre, ok_post = cpre == y_clean, cpost == y_clean
            bad, good = np.flatnonzero(ok_pre & ~ok_post), np.flatnonzero(~ok_pre & ok_post)
            row.update(clean_n=int(len(y_clean)), clean_flips_bad=int(len(bad)), clean_flips_good=int(len(good)))
            for g, (_, idx) in groups.items():
                y = np.array([p.labels[i] for i in idx])
                for who, sel in (("target", y == p.target_class), ("other", y != p.target_class), ("all", np.ones_like(y, bool))):
                    a, b, c = orig_pre[g][sel] == y[sel], pre[g][sel] == y[sel], post[g][sel] == y[sel]
                    n_pre, n_post = error_counts(a, b, c)
                    row[f"{g}_{who}_n_pre"], row[f"{g}_{who}_n_post"] = n_pre, n_post
                    row[f"{g}_{who}_corrected"] = errors_corrected(a, b, c)
            row["val_corrected"] = row["val_all_corrected"]
            # per-image outcomes (not table columns): the pair's post-edit predictions, the clean flips both ways
            row["_outcomes"] = {**{g: {"post": [int(v) for v in post[g]]} for g in groups},
                                "clean_bad": bad.tolist(), "clean_good": good.tolist()}
            return row

        head = {**{k: v for k, v in params.items() if k not in ("method", "site", "sites", "setting", "target")},
                "model": self.cfg.model, "candidates": ",".join(params["candidates"]),
                "target_class": self.lm.class_names[p.target_class]}
        rows = run_cell(self.cache, params, self.exemplars(p), self.cfg, head, measure, plain_methods=self.cfg.methods, started=t0)
        key, rec = self.unit_record(params)
        if key not in self._units_sent:  # each unit's reference images travel once per worker, in a cell
            self._units_sent.add(key)
            rows[0]["_unit"] = {"key": key, **rec}
        return rows

    def unit_record(self, params: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """(unit key, the unit's images: per group their indices, labels, whether the unedited model gets the
        original right, its predictions on the transformed images): the reference every cell's outcomes use."""
        p = self.pair(params["concept"], params["style"], params["candidates"], params["n_exemplars"], params["seed"],
                      params.get("target"))
        groups, pre, orig_pre = self._unedited(p)
        rec = {}
        for g, (_, idx) in groups.items():
            y = np.array([p.labels[i] for i in idx])
            rec[g] = {"idx": [int(i) for i in idx], "y": y.tolist(), "orig_ok": (orig_pre[g] == y).tolist(),
                      "pre": [int(v) for v in pre[g]]}
        rec["exemplars"] = [int(i) for i in p.exemplars]
        key = "|".join([params["concept"], params["style"], self.lm.class_names[p.target_class], str(params["n_exemplars"]),
                        str(params["seed"])])
        return key, rec

    def _unedited(self, p: PairData) -> tuple[dict, dict, dict]:
        """The pair's evaluation groups and the unedited model's predictions on them (computed once per pair)."""
        if p.unedited is None:
            groups = self._groups(p)
            pre = {g: self.predict(x) for g, (x, _) in groups.items()}
            orig = {g: self.predict(torch.stack([p.originals[i] for i in idx])) for g, (_, idx) in groups.items()}
            p.unedited = (groups, pre, orig)
        return p.unedited

    def _groups(self, p: PairData) -> dict[str, tuple[torch.Tensor, list[int]]]:
        """val / test in the exemplars' style image, test in the held-out style images (pooled)."""
        same = self.cfg.exemplar_style_image
        out = {"val": (torch.stack([p.transformed[same][i] for i in p.val]), p.val),
               "test": (torch.stack([p.transformed[same][i] for i in p.test]), p.test)}
        held = [(p.transformed[s][i], i) for s in self.cfg.heldout_style_images for i in p.test]
        if held:
            out["heldout"] = (torch.stack([h[0] for h in held]), [h[1] for h in held])
        return out


def labelled_datasets(cfg: BenchConfig, lm: Any) -> tuple[Any, Any]:
    """The evaluation and clean datasets of ``cfg`` with their labels (given, or ``lm``'s own predictions)."""
    from modeledit.eval.datasets import load_dataset, with_labels

    out = []
    for spec in (cfg.dataset, cfg.clean):
        ds = load_dataset(spec, class_names=lm.class_names, size=lm.input_size)
        out.append(with_labels(ds, lm, cfg.labels, cfg.min_confidence, cfg.batch_size))
    return out[0], out[1]


@dataclass
class RunnerFactory:
    """Picklable: builds a :class:`BenchRunner` once per worker."""

    config: BenchConfig

    def __call__(self) -> Callable[[Mapping[str, Any]], list[dict[str, Any]]]:
        return BenchRunner(self.config)


# ---------------------------------------------------------------------------------------------------
# the grid, the run, the summary


def choose_pairs(cfg: BenchConfig) -> list[dict[str, Any]]:
    """The pairs to study: from ``cfg.pairs`` (candidates from the sensitivity table when given) or selected."""
    if cfg.sensitivity and not os.path.isfile(cfg.sensitivity):
        raise FileNotFoundError(f"--sensitivity {cfg.sensitivity!r} does not exist; run `modeledit sensitivity ... --out DIR` "
                                "first and pass DIR/table.csv")
    table = pd.read_csv(cfg.sensitivity) if cfg.sensitivity else None
    if table is not None and not {"concept", "style", "class_name", "presence", "drop"} <= set(table.columns):
        raise ValueError(f"--sensitivity {cfg.sensitivity!r} is not a sensitivity table (concept, style, class_name, presence, "
                         "drop); pass the table.csv written by `modeledit sensitivity`")
    if cfg.pairs:
        out = []
        for concept, style in cfg.pairs:
            cands: list[str] = []
            if table is not None:
                t = table[(table["concept"] == concept) & (table["style"] == style)]
                t = t[(t["presence"] >= cfg.protocol.min_presence) & (t["drop"] >= cfg.protocol.min_drop)]
                cands = sorted(t["class_name"].unique())
            out.append({"concept": concept, "style": style, "candidates": cands})
        return out
    if table is None:
        raise ValueError("give concept-style pairs (--pairs road:snow) or a sensitivity table to select them from (--sensitivity)")
    sel = select_pairs(table, cfg.protocol).sort_values("mean_drop", ascending=False, kind="stable")
    sel = sel if cfg.max_pairs is None else sel.head(cfg.max_pairs)
    if sel.empty:
        raise ValueError("no concept-style pair passes the selection rule in that sensitivity table; relax the protocol thresholds")
    return [{"concept": r.concept, "style": r.style, "candidates": list(r.classes)} for r in sel.itertuples()]


def bench_cells(cfg: BenchConfig, pairs: Sequence[Mapping[str, Any]], model_sites: Callable[[str], Any] | None = None) -> list[dict[str, Any]]:
    """Every cell of the grid: pair x target x exemplar count x seed x method x site x setting (in-cell grids
    such as strengths are not cells). A fine-tuning whose PAINT variant is also run comes from the PAINT
    cells' alpha = 1 rows."""
    from modeledit.eval.protocol import choose_targets

    cells = []
    for pair in pairs:
        targets = choose_targets(pair["candidates"], cfg.n_targets, cfg.protocol.seed) if cfg.n_targets else [None]
        for target in targets:
            for n_ex in cfg.n_exemplars:
                for seed in cfg.seeds:
                    for g in grid_cells(cfg):
                        cell = {"concept": pair["concept"], "style": pair["style"], "candidates": list(pair["candidates"]),
                                "n_exemplars": int(n_ex), "seed": int(seed), **g}
                        if target is not None:
                            cell["target"] = target
                        cells.append(cell)
    return cells


def write_units(store: ResultStore) -> Path:
    """``unedited.json``: every unit's reference images (indices, labels, original correct, unedited
    predictions per group), gathered from the cells that carried them; the per-image outcomes of the
    cells (``_outcomes``) are read against it."""
    from modeledit.atomic import write_json_atomic

    units = {u["key"]: {k: v for k, v in u.items() if k != "key"} for u in store.extras("_unit")}
    return write_json_atomic(store.root / "unedited.json", {"units": units})


@dataclass
class BenchResult:
    """What a bench run returns: the raw table (one row per finished cell) and the cells that failed."""

    table: pd.DataFrame
    failed: dict[str, str] = field(default_factory=dict)


#: a bench folder run with a few of the selected pairs resumes with more of them (the top pairs stay the same;
#: every cell is keyed by its own pair, target and setting)
SCALE_KEYS = ("max_pairs",)


def run_bench(cfg: BenchConfig, out_dir: str, executor: str = "local", **executor_kwargs: Any) -> BenchResult:
    """Run every cell not yet in ``out_dir``; the raw table holds every finished cell (old and new)."""
    from modeledit.eval.datasets import check_stats_disjoint
    from modeledit.eval.executors import get_executor
    from modeledit.eval.validate import check_names

    ex = get_executor(executor, **executor_kwargs)
    pairs = choose_pairs(cfg)
    for p in pairs:
        if not p["candidates"]:
            raise ValueError(f"pair {p['concept']}/{p['style']} has no affected class to draw the target from; give --sensitivity")
    lm = check_names(values=cfg, model=cfg.model, weights=cfg.weights, sites=cfg.sites, styles=[p["style"] for p in pairs],
                concepts=[p["concept"] for p in pairs], segmenter=cfg.segmenter, stylizer=cfg.stylizer, methods=cfg.methods,
                datasets={"--dataset": cfg.dataset, "--clean": cfg.clean, "--stats-dataset": cfg.stats_dataset})
    check_stats_disjoint(cfg.stats_dataset, {"--dataset": cfg.dataset, "--clean": cfg.clean})
    manifest = manifest_config(cfg)   # at the defaults, the manifest as before (older runs resume)
    if "labels" in manifest:  # which label each image got, for the record (the workers compute the same)
        from modeledit.eval.datasets import label_record
        from modeledit.models import load_model

        data, clean = labelled_datasets(cfg, load_model(cfg.model, weights=cfg.weights))
        manifest["label_source"] = {"dataset": label_record(data), "clean": label_record(clean)}
    store = ResultStore(out_dir, config=manifest, scale_keys=SCALE_KEYS, harness="bench", model=lm, file_keys=("sensitivity",))
    cells = bench_cells(cfg, pairs)
    with store.discarded_if_empty():
        report = ex.run(cells, RunnerFactory(cfg), store)
    if report.failed:
        log.error("%d cells failed: %s", len(report.failed), report.failed)
    table = store.table()
    if table.empty:
        first = next(iter(report.failed.values()), "no cell ran")
        raise RuntimeError(f"every cell failed (first error: {first}); nothing was written to {out_dir}")
    write_units(store)
    return BenchResult(table, dict(report.failed))


SELECT_KEYS = ["concept", "style", "target_class", "n_exemplars", "seed", "method"]
REPORTED = ["test_target_corrected", "test_other_corrected", "heldout_target_corrected", "heldout_other_corrected",
            "test_target_n_pre", "test_other_n_pre", "clean_drop"]


def summarize(table: pd.DataFrame, max_clean_drop: float = 0.0025, by: Sequence[str] = SELECT_KEYS) -> pd.DataFrame:
    """Per group (default: pair x exemplars x seed x method) the setting chosen on validation within the
    clean-accuracy budget, with its test numbers. "No change" is always a candidate scoring 0: when no
    setting qualifies, or none beats it, the method makes no change (0 errors corrected, 0 clean drop),
    ``changed`` is False and ``choice``/``setting`` say why (never a blank site)."""
    rows = []
    for key, g in table.groupby(list(by), sort=True):
        records = g.to_dict("records")
        for r in records:
            r["val_corrected"] = 0.0 if pd.isna(r.get("val_corrected")) else r["val_corrected"]
        best = choose_setting(records, max_clean_drop)
        out = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        if best is None:
            reason = why_no_change(records, max_clean_drop)
            out.update({k: 0.0 for k in REPORTED if k.endswith(("corrected", "drop"))}, changed=False, site_name="-",
                       setting=f"{reason}: no change", choice=reason)
            out.update({k: first_measured(g, k) for k in REPORTED if k.endswith("n_pre")})
        else:
            out.update({k: best[k] for k in REPORTED}, changed=True, site_name=best["site_name"], setting=best["setting"], choice="setting")
        out["target_class"] = g["target_class"].iloc[0]
        rows.append(out)
    return pd.DataFrame(rows)


def display_summary(summary: pd.DataFrame, columns: Sequence[str]) -> str:
    """The summary as text: numbers to 3 decimals; a method that makes no change shows why (no setting
    qualifies, or none beats no change) instead of zeros and a blank site."""
    shown = summary[list(columns)].astype(object).copy()
    for c in columns:
        if pd.api.types.is_float_dtype(summary[c]):
            shown[c] = summary[c].map(lambda v: f"{v:.3f}")
    if "changed" in summary:
        unchanged = ~summary["changed"].astype(bool)
        for c in columns:
            if c.endswith(("corrected", "clean_drop")):
                shown.loc[unchanged, c] = "-"
        if "setting" in shown:
            shown.loc[unchanged, "setting"] = summary.loc[unchanged, "setting"]
    return shown.to_string(index=False)


def budget_curve(table: pd.DataFrame, budgets: Sequence[float] = (0.0, 0.0025, 0.005, 0.01, 0.02, 0.05)) -> pd.DataFrame:
    """Figure 6-4: mean errors corrected (other classes) vs the clean-accuracy drop allowed."""
    parts = []
    for b in budgets:
        s = summarize(table, b)
        g = s.groupby("method")[["test_target_corrected", "test_other_corrected"]].mean().reset_index()
        g["budget"] = b
        parts.append(g)
    return pd.concat(parts, ignore_index=True)
