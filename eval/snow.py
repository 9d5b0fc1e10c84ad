"""Snow adaptation from one synthetic exemplar (thesis 6.3.3, figure 6-10a).

One image of a class that is *not* evaluated has a snow texture pasted onto its road (the paper's
single snowy-road exemplar was made this way); the model is edited from that pair alone and measured on
vehicles over snow, against local and global fine-tuning on the same exemplar.

* ``world`` mode: the exemplar is a world scene of ``exemplar_class`` forced onto a road, snow pasted
  with the texture stylizer and the style bank's "snow"; the evaluation renders the world's vehicles
  (the road's home classes) with their road re-rendered in the world's own snow texture (another
  texture than the exemplar's), validation from the val split, test from the test split.
* ``photos`` mode: a folder of the user's real photos (an ImageFolder tree named by the model's classes)
  is split 30/70 into validation and test; the exemplar is a user image, its road mask and its class.

Example:
    >>> table, summary = run_snow(SnowConfig(model="world_vgg"), "results/snow")
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from modeledit.eval.datasets import DatasetSpec, check_stats_disjoint, images_and_labels
from modeledit.eval.methods import MethodGrid
from modeledit.eval.oneshot import Exemplar, OneShotStudy, run_study, summarize_oneshot
from modeledit.eval.results import ResultStore

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class SnowConfig(MethodGrid):
    model: str = "world_vgg"
    weights: str | None = None
    mode: str = "world"
    exemplar_class: str = "cow"          # world mode: a class that is not evaluated
    concept: str = "road"
    style: str = "snow"
    style_image: int = 0
    stylizer: str = "texture"
    n_val: int = 300
    n_test: int = 900
    clean: str = "world:val:600"
    stats_dataset: str = "world:train:1500"   # images for the key statistics C (disjoint from every evaluation set)
    photos: str | None = None            # photos mode: ImageFolder tree of real photos
    exemplar: str | None = None          # photos mode: exemplar image file
    exemplar_mask: str | None = None     # photos mode: road mask (PNG, non-zero = road)
    seed: int = 0


def _paste(x: torch.Tensor, mask: np.ndarray, cfg: SnowConfig) -> torch.Tensor:
    from modeledit.counterfactuals import restyle
    from modeledit.styles import get_stylizer

    return restyle(x[None], torch.as_tensor(mask)[None], cfg.style, cfg.style_image, stylizer=get_stylizer(cfg.stylizer))[0]


def _world_study(cfg: SnowConfig, lm: Any) -> tuple[OneShotStudy, list[torch.Tensor]]:
    from modeledit.eval.datasets import load_dataset
    from modeledit.eval.world.scene import HOMES
    from modeledit.eval.world.data import WorldDataset

    names = lm.class_names
    vehicles = [names.index(c) for c in HOMES[cfg.concept]]
    if cfg.exemplar_class not in names or names.index(cfg.exemplar_class) in vehicles:
        raise ValueError(f"the exemplar class must be a world class outside {list(HOMES[cfg.concept])}, got {cfg.exemplar_class!r}")
    ex_label = names.index(cfg.exemplar_class)
    rng = np.random.default_rng(cfg.seed)
    val_ds, test_ds = WorldDataset("val"), WorldDataset("test")
    # validation scenes (and the exemplar's) come after the clean set in the val split: disjoint from it
    clean = DatasetSpec.parse(cfg.clean)
    val_start = clean.size if clean.kind == "world" and clean.split == "val" else 0
    if val_start >= len(val_ds):
        raise ValueError(f"--clean {cfg.clean!r} takes the whole val split; leave some of it for validation (e.g. world:val:600)")
    scene = val_ds.scene(val_start + int(rng.integers(len(val_ds) - val_start)), label=cfg.exemplar_class, context=cfg.concept, text_tag=False)
    x = torch.from_numpy(scene.image).permute(2, 0, 1).float() / 255
    mask = scene.mask(cfg.concept)
    x_snow = _paste(x, mask, cfg)

    def snowy(ds: WorldDataset, n: int, start: int = 0) -> tuple[torch.Tensor, np.ndarray]:
        xs, ys = [], []
        for i in range(start, len(ds)):
            if len(xs) == n:
                break
            cls = int(ds.world.label_of(ds.scene_index(i)))
            if cls in vehicles:
                s = ds.scene(i, context=cfg.concept, texture_overrides={cfg.concept: cfg.style}, text_tag=False)
                xs.append(torch.from_numpy(s.image).permute(2, 0, 1).float() / 255)
                ys.append(cls)
        return torch.stack(xs), np.array(ys)

    val = snowy(val_ds, cfg.n_val, val_start)
    if len(val[1]) < cfg.n_val:
        log.warning("only %d snowy vehicle scenes for validation after the clean set (asked for %d)", len(val[1]), cfg.n_val)
    test = snowy(test_ds, cfg.n_test)
    clean_ds = load_dataset(cfg.clean, class_names=names)
    clean = images_and_labels(clean_ds)
    vehicles_clean = np.isin(clean[1], vehicles)
    groups = {"val": val, "snowy_vehicles": test, "vehicles_clean": (clean[0][vehicles_clean], clean[1][vehicles_clean]),
              "to_exemplar_class": (test[0], np.full(len(test[1]), ex_label))}
    study = OneShotStudy(lm, Exemplar(x, x_snow, torch.as_tensor(mask), ex_label), groups, clean, **_stats(cfg, lm), grid=cfg)
    return study, [x, x_snow, *list(test[0][:4])]


def _stats(cfg: SnowConfig, lm: Any) -> dict[str, Any]:
    """OneShotStudy's statistics arguments: the stats dataset (read only if C is not cached) and its key."""
    from modeledit.eval.datasets import dataset_key, load_dataset

    ds = load_dataset(cfg.stats_dataset, class_names=lm.class_names, size=lm.input_size)
    return {"stats_images": ds, "stats_id": dataset_key(cfg.stats_dataset, ds)}


