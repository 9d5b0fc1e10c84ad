"""The method catalogue every harness shares (bench, typographic, snow): what a method is, how it
builds its :class:`~modeledit.edit.Edit` from exemplars, and which hyperparameter settings it tries.

A :class:`Method` names a core function (the editor's ``rewrite``, ``finetune``, ``rrr``) and its config class,
the config fields it fixes, and the config field that holds its grid of settings (and optionally a second grid
crossed with the first: weight-interpolation patching's α, right-for-the-right-reasons' λ). Every core method has
one call shape, ``fn(lm, site, exemplars, target=..., config=..., stats=...)``, and returns the same ``Edit``
value, so the catalogue needs no adapters and the harnesses apply, measure and revert all methods alike. New
methods register in :data:`METHODS`.

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
from modeledit.patching import ALPHA_GRID
from modeledit.rrr import LAMBDA_GRID
from modeledit.registry import Registry, import_target


@dataclass(frozen=True)
class Method:
    """A method of the comparison.

    ``make`` is a core function with the methods' one call shape, ``make(lm, site, exemplars, target=...,
    config=..., stats=...)`` returning an :class:`~modeledit.edit.Edit` (``"module:attr"``, imported on first
    use), ``config`` its config class (likewise); ``statistics``: whether it reads the key statistics C (only
    then are they computed). ``base`` holds the config fields fixed for the method; ``grid_field`` names the config field (of :class:`MethodGrid` or the
    bench's config) listing its hyperparameter settings, or ``None`` for a single setting.
    ``extra_grid`` = (config field, setting key, default values) crosses every setting with each value
    of that field (the default when the config has no such field). ``scaled`` = (config field, setting
    key, default values) is a grid evaluated *inside* one cell: the method's edit is made once and
    applied at each fraction s in (0, 1] of its parameter change (:func:`~modeledit.patching.interpolate`):
    the strength of a rewrite, PAINT's alpha for a fine-tuning.
    """

    name: str
    make: str | Callable[..., Any]
    config: str | type
    base: Mapping[str, Any]
    grid_field: str | None = None
    description: str = ""
    extra_grid: tuple[str, str, tuple[float, ...]] | None = None
    scaled: tuple[str, str, tuple[float, ...]] | None = None
    #: the science summary's paired comparison of this method with the edit: an ablation's name ("rank", "mask",
    #: "solver": this variant - edit) or "vs" (a baseline: edit - this); ``comparison_order`` orders its rows
    comparison: str | None = None
    comparison_order: int = 0
    statistics: bool = False


#: every method the harnesses know, by name
METHODS = Registry("method")


def register_method(method: Method) -> None:
    from modeledit.edit import register_edit_method

    METHODS.register(method.name, method, method.description)
    register_edit_method(method.name, method.description)   # its edits (e.g. a scaled "edit") can be saved and loaded


#: the strength grid of the rewrites: the fraction of the closed-form update applied, W + s ΔW
STRENGTH = ("strength_grid", "strength", (1.0,))
#: PAINT's interpolation grid, applied to one fine-tuning
ALPHA = ("alpha_grid", "alpha", ALPHA_GRID)

for _m in (
    Method("edit", "modeledit.editor:rewrite", "modeledit.editor:EditConfig", {"solver": "closed_form", "rank": 1, "mode": "whole"}, None,
           "rank-one rewrite, closed form, whole-image objective (the paper's method)", scaled=STRENGTH,
           statistics=True),
    Method("edit_adam", "modeledit.editor:rewrite", "modeledit.editor:EditConfig", {"solver": "adam", "rank": 1, "mode": "whole"}, "adam_grid",
           "rank-one rewrite optimised with Adam (the paper's solver)",
           statistics=True, comparison="solver", comparison_order=2),
    Method("edit_full", "modeledit.editor:rewrite", "modeledit.editor:EditConfig", {"solver": "closed_form", "rank": "full", "mode": "whole"}, None,
           "unrestricted-rank rewrite (ablation)", scaled=STRENGTH, statistics=True,
           comparison="rank", comparison_order=0),
    Method("edit_masked", "modeledit.editor:rewrite", "modeledit.editor:EditConfig", {"solver": "closed_form", "rank": 1, "mode": "masked"}, None,
           "rank-one rewrite, objective only inside the concept mask (ablation)", scaled=STRENGTH, statistics=True,
           comparison="mask", comparison_order=1),
    Method("finetune_local", "modeledit.finetuning:finetune", "modeledit.finetuning:FinetuneConfig", {"scope": "local"}, "finetune_grid",
           "fine-tune the edited layer on the transformed exemplars",
           comparison="vs", comparison_order=3),
    Method("finetune_global", "modeledit.finetuning:finetune", "modeledit.finetuning:FinetuneConfig", {"scope": "global"}, "finetune_grid",
           "fine-tune every layer from the site to the output",
           comparison="vs", comparison_order=4),
    Method("paint_local", "modeledit.finetuning:finetune", "modeledit.finetuning:FinetuneConfig", {"scope": "local"}, "finetune_grid",
           "fine-tune the edited layer, then interpolate the weights by alpha (PAINT, Ilharco et al. 2022)", scaled=ALPHA,
           comparison="vs", comparison_order=5),
    Method("paint_global", "modeledit.finetuning:finetune", "modeledit.finetuning:FinetuneConfig", {"scope": "global"}, "finetune_grid",
           "fine-tune from the site to the output, then interpolate the weights by alpha (PAINT)", scaled=ALPHA,
           comparison="vs", comparison_order=6),
    Method("rrr_local", "modeledit.rrr:rrr", "modeledit.rrr:RRRConfig", {"scope": "local"}, "finetune_grid",
           "fine-tune the edited layer with a penalty on input gradients inside the concept mask (Ross et al. 2017)",
           ("lambda_grid", "lam", LAMBDA_GRID), comparison="vs", comparison_order=7),
    Method("rrr_global", "modeledit.rrr:rrr", "modeledit.rrr:RRRConfig", {"scope": "global"}, "finetune_grid",
           "fine-tune from the site to the output with the input-gradient penalty inside the concept mask",
           ("lambda_grid", "lam", LAMBDA_GRID), comparison="vs", comparison_order=8),
):
    register_method(_m)


def comparisons() -> list[tuple[str, str, str]]:
    """(name, baseline method, variant method) for every registered method with a ``comparison``: an ablation
    compares the variant with the edit (variant - edit), a baseline the edit with it (edit - baseline)."""
    ms = sorted((METHODS.get(n) for n in METHODS.names()), key=lambda m: (m.comparison_order, m.name))
    return [(m.comparison, m.name, "edit") if m.comparison == "vs" else (m.comparison, "edit", m.name)
            for m in ms if m.comparison is not None]


def check_methods(names: Sequence[str]) -> None:
    """KeyError naming the unknown methods (and the closest valid names)."""
    for n in names:
        METHODS.entry(n)


@dataclass(kw_only=True)   # the grid's fields come first: a positional value would land in the wrong field
class ComparisonGrid(JsonConfig):
    """The comparison's methods, sites and hyperparameter grids: declared once, every harness's config derives
    from it (:class:`MethodGrid` adds the clean-accuracy budget; the bench keeps its budget in its protocol)."""

    methods: list[str] = field(default_factory=lambda: ["edit", "finetune_local", "finetune_global"])
    sites: list[str] = field(default_factory=lambda: ["-1"])
    finetune_grid: list[tuple[float, int]] = field(default_factory=lambda: [list(g) for g in FINETUNE_GRID[:3]])
    adam_grid: list[tuple[float, int]] = field(default_factory=lambda: [[1e-3, 10000]])
    alpha_grid: list[float] = field(default_factory=lambda: list(ALPHA_GRID))
    strength_grid: list[float] = field(default_factory=lambda: [1.0])
    lambda_grid: list[float] = field(default_factory=lambda: list(LAMBDA_GRID))

    def settings(self, method: str) -> list[dict[str, Any]]:
        return method_settings(self, method)


@dataclass(kw_only=True)
class MethodGrid(ComparisonGrid):
    """The comparison's grid (:class:`ComparisonGrid`) and clean-accuracy budget (one-exemplar studies)."""

    max_clean_drop: float = 0.0025


def method_settings(cfg: Any, method: str) -> list[dict[str, Any]]:
    """The hyperparameter settings tried for ``method`` (besides the site): its (lr, steps) grid from
    ``cfg`` (any config with ``finetune_grid`` / ``adam_grid`` fields), or one empty setting, crossed with
    the method's extra grid (``alpha_grid``, ``lambda_grid``; the method's default without that field)."""
    m = METHODS.get(method)
    settings = [{}] if m.grid_field is None else [{"lr": float(lr), "steps": int(steps)} for lr, steps in getattr(cfg, m.grid_field)]
    if m.extra_grid is None:
        return settings
    name, key, default = m.extra_grid
    values = getattr(cfg, name, None)
    return [{**s, key: float(v)} for s in settings for v in (default if values is None else values)]


#: a PAINT cell's alpha = 1 row is this fine-tuning (the same computation), so the two are not run twice
PAINT_OF = {"finetune_local": "paint_local", "finetune_global": "paint_global"}


def grid_cells(cfg: Any) -> list[dict[str, Any]]:
    """(method, site, setting) for every method of ``cfg`` (a config with ``methods``, ``sites``, the grids
    and ``settings(method)``); a fine-tuning whose PAINT variant also runs is left out: its rows come from
    the PAINT cells' alpha = 1 (:func:`plain_finetune_row`)."""
    alphas = getattr(cfg, "alpha_grid", None) or []
    return [{"method": mth, "site": str(site), "setting": setting}
            for mth in cfg.methods if not (PAINT_OF.get(mth) in cfg.methods and 1.0 in alphas)
            for site in cfg.sites for setting in cfg.settings(mth)]


def plain_finetune_row(methods: Sequence[str], method: str, extra: Mapping[str, Any], row: Mapping[str, Any],
                       setting: Mapping[str, Any]) -> dict[str, Any] | None:
    """The plain fine-tuning row a PAINT cell's alpha = 1 row stands for, when that fine-tuning is also asked for
    (its strength, where rows carry one, is 1: the fine-tuned model itself)."""
    import json

    plain = next((f for f, pm in PAINT_OF.items() if pm == method), None)
    if plain in methods and extra.get("alpha") == 1.0:
        return {**row, "method": plain, "setting": json.dumps(dict(setting)), **({"strength": 1.0} if "strength" in row else {})}
    return None


def method_strengths(cfg: Any, method: str) -> list[float] | None:
    """The in-cell grid of ``method`` (rewrite strengths, PAINT alphas) from ``cfg``, or None when it has none."""
    m = METHODS.get(method)
    if m.scaled is None:
        return None
    name, _, default = m.scaled
    values = [float(v) for v in (getattr(cfg, name, None) or default)]
    bad = [v for v in values if not 0.0 < v <= 1.0]
    if bad:
        raise ValueError(f"{name} values must be in (0, 1] (fractions of the edit), got {bad}")
    return values


def scaled_edits(lm: Any, method: str, edit: Any, values: Sequence[float] | None) -> list[tuple[dict[str, float], Any]]:
    """(setting extras, edit) for each in-cell value: the edit itself at 1, its interpolation below."""
    if values is None:
        return [({}, edit)]
    from modeledit.patching import interpolate

    key = METHODS.get(method).scaled[1]
    return [({key: v}, edit if v == 1.0 else interpolate(lm, edit, v, method=method)) for v in values]


def method_edit(lm: Any, method: str, setting: Mapping[str, Any], site: Any, x01: torch.Tensor, xp01: torch.Tensor,
                masks: torch.Tensor | None, targets: Sequence[int], stats: Callable[[Any], Any] | None = None) -> Any:
    """The Edit a method of the comparison makes from exemplars (x, x') in [0, 1] with (N, H, W) masks.

    Rewrites map keys at x' to values at x (``stats(site)`` gives C); fine-tuning (and its variants:
    weight interpolation, the input-gradient penalty inside the masks) trains on x' towards ``targets``. Every method returns the same :class:`~modeledit.edit.Edit` value.
    """
    from modeledit.exemplars import Exemplars

    m = METHODS.get(method)
    dev = lm.device
    mask = None if masks is None else masks.float()[:, None].to(dev)
    ex = Exemplars(x01.to(dev), xp01.to(dev), mask)
    key = m.scaled[1] if m.scaled else None
    fields = {k: v for k, v in setting.items() if k != key}
    make, config = (import_target(v) if isinstance(v, str) else v for v in (m.make, m.config))
    edit = make(lm, site, ex, target=list(targets), config=config(**{**m.base, **fields}),
                stats=stats(site) if stats is not None and m.statistics else None)
    value = setting.get(key) if key else None
    return edit if value is None else scaled_edits(lm, method, edit, [float(value)])[0][1]
