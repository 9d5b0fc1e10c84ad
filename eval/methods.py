"""The method catalogue every harness shares (bench, typographic, snow): what a method is, how it
builds its :class:`~modeledit.edit.Edit` from exemplars, and which hyperparameter settings it tries.

A :class:`Method` names a maker (the editor or a fine-tuning baseline), the config fields it fixes,
and the config field that holds its grid of settings. Every maker returns the same ``Edit`` value, so
the harnesses apply, measure and revert all methods alike. New methods register in :data:`METHODS`.

Example:
    >>> from modeledit.eval.methods import METHODS, method_edit
    >>> sorted(METHODS)[:3]
    ['edit', 'edit_adam', 'edit_full']
    >>> edit = method_edit(lm, "edit", {}, site, x01, xp01, masks, targets=[3], stats=lambda s: C)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch

from modeledit.config import JsonConfig
from modeledit.finetuning import FINETUNE_GRID
from modeledit.registry import Registry


def _rewrite_maker(lm: Any, site: Any, exemplars: Any, targets: Sequence[int], fields: Mapping[str, Any],
                   stats: Callable[[Any], Any] | None) -> Any:
    from modeledit.editor import EditConfig, rewrite

    return rewrite(lm, site, exemplars, config=EditConfig(**fields), stats=stats(site) if stats else None)


def _finetune_maker(lm: Any, site: Any, exemplars: Any, targets: Sequence[int], fields: Mapping[str, Any],
                    stats: Callable[[Any], Any] | None) -> Any:
    from modeledit.finetuning import FinetuneConfig, finetune

    return finetune(lm, site, exemplars, target=list(targets), config=FinetuneConfig(**fields))


@dataclass(frozen=True)
class Method:
    """A method of the comparison.

    ``make(lm, site, exemplars, targets, fields, stats)`` builds its Edit; ``base`` holds the config
    fields fixed for the method; ``grid_field`` names the config field (of :class:`MethodGrid` or the
    bench's config) listing its hyperparameter settings, or ``None`` for a single setting.
    """

    name: str
    make: Callable[..., Any]
    base: Mapping[str, Any]
    grid_field: str | None = None
    description: str = ""


#: every method the harnesses know, by name
METHODS = Registry("method")


def register_method(method: Method) -> None:
    METHODS.register(method.name, method, method.description)


for _m in (
    Method("edit", _rewrite_maker, {"solver": "closed_form", "rank": 1, "mode": "whole"}, None,
           "rank-one rewrite, closed form, whole-image objective (the paper's method)"),
    Method("edit_adam", _rewrite_maker, {"solver": "adam", "rank": 1, "mode": "whole"}, "adam_grid",
           "rank-one rewrite optimised with Adam (the paper's solver)"),
    Method("edit_full", _rewrite_maker, {"solver": "closed_form", "rank": "full", "mode": "whole"}, None,
           "unrestricted-rank rewrite (ablation)"),
    Method("edit_masked", _rewrite_maker, {"solver": "closed_form", "rank": 1, "mode": "masked"}, None,
           "rank-one rewrite, objective only inside the concept mask (ablation)"),
    Method("finetune_local", _finetune_maker, {"scope": "local"}, "finetune_grid",
           "fine-tune the edited layer on the transformed exemplars"),
    Method("finetune_global", _finetune_maker, {"scope": "global"}, "finetune_grid",
           "fine-tune every layer from the site to the output"),
):
    register_method(_m)


def check_methods(names: Sequence[str]) -> None:
    """KeyError naming the unknown methods (and the closest valid names)."""
    for n in names:
        METHODS.entry(n)


@dataclass
class MethodGrid(JsonConfig):
    """The comparison's methods, sites, hyperparameter grids and clean-accuracy budget (one-exemplar studies)."""

    methods: list[str] = field(default_factory=lambda: ["edit", "finetune_local", "finetune_global"])
    sites: list[str] = field(default_factory=lambda: ["-1"])
    finetune_grid: list[tuple[float, int]] = field(default_factory=lambda: [list(g) for g in FINETUNE_GRID[:3]])
    adam_grid: list[tuple[float, int]] = field(default_factory=lambda: [[1e-3, 10000]])
    max_clean_drop: float = 0.0025

    def settings(self, method: str) -> list[dict[str, Any]]:
        return method_settings(self, method)


def method_settings(cfg: Any, method: str) -> list[dict[str, Any]]:
    """The hyperparameter settings tried for ``method`` (besides the site): its (lr, steps) grid from
    ``cfg`` (any config with ``finetune_grid`` / ``adam_grid`` fields), or one empty setting."""
    m = METHODS.get(method)
    if m.grid_field is None:
        return [{}]
    return [{"lr": float(lr), "steps": int(steps)} for lr, steps in getattr(cfg, m.grid_field)]


def method_edit(lm: Any, method: str, setting: Mapping[str, Any], site: Any, x01: torch.Tensor, xp01: torch.Tensor,
                masks: torch.Tensor | None, targets: Sequence[int], stats: Callable[[Any], Any] | None = None) -> Any:
    """The Edit a method of the comparison makes from exemplars (x, x') in [0, 1] with (N, H, W) masks.

    Rewrites map keys at x' to values at x (``stats(site)`` gives C); fine-tuning trains on x' towards
    ``targets``. Every method returns the same :class:`~modeledit.edit.Edit` value.
    """
    from modeledit.exemplars import Exemplars

    m = METHODS.get(method)
    dev = lm.device
    mask = None if masks is None else masks.float()[:, None].to(dev)
    ex = Exemplars(x01.to(dev), xp01.to(dev), mask)
    return m.make(lm, site, ex, targets, {**m.base, **setting}, stats)
