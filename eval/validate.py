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
                class_names: Sequence[str] | None = None) -> Any:
    """Raise the library's one-line error for the first unknown name; returns the loaded model (or None)."""
    from modeledit.styles import STYLIZERS
    from modeledit.styles.bank import get_style

    if methods:
        from modeledit.eval.methods import check_methods

        check_methods(list(methods))
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

    from modeledit.eval.datasets import DATASETS

    kind = spec.split(":", 1)[0] if ":" in spec and not os.path.isdir(spec) else "folder"
    if kind == "world":
        from modeledit.eval.world.data import SPLIT_OFFSETS

        parts = spec.split(":")
        split = parts[1] if len(parts) > 1 and parts[1] else "test"
        if split not in SPLIT_OFFSETS or len(parts) > 3 or (len(parts) == 3 and not parts[2].isdigit()) or (len(parts) == 3 and int(parts[2]) < 1):
            raise ValueError(f"{flag} {spec!r} is not a world dataset: write world:SPLIT[:N] with SPLIT in {list(SPLIT_OFFSETS)} "
                             "and N a positive number of images")
    elif kind == "folder":
        path = spec.split(":", 1)[1] if spec.startswith("folder:") else spec
        if not os.path.isdir(path):
            raise FileNotFoundError(f"{flag} {spec!r}: no such folder; give world:SPLIT[:N] or a folder of images")
    elif kind not in DATASETS:
        raise KeyError(f"{flag} {spec!r}: unknown dataset kind {kind!r}; use world:SPLIT[:N] or a folder path")
