"""The protocol on real photos with a real ImageNet model (the offline MobileNetV2): every colour photo
that ships with scikit-image, scikit-learn and matplotlib, and crops of them.

* **Images.** :data:`PHOTOS` lists the colour photographs that ship offline; :data:`EXCLUDED` says why
  every other shipped picture is left out. Each photo gives *views*: the model's own preprocessing
  (resize, centre crop) and square crops (``crops``: side as a share of the short side, centre).
* **Labels.** The model's own top-1 on each original view, kept where its probability is at least
  ``min_confidence`` (:class:`~modeledit.eval.datasets.PredictedLabels`): every original counts as
  correct, and metric (6.3) counts the errors the restyled foreground causes.
* **Concept.** ``object``: GrabCut from a centre box, an ellipse where it fails
  (:mod:`modeledit.segmenters.foreground`); the foreground is restyled with Magenta's style images.
* **Units.** For each style, exemplar count and seed, the exemplar photos are drawn (seeded) among the
  photos whose full view is kept; the other photos are split (by photo, so crops of one photo stay
  together) into validation and test. Every method of the catalogue (:mod:`modeledit.eval.methods`)
  edits the model from the exemplars (x, its foreground restyled with the style's first image, the
  mask; fine-tuning towards the exemplar's label) at each site and setting, with its in-cell strength
  or alpha grid; each is one resumable cell of a :class:`~modeledit.eval.results.ResultStore`.
* **Measures.** Errors corrected (N_pre - N_post) / N_pre on the other photos' views restyled with the
  exemplars' style image (validation, test) and with the style's held-out images (test photos);
  *locality* = the share of clean views (every original view but the exemplars' photos) whose prediction
  changes. :func:`summarize_photos` picks, per unit and method, the setting with the most validation
  errors corrected among those with locality within the budget (none: no change), as in the bench.
* **Statistics C** come from random small crops of the same photos (scales below every evaluation
  view's): disjoint images, not disjoint scenes. ImageNet's training or validation images are the real
  choice; the count of keys is recorded.

Example:
    >>> cfg = PhotosConfig.quick()
    >>> table, summary, methods = run_photos(cfg, "results/photos_quick")
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from modeledit.eval.methods import MethodGrid, method_edit
from modeledit.eval.metrics import error_counts
from modeledit.eval.protocol import choose_setting, first_measured, why_no_change
from modeledit.eval.results import ResultStore

log = logging.getLogger(__name__)


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return getattr(skimage.data, name)()

    return load


def _motorcycle() -> np.ndarray:
    import skimage.data

    return skimage.data.stereo_motorcycle()[0]


def _sklearn(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(name)

    return load


def _matplotlib(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import matplotlib.cbook

        from modeledit.images import read_image

        return np.asarray(read_image(matplotlib.cbook.get_sample_data(name, asfileobj=False)))

    return load


#: every colour photograph that ships offline: name -> (where it comes from, loader)
PHOTOS: dict[str, tuple[str, Callable[[], np.ndarray]]] = {
    "astronaut": ("skimage.data.astronaut", _skimage("astronaut")),
    "chelsea": ("skimage.data.chelsea", _skimage("chelsea")),
    "coffee": ("skimage.data.coffee", _skimage("coffee")),
    "rocket": ("skimage.data.rocket", _skimage("rocket")),
    "motorcycle": ("skimage.data.stereo_motorcycle (left image)", _motorcycle),
    "hubble_deep_field": ("skimage.data.hubble_deep_field", _skimage("hubble_deep_field")),
    "immunohistochemistry": ("skimage.data.immunohistochemistry", _skimage("immunohistochemistry")),
    "retina": ("skimage.data.retina", _skimage("retina")),
    "china": ("sklearn load_sample_image('china.jpg')", _sklearn("china.jpg")),
    "flower": ("sklearn load_sample_image('flower.jpg')", _sklearn("flower.jpg")),
    "grace_hopper": ("matplotlib sample data grace_hopper.jpg", _matplotlib("grace_hopper.jpg")),
}

#: pictures that ship offline but are not in the study, and why
EXCLUDED: dict[str, str] = {
    "skimage cat": "the same picture as chelsea",
    "skimage stereo_motorcycle (right image)": "a near-duplicate of the left image",
    "skimage colorwheel, logo; matplotlib logo2.png, Minduka_Present_Blue_Pack.png": "drawings, not photographs",
    "skimage camera, coins, moon, page, text, clock, horse, microaneurysms, brick, grass, gravel, checkerboard, "
    "shepp_logan_phantom, binary_blobs": "grayscale (or binary, or synthetic)",
    "skimage lily, eagle, kidney, cells3d, skin, brain and the other fetched data": "not shipped: downloaded by pooch on first use",
}


def load_photos(names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """The shipped colour photos (HxWx3 uint8) by name; ``names`` picks some (KeyError on an unknown one).

    Example:
        >>> sorted(load_photos(["coffee", "china"]))
        ['china', 'coffee']
    """
    out = {}
    for n in names if names is not None else PHOTOS:
        if n not in PHOTOS:
            from modeledit.registry import close_matches

            raise KeyError(f"unknown photo {n!r}; closest: {close_matches(n, list(PHOTOS)) or '-'}; choose from {list(PHOTOS)}")
        im = np.asarray(PHOTOS[n][1]())
        out[n] = np.ascontiguousarray(im[..., :3]).astype(np.uint8)
    return out


def square_crop(image: np.ndarray, scale: float, cx: float, cy: float, size: int, flip: bool = False) -> torch.Tensor:
    """A square crop (side ``scale`` x the short side, centred at (cx, cy) as shares of width and height,
    moved inside the image) resized to ``size``: (3, size, size) in [0, 1]."""
    from PIL import Image

    h, w = image.shape[:2]
    side = max(8, int(round(scale * min(h, w))))
    x0 = int(np.clip(round(cx * w - side / 2), 0, w - side))
    y0 = int(np.clip(round(cy * h - side / 2), 0, h - side))
    im = Image.fromarray(image[y0:y0 + side, x0:x0 + side]).resize((size, size), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float() / 255.0
    return x.flip(-1) if flip else x


class ViewSet(torch.utils.data.Dataset):
    """Views of the photos in memory: items ``(image01, -1, {"photo", "view"})``, with an identity
    hashing the pixels (so :class:`~modeledit.eval.datasets.PredictedLabels` can label them)."""

    def __init__(self, images: torch.Tensor, photos: Sequence[str], views: Sequence[str]) -> None:
        self.images, self.photos, self.views = images, list(photos), list(views)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, dict[str, Any]]:
        return self.images[i], -1, {"photo": self.photos[i], "view": self.views[i]}

    @property
    def identity(self) -> str:
        h = hashlib.sha256(json.dumps([self.photos, self.views]).encode())
        h.update(self.images.numpy().tobytes())
        return h.hexdigest()


@dataclass(kw_only=True)
class PhotosConfig(MethodGrid):
    """The study's images, styles, units and methods (``MethodGrid``: methods, sites, grids, budget)."""

    model: str = "mobilenet_v2"
    weights: str | None = None
    photos: list[str] = field(default_factory=lambda: list(PHOTOS))
    #: evaluation views besides the full one: [side as a share of the short side, centre x, centre y]
    crops: list[list[float]] = field(default_factory=lambda: [[0.7, 0.5, 0.5], [0.8, 0.4, 0.45], [0.8, 0.6, 0.55]])
    min_confidence: float = 0.25
    concept: str = "object"
    segmenter: str = "foreground"
    styles: list[str] = field(default_factory=lambda: ["floral", "graffiti"])
    stylizer: str = "magenta"
    exemplar_style_image: int = 0
    heldout_style_images: list[int] = field(default_factory=lambda: [1, 2])
    n_exemplars: list[int] = field(default_factory=lambda: [1, 3])
    seeds: list[int] = field(default_factory=lambda: [0])
    val_fraction: float = 0.3
    #: statistics C: this many random crops per photo, side between these shares of the short side, random flips
    stats_crops_per_photo: int = 16
    stats_scale: list[float] = field(default_factory=lambda: [0.2, 0.45])
    batch_size: int = 64
    seed: int = 0
    #: the study's methods and grids (rrr_* are left out by default: the input-gradient penalty's double
    #: backward through the whole network costs ~11 s of CPU per step here, see the README's reading)
    methods: list[str] = field(default_factory=lambda: ["edit", "finetune_local", "finetune_global", "paint_local", "paint_global"])
    sites: list[str] = field(default_factory=lambda: ["-3", "-1"])
    finetune_grid: list[tuple[float, int]] = field(default_factory=lambda: [[1e-3, 20]])
    strength_grid: list[float] = field(default_factory=lambda: [0.25, 0.5, 1.0])
    #: the locality budget: the largest share of clean views whose prediction may change
    max_clean_drop: float = 0.05

    def __post_init__(self) -> None:
        from modeledit.eval.methods import check_methods

        check_methods(self.methods)
        if self.exemplar_style_image in self.heldout_style_images:
            raise ValueError("the exemplars' style image cannot also be a held-out style image")
        if self.crops and min(c[0] for c in self.crops) <= max(self.stats_scale):
            raise ValueError("statistics crops must be smaller than every evaluation crop (disjoint images); "
                             f"got evaluation scales {[c[0] for c in self.crops]} and statistics scales {self.stats_scale}")

    @classmethod
    def demo(cls) -> "PhotosConfig":
        """The demo's version (a few minutes): one style, one exemplar, two draws, the demo's methods."""
        return cls(crops=[[0.7, 0.5, 0.5]], styles=["floral"], n_exemplars=[1], seeds=[0], sites=["-1"],
                   methods=["edit", "finetune_local", "finetune_global", "paint_global"], stats_crops_per_photo=8)

    @classmethod
    def quick(cls) -> "PhotosConfig":
        """A tiny version for tests and a first look (noisy): five photos, one crop each, one style."""
        return cls(photos=["chelsea", "coffee", "rocket", "flower", "grace_hopper"], crops=[[0.7, 0.5, 0.5]],
                   styles=["floral"], heldout_style_images=[1], n_exemplars=[1], seeds=[0], sites=["-1"],
                   methods=["edit", "finetune_local", "finetune_global"], finetune_grid=[[1e-2, 10]],
                   strength_grid=[0.5, 1.0], stats_crops_per_photo=4, max_clean_drop=0.1, min_confidence=0.2)


