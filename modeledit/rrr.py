"""Right for the right reasons (Ross, Hughes and Doshi-Velez 2017; the seed thesis "Training machine
learning models by regularizing their explanations"): fine-tune on the transformed exemplars with
cross-entropy towards the target class plus λ times the squared input gradient of the
log-probabilities inside the concept mask,

    L = CE(f(x'), y) + λ · M(θ) / M(θ₀),   M(θ) = mean over images and input values of (m ⊙ ∂/∂x' Σ_k log p_k(x'))²,

so the model is pushed to stop using that region (the text patch, the snow). The penalty is
differentiated through the input gradient (double backpropagation). Scopes as in
:mod:`modeledit.finetuning`: ``local`` trains the site's rewritten weight, ``global`` every parameter
from the site to the output. With ``region="everywhere"`` (or exemplars without a mask) the gradient is
penalised over the whole image, the thesis's mask-free variant. Exemplars are [0, 1] images like
everywhere in the library; the gradients are taken in the model's normalised input space (what the
network sees; the per-channel scale of the normalisation is a constant folded into λ).

λ is *relative*: the penalty is divided by its value M(θ₀) for the unedited model on the exemplars, a
constant, so Ross et al.'s λ is ``lam / M(θ₀)`` (recorded as ``lam_absolute``). The raw mass grows
with the number of classes squared (Σ_k log p_k) and differs by orders of magnitude between a
18-class world model and a 1000-class ImageNet model; the relative λ lets one grid serve both:
λ = 1 weighs the initial penalty like one nat of cross-entropy.

The result is the same :class:`~modeledit.edit.Edit` value as fine-tuning (``replace`` per changed
parameter; methods ``rrr_local`` / ``rrr_global``).

Example:
    >>> from modeledit.rrr import RRRConfig, rrr
    >>> ex = Exemplars(x, x_snow, road_mask)                       # [0, 1] images, (N, 1, H, W) mask
    >>> edit = rrr(lm, site, ex, target=0, config=RRRConfig(scope="global", lr=1e-3, lam=10.0))
    >>> with edit.applied(lm): ...
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from modeledit.edit import Edit
from modeledit.exemplars import Exemplars
from modeledit.finetuning import FinetuneConfig, SCOPES, finetune
from modeledit.layers import EditSite
from modeledit.models import as_loaded

log = logging.getLogger(__name__)

#: The (relative) penalty weights λ tried on top of each fine-tuning setting.
LAMBDA_GRID: tuple[float, ...] = (1.0, 10.0, 100.0)
REGIONS = ("mask", "everywhere")


@dataclass
class RRRConfig(FinetuneConfig):
    """The fine-tuning's settings (:class:`~modeledit.finetuning.FinetuneConfig`, declared there once), the penalty
    weight ``lam`` (λ ≥ 0, relative to the unedited model's penalty; 0 is plain fine-tuning) and the penalised
    ``region``: ``"mask"`` (the concept) or ``"everywhere"``."""

    lam: float = 10.0
    region: str = "mask"

    def __post_init__(self) -> None:
        if float(self.lam) < 0:
            raise ValueError(f"the penalty weight lam must be non-negative, got {self.lam}")
        if self.region not in REGIONS:
            raise ValueError(f"unknown penalty region {self.region!r}; choose from {REGIONS}")
        if self.scope not in SCOPES:
            raise ValueError(f"unknown fine-tuning scope {self.scope!r}; choose from {SCOPES}")


def _input_gradient(module: nn.Module, xn: torch.Tensor, create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, ∂ Σ_k log p_k / ∂xn) at normalised inputs ``xn``; with ``create_graph`` differentiable again."""
    xn = xn.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = module(xn)
        (g,) = torch.autograd.grad(logits.float().log_softmax(-1).sum(), xn, create_graph=create_graph)
    return logits, g


def _twice_differentiable_attention() -> Any:
    """A context in which scaled dot-product attention runs on its math kernel: the fused kernels (flash,
    memory-efficient) have no second derivative, and the penalty is differentiated through an input gradient
    (CLIP's ModifiedResNet ends in an attention pool; ViTs attend in every block)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel(SDPBackend.MATH)


def gradient_mass(g: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The penalty: mean over images and input values (channels x pixels) of (m ⊙ g)²; the whole image
    without a mask. Masked-out values count as zeros, so the masses of two models compare directly."""
    if mask is not None:
        g = g * mask.to(g.device, g.dtype)
    return g.pow(2).mean()


def explanation_penalty(model: Any, x01: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """M(θ): the mean squared input gradient of Σ_k log p_k inside ``mask`` ((N, 1, H, W); None: everywhere)
    for [0, 1] images ``x01`` at the model's current weights (the quantity :func:`rrr` penalises).

    Example:
        >>> explanation_penalty(lm, x_snow, road_mask)      # lower after an rrr edit is applied
    """
    lm = as_loaded(model, "explanation_penalty")
    was_training = lm.model.training
    lm.model.eval()
    try:
        return float(gradient_mass(_input_gradient(lm.model, lm.normalize(x01.to(lm.device)))[1], mask))
    finally:
        lm.model.train(was_training)


def rrr(
    model: Any,
    site: EditSite | int | str,
    exemplars: Exemplars | torch.Tensor,
    target: int | Sequence[int] | torch.Tensor | None = None,
    config: RRRConfig | None = None,
    stats: Any = None,
) -> Edit:
    """Fine-tune on the transformed exemplars towards ``target`` with the input-gradient penalty inside
    the exemplars' mask (everywhere without one); the model is left unchanged, the edit returned.
    ``model`` is a :class:`~modeledit.models.LoadedModel`; ``exemplars`` hold [0, 1] images.

    ``stats`` is not used (the methods' common call shape, as :func:`~modeledit.finetuning.finetune`).

    Example:
        >>> edit = rrr(lm, "features.11", ex, target=0, config=RRRConfig(scope="local", lr=1e-2, steps=200, lam=10.0))
    """
    cfg = config or RRRConfig()
    lm = as_loaded(model, "rrr")
    ex = exemplars if isinstance(exemplars, Exemplars) else Exemplars(exemplars, exemplars)
    dev = lm.device
    region = cfg.region
    if region == "mask" and ex.mask is None:
        log.info("rrr: the exemplars carry no mask; penalising the input gradient everywhere")
        region = "everywhere"
    mask = ex.mask.to(dev) if region == "mask" else None
    before = explanation_penalty(lm, ex.x_prime, mask)
    lam = float(cfg.lam) / before if before > 0 else float(cfg.lam)

    def objective(m: nn.Module, xp: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits, g = _input_gradient(m, xp, create_graph=True)
        return F.cross_entropy(logits, y) + lam * gradient_mass(g, mask)

    with _twice_differentiable_attention():
        edit = finetune(lm, site, ex, target=target, config=cfg.finetune_config(), objective=objective if lam > 0 else None,
                        method=f"rrr_{cfg.scope}")
    with edit.applied(lm):
        after = explanation_penalty(lm, ex.x_prime, mask)
    edit.config = asdict(cfg)
    edit.metrics.update({"penalty_before": before, "penalty_after": after, "lam": float(cfg.lam), "lam_absolute": lam,
                         "region": region})
    log.info("rrr %s: gradient mass in the %s %.4g -> %.4g (lambda %g)", cfg.scope, region, before, after, lam)
    return edit
