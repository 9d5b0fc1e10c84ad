"""Check every name a harness will use before it does any work (and before its results folder exists).

A typo (``--styles snw``) must fail in a second with a line naming the flag and the valid names, not
after segmenting a dataset, and it must leave nothing behind that blocks the corrected rerun.

Example:
    >>> check_names(model="world_vgg", sites=["-1"], styles=["snow"], concepts=["road"], segmenter="oracle",
    ...             stylizer="magenta", datasets={"--dataset": "world:test"}, methods=["edit"])
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence


def check_names(model: str | None = None, weights: Any = None, sites: Sequence[str] = (), styles: Sequence[str] = (),
                concepts: Sequence[str] = (), segmenter: str | None = None, stylizer: str | None = None,
                datasets: Mapping[str, str | None] | None = None, methods: Sequence[str] = (),
                class_names: Sequence[str] | None = None, values: Any = None) -> Any:
    """Raise the library's one-line error for the first unknown name; returns the loaded model (or None).
    ``values``: a study's config whose grids and exemplar counts are checked too (:func:`check_values`)."""
    from modeledit.styles import STYLIZERS
    from modeledit.styles.bank import get_style

    if methods:
        from modeledit.eval.methods import check_methods

        check_methods(list(methods))
    if values is not None:
        check_values(values)
    for s in styles:
        get_style(s)
    if stylizer is not None and stylizer not in STYLIZERS:
        from modeledit.registry import close_matches

        raise KeyError(f"unknown stylizer {stylizer!r}; closest: {close_matches(stylizer, list(STYLIZERS)) or '-'}; "
                       f"valid: {sorted(STYLIZERS)}")
    if concepts:
        from modeledit.segmenters import get_segmenter
        from modeledit.segmenters.base import resolve_concepts

        resolve_concepts(get_segmenter(segmenter or "oracle"), list(concepts))
    elif segmenter is not None:
        from modeledit.segmenters import SEGMENTERS

        if segmenter not in SEGMENTERS:
            from modeledit.registry import close_matches

            raise KeyError(f"unknown segmenter {segmenter!r}; closest: {close_matches(segmenter, list(SEGMENTERS)) or '-'}; "
                           f"valid: {sorted(SEGMENTERS)}")
    for flag, spec in (datasets or {}).items():
        if spec:
            _check_dataset_spec(flag, spec)
    lm = None
    if model is not None:
        from modeledit.layers import get_site
        from modeledit.models import load_model

        lm = load_model(model, weights=weights, **({"class_names": list(class_names)} if class_names else {}))
        for s in sites:
            get_site(lm.model, s)
    return lm


def _check_dataset_spec(flag: str, spec: str) -> None:
    import os

    from modeledit.eval.datasets import DATASETS, DatasetSpec

    try:
        ds = DatasetSpec.parse(spec)
    except ValueError:
        ds = None
    kind = ds.kind if ds is not None else "world"
    if kind == "world":
        from modeledit.eval.world.data import SPLIT_OFFSETS

        if ds is None or ds.split not in SPLIT_OFFSETS:
            raise ValueError(f"{flag} {spec!r} is not a world dataset: write world:SPLIT[:N] with SPLIT in {list(SPLIT_OFFSETS)} "
                             "and N a positive number of images")
    elif kind == "folder":
        path = ds.path
        if not os.path.isdir(path):
            raise FileNotFoundError(f"{flag} {spec!r}: no such folder; give world:SPLIT[:N] or a folder of images")
    elif kind not in DATASETS:
        raise KeyError(f"{flag} {spec!r}: unknown dataset kind {kind!r}; use world:SPLIT[:N] or a folder path")


