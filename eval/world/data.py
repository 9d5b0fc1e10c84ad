"""The benchmark world as a torch Dataset with train/val/test splits.

Items are ``(image01, label, meta)`` like every dataset the harnesses read: ``image01`` a (3, H, W)
float tensor in [0, 1], ``label`` the class index, ``meta`` the scene's record plus ``masks``
(concept -> HxW bool array of the concepts present). The splits are disjoint ranges of scene indices
of one :class:`~modeledit.eval.world.scene.World`, so an item is rendered on demand and is identical on
every machine.

Example:
    >>> from modeledit.eval.world.data import WorldDataset, collate
    >>> ds = WorldDataset("test", n=100)
    >>> image01, label, meta = ds[0]
    >>> meta["class_name"], sorted(meta["masks"])
    ('truck', ['sand', 'truck', 'wheel', 'window'])
    >>> loader = torch.utils.data.DataLoader(ds, batch_size=32, collate_fn=collate)
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from modeledit.atomic import atomic_path
from modeledit.eval.world.scene import CLASSES, World, WorldConfig

log = logging.getLogger(__name__)

#: first scene index of each split (splits never overlap)
#: each split is its own range of scene indices, so splits never share a scene; "clean" is the large
#: clean-accuracy set of the bench (used for nothing else)
SPLIT_OFFSETS = {"train": 0, "val": 10_000_000, "test": 20_000_000, "clean": 30_000_000}
#: number of items when ``n`` is not given
DEFAULT_SIZES = {"train": 7200, "val": 900, "test": 1800, "clean": 10_000}


class WorldDataset(torch.utils.data.Dataset):
    """Scenes of one split of the world, rendered on demand.

    ``render_kwargs`` are passed to :meth:`World.render` for every item (e.g. ``context="road"`` or
    ``texture_overrides={"road": "snow"}`` to build a counterfactual copy of a split).
    """

    def __init__(self, split: str = "test", n: int | None = None, config: WorldConfig | None = None,
                 with_masks: bool = True, **render_kwargs: Any) -> None:
        if split not in SPLIT_OFFSETS:
            raise KeyError(f"unknown world split {split!r}; valid: {list(SPLIT_OFFSETS)}")
        n = DEFAULT_SIZES[split] if n is None else int(n)
        if not 0 < n <= 10_000_000:
            raise ValueError(f"a world split holds 1 to 10,000,000 items, got n={n}")
        self.split, self.n = split, n
        self.world = World(config)
        self.with_masks = with_masks
        self.render_kwargs = render_kwargs
        self.class_names = list(CLASSES)

    @property
    def config(self) -> WorldConfig:
        return self.world.config

    def __len__(self) -> int:
        return self.n

    def scene_index(self, i: int) -> int:
        if not -self.n <= i < self.n:
            raise IndexError(f"item {i} is out of range for a world split of {self.n} items")
        return SPLIT_OFFSETS[self.split] + (i % self.n)

    def scene(self, i: int, **overrides: Any):
        """The :class:`~modeledit.eval.world.scene.Scene` of item ``i`` (keyword overrides as World.render)."""
        return self.world.render(self.scene_index(i), **{**self.render_kwargs, **overrides})

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, dict[str, Any]]:
        s = self.scene(i)
        meta = dict(s.record, split=self.split, item=int(i) % self.n, world=self.config.to_json())
        if self.with_masks:
            meta["masks"] = s.masks
        x = torch.from_numpy(s.image).permute(2, 0, 1).float().div(255.0)
        return x, s.label, meta

    @property
    def labels(self) -> list[int]:
        """Every item's class without rendering it (the world draws the class from the index; a ``label`` render
        override forces it): ``labels[i] == self[i][1]``."""
        forced = self.render_kwargs.get("label")
        if forced is not None:
            return [CLASSES.index(forced) if isinstance(forced, str) else int(forced)] * self.n
        return [self.world.label_of(self.scene_index(i)) for i in range(self.n)]

    @property
    def identity(self) -> str:
        """A string that names exactly these items (config, split, size, overrides)."""
        return f"world:{self.split}:{self.n}:{self.config.to_json()}:{sorted(self.render_kwargs.items())!r}"


def collate(items: Sequence[tuple[torch.Tensor, int, dict[str, Any]]]) -> tuple[torch.Tensor, torch.Tensor, list[dict[str, Any]]]:
    """DataLoader ``collate_fn`` keeping metas (with their masks) as a list."""
    return torch.stack([it[0] for it in items]), torch.tensor([int(it[1]) for it in items]), [it[2] for it in items]


def cache_dir() -> Path:
    """Where rendered tensors are cached: ``$MODELEDIT_CACHE/world`` or ``~/.cache/modeledit/world``."""
    root = os.environ.get("MODELEDIT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "modeledit")
    return Path(root) / "world"


def render_tensors(dataset: WorldDataset, cache: bool = True, progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """All images of ``dataset`` as one uint8 tensor (N, 3, H, W) and their labels (N,), cached on disk.

    Example:
        >>> x, y = render_tensors(WorldDataset("train", n=1000))
    """
    key = hashlib.sha1(dataset.identity.encode()).hexdigest()[:16]
    path = cache_dir() / f"{dataset.split}-{dataset.n}-{key}.pt"
    if cache and path.is_file():
        blob = torch.load(str(path), weights_only=True)
        return blob["x"], blob["y"]
    from modeledit.progress import tqdm

    size = dataset.config.image_size
    x = torch.empty((dataset.n, 3, size, size), dtype=torch.uint8)
    y = torch.empty(dataset.n, dtype=torch.long)
    for i in tqdm(range(dataset.n), desc=f"render world {dataset.split}", disable=not progress, mininterval=2):
        s = dataset.scene(i)
        x[i] = torch.from_numpy(np.ascontiguousarray(s.image.transpose(2, 0, 1)))
        y[i] = s.label
    if cache:
        with atomic_path(path) as tmp:
            torch.save({"x": x, "y": y}, str(tmp))
        log.info("cached %d world images at %s", dataset.n, path)
    return x, y