def _photos_study(cfg: SnowConfig, lm: Any) -> tuple[OneShotStudy, list[torch.Tensor]]:
    from modeledit.eval.datasets import FolderDataset, load_dataset
    from modeledit.images import read_image, to_tensor01
    from modeledit.masks import read_mask

    if not (cfg.photos and cfg.exemplar and cfg.exemplar_mask):
        raise ValueError("photos mode needs --photos DIR, --exemplar IMAGE and --exemplar-mask MASK (and --exemplar-class)")
    if cfg.exemplar_class not in lm.class_names:
        raise KeyError(f"exemplar class {cfg.exemplar_class!r} is not a class of {cfg.model}")
    size = lm.input_size
    photos = FolderDataset(cfg.photos, lm.class_names, size=size)
    labelled = [i for i in range(len(photos)) if photos.labels[i] >= 0]
    if len(labelled) < 4:
        raise ValueError(f"{cfg.photos} needs at least 4 photos in folders named by the model's classes; found {len(labelled)}")
    rng = np.random.default_rng(cfg.seed)
    rng.shuffle(labelled)
    k = max(1, int(round(0.3 * len(labelled))))
    xs = torch.stack([photos[i][0] for i in labelled])
    ys = np.array([photos.labels[i] for i in labelled])
    x = to_tensor01(read_image(cfg.exemplar).resize((size, size)))
    mask = read_mask(cfg.exemplar_mask, size=(size, size), resize=True).numpy()  # the one mask rule
    if not mask.any():
        raise ValueError(f"the exemplar mask {cfg.exemplar_mask!r} is empty; mark the road's pixels")
    x_snow = _paste(x, mask, cfg)
    clean_ds = load_dataset(cfg.clean, class_names=lm.class_names, size=size)
    clean = images_and_labels(clean_ds)
    groups = {"val": (xs[:k], ys[:k]), "photos": (xs[k:], ys[k:])}
    ex = Exemplar(x, x_snow, torch.as_tensor(mask), lm.class_names.index(cfg.exemplar_class))
    return OneShotStudy(lm, ex, groups, clean, **_stats(cfg, lm), grid=cfg), [x, x_snow, *list(xs[k:][:4])]


STUDIES = {"world": _world_study, "photos": _photos_study}


def build_study(cfg: SnowConfig) -> tuple[OneShotStudy, list[torch.Tensor]]:
    """The study of ``cfg``'s mode on its model (+ example images)."""
    from modeledit.models import load_model

    return STUDIES[cfg.mode](cfg, load_model(cfg.model, weights=cfg.weights))


def run_snow(cfg: SnowConfig, out_dir: str | Path, executor: str = "local", **executor_kwargs: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every (method, site, setting) cell not yet in ``out_dir``, through ``executor`` (local or ray, with
    ``address``/``workers``); returns (cells, summary)."""
    from modeledit.eval.validate import check_names

    if cfg.mode not in STUDIES:
        raise KeyError(f"unknown snow mode {cfg.mode!r}; valid: {sorted(STUDIES)}")
    if cfg.mode == "photos":
        if not (cfg.photos and cfg.exemplar and cfg.exemplar_mask):
            raise ValueError("photos mode needs --photos DIR, --exemplar IMAGE and --exemplar-mask MASK (and --exemplar-class)")
        for flag, path in (("--exemplar", cfg.exemplar), ("--exemplar-mask", cfg.exemplar_mask)):
            if not Path(path).is_file():
                raise FileNotFoundError(f"{flag} {path!r} does not exist")
    evaluation = ({"--clean": cfg.clean, "the validation scenes": "world:val", "the test scenes": "world:test"} if cfg.mode == "world"
                  else {"--clean": cfg.clean, "--photos": cfg.photos})
    lm = check_names(values=cfg, model=cfg.model, weights=cfg.weights, sites=cfg.sites, styles=[cfg.style], stylizer=cfg.stylizer, methods=cfg.methods,
                datasets={"--clean": cfg.clean, "--stats-dataset": cfg.stats_dataset})
    check_stats_disjoint(cfg.stats_dataset, evaluation)
    store = ResultStore(out_dir, config=asdict(cfg), harness="snow", model=lm)
    table, images = run_study(store, cfg, build_study, executor, **executor_kwargs)
    if images is not None:
        from modeledit.eval.plots import save_examples

        save_examples(images, Path(out_dir) / "examples.png")
    return table, summarize_oneshot(table, cfg.max_clean_drop)
