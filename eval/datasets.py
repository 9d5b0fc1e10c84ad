"""Datasets the harnesses read: items are ``(image01, label, meta)``.

``image01`` is a (3, H, W) float tensor in [0, 1], ``label`` an int class index of the model under test
(or -1 when unknown), ``meta`` a dict (the world's record for world images; the file path for folders).
Datasets are looked up by a spec string through a registry:

* ``world:SPLIT[:N]`` - the benchmark world (``SPLIT`` in train/val/test), the first N items;
* ``folder:PATH`` or a plain path - an image folder; an ImageFolder tree (one sub-folder per class, the
  folder named like one of the model's classes or its index, e.g. ``n01440764`` needs ``--classes``)
  gives labels, a flat folder gives label -1.

Example:
    >>> ds = load_dataset("world:test:200")
    >>> image01, label, meta = ds[0]
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


class FolderDataset(torch.utils.data.Dataset):
    """Images under ``root``; class sub-folders give labels when they name one of ``class_names``."""

    def __init__(self, root: str | os.PathLike, class_names: Sequence[str] | None = None, size: int | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder {str(self.root)!r} does not exist")
        self.files = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
        if not self.files:
            raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {str(self.root)!r}")
        self.class_names = list(class_names) if class_names else []
        lookup = {n.lower(): i for i, n in enumerate(self.class_names)}
        self.labels = []
        for f in self.files:
            folder = f.parent.name if f.parent != self.root else ""
            self.labels.append(lookup.get(folder.lower(), int(folder) if folder.isdigit() else -1))
        self.size = size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, dict[str, Any]]:
        from modeledit.images import read_image, to_tensor01

        im = read_image(self.files[i])
        if self.size:
            im = im.resize((self.size, self.size))
        return to_tensor01(im), self.labels[i], {"path": str(self.files[i]), "index": i}

    def identity(self) -> str:
        return f"folder:{self.root.resolve()}:{len(self.files)}"


def _world(spec: str, class_names: Sequence[str] | None = None, size: int | None = None) -> torch.utils.data.Dataset:
    from modeledit.eval.world.data import WorldDataset

    parts = spec.split(":")
    split = parts[1] if len(parts) > 1 and parts[1] else "test"
    n = int(parts[2]) if len(parts) > 2 and parts[2] else None
    return WorldDataset(split=split, n=n)


def _folder(spec: str, class_names: Sequence[str] | None = None, size: int | None = None) -> torch.utils.data.Dataset:
    return FolderDataset(spec.split(":", 1)[1] if spec.startswith("folder:") else spec, class_names, size)


DATASETS: dict[str, Callable[..., torch.utils.data.Dataset]] = {"world": _world, "folder": _folder}


def load_dataset(spec: str, class_names: Sequence[str] | None = None, size: int | None = None) -> torch.utils.data.Dataset:
    """A dataset from its spec string (see the module docstring)."""
    kind = spec.split(":", 1)[0] if ":" in spec and not os.path.isdir(spec) else "folder"
    if kind not in DATASETS:
        raise KeyError(f"unknown dataset kind {kind!r} in {spec!r}; use one of {sorted(DATASETS)} or a folder path")
    return DATASETS[kind](spec, class_names=class_names, size=size)


def iterate_batches(dataset: torch.utils.data.Dataset, indices: Sequence[int], batch_size: int):
    """Yield (indices, images (B,3,H,W), labels (B,), metas) over ``indices`` of ``dataset``."""
    for start in range(0, len(indices), batch_size):
        chunk = list(indices[start:start + batch_size])
        items = [dataset[i] for i in chunk]
        yield chunk, torch.stack([it[0] for it in items]), torch.tensor([int(it[1]) for it in items]), [it[2] for it in items]
