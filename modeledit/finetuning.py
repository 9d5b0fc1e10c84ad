"""Fine-tuning baselines (thesis sec. 6.2): SGD on cross-entropy towards the target class on the
transformed exemplars, returning the same :class:`~modeledit.edit.Edit` value as the rewrite.

* ``local``: only the edit site's rewritten weight is trained.
* ``global``: every parameter from the site to the output (found by detaching the site's key and skip
  and keeping the parameters that then still receive a gradient), the site's weight included.

The model runs in eval mode throughout (BatchNorm statistics frozen, dropout off), is restored bit for
bit afterwards, and the edit stores the new values of every changed parameter (``replace``), so
applying it reproduces the fine-tuned model exactly. CLIP zero-shot classifiers are fine-tuned through
their zero-shot logits (the text head is a fixed buffer).

Example:
    >>> from modeledit.finetuning import FinetuneConfig, finetune
    >>> edit = finetune(lm, site, exemplars, target=817, config=FinetuneConfig(scope="global", lr=1e-4))
    >>> with edit.applied(lm.model): ...
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from modeledit.config import JsonConfig
from modeledit.edit import Edit, ParamChange
from modeledit.errors import Diverged
from modeledit.exemplars import Exemplars
from modeledit.layers import BoundSite, EditSite, bind_site
from modeledit.models import as_loaded

log = logging.getLogger(__name__)

#: The paper's (learning rate, steps) grid for both fine-tuning baselines.
FINETUNE_GRID: tuple[tuple[float, int], ...] = ((1e-2, 500), (1e-3, 500), (1e-4, 500), (1e-5, 800), (1e-6, 800))
SCOPES = ("local", "global")


@dataclass
class FinetuneConfig(JsonConfig):
    """``scope`` ``"local"`` or ``"global"``; plain SGD (``momentum`` 0 by default) for ``steps`` full-batch steps.

    ``from_site``: compute what enters the site once and run only the trainable suffix per step
    (:func:`modeledit.suffix.suffix_forward`; same result up to float rounding); False runs the whole
    network per step.
    """

    scope: str = "local"
    lr: float = 1e-4
    steps: int = 500
    momentum: float = 0.0
    weight_decay: float = 0.0
    from_site: bool = True

    def finetune_config(self) -> "FinetuneConfig":
        """The plain fine-tuning settings of this config: PAINT's and RRR's configs derive from this one and add
        their own fields (``alpha``; ``lam``, ``region``)."""
        return FinetuneConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(FinetuneConfig)})


def downstream_parameters(model: nn.Module, site: EditSite | BoundSite, x: torch.Tensor) -> list[str]:
    """Names of the parameters between the site (its rewritten weight included) and the output.

    Found by cutting the graph at the site's key and skip and keeping the parameters that still get a
    gradient from the logits of ``x`` (one example is enough).
    """
    handles = []

    def cut_input(mod: nn.Module, args: tuple) -> tuple:
        return tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args)

    def cut_output(mod: nn.Module, args: tuple, out: Any) -> Any:
        return out.detach() if isinstance(out, torch.Tensor) else out

    bound = bind_site(model, site)
    was_training = model.training
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    try:
        handles.append(bound.layer_module.register_forward_pre_hook(cut_input))
        if bound.skip_module is not None:
            mod = bound.skip_module
            handles.append(mod.register_forward_pre_hook(cut_input) if bound.skip_where == "input" else mod.register_forward_hook(cut_output))
        model.eval()
        for p in model.parameters():
            p.requires_grad_(True)
            p.grad = None
        model(x[:1]).float().sum().backward()
        names = [n for n, p in model.named_parameters() if p.grad is not None]
    finally:
        for h in handles:
            h.remove()
        for n, p in model.named_parameters():
            p.grad = None
            p.requires_grad_(flags[n])
        model.train(was_training)
    return names


def _targets(lm: Any, ex: Exemplars, target: int | Sequence[int] | torch.Tensor | None) -> torch.Tensor:
    n = len(ex)
    if target is None:
        with torch.no_grad():
            return lm.model(lm.normalize(ex.x.to(lm.device))).argmax(-1)
    t = torch.as_tensor(target, device=lm.device).long().reshape(-1)
    if t.numel() == 1:
        t = t.expand(n)
    if t.numel() != n:
        raise ValueError(f"{t.numel()} targets for {n} exemplars; give one class index or one per exemplar")
    return t


def finetune(
    model: Any,
    site: EditSite | int | str,
    exemplars: Exemplars | torch.Tensor,
    target: int | Sequence[int] | torch.Tensor | None = None,
    config: FinetuneConfig | None = None,
    objective: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    method: str | None = None,
    stats: Any = None,
) -> Edit:
    """Fine-tune towards ``target`` (class index, one per exemplar, or None = the model's prediction on
    the originals) on the transformed exemplars x'; the model is left unchanged, the edit returned.

    ``model`` is a :class:`~modeledit.models.LoadedModel`; ``exemplars`` are :class:`Exemplars` or a
    batch of transformed images, in [0, 1].

    ``objective(module, x_prime, targets)`` replaces the training loss (default: cross-entropy of the
    logits; ``x_prime`` is normalised), for regularised variants such as :mod:`modeledit.rrr`; it runs the
    whole network (an input gradient needs it), so ``from_site`` does not apply. ``method`` names the
    edit (default ``finetune_<scope>``). The reported ``loss_before``/``loss_after`` stay the plain cross-entropy.
    ``stats`` is not used (fine-tuning needs no key statistics); it is there so every method of the comparison
    shares one call shape, ``fn(lm, site, exemplars, target=..., config=..., stats=...)``.

    Example:
        >>> edit = finetune(lm, "features.14", ex, config=FinetuneConfig(scope="local", lr=1e-3, steps=500))
    """
    cfg = config or FinetuneConfig()
    if cfg.scope not in SCOPES:
        raise ValueError(f"unknown fine-tuning scope {cfg.scope!r}; choose from {SCOPES}")
    lm = as_loaded(model, "finetune")
    model = lm.model
    bound = bind_site(model, site)
    site = bound.site
    dev = lm.device
    ex = exemplars if isinstance(exemplars, Exemplars) else Exemplars(exemplars, exemplars)
    xp = lm.normalize(ex.x_prime.to(dev))
    was_training = model.training
    model.eval()
    try:
        y = _targets(lm, ex, target).to(dev)
    finally:
        model.train(was_training)
    names = [f"{site.layer}.weight"] if cfg.scope == "local" else downstream_parameters(model, bound, xp)
    params = dict(model.named_parameters())
    chosen = [params[n] for n in names]
    backup = {n: params[n].detach().clone() for n in names}
    flags = {n: p.requires_grad for n, p in params.items()}
    t0 = time.perf_counter()
    try:
        for n, p in params.items():
            p.requires_grad_(n in backup)
        model.eval()
        opt = torch.optim.SGD(chosen, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        with torch.no_grad():
            loss_before = float(F.cross_entropy(model(xp), y))
        from modeledit.progress import tqdm

        from modeledit.suffix import suffix_forward

        forward = suffix_forward(model, site, xp, names) if cfg.from_site and objective is None else (lambda: model(xp))
        for _ in tqdm(range(cfg.steps), desc=f"finetune {cfg.scope} {site.name}", leave=False, mininterval=2.0):
            opt.zero_grad(set_to_none=True)
            loss = objective(model, xp, y) if objective is not None else F.cross_entropy(forward(), y)
            loss.backward()
            opt.step()
        with torch.no_grad():
            logits = model(xp)
            loss_after = float(F.cross_entropy(logits, y))
            acc = float((logits.argmax(-1) == y).float().mean())
        new = {n: params[n].detach().clone() for n in names}
    finally:
        with torch.no_grad():
            for n, t in backup.items():
                params[n].copy_(t)
        for n, p in params.items():
            p.grad = None
            p.requires_grad_(flags[n])
        model.train(was_training)
    if not math.isfinite(loss_after) or not all(bool(torch.isfinite(v).all()) for v in new.values()):
        raise Diverged(f"fine-tuning ({cfg.scope}, at {site.name}) diverged: loss {loss_before:.4g} -> {loss_after:.4g} "
                       f"with lr {cfg.lr:g} over {cfg.steps} steps; use a smaller learning rate")
    changes = {n: ParamChange("replace", {"value": v}) for n, v in new.items()}
    edit = Edit.from_changes(model, method or f"finetune_{cfg.scope}", changes, sites=[site.name], config=asdict(cfg))
    edit.metrics.update({"loss_before": loss_before, "loss_after": loss_after, "accuracy_after": acc, "seconds": time.perf_counter() - t0,
                    "parameters": len(names), "targets": y.tolist(), "layer": site.layer, "site": site.name})
    log.info("finetune %s at %s: loss %.4g -> %.4g over %d tensors", cfg.scope, site.name, loss_before, loss_after, len(names))
    return edit