def check_values(cfg: Any) -> None:
    """Check a study's numbers before any work: each chosen method's grids (rewrite strengths and PAINT's alphas
    are fractions in (0, 1], penalty weights non-negative, lr > 0 and steps >= 1) and exemplar counts against
    the images the dataset holds per class. ``cfg``: a config with ``methods`` and the grid fields (bench,
    typographic, snow, photos). One-line ValueError naming the flag.

    Example:
        >>> check_values(BenchConfig(methods=["edit"], strength_grid=[1.5]))
        Traceback (most recent call last):
        ValueError: --strength-grid takes fractions in (0, 1] (of the edit's change); got 1.5 ...
    """
    from modeledit.eval.methods import METHODS, check_methods

    methods = list(getattr(cfg, "methods", None) or [])
    check_methods(methods)
    fields: set[str] = set()
    for name in methods:
        m = METHODS.get(name)
        fields |= {f for f in (m.grid_field, m.scaled[0] if m.scaled else None, m.extra_grid[0] if m.extra_grid else None) if f}
    rules = {
        "strength_grid": (lambda v: 0.0 < v <= 1.0, "fractions in (0, 1] (of the edit's change), e.g. 0.25,0.5,1"),
        "alpha_grid": (lambda v: 0.0 < v <= 1.0, "interpolation coefficients in (0, 1] (1: the fine-tuned model), e.g. 0.25,0.5,1"),
        "lambda_grid": (lambda v: v >= 0.0, "non-negative penalty weights, e.g. 1,10,100"),
    }
    for name, (ok, what) in rules.items():
        values = getattr(cfg, name, None)
        if name not in fields or values is None:
            continue
        values = list(values)
        if not values:
            raise ValueError(f"--{name.replace('_', '-')} is empty; give {what}")
        bad = [v for v in values if not (isinstance(v, (int, float)) and ok(float(v)))]
        if bad:
            raise ValueError(f"--{name.replace('_', '-')} takes {what}; got {', '.join(str(b) for b in bad)}")
    for name in ("finetune_grid", "adam_grid"):
        values = getattr(cfg, name, None)
        if name not in fields or values is None:
            continue
        bad = [g for g in values if len(g) != 2 or not float(g[0]) > 0 or int(g[1]) < 1 or int(g[1]) != float(g[1])]
        if bad or not list(values):
            raise ValueError(f"--{name.replace('_', '-')} takes lr:steps pairs with lr > 0 and whole steps >= 1; got {bad or 'nothing'}")
    counts = getattr(cfg, "n_exemplars", None)
    dataset = getattr(cfg, "dataset", None)
    if counts and dataset:
        most = largest_class(dataset)
        if most is not None and max(counts) >= most:
            raise ValueError(f"--n-exemplars {max(counts)} needs a class with more than {max(counts)} images of --dataset "
                             f"{dataset!r} (exemplars plus images to test on), but its largest class holds {most}; "
                             f"give --n-exemplars below {most} or a larger --dataset")


def largest_class(spec: str) -> int | None:
    """How many images the largest class of dataset ``spec`` holds, counted without reading an image
    (world specs: classes are balanced; folders: files per class sub-folder), or None when unknown."""
    import math
    import os

    from modeledit.eval.datasets import DatasetSpec

    try:
        ds = DatasetSpec.parse("world:" if spec == "world" else spec)
    except ValueError:
        return None
    if ds.kind == "world":
        from modeledit.eval.world.data import DEFAULT_SIZES
        from modeledit.eval.world.scene import CLASSES

        return math.ceil(ds.size / len(CLASSES)) if ds.split in DEFAULT_SIZES else None
    path = ds.path
    if path is None or not os.path.isdir(path):
        return None
    from modeledit.image_folder import IMAGE_SUFFIXES

    per_class: dict[str, int] = {}
    for root, _, files in os.walk(path):
        rel = os.path.relpath(root, path)
        cls = "" if rel == "." else rel.split(os.sep)[0]
        per_class[cls] = per_class.get(cls, 0) + sum(1 for f in files if os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES)
    counts = [c for c in per_class.values() if c]
    return max(counts) if counts else None
