"""Per-class concept sensitivity (thesis 3.2.3): how much does restyling only one concept hurt each class?

For each concept x style, on the images that contain the concept (segmenter + the paper's presence rule),
only the concept's region is restyled and the model re-classifies; per class we report the accuracy on
the originals, on the counterfactuals, the drop and its 95% bootstrap interval, and how often the class's
images contain the concept. Each concept x style is one resumable cell of a :class:`ResultStore`.

Example:
    >>> from modeledit import load_model
    >>> from modeledit.eval.datasets import load_dataset
    >>> cfg = SensitivityConfig(concepts=["road"], styles=["snow"])
    >>> table = concept_sensitivity(load_model("world_vgg"), load_dataset("world:test:300"), cfg, out_dir="results/sens")
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from modeledit.eval.datasets import PredictedLabels, iterate_batches, label_record, labels_of, with_labels
from modeledit.eval.metrics import accuracy_drop_ci
from modeledit.eval.results import ResultStore
from modeledit.models import LoadedModel
from modeledit.progress import tqdm
from modeledit.config import JsonConfig

log = logging.getLogger(__name__)


@dataclass
class SensitivityConfig(JsonConfig):
    concepts: list[str]
    styles: list[str]
    style_image: int = 0
    segmenter: str = "oracle"
    stylizer: str = "magenta"
    batch_size: int = 32
    n_boot: int = 1000
    seed: int = 0
    min_pixels_at_224: int = 100
    segmenter_kwargs: dict[str, Any] = field(default_factory=dict)
    #: "given" (the dataset's labels) or "predicted" (the model's own top-1 on each original, kept where its
    #: probability is at least ``min_confidence``): see :func:`modeledit.eval.datasets.with_labels`
    labels: str = "given"
    min_confidence: float = 0.0
    #: the dataset's spec (e.g. ``world:val:900``), recorded so a later reader can check that pair selection
    #: ran on images disjoint from the bench's (``None``: not recorded, as in runs before it existed)
    dataset: str | None = None

def concept_masks(dataset: torch.utils.data.Dataset, segmenter: Any, concepts: Sequence[str],
                  min_pixels_at_224: int = 100, progress: bool = True) -> dict[str, dict[int, np.ndarray]]:
    """For each concept, the images where it is present (paper's rule) and its union mask there."""
    from modeledit.images import to_uint8
    from modeledit.segmenters import concept_present

    found: dict[str, dict[int, np.ndarray]] = {c: {} for c in concepts}
    for i in tqdm(range(len(dataset)), desc="segment", disable=not progress, unit="img"):
        image01, _, meta = dataset[i]
        for inst in segmenter.segment(to_uint8(image01), list(concepts), meta):
            if inst.concept in found:
                prev = found[inst.concept].get(i)
                found[inst.concept][i] = inst.mask if prev is None else (prev | inst.mask)
    return {c: {i: m for i, m in d.items() if concept_present(m, min_pixels_at_224)} for c, d in found.items()}


@torch.no_grad()
def predictions(lm: LoadedModel, dataset: torch.utils.data.Dataset, indices: Sequence[int], batch_size: int = 64) -> np.ndarray:
    """Predicted class index for each of ``indices``."""
    parts = [lm.predict_labels(x, batch_size) for _, x, _, _ in iterate_batches(dataset, indices, batch_size)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def concept_sensitivity(lm: LoadedModel, dataset: torch.utils.data.Dataset, config: SensitivityConfig,
                        out_dir: str | None = None, segmenter: Any = None, stylizer: Any = None,
                        progress: bool = True) -> pd.DataFrame:
    """The tidy per-class sensitivity table (one row per concept x style x class); see the module docstring."""
    from modeledit.segmenters import get_segmenter
    from modeledit.styles import get_stylizer
    from modeledit.segmenters.base import resolve_concepts
    from modeledit.styles.bank import get_style

    # every name is checked before any work (a typo fails in a second and leaves nothing behind)
    for s in config.styles:
        st = get_style(s)
        if st.kind == "images" and not 0 <= config.style_image < len(st):
            raise ValueError(f"style {st.name!r} has images 0..{len(st) - 1}; style image {config.style_image} does not exist")
    segmenter = segmenter or get_segmenter(config.segmenter, **config.segmenter_kwargs)
    config = dataclasses.replace(config, concepts=resolve_concepts(segmenter, config.concepts))
    stylizer = stylizer or get_stylizer(config.stylizer)
    if not isinstance(dataset, PredictedLabels):
        dataset = with_labels(dataset, lm, config.labels, config.min_confidence, config.batch_size)
    n = len(dataset)
    labels = labels_of(dataset)
    if (labels < 0).all():
        raise ValueError("the dataset has no class labels; pass an ImageFolder tree, or take the model's own predictions "
                         "as labels (--labels predicted)")
    clean_pred = predictions(lm, dataset, range(n), config.batch_size)
    masks = concept_masks(dataset, segmenter, config.concepts, config.min_pixels_at_224, progress)
    manifest = {"model": lm.name, "dataset_size": n, **asdict(config)}
    if isinstance(dataset, PredictedLabels):
        manifest["label_source"] = label_record(dataset)
    else:  # the default leaves the manifest as before (older runs resume)
        manifest.pop("labels")
        manifest.pop("min_confidence")
    if manifest.get("dataset") is None:   # older runs resume
        manifest.pop("dataset", None)
    store = ResultStore(out_dir, config=manifest, harness="sensitivity", model=lm) if out_dir else None
    rows: list[dict[str, Any]] = []
    with (store.discarded_if_empty() if store is not None else contextlib.nullcontext()):
        _cells(lm, dataset, config, store, masks, labels, clean_pred, stylizer, progress, rows)
    return pd.DataFrame(rows)


def _cells(lm: LoadedModel, dataset: Any, config: SensitivityConfig, store: ResultStore | None, masks: dict, labels: np.ndarray,
           clean_pred: np.ndarray, stylizer: Any, progress: bool, rows: list[dict[str, Any]]) -> None:
    """Each concept x style is one unit: finished ones are written at once; one interrupted is discarded."""
    from modeledit.counterfactuals import restyle

    for concept in config.concepts:
        idx = sorted(masks[concept])
        for style in config.styles:
            params = {"concept": concept, "style": style, "style_image": config.style_image}
            if store is not None and store.done(params):
                rows += store.read(params)["rows"]
                continue
            trans_pred = np.zeros(len(idx), dtype=int)
            for start in tqdm(range(0, len(idx), config.batch_size), desc=f"{concept}/{style}", disable=not progress, unit="batch"):
                chunk = idx[start:start + config.batch_size]
                x = torch.stack([dataset[i][0] for i in chunk])
                m = np.stack([masks[concept][i] for i in chunk])
                xt = restyle(x, m, style, config.style_image, stylizer)
                trans_pred[start:start + len(chunk)] = lm.predict_labels(xt, config.batch_size)
            cell = _per_class_rows(lm, concept, style, config, labels, clean_pred, idx, trans_pred)
            if store is not None:
                store.write(params, cell, per_image={"index": idx, "pred": trans_pred.tolist()})
            rows += cell


def _per_class_rows(lm: LoadedModel, concept: str, style: str, config: SensitivityConfig, labels: np.ndarray,
                    clean_pred: np.ndarray, idx: Sequence[int], trans_pred: np.ndarray) -> list[dict[str, Any]]:
    rows = []
    idx_arr = np.asarray(idx, dtype=int)
    for c in sorted(set(labels.tolist()) - {-1}):
        n_class = int((labels == c).sum())
        sel = labels[idx_arr] == c if len(idx_arr) else np.zeros(0, bool)
        k = int(sel.sum())
        row = dict(model=lm.name, concept=concept, style=style, style_image=config.style_image, class_index=int(c),
                   class_name=lm.class_names[c], n_class_images=n_class, n_with_concept=k,
                   presence=k / n_class if n_class else 0.0)
        if k:
            clean_ok = clean_pred[idx_arr[sel]] == c
            trans_ok = trans_pred[sel] == c
            ci = accuracy_drop_ci(clean_ok, trans_ok, n_boot=config.n_boot, seed=config.seed)
            row.update(acc_clean=float(clean_ok.mean()), acc_transformed=float(trans_ok.mean()),
                       drop=ci.value, drop_low=ci.low, drop_high=ci.high)
        else:
            row.update(acc_clean=float("nan"), acc_transformed=float("nan"), drop=float("nan"),
                       drop_low=float("nan"), drop_high=float("nan"))
        rows.append(row)
    return rows
