"""The one loader of counterfactual dataset folders written by
:func:`~modeledit.counterfactuals.generate_counterfactuals`.

Example:
    >>> from modeledit.counterfactuals import load_counterfactuals
    >>> ds = load_counterfactuals("cf/").subset(concept="person", style="snow")
    >>> rec = ds[0]; rec.original.shape, rec.mask.shape
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from modeledit.counterfactuals.generator import TABLE, write_table
from modeledit.images import to_tensor01

log = logging.getLogger(__name__)


@dataclass
class CounterfactualRecord:
    """One counterfactual: tensors in [0, 1] (original and transformed (3, H, W), mask (H, W)) and its keys."""

    original: torch.Tensor
    transformed: torch.Tensor
    mask: torch.Tensor
    concept: str
    style: str
    style_image_id: int
    label: str | int | None
    image_id: str


class CounterfactualDataset(torch.utils.data.Dataset):
    """A counterfactual dataset folder, read lazily. ``table`` is the metadata (pandas), ``config`` the
    run's config.json; :meth:`subset` filters by concept/style/style image."""

    def __init__(self, root: Path, table: Any, config: dict[str, Any]) -> None:
        self.root = root
        self.table = table.reset_index(drop=True)
        self.config = config

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, i: int) -> CounterfactualRecord:
        from modeledit.images import read_image
        from modeledit.masks import read_mask

        r = self.table.iloc[int(i)]
        label = r["label"]
        label = None if label is None or (isinstance(label, float) and np.isnan(label)) else label
        if isinstance(label, str) and label.lstrip("-").isdigit():
            label = int(label)
        mask = read_mask(self.root / r["mask"]).numpy()  # the one mask rule (the generator writes 0/255)
        return CounterfactualRecord(
            to_tensor01(read_image(self.root / r["original"])), to_tensor01(read_image(self.root / r["transformed"])),
            torch.from_numpy(mask).float(), str(r["concept"]), str(r["style"]), int(r["style_image_id"]), label, str(r["image_id"]),
        )

    def subset(self, concept: str | None = None, style: str | None = None, style_image_id: int | None = None) -> "CounterfactualDataset":
        t = self.table
        if concept is not None:
            t = t[t["concept"] == concept]
        if style is not None:
            t = t[t["style"] == style]
        if style_image_id is not None:
            t = t[t["style_image_id"] == style_image_id]
        return CounterfactualDataset(self.root, t, self.config)

    def batch(self, indices: Sequence[int]) -> dict[str, Any]:
        """Stack records of one size into tensors: original, transformed (N, 3, H, W), mask (N, H, W)."""
        recs = [self[i] for i in indices]
        return {"original": torch.stack([r.original for r in recs]), "transformed": torch.stack([r.transformed for r in recs]),
                "mask": torch.stack([r.mask for r in recs]), "concept": [r.concept for r in recs], "style": [r.style for r in recs],
                "style_image_id": [r.style_image_id for r in recs], "label": [r.label for r in recs]}

    def __iter__(self) -> Iterator[CounterfactualRecord]:
        return (self[i] for i in range(len(self)))


def load_counterfactuals(out_dir: str | os.PathLike) -> CounterfactualDataset:
    """Read a dataset written by :func:`generate_counterfactuals` (the editor's and harnesses' loader).

    Example:
        >>> ds = load_counterfactuals("cf/").subset(concept="person", style="snow")
        >>> rec = ds[0]; rec.original.shape, rec.mask.shape
    """
    import pandas as pd

    root = Path(out_dir)
    if not (root / "config.json").is_file():
        raise FileNotFoundError(f"{str(root)!r} is not a counterfactual dataset (no config.json); generate one first")
    config = json.loads((root / "config.json").read_text())
    table_path = root / TABLE
    if not table_path.is_file():
        log.warning("%s has no %s (the run did not finish); reading the finished images' records", root, TABLE)
        table_path = write_table(root)
    table = pd.read_csv(table_path, dtype={"image_id": str, "label": object})
    return CounterfactualDataset(root, table, config)
