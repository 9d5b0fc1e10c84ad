"""Weight-interpolation patching (PAINT; Ilharco et al. 2022, "Patching open-vocabulary models by
interpolating weights"): fine-tune on the exemplars, then move only part of the way,
θ = (1 - α) θ₀ + α θ_ft, with α chosen on validation like any other hyperparameter.

The result is the same :class:`~modeledit.edit.Edit` value as every other method, stored as a
``delta`` α (θ_ft - θ₀) per changed parameter, so it applies, reverts, saves and loads like the rest
(and, being a delta, can be moved onto another copy of the base with ``force=True`` like a task
vector). α = 0 is the base model bit for bit; α = 1 is the fine-tuned model up to the float32
rounding of θ₀ + (θ_ft - θ₀) (at most one unit in the last place of each parameter).

* :func:`interpolate` turns any edit (a fine-tuning's ``replace``, a rewrite's ``lowrank``) into the
  α-scaled delta, so one fine-tuning serves a whole α grid.
* :func:`patch` fine-tunes (local or global scope, :func:`modeledit.finetuning.finetune`) and interpolates.

Example:
    >>> from modeledit.patching import PatchConfig, patch
    >>> edit = patch(lm, site, exemplars, target=3, config=PatchConfig(scope="global", lr=1e-3, alpha=0.5))
    >>> with edit.applied(lm): ...
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch

from modeledit.edit import Edit, ParamChange
from modeledit.exemplars import Exemplars
from modeledit.finetuning import FinetuneConfig, finetune
from modeledit.layers import EditSite

log = logging.getLogger(__name__)

#: The interpolation coefficients tried on top of each fine-tuning setting.
ALPHA_GRID: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)


@dataclass
class PatchConfig(FinetuneConfig):
    """The fine-tuning's settings (:class:`~modeledit.finetuning.FinetuneConfig`, declared there once) and the
    interpolation coefficient ``alpha`` in [0, 1]."""

    alpha: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.alpha) <= 1.0:
            raise ValueError(f"alpha must be in [0, 1] (0: the base model, 1: the fine-tuned one), got {self.alpha}")


def interpolate(model: Any, edit: Edit, alpha: float, method: str | None = None) -> Edit:
    """The edit that moves ``model`` a fraction ``alpha`` of the way to ``edit``'s parameters, as a ``delta``.

    ``model`` (a LoadedModel or its module) must carry the base the edit was computed on (checked by hash). The new edit keeps the
    source's sites, config (plus ``alpha``) and metrics (plus ``alpha`` and the source method).

    Example:
        >>> ft = finetune(lm, site, ex, target=3, config=FinetuneConfig(lr=1e-3))
        >>> halves = {a: interpolate(lm, ft, a) for a in (0.25, 0.5, 0.75, 1.0)}
    """
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1] (0: the base model, 1: the edited one), got {alpha}")
    edit.check_base(model)
    changes = {}
    for name, d in edit.deltas(model).items():
        # α = 1 keeps the exact difference; α = 0 gives exact zeros (base + 0 is the base bit for bit)
        changes[name] = ParamChange("delta", {"delta": d if alpha == 1.0 else (d * alpha).to(d.dtype)})
    name = method or f"paint_{edit.method.removeprefix('finetune_')}"
    out = Edit.from_changes(model, name, changes, sites=list(edit.sites), config={**edit.config, "alpha": alpha})
    out.metrics = {**out.metrics, **edit.metrics, "alpha": alpha, "source_method": edit.method}
    return out


def patch(
    model: Any,
    site: EditSite | int | str,
    exemplars: Exemplars | torch.Tensor,
    target: int | Sequence[int] | torch.Tensor | None = None,
    config: PatchConfig | None = None,
) -> Edit:
    """Fine-tune on the transformed exemplars towards ``target`` (see :func:`~modeledit.finetuning.finetune`),
    then interpolate the weights with ``config.alpha``; the model is left unchanged, the edit returned
    (method ``paint_local`` or ``paint_global``). ``model`` is a :class:`~modeledit.models.LoadedModel`,
    ``exemplars`` are in [0, 1], as for fine-tuning.

    Example:
        >>> edit = patch(lm, "features.14", ex, target=281, config=PatchConfig(scope="local", lr=1e-3, alpha=0.75))
    """
    cfg = config or PatchConfig()
    ft = finetune(model, site, exemplars, target=target, config=cfg.finetune_config())
    edit = interpolate(model, ft, cfg.alpha, method=f"paint_{cfg.scope}")
    edit.config = asdict(cfg)
    log.info("paint %s: alpha %.3g over %d tensors", cfg.scope, cfg.alpha, len(edit.changes))
    return edit
