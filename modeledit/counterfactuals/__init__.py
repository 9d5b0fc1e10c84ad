"""Concept-level counterfactuals, the library's second pillar (thesis 3.2.2, B.1.3).

Segment a concept, restyle only that region, and measure or rewrite what the model does with it:

* :func:`restyle`: the operation itself, in memory (images in [0, 1], one mask per image);
* :func:`generate_counterfactuals`: a resumable, crash-safe on-disk dataset from a folder or tensors
  (segmenter + stylizer + concepts + styles), and :func:`load_counterfactuals`, its one loader;
* :func:`paste_text`: the typographic attack (a word on a paper patch) and its blank-patch twin.

Segmenter and stylizer backends are imported only when used.

Example:
    >>> from modeledit.counterfactuals import restyle, generate_counterfactuals, load_counterfactuals
    >>> y = restyle(x01, masks, "snow", style_image=0)
    >>> out = generate_counterfactuals("photos/", "mediapipe", "magenta", ["person"], ["snow"], "cf/")
    >>> ds = load_counterfactuals(out)
"""
from modeledit.counterfactuals.dataset import CounterfactualDataset, CounterfactualRecord, load_counterfactuals
from modeledit.counterfactuals.generator import CounterfactualConfig, generate_counterfactuals, list_sources, write_table
from modeledit.counterfactuals.restyle import resolve_stylizer, restyle, stylize
from modeledit.counterfactuals.text import TextSpec, paste_text

__all__ = [
    "restyle", "stylize", "resolve_stylizer", "generate_counterfactuals", "CounterfactualConfig", "list_sources",
    "write_table", "load_counterfactuals", "CounterfactualDataset", "CounterfactualRecord", "paste_text", "TextSpec",
]
