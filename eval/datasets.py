"""Datasets the harnesses read: items are ``(image01, label, meta)``.

``image01`` is a (3, H, W) float tensor in [0, 1], ``label`` an int class index of the model under test
(or -1 when unknown), ``meta`` a dict (the world's record for world images; the file path for folders).
Datasets are looked up by a spec string through a registry:

* ``world:SPLIT[:N]`` - the benchmark world (``SPLIT`` in train/val/test), the first N items;
* ``folder:PATH`` or a plain path - an image folder; an ImageFolder tree (one sub-folder per class, the
  folder named like one of the model's classes or its index, e.g. ``n01440764`` needs ``--classes``)
  gives labels, a flat folder gives label -1.

Any of them can take its labels from the model under test instead (:func:`with_labels`, ``--labels
predicted``): the model's own top-1 on each original is its label, optionally only where the model is
confident (``min_confidence``; the other images are left out). Every original then counts as correct by
definition, so the protocol's metric (6.3) means on unlabelled photos exactly what it means on a labelled
set: errors the transformation causes, among images the model gets "right".

Example:
    >>> ds = load_dataset("world:test:200")
    >>> image01, label, meta = ds[0]
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, Mapping, Sequence

import numpy as np
import torch

from modeledit.image_folder import IMAGE_SUFFIXES, ImageFolder  # noqa: F401 (re-exported)



class FolderDataset(ImageFolder):
    """The package's :class:`~modeledit.image_folder.ImageFolder` with images stretched to ``size`` (no
    crop, so masks stay aligned); ``size=None`` keeps each image's size."""

    def __init__(self, root: str | os.PathLike, class_names: Sequence[str] | None = None, size: int | None = None) -> None:
        super().__init__(root, class_names, size, fit="stretch")


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset spec string, parsed here and nowhere else: ``world:SPLIT[:N]`` (the first N scenes of a world
    split; ``n`` None: the split's default size), ``folder:PATH`` or a folder path, or ``KIND:...`` of another
    kind in :data:`DATASETS`.

    Example:
        >>> DatasetSpec.parse("world:test:1800")
        DatasetSpec(text='world:test:1800', kind='world', split='test', n=1800, path=None)
    """

    text: str
    kind: str
    split: str | None = None
    n: int | None = None
    path: str | None = None

    @classmethod
    def parse(cls, spec: "str | DatasetSpec") -> "DatasetSpec":
        """ValueError for a malformed world spec (N not a positive whole number, too many parts)."""
        if isinstance(spec, DatasetSpec):
            return spec
        kind = spec.split(":", 1)[0] if ":" in spec and not os.path.isdir(spec) else "folder"
        if kind == "world":
            parts = spec.split(":")
            if len(parts) > 3 or (len(parts) > 2 and parts[2] and not (parts[2].isdigit() and int(parts[2]) >= 1)):
                raise ValueError(f"dataset {spec!r}: write world:SPLIT[:N] with N a positive whole number of images (e.g. world:test:300)")
            return cls(spec, "world", split=parts[1] if len(parts) > 1 and parts[1] else "test",
                       n=int(parts[2]) if len(parts) > 2 and parts[2] else None)
        if kind == "folder":
            return cls(spec, "folder", path=spec.split(":", 1)[1] if spec.startswith("folder:") else spec)
        return cls(spec, kind)

    @property
    def size(self) -> int | None:
        """How many world scenes it takes (the split's default when N is not given); None for other kinds."""
        if self.kind != "world":
            return None
        from modeledit.eval.world.data import DEFAULT_SIZES

        return self.n if self.n is not None else DEFAULT_SIZES.get(self.split, 0)

    def items(self) -> set[Any]:
        """What its images are, comparable across specs: (world, split, index) per scene, a folder's resolved files
        (empty for other kinds: they are not compared)."""
        if self.kind == "world":
            return {("world", self.split, i) for i in range(self.size or 0)}
        if self.kind == "folder":
            root = Path(self.path)
            return {p.resolve() for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES} if root.is_dir() else set()
        return set()


def check_disjoint(splits: Mapping[str, Iterable[Hashable]]) -> None:
    """The one disjointness check: ValueError naming every pair of splits that share an item (image indices of
    selection, val, test, clean, statistics and exemplars; or a dataset spec's :meth:`DatasetSpec.items`).

    Example:
        >>> check_disjoint({"val": [1, 2], "test": [3], "exemplars": [4]})
        >>> check_disjoint({"val": [1, 2], "test": [2, 3]})
        Traceback (most recent call last):
        ...
        ValueError: splits overlap: val & test share 1 item (e.g. 2); every split must use its own images
    """
    sets = {name: set(items) for name, items in splits.items()}
    names = list(sets)
    clashes = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            common = sets[a] & sets[b]
            if common:
                example = sorted(common, key=repr)[:3]
                clashes.append(f"{a} & {b} share {len(common)} item{'s' if len(common) > 1 else ''} "
                               f"(e.g. {', '.join(map(str, example))})")
    if clashes:
        raise ValueError(f"splits overlap: {'; '.join(clashes)}; every split must use its own images")


def check_stats_disjoint(stats_spec: str, evaluation: Mapping[str, str | None]) -> None:
    """Refuse (ValueError) statistics computed on images that an evaluation set also uses (:func:`check_disjoint`
    on the specs' items: world specs take the first N scenes of a split, folders their files).

    Example:
        >>> check_stats_disjoint("world:train:1500", {"--dataset": "world:test", "--clean": "world:val:600"})
    """
    stats = DatasetSpec.parse(stats_spec).items()
    for flag, spec in evaluation.items():
        if spec is None:
            continue
        try:
            check_disjoint({"statistics": stats, flag: DatasetSpec.parse(spec).items()})
        except ValueError:
            raise ValueError(f"the statistics dataset {stats_spec!r} shares images with {flag} {spec!r}; statistics must come "
                             "from images disjoint from every evaluation set (e.g. --stats-dataset world:train:1500)") from None


def dataset_key(spec: str, dataset: Any) -> str:
    """The cache key of a dataset: its spec and its ``identity`` (content for folders, config for the world).

    Example:
        >>> dataset_key("world:train:1500", load_dataset("world:train:1500"))[:22]
        'world:train:1500|world'
    """
    ident = getattr(dataset, "identity", None)
    if ident is None or callable(ident):
        raise TypeError(f"{type(dataset).__name__} has no identity property; datasets name their content with one")
    return f"{spec}|{ident}"


def _world(spec: str, class_names: Sequence[str] | None = None, size: int | None = None) -> torch.utils.data.Dataset:
    from modeledit.eval.world.data import WorldDataset

    ds = DatasetSpec.parse(spec)
    return WorldDataset(split=ds.split, n=ds.n)


def _folder(spec: str, class_names: Sequence[str] | None = None, size: int | None = None) -> torch.utils.data.Dataset:
    return FolderDataset(DatasetSpec.parse(spec).path, class_names, size)


DATASETS: dict[str, Callable[..., torch.utils.data.Dataset]] = {"world": _world, "folder": _folder}


def load_dataset(spec: str, class_names: Sequence[str] | None = None, size: int | None = None) -> torch.utils.data.Dataset:
    """A dataset from its spec string (see the module docstring)."""
    kind = DatasetSpec.parse(spec).kind
    if kind not in DATASETS:
        raise KeyError(f"unknown dataset kind {kind!r} in {spec!r}; use one of {sorted(DATASETS)} or a folder path")
    return DATASETS[kind](spec, class_names=class_names, size=size)


#: where labels come from: the dataset's own ("given") or the model's top-1 on each original ("predicted")
LABEL_SOURCES = ("given", "predicted")


class PredictedLabels(torch.utils.data.Dataset):
    """``dataset`` labelled by ``lm``'s own top-1 prediction on each original; images whose top-1
    probability is below ``min_confidence`` are left out.

    Items are ``(image01, predicted label, meta)`` (meta as the underlying dataset gives it);
    :attr:`indices` maps items to the underlying dataset, :attr:`given` keeps its labels (-1: none),
    :attr:`confidence` the top-1 probabilities, and :meth:`record` lists all of it for a manifest.

    Example:
        >>> ds = PredictedLabels(load_dataset("photos/", size=224), load_model("mobilenet_v2"), min_confidence=0.3)
        >>> x, label, meta = ds[0]        # label: the model's own top-1 on x
    """

    def __init__(self, dataset: torch.utils.data.Dataset, lm: Any, min_confidence: float = 0.0, batch_size: int = 64) -> None:
        if not 0.0 <= float(min_confidence) <= 1.0:
            raise ValueError(f"min_confidence is a probability between 0 and 1, got {min_confidence}")
        self.dataset, self.min_confidence = dataset, float(min_confidence)
        self.class_names = list(getattr(lm, "class_names", []) or [])
        self.model_name = str(getattr(lm, "name", type(lm).__name__))
        labels, probs, given = [], [], []
        all_idx = list(range(len(dataset)))
        for _, x, y, _ in iterate_batches(dataset, all_idx, batch_size):
            p = lm.predict(x).softmax(-1).cpu()
            conf, top = p.max(-1)
            labels += top.tolist()
            probs += conf.tolist()
            given += y.tolist()
        keep = [i for i in all_idx if probs[i] >= self.min_confidence]
        if not keep:
            best = max(probs) if probs else float("nan")
            raise ValueError(f"no image has a top-1 probability of at least {self.min_confidence} (the highest is {best:.3f}); "
                             "lower --min-confidence")
        self.indices = keep
        self.labels = [int(labels[i]) for i in keep]
        self.confidence = [float(probs[i]) for i in keep]
        self.given = [int(given[i]) for i in keep]
        self.n_dropped = len(all_idx) - len(keep)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, Any]:
        x, _, meta = self.dataset[self.indices[i]]
        return x, self.labels[i], meta

    @property
    def identity(self) -> str:
        """The underlying dataset's identity, the model and every kept item's predicted label."""
        import hashlib

        base = getattr(self.dataset, "identity", type(self.dataset).__name__)
        blob = f"{base}|predicted:{self.model_name}:{self.min_confidence}:{self.indices}:{self.labels}"
        return hashlib.sha256(blob.encode()).hexdigest()

    def record(self) -> dict[str, Any]:
        """What a manifest records: the rule, how many images were left out, and every kept image's label."""
        names = self.class_names
        items = []
        for k, (i, y, c) in enumerate(zip(self.indices, self.labels, self.confidence)):
            item: dict[str, Any] = {"index": int(i), "label": names[y] if y < len(names) else y, "confidence": round(c, 4)}
            files = getattr(self.dataset, "files", None)
            if files is not None:
                item["file"] = str(files[i])
            items.append(item)
        return {"labels": "predicted", "model": self.model_name, "min_confidence": self.min_confidence,
                "n_kept": len(self.indices), "n_dropped": self.n_dropped, "items": items}


def with_labels(dataset: torch.utils.data.Dataset, lm: Any, labels: str = "given", min_confidence: float = 0.0,
                batch_size: int = 64) -> torch.utils.data.Dataset:
    """``dataset`` as it is (``labels="given"``) or labelled by ``lm``'s own predictions (``"predicted"``,
    see :class:`PredictedLabels`).

    Example:
        >>> ds = with_labels(load_dataset("photos/", size=224), lm, "predicted", min_confidence=0.3)
    """
    if labels not in LABEL_SOURCES:
        raise ValueError(f"unknown label source {labels!r}; choose from {LABEL_SOURCES}")
    if labels == "given":
        if min_confidence:
            raise ValueError("--min-confidence only applies with --labels predicted")
        return dataset
    return PredictedLabels(dataset, lm, min_confidence, batch_size)


def label_record(dataset: torch.utils.data.Dataset) -> dict[str, Any]:
    """The labels' provenance for a manifest: ``{"labels": "given"}`` or a :class:`PredictedLabels` record."""
    rec = getattr(dataset, "record", None)
    return rec() if callable(rec) else {"labels": "given"}


def collate_items(items: Sequence[tuple]) -> tuple[torch.Tensor, torch.Tensor, list]:
    """(images (B,3,H,W), labels (B,), metas) of dataset items (image, label, meta)."""
    x = torch.stack([it[0] for it in items])
    return x, torch.tensor([int(it[1]) for it in items], device=x.device), [it[2] for it in items]


def labels_of(dataset: torch.utils.data.Dataset) -> np.ndarray:
    """Every item's label: the dataset's own ``labels`` where it keeps them (folders, the world, predicted labels),
    without reading or rendering a single image; else read item by item."""
    labels = getattr(dataset, "labels", None)
    if labels is None:
        labels = [int(dataset[i][1]) for i in range(len(dataset))]
    return np.asarray(labels, dtype=int)


def images_and_labels(dataset: torch.utils.data.Dataset) -> tuple[torch.Tensor, np.ndarray]:
    """Every item of ``dataset`` read once: (images (n, 3, H, W), labels (n,)). (Reading ``ds[i][0]`` and then
    ``ds[i][1]`` renders a world scene twice.)"""
    x, y, _ = collate_items([dataset[i] for i in range(len(dataset))])
    return x, y.cpu().numpy()


def iterate_batches(dataset: torch.utils.data.Dataset, indices: Sequence[int], batch_size: int):
    """Yield (indices, images (B,3,H,W), labels (B,), metas) over ``indices`` of ``dataset``.

    Inside a command with ``--workers N`` or a CUDA ``--device`` (:func:`modeledit.device.using`) the items load
    through a DataLoader with N worker processes and, for CUDA, pinned memory; the batches are the same."""
    from modeledit.device import current_runtime

    rt = current_runtime()
    if rt is not None and (rt.workers or rt.cuda):
        loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, list(indices)), batch_size=batch_size, shuffle=False,
                                             collate_fn=collate_items, **rt.loader())
        start = 0
        for x, y, metas in loader:
            yield list(indices[start:start + len(x)]), x, y, metas
            start += len(x)
        return
    for start in range(0, len(indices), batch_size):
        chunk = list(indices[start:start + batch_size])
        yield (chunk, *collate_items([dataset[i] for i in chunk]))