# ---------------------------------------------------------------------------------------------------
# the images, computed once per run


class PhotoStudy:
    """The model, the views with their labels and masks, the restyled views, statistics per site; its
    call computes one cell."""

    def __init__(self, cfg: PhotosConfig, cache_dir: Path | None = None, progress: bool = True) -> None:
        import dataclasses

        from modeledit.device import runtime_batch_size
        from modeledit.eval.datasets import PredictedLabels
        from modeledit.models import load_model

        if runtime_batch_size(cfg.batch_size) != cfg.batch_size:   # the command's --batch-size
            cfg = dataclasses.replace(cfg, batch_size=runtime_batch_size(cfg.batch_size))
        self.cfg = cfg
        self.lm = load_model(cfg.model, weights=cfg.weights)
        size = self.lm.input_size
        photos = load_photos(cfg.photos)
        xs, names, views = [], [], []
        for name, im in photos.items():
            xs.append(self.lm.preprocess(im))
            names.append(name)
            views.append("full")
            for k, (scale, cx, cy) in enumerate(cfg.crops):
                xs.append(square_crop(im, scale, cx, cy, size))
                names.append(name)
                views.append(f"crop{k + 1}")
        base = ViewSet(torch.stack(xs), names, views)
        self.labelled = PredictedLabels(base, self.lm, cfg.min_confidence, cfg.batch_size)
        keep = self.labelled.indices
        self.x = base.images[keep]
        self.photo = [names[i] for i in keep]
        self.view = [views[i] for i in keep]
        self.y = np.asarray(self.labelled.labels)
        self.conf = np.asarray(self.labelled.confidence)
        self.masks, self.mask_score = self._masks(cache_dir, progress)
        self.transformed: dict[str, dict[int, torch.Tensor]] = {}
        self.pre: dict[str, dict[int, np.ndarray]] = {}
        rng = np.random.default_rng(cfg.seed)
        stats = []
        for name, im in photos.items():
            for _ in range(cfg.stats_crops_per_photo):
                stats.append(square_crop(im, float(rng.uniform(*cfg.stats_scale)), float(rng.uniform(0.15, 0.85)),
                                         float(rng.uniform(0.15, 0.85)), size, flip=bool(rng.integers(2))))
        self.stats_images = torch.stack(stats) if stats else torch.zeros(0, 3, size, size)
        self.stats_id = "photos-stats-crops:" + hashlib.sha256(self.stats_images.numpy().tobytes()).hexdigest()[:16]
        from modeledit.eval.cell import CellCache

        bs = cfg.batch_size
        self.cache = CellCache(self.lm, lambda: ([self.stats_images[i:i + bs] for i in range(0, len(self.stats_images), bs)], self.stats_id),
                               batch_size=bs)

    # -- masks and restyles

    def _masks(self, cache_dir: Path | None, progress: bool) -> tuple[np.ndarray, np.ndarray]:
        """The concept's mask on every view (cached next to the results: GrabCut takes a second per view)."""
        from modeledit.progress import tqdm

        from modeledit.images import to_uint8
        from modeledit.segmenters import get_segmenter
        from modeledit.segmenters.base import merge_instances

        key = hashlib.sha256(f"{self.cfg.segmenter}:{self.cfg.concept}:{self.labelled.identity}".encode()).hexdigest()[:16]
        path = cache_dir / f"masks_{key}.npz" if cache_dir is not None else None
        if path is not None and path.is_file():
            z = np.load(path)
            return z["masks"], z["score"]
        seg = get_segmenter(self.cfg.segmenter)
        masks, scores = [], []
        for x in tqdm(self.x, desc="segment", disable=not progress, unit="view"):
            arr = to_uint8(x)
            inst = [i for i in seg.segment(arr, [self.cfg.concept]) if i.concept == self.cfg.concept]
            masks.append(merge_instances(inst, self.cfg.concept, arr.shape[:2]))
            scores.append(max((i.score for i in inst), default=0.0))
        m, s = np.stack(masks), np.asarray(scores, dtype=float)
        if path is not None:
            from modeledit.atomic import atomic_path

            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as f:
                    np.savez_compressed(f, masks=m, score=s)
        return m, s

    def restyled(self, style: str, style_image: int) -> torch.Tensor:
        """Every view with its foreground restyled by one style image (computed once)."""
        from modeledit.counterfactuals import restyle

        cache = self.transformed.setdefault(style, {})
        if style_image not in cache:
            parts = []
            for s in range(0, len(self.x), self.cfg.batch_size):
                parts.append(restyle(self.x[s:s + self.cfg.batch_size], torch.as_tensor(self.masks[s:s + self.cfg.batch_size], device=self.x.device),
                                     style, style_image, self.cfg.stylizer))
            cache[style_image] = torch.cat(parts)
            self.pre.setdefault(style, {})[style_image] = self.lm.predict_labels(cache[style_image], self.cfg.batch_size)
        return cache[style_image]

    # -- statistics, predictions from a site

    def statistics(self, site: Any) -> Any:
        return self.cache.statistics(site)

    def predict_from(self, key: tuple[str, int] | str, sites: Sequence[Any]) -> np.ndarray:
        """Predictions of the model as it is now on every view: ``"clean"`` or a (style, style image)."""
        return self.cache.predict_at(key, self.x if key == "clean" else self.restyled(*key), sites)

    # -- units

    def eligible(self) -> list[str]:
        """Photos that can be exemplars: their full view is kept (confident)."""
        return [p for p, v in zip(self.photo, self.view) if v == "full"]

    def unit(self, n_exemplars: int, seed: int) -> dict[str, list[str]]:
        """Exemplar, validation and test photos of a draw (the same for every style)."""
        eligible = self.eligible()
        if n_exemplars >= len(eligible):
            raise ValueError(f"{n_exemplars} exemplars leave no photo to test on ({len(eligible)} photos are eligible)")
        rng = np.random.default_rng([self.cfg.seed, seed, n_exemplars])
        order = [eligible[i] for i in rng.permutation(len(eligible))]
        ex = order[:n_exemplars]
        rest = [p for p in dict.fromkeys(self.photo) if p not in ex]
        rest = [rest[i] for i in rng.permutation(len(rest))]
        k = max(1, int(round(self.cfg.val_fraction * len(rest))))
        return {"exemplars": sorted(ex), "val": sorted(rest[:k]), "test": sorted(rest[k:])}

    def indices(self, photos: Sequence[str], full_only: bool = False) -> np.ndarray:
        return np.array([i for i, (p, v) in enumerate(zip(self.photo, self.view)) if p in photos and (v == "full" or not full_only)], dtype=int)

    def __call__(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """One cell (:func:`~modeledit.eval.cell.run_cell`): the unit's photo groups measured under each in-cell setting."""
        import time

        from modeledit.eval.cell import CellExemplars, run_cell

        t0 = time.perf_counter()
        cfg, style = self.cfg, params["style"]
        u = self.unit(params["n_exemplars"], params["seed"])
        ex = self.indices(u["exemplars"], full_only=True)
        same = cfg.exemplar_style_image
        xt = self.restyled(style, same)
        for s in cfg.heldout_style_images:
            self.restyled(style, s)
        groups = {"val": [(same, self.indices(u["val"]))], "test": [(same, self.indices(u["test"]))],
                  "heldout": [(s, self.indices(u["test"])) for s in cfg.heldout_style_images]}
        clean_idx = self.indices(u["val"] + u["test"])

        def measure(sites: Sequence[Any]) -> dict[str, Any]:
            clean_post = self.predict_from("clean", sites)
            post = {s: self.predict_from((style, s), sites) for s in [same, *cfg.heldout_style_images]}
            changed = clean_post[clean_idx] != self.y[clean_idx]
            row: dict[str, Any] = dict(clean_n=int(len(clean_idx)), clean_changed=int(changed.sum()),
                                       locality=float(changed.mean()) if len(clean_idx) else float("nan"))
            outcomes: dict[str, Any] = {"clean_changed": clean_idx[changed].tolist()}
            for g, parts in groups.items():
                n_pre = n_post = 0
                for s, idx in parts:
                    y = self.y[idx]
                    a, b = error_counts(np.ones(len(idx), bool), self.pre[style][s][idx] == y, post[s][idx] == y)
                    n_pre, n_post = n_pre + a, n_post + b
                    outcomes[f"{g}_{s}"] = {"idx": idx.tolist(), "post": post[s][idx].tolist()}
                row[f"{g}_n"] = int(sum(len(idx) for _, idx in parts))
                row[f"{g}_n_pre"], row[f"{g}_n_post"] = int(n_pre), int(n_post)
                row[f"{g}_corrected"] = (n_pre - n_post) / n_pre if n_pre else float("nan")
            row["_outcomes"] = outcomes
            return row

        head = dict(model=cfg.model, style=style, n_exemplars=int(params["n_exemplars"]), seed=int(params["seed"]),
                    exemplars=",".join(u["exemplars"]), exemplar_labels=",".join(self.lm.class_names[int(self.y[i])] for i in ex),
                    val_photos=",".join(u["val"]), test_photos=",".join(u["test"]))
        exemplars = CellExemplars(self.x[ex], xt[ex], torch.as_tensor(self.masks[ex], device=self.x.device), [int(self.y[i]) for i in ex])
        return run_cell(self.cache, params, exemplars, cfg, head, measure, plain_methods=cfg.methods, started=t0)

    def views_table(self) -> pd.DataFrame:
        """One row per view in the study: photo, view, the model's label and its probability, mask share and source."""
        return pd.DataFrame({"photo": self.photo, "view": self.view, "label": [self.lm.class_names[int(v)] for v in self.y],
                             "confidence": self.conf, "mask_share": self.masks.reshape(len(self.masks), -1).mean(1),
                             "mask": ["GrabCut mask" if s >= 1.0 else ELLIPSE_LABEL if s > 0 else "none" for s in self.mask_score]})


#: how a view whose mask is the foreground segmenter's fallback is labelled (GrabCut returned almost nothing or the
#: whole box, so the centre ellipse stands in); runs before this wording wrote "ellipse (GrabCut failed)"
ELLIPSE_LABEL = "ellipse mask (GrabCut found no clear object)"


@dataclass
class PhotoRunner:
    """Picklable: builds a :class:`PhotoStudy` once per worker (masks from the run's cache folder)."""

    config: PhotosConfig
    cache_dir: Path | None = None

    def __call__(self) -> PhotoStudy:
        return PhotoStudy(self.config, cache_dir=self.cache_dir, progress=False)


def photo_cells(cfg: PhotosConfig) -> list[dict[str, Any]]:
    """Every cell: style x exemplar count x seed x method x site x setting (in-cell grids are not cells);
    a fine-tuning whose PAINT variant also runs comes from PAINT's alpha = 1 rows."""
    from modeledit.eval.methods import grid_cells

    return [{"style": style, "n_exemplars": int(n_ex), "seed": int(seed), **g}
            for style in cfg.styles for n_ex in cfg.n_exemplars for seed in cfg.seeds for g in grid_cells(cfg)]


# ---------------------------------------------------------------------------------------------------
# selection and summaries

UNIT_KEYS = ["style", "n_exemplars", "seed", "method"]
GROUPS = ("val", "test", "heldout")


def _count(v: Any) -> Any:
    """A count as an int; NaN stays NaN (every setting of the group diverged: nothing was measured)."""
    return int(v) if v == v else v


def summarize_photos(table: pd.DataFrame, max_locality: float, score: str = "val_corrected") -> pd.DataFrame:
    """Per unit and method, the setting with the most validation errors corrected among those changing at
    most ``max_locality`` of the clean views (none: no change, with the reason), and its test numbers.
    ``score="test_corrected"`` chooses on the test photos themselves: an upper bound, not the protocol."""
    rows = []
    for key, g in table.groupby(UNIT_KEYS, sort=True):
        records = g.to_dict("records")
        for r in records:
            r[score] = 0.0 if pd.isna(r[score]) else r[score]
        best = choose_setting(records, max_locality, score=score, clean_drop="locality")
        out: dict[str, Any] = dict(zip(UNIT_KEYS, key))
        out.update({f"{grp}_n_pre": _count(first_measured(g, f"{grp}_n_pre")) for grp in GROUPS})
        out["exemplars"] = g["exemplars"].iloc[0]
        out["exemplar_labels"] = g["exemplar_labels"].iloc[0]
        if best is None:
            reason = why_no_change(records, max_locality, score=score, clean_drop="locality")
            out.update({f"{grp}_n_post": out[f"{grp}_n_pre"] for grp in GROUPS}, locality=0.0, clean_changed=0,
                       changed=False, choice=reason, site_name="-", setting=f"{reason}: no change")
        else:
            out.update({f"{grp}_n_post": int(best[f"{grp}_n_post"]) for grp in GROUPS}, locality=float(best["locality"]),
                       clean_changed=int(best["clean_changed"]), changed=True, choice="setting", site_name=best["site_name"],
                       setting=best["setting"])
        for grp in GROUPS:
            n = out[f"{grp}_n_pre"]
            out[f"{grp}_corrected"] = (n - out[f"{grp}_n_post"]) / n if n else float("nan")
        out["clean_n"] = _count(first_measured(g, "clean_n"))
        rows.append(out)
    return pd.DataFrame(rows)


def _pooled(g: pd.DataFrame, grp: str) -> float:
    n = g[f"{grp}_n_pre"].sum()
    return float((n - g[f"{grp}_n_post"].sum()) / n) if n else float("nan")


def method_table(summary: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per exemplar count and method, over units: errors corrected on the other photos (pooled over units:
    errors removed / errors before) with 95% bootstrap intervals over units, the mean locality, and how many
    units found a setting within the budget."""
    rng = np.random.default_rng(seed)
    rows = []
    for (n_ex, method), g in summary.groupby(["n_exemplars", "method"], sort=True):
        r: dict[str, Any] = {"n_exemplars": int(n_ex), "method": method, "units": len(g), "units_changed": int(g["changed"].sum())}
        for grp in ("test", "heldout"):
            r[f"{grp}_corrected"] = _pooled(g, grp)
            boots = []
            for _ in range(n_boot if len(g) > 1 else 0):
                b = g.iloc[rng.integers(0, len(g), len(g))]
                v = _pooled(b, grp)
                if not np.isnan(v):
                    boots.append(v)
            r[f"{grp}_low"], r[f"{grp}_high"] = (float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))) if boots else (float("nan"), float("nan"))
            r[f"{grp}_errors_before"] = int(g[f"{grp}_n_pre"].sum())
        r["locality"] = float(g["locality"].mean())
        r["no_setting_within_budget"] = bool((g["choice"] == "no setting qualifies").all())
        rows.append(r)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------
# the run


def run_photos(cfg: PhotosConfig, out_dir: str | Path, progress: bool = True, title: str | None = None, executor: str = "local",
               **executor_kwargs: Any) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Run every cell not yet in ``out_dir`` (through ``executor``: local or ray, with ``address``/``workers``); write cells.csv, summary.csv (per unit), methods.csv (per
    method), views.csv, the figures and summary.json (for ``modeledit report``). Returns the three tables."""
    from modeledit.eval.validate import check_names

    out = Path(out_dir)
    lm = check_names(values=cfg, model=cfg.model, weights=cfg.weights, sites=cfg.sites, styles=cfg.styles, concepts=[cfg.concept],
                segmenter=cfg.segmenter, stylizer=cfg.stylizer, methods=cfg.methods)
    load_photos(cfg.photos)  # unknown names fail before any work
    study = PhotoStudy(cfg, cache_dir=out / "cache", progress=progress)
    for n_ex in cfg.n_exemplars:
        study.unit(n_ex, cfg.seeds[0])  # too many exemplars fail before any work
    manifest = {**asdict(cfg), "label_source": study.labelled.record(),
                "statistics": {"images": int(len(study.stats_images)), "identity": study.stats_id,
                               "what": "random crops of the same photos, smaller than every evaluation view"}}
    store = ResultStore(out, config=manifest, harness="photos", model=lm)
    from modeledit.eval.cell import Prebuilt, run_cells

    with store.discarded_if_empty():   # the study built above runs the cells here; a Ray worker builds its own
        table, _ = run_cells(store, photo_cells(cfg), Prebuilt(PhotoRunner(cfg, out / "cache"), study), executor, **executor_kwargs)
    table.to_csv(out / "cells.csv", index=False)
    summary = summarize_photos(table, cfg.max_clean_drop)
    summary.to_csv(out / "summary.csv", index=False)
    methods = method_table(summary)
    methods.to_csv(out / "methods.csv", index=False)
    bound = method_table(summarize_photos(table, cfg.max_clean_drop, score="test_corrected"))
    bound.to_csv(out / "methods_upper_bound.csv", index=False)
    views = study.views_table()
    views.to_csv(out / "views.csv", index=False)
    keys = {}
    for site in cfg.sites:
        from modeledit.layers import get_site

        s = get_site(study.lm.model, site)
        keys[s.name] = int(study.statistics(s).count)
    figures = [(mask_figure(study, out / "masks.png").name,
                "the 'object' masks on every photo's full view (GrabCut from a centre box, or the centre ellipse where GrabCut "
                "found no clear object)"),
               (grid_figure(study, summary, out / "grid.png").name,
                "test photos of the first draw: original (the model's label) and restyled, with each method's prediction "
                "(chosen setting; * = the original's label)")]
    write_photo_summary(cfg, out, methods, views, keys, figures, title=title, bound=bound)
    return table, summary, methods


def write_photo_summary(cfg: PhotosConfig, out: Path, methods: pd.DataFrame, views: pd.DataFrame, keys: Mapping[str, int],
                        figures: list[tuple[str, str]], title: str | None = None, bound: pd.DataFrame | None = None) -> Path:
    """summary.json for the report: the finding in one sentence, the per-method table, the photos."""
    from modeledit.eval.report import NO_SETTING, write_summary

    n_photos = views["photo"].nunique()
    best = methods.dropna(subset=["test_corrected"]).sort_values("test_corrected", ascending=False)
    lead = best.iloc[0] if len(best) else None
    finding = (f"On {n_photos} photos ({len(views)} views), {lead['method']} from {lead['n_exemplars']} exemplar(s) corrects the most "
               f"errors on other photos ({100 * lead['test_corrected']:.1f}% in the exemplar's style image, "
               f"{100 * lead['heldout_corrected']:.1f}% in held-out ones) at {100 * lead['locality']:.1f}% of clean views changed; "
               "a small sample, read it as an illustration." if lead is not None and lead["test_corrected"] > 0 else
               f"On {n_photos} photos ({len(views)} views) no method corrects errors on other photos within the locality budget; "
               "a small sample, read it as an illustration.")
    def shown(table: pd.DataFrame) -> list[dict[str, Any]]:
        rows = []
        for r in table.to_dict("records"):
            r = dict(r)
            if r["no_setting_within_budget"]:
                for c in ("test_corrected", "heldout_corrected", "locality"):
                    r[c] = NO_SETTING
            rows.append(r)
        return rows

    rows = shown(methods)
    if bound is not None and len(bound):
        top = bound.dropna(subset=["test_corrected"]).sort_values("test_corrected", ascending=False).iloc[0]
        if top["test_corrected"] > 0:
            finding += (f" Chosen on the test photos instead (an upper bound), {top['method']} from {top['n_exemplars']} exemplar(s) "
                        f"corrects {100 * top['test_corrected']:.1f}% ({100 * top['heldout_corrected']:.1f}% in held-out style images).")
    numbers: dict[str, Any] = {"photos": int(n_photos), "views (photos and crops)": int(len(views)),
                               "statistics keys": int(max(keys.values())) if keys else 0}
    for r in methods.to_dict("records"):
        numbers[f"{r['method']} ({r['n_exemplars']} ex.): errors corrected, other photos"] = (
            NO_SETTING if r["no_setting_within_budget"] else float(r["test_corrected"]))
    text = (f"Labels are MobileNetV2's own top-1 on each original (probability at least {cfg.min_confidence}), so every "
            f"original counts as correct; the foreground ('object', GrabCut) is restyled with Magenta ({', '.join(cfg.styles)}). "
            f"Settings are chosen on validation photos among those changing at most {100 * cfg.max_clean_drop:.1f}% of clean views. "
            f"Statistics C: {', '.join(f'{k} {v:,} keys' for k, v in keys.items())} from random crops of the same photos "
            "(ImageNet would be the real choice).")
    cols = ["n_exemplars", "method", "units", "units_changed", "test_corrected", "heldout_corrected", "locality"]
    return write_summary(out, "photos", title or f"Real photos: {cfg.model} edited from one and three exemplar photos", numbers,
                         text=text, tables=[
                             {"title": "errors corrected on other photos per method (pooled over draws and styles; setting chosen on validation)",
                              "columns": cols, "rows": rows, "intervals": {"test_corrected": ["test_low", "test_high"],
                                                                          "heldout_corrected": ["heldout_low", "heldout_high"]},
                              "percent": ["test_corrected", "heldout_corrected", "locality"]},
                             *([{"title": "upper bound, not the protocol: the setting chosen on the test photos themselves (same budget)",
                                 "columns": cols, "rows": shown(bound), "percent": ["test_corrected", "heldout_corrected", "locality"]}]
                               if bound is not None else []),
                             {"title": "the photos and crops in the study", "columns": ["photo", "view", "label", "confidence", "mask_share", "mask"],
                              "rows": views.to_dict("records"), "percent": ["confidence", "mask_share"]}],
                         figures=figures, config=asdict(cfg), finding=finding)


# ---------------------------------------------------------------------------------------------------
# figures


def mask_figure(study: PhotoStudy, path: Path) -> Path:
    """Every photo's full view with its mask (outside dimmed)."""
    from modeledit.eval.demo import prediction_figure

    idx = [i for i, v in enumerate(study.view) if v == "full"]
    images = [study.x[i] * (0.25 + 0.75 * torch.as_tensor(study.masks[i]).float()) for i in idx]
    caps = [f"{study.photo[i]}\n{'GrabCut' if study.mask_score[i] >= 1 else 'ellipse'} {100 * study.masks[i].mean():.0f}%" for i in idx]
    return prediction_figure(images, caps, path, ncols=min(6, len(idx)))


def grid_figure(study: PhotoStudy, summary: pd.DataFrame, path: Path, max_photos: int = 6) -> Path:
    """For the first unit: test photos' full views (original, restyled), and each method's prediction
    with its chosen setting."""
    from modeledit.eval.demo import prediction_figure
    from modeledit.layers import get_site

    cfg = study.cfg
    style, n_ex, seed = cfg.styles[0], cfg.n_exemplars[0], cfg.seeds[0]
    u = study.unit(n_ex, seed)
    ex = study.indices(u["exemplars"], full_only=True)
    idx = study.indices(u["test"], full_only=True)[:max_photos]
    same = cfg.exemplar_style_image
    xt = study.restyled(style, same)
    names = study.lm.class_names
    preds: dict[str, np.ndarray] = {"before": study.pre[style][same][idx]}
    sel = summary[(summary["style"] == style) & (summary["n_exemplars"] == n_ex) & (summary["seed"] == seed)]
    for r in sel.itertuples():
        if not r.changed:
            preds[f"{r.method} (no change)"] = preds["before"]
            continue
        setting = json.loads(r.setting)
        scale = {k: setting.pop(k) for k in ("strength", "alpha") if k in setting}
        site = get_site(study.lm.model, r.site_name)
        edit = method_edit(study.lm, r.method, setting, site, study.x[ex], xt[ex], torch.as_tensor(study.masks[ex]),
                           [int(study.y[i]) for i in ex], stats=study.statistics)
        if scale and next(iter(scale.values())) != 1.0:
            from modeledit.patching import interpolate

            edit = interpolate(study.lm, edit, float(next(iter(scale.values()))), method=r.method)
        with edit.applied(study.lm.model):
            preds[r.method] = study.lm.predict_labels(xt[idx])
    images, caps = [], []
    for k, i in enumerate(idx):
        images += [study.x[i], xt[i]]
        caps.append(f"{study.photo[i]}\n{names[study.y[i]]}")
        caps.append("\n".join([f"{style} object"] + [f"{m}: {names[v[k]]}{' *' if v[k] == study.y[i] else ''}" for m, v in preds.items()]))
    for i in ex:
        images += [study.x[i], xt[i]]
        caps += [f"exemplar: {study.photo[i]}\n{names[study.y[i]]}", f"exemplar x' ({style})"]
    return prediction_figure(images, caps, path, ncols=4)
