r"""The rank-r rewrite of one edit site (Bau et al. 2020; Santurkar et al. 2021, sec. 6.2, app. E.1.3).

Math. Let C = E[k kᵀ] be the second moment of the site's keys over a dataset (input-channel space,
one key per spatial position; :mod:`modeledit.stats`) and K* the exemplar keys (the rewritten layer's
input at the transformed images x', on the objective's positions). Whiten with C^{-1/2}:
k̃ = C^{-1/2} k, so generic keys are isotropic. Let E (d x r) hold the top-r eigenvectors of
Σ k̃* k̃*ᵀ, and D = C^{1/2} E their directions in key space. The update direction is

    d = C⁻¹ D = C^{-1/2} E            (d x r),   dᵀ C d = I_r,

and the rewrite is W' = W + Λ dᵀ applied per kernel tap: ΔW[:, :, i, j] = Λ[:, :, i, j] dᵀ with
Λ of shape (out, r, kh, kw). A key k then changes the tap's output by Λ (Eᵀ k̃): exemplar keys, which
are large along E after whitening, move a lot; generic keys (isotropic, of which E sees only r of d
dimensions) move little, and ‖Λ‖² = E_k ‖ΔW k‖² over the statistics' keys, so a ridge on Λ is a
penalty on the change of the layer's output on ordinary data. ``rank="full"`` uses every
eigenvector (r = d): the unrestricted update of the ablation, with the same C-weighted geometry.

Objective (the paper's): the L1 distance, averaged over the objective's positions and channels,
between the site's output at the keys k* (and skip at x'), computed by
:func:`modeledit.layers.site_forward` with W', and the values v* at the original images x.

Solvers (registry :data:`SOLVERS`):

* ``adam``: the paper's optimisation: Adam on the weight, the change ΔW projected back onto the
  rank-r row space span(d) every ``project_every`` steps and at the end; paper's (lr, steps) grid in
  :data:`ADAM_GRID`.
* ``closed_form``: with BN in eval mode the site is affine in Λ before its nonlinearity:
  pre-activation z_o = z0_o + s_o · (Λ_o · P), where P stacks the projected keys dᵀk of every kernel tap
  seen by an output position (an unfold), s_o the folded BN scale and z0 the unedited pre-activation.
  Each output channel's Λ_o (kh·kw·r unknowns) solves a small weighted least-squares problem with a
  relative ridge (primal normal equations, or the dual P x P form when there are more unknowns than
  positions). Identity sites: target z = v* everywhere. ReLU sites: a Gauss-Newton active set per
  channel, the positions where the current prediction is positive (target v*, which is 0 for the
  violations where v* = 0), re-derived every pass. (Also forcing every v* > 0 position into the set
  stalls: its L2 fit pushes inactive positions above 0 and the L1 objective rises.) The L1 objective is
  approached by iteratively reweighted least squares. Each pass takes the best damped step
  λ + α(λ_LS - λ), α in {1, 1/2, ..., 1/16}, by the true objective, so the objective never rises;
  passes stop when it improves by less than ``tol``. No long optimisation.

Example:
    >>> from modeledit.editor import EditConfig, rewrite
    >>> edit = rewrite(lm.model, site, exemplars, EditConfig(solver="closed_form"), stats=st)
    >>> edit.metrics["objective_before"], edit.metrics["objective_after"]
    >>> edit.apply(lm.model)
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from modeledit.config import JsonConfig
from modeledit.edit import Edit, ParamChange
from modeledit.exemplars import MODES, Exemplars, ExemplarTensors, collect
from modeledit.layers import EditSite, conv_geometry, get_site, layer_weight_as_conv, resolve_module, site_affine, site_forward
from modeledit.stats import SecondMoment, single_threaded

log = logging.getLogger(__name__)

#: The paper's (learning rate, steps) grid for the adam solver.
ADAM_GRID: tuple[tuple[float, int], ...] = ((1e-3, 10000), (1e-4, 20000), (1e-5, 40000), (1e-6, 80000), (1e-7, 80000))


@dataclass
class EditConfig(JsonConfig):
    """Hyperparameters of a rewrite. ``rank`` is an int or ``"full"``; ``mode`` ``"whole"`` or ``"masked"``."""

    solver: str = "closed_form"
    rank: int | str = 1
    mode: str = "whole"
    stats_ridge: float = 1e-4        # relative ridge on C (see SecondMoment.regularized)
    # adam
    lr: float = 1e-4
    steps: int = 20000
    project_every: int = 10
    # closed_form
    passes: int = 40                 # active-set / IRLS refinement passes (at most)
    tol: float = 1e-4                # stop when a pass improves the objective by less (relative)
    ridge: float = 1e-6              # relative ridge on each channel's normal equations
    l1: bool = True                  # reweight towards the L1 objective (IRLS)

    def validate(self, key_dim: int) -> int:
        """The numeric rank, after checking the config against a site with ``key_dim`` key channels."""
        if self.solver not in SOLVERS:
            raise ValueError(f"unknown solver {self.solver!r}; choose from {sorted(SOLVERS)}")
        if self.mode not in MODES:
            raise ValueError(f"unknown objective mode {self.mode!r}; choose from {MODES}")
        if self.rank == "full":
            return key_dim
        if isinstance(self.rank, str) and self.rank.isdigit():
            self.rank = int(self.rank)
        if not isinstance(self.rank, int) or self.rank < 1:
            raise ValueError(f"rank must be a positive integer or 'full', got {self.rank!r}")
        if self.rank > key_dim:
            raise ValueError(f"rank {self.rank} is larger than the key dimension {key_dim} of this site; use at most {key_dim} or 'full'")
        return self.rank


# ---------------------------------------------------------------------------------------------
# direction


def _flat_keys(t: ExemplarTensors) -> tuple[torch.Tensor, torch.Tensor]:
    """Exemplar keys (n, d) on positions the objective uses, and their weights (n,)."""
    d = t.key.shape[1]
    k = t.key.permute(0, 2, 3, 1).reshape(-1, d).double()
    w = t.key_weight.reshape(-1).double()
    keep = w > 0
    return k[keep], w[keep]


def update_direction(keys: torch.Tensor, weights: torch.Tensor, c: torch.Tensor | None, rank: int) -> torch.Tensor:
    """d = C⁻¹D = C^{-1/2}E (d x rank, float64): E the top eigenvectors of the whitened exemplar keys' second moment."""
    dim = keys.shape[1]
    if c is None:
        c = torch.eye(dim, dtype=torch.float64, device=keys.device)
    c = c.to(keys.device, torch.float64)
    with single_threaded():
        s, u = torch.linalg.eigh(0.5 * (c + c.T))
        inv_sqrt = (u * s.clamp_min(torch.finfo(torch.float64).tiny).rsqrt()) @ u.T
        kw = keys @ inv_sqrt
        m = (kw * weights[:, None]).T @ kw
        _, e = torch.linalg.eigh(0.5 * (m + m.T))
    e = e.flip(-1)[:, :rank]                     # top-r, descending
    return inv_sqrt @ e


def _stats_matrix(stats: SecondMoment | torch.Tensor | None, site: EditSite, ridge: float) -> torch.Tensor | None:
    if stats is None:
        log.info("no statistics given for %s: using C = I (Euclidean key space); pass stats for the paper's method", site.name)
        return None
    if isinstance(stats, SecondMoment):
        if stats.site and stats.site != site.name:
            raise ValueError(f"statistics were computed at site {stats.site!r}, not {site.name!r}; compute them at the edited site")
        c = stats.regularized(ridge)
    else:
        c = stats.double()
    if c.shape != (site.key_channels, site.key_channels):
        raise ValueError(f"statistics of shape {tuple(c.shape)} do not fit site {site.name} with {site.key_channels} key channels")
    return c


# ---------------------------------------------------------------------------------------------
# objective


def site_objective(model: nn.Module, site: EditSite, t: ExemplarTensors, weight: torch.Tensor | None = None) -> torch.Tensor:
    """The paper's L1: weighted mean |site_forward(k*; W) - v*| over the objective's positions and channels."""
    out = site_forward(model, site, t.key, t.skip, weight)
    return ((out - t.value).abs() * t.weight).sum() / (t.weight.sum() * t.value.shape[1])


# ---------------------------------------------------------------------------------------------
# solvers: (model, site, tensors, dirs (in, r) float32, config) -> lam (out, r, kh, kw)


def _unfold_projected(model: nn.Module, site: EditSite, key: torch.Tensor, dirs: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
    """(positions, r*kh*kw): projected keys seen by each output position, ordered like Λ.reshape(out, -1)."""
    geo = conv_geometry(model, site)
    if geo["groups"] != 1:
        raise ValueError(f"site {site.name} is a grouped convolution; rank-one rewrites need a dense layer")
    p = torch.einsum("ndhw,dr->nrhw", key, dirs)
    cols = F.unfold(p, kernel, dilation=geo["dilation"], padding=geo["padding"], stride=geo["stride"])
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def _positions(t: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N*H*W, C)."""
    return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])


def _weighted_ridge(x: torch.Tensor, omega: torch.Tensor, rhs: torch.Tensor, s: torch.Tensor, ridge: float) -> torch.Tensor:
    """Per output channel o: argmin_λ Σ_p ω_po (s_o x_p·λ - rhs_po)² + μ_o‖λ‖², μ_o = ridge x mean diagonal.

    x (P, m), omega and rhs (P, out), s (out,) -> λ (out, m). Primal normal equations (m x m per channel)
    when m <= P, the dual (kernel) form (P x P per channel) otherwise; channels in memory-bounded chunks.
    """
    p, m = x.shape
    out_c = omega.shape[1]
    dual = m > p
    n = min(m, p)
    sq = (x * x).sum(1)
    gram = x @ x.T if dual else None
    chunk = max(1, int(2e7 // (n * n)))
    eye = torch.eye(n, dtype=x.dtype, device=x.device)
    lam = torch.empty(out_c, m, dtype=x.dtype, device=x.device)
    for c0 in range(0, out_c, chunk):
        sl = slice(c0, min(out_c, c0 + chunk))
        om, r, sc = omega[:, sl], rhs[:, sl], s[sl]
        mu = ridge * (om * sq[:, None]).sum(0) * sc * sc / m + 1e-12                      # (c,)
        if not dual:
            a = torch.einsum("pm,pc,pn->cmn", x, om, x) * (sc * sc)[:, None, None] + mu[:, None, None] * eye
            b = torch.einsum("pm,pc->cm", x, om * r) * sc[:, None]
            lam[sl] = torch.linalg.solve(a, b.unsqueeze(-1)).squeeze(-1)
        else:
            a = gram[None] * (sc * sc)[:, None, None] + torch.diag_embed(mu[:, None] / om.T.clamp_min(1e-10))
            alpha = torch.linalg.solve(a, r.T.unsqueeze(-1)).squeeze(-1)                 # (c, P)
            lam[sl] = sc[:, None] * (alpha @ x)
    return lam


@torch.no_grad()
def solve_closed_form(model: nn.Module, site: EditSite, t: ExemplarTensors, dirs: torch.Tensor, cfg: EditConfig) -> torch.Tensor:
    w0 = layer_weight_as_conv(model, site).detach()
    out_c, _, kh, kw = w0.shape
    r = dirs.shape[1]
    m = r * kh * kw
    x = _unfold_projected(model, site, t.key, dirs, (kh, kw)).double()         # (P, m)
    scale, shift = site_affine(model, site)
    s = scale.double()
    z0 = F.conv2d(t.key, w0, None, **conv_geometry(model, site)) * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)
    if t.skip is not None:
        z0 = z0 + t.skip
    z0, v = _positions(z0).double(), _positions(t.value).double()               # (P, out)
    pos_w = t.weight.reshape(-1).double()                                        # (P,)
    p = x.shape[0]
    if p != z0.shape[0]:
        raise RuntimeError(f"unfolded keys give {p} positions but the site's value has {z0.shape[0]}")
    flops = out_c * (p * m * m + m ** 3 / 3) if m <= p else out_c * p ** 3 / 3 + p * p * m
    if flops > 2e11:
        raise ValueError(
            f"the closed form at {site.name} needs ~{flops:.1e} flops per pass ({m} unknowns per channel, {p} positions); "
            "use solver 'adam', a smaller rank or fewer exemplar positions"
        )
    relu = site.activation == "relu"

    def predict(lam: torch.Tensor) -> torch.Tensor:
        z = z0 + (x @ lam.T) * s
        return z.clamp_min(0) if relu else z

    def channel_objectives(lams: torch.Tensor) -> torch.Tensor:
        """(K, out, m) candidates -> (K, out) objectives (channels are independent)."""
        per = max(1, int(2e7 // max(1, p * out_c)))
        outs = []
        for i in range(0, lams.shape[0], per):
            z = z0 + torch.einsum("pm,kom->kpo", x, lams[i:i + per]) * s
            z = z.clamp_min(0) if relu else z
            outs.append(((z - v).abs() * pos_w[:, None]).sum(1))
        return torch.cat(outs)

    lam = torch.zeros(out_c, m, dtype=torch.float64, device=x.device)
    cur = channel_objectives(lam[None])[0]
    passes = max(1, cfg.passes) if (relu or cfg.l1) else 1
    alphas = (1.0, 0.5, 0.25, 0.125, 0.0625)
    for it in range(passes):
        z = z0 + (x @ lam.T) * s
        # ReLU: Gauss-Newton active set (prediction > 0), and the same plus every position with v* > 0
        sets = [z > 0, (z > 0) | (v > 0)] if relu else [None]
        irls = None
        if cfg.l1 and it > 0:
            res = (predict(lam) - v).abs()
            irls = 1.0 / res.clamp_min(1e-3 * float(res.mean()) + 1e-12)
        cands = []
        for active in sets:
            omega = pos_w[:, None].expand(p, out_c)
            omega = omega * active if active is not None else omega
            omega = omega * irls if irls is not None else omega
            step = _weighted_ridge(x, omega, v - z0, s, cfg.ridge) - lam
            cands += [lam + a * step for a in alphas]
        stacked = torch.stack(cands)
        objs = channel_objectives(stacked).nan_to_num(float("inf"))                 # (K, out)
        best_obj, k = objs.min(0)
        better = best_obj < cur
        chosen = stacked[k, torch.arange(out_c, device=x.device)]
        lam = torch.where(better[:, None], chosen, lam)
        before, cur = float(cur.sum()), torch.minimum(best_obj, cur)
        if float(cur.sum()) >= before * (1 - cfg.tol):
            break
    best = lam
    return best.reshape(out_c, r, kh, kw).to(w0.dtype)


def solve_adam(model: nn.Module, site: EditSite, t: ExemplarTensors, dirs: torch.Tensor, cfg: EditConfig) -> torch.Tensor:
    from tqdm.auto import tqdm

    w0 = layer_weight_as_conv(model, site).detach()
    q, rmat = torch.linalg.qr(dirs.double())
    q = q.to(w0.dtype)

    def project(dw: torch.Tensor) -> torch.Tensor:
        return torch.einsum("oaij,ar,br->obij", dw, q, q)

    delta = torch.zeros_like(w0, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=cfg.lr)
    norm = t.weight.sum() * t.value.shape[1]
    for step in tqdm(range(cfg.steps), desc=f"adam {site.name}", leave=False, mininterval=2.0):
        opt.zero_grad(set_to_none=True)
        out = site_forward(model, site, t.key, t.skip, w0 + delta)
        loss = ((out - t.value).abs() * t.weight).sum() / norm
        loss.backward()
        opt.step()
        if (step + 1) % max(1, cfg.project_every) == 0:
            with torch.no_grad():
                delta.copy_(project(delta))
    with torch.no_grad():
        dw = project(delta.detach())
        # ΔW_tap = ΔW_tap Q Qᵀ and d = Q R  =>  ΔW_tap = (ΔW_tap Q R⁻ᵀ) dᵀ
        lam = torch.einsum("oaij,ar->orij", dw.double(), q.double())
        rinv_t = torch.linalg.inv(rmat).T
        lam = torch.einsum("orij,rs->osij", lam, rinv_t)
    return lam.to(w0.dtype)


SOLVERS: dict[str, Callable[[nn.Module, EditSite, ExemplarTensors, torch.Tensor, EditConfig], torch.Tensor]] = {
    "closed_form": solve_closed_form,
    "adam": solve_adam,
}


def register_solver(name: str, fn: Callable[[nn.Module, EditSite, ExemplarTensors, torch.Tensor, EditConfig], torch.Tensor]) -> None:
    """Add a solver ``fn(model, site, tensors, dirs, config) -> Λ (out, r, kh, kw)``."""
    SOLVERS[name] = fn


# ---------------------------------------------------------------------------------------------
# entry point


def rewrite(
    model: nn.Module,
    site: EditSite | int | str,
    exemplars: Exemplars | ExemplarTensors,
    config: EditConfig | None = None,
    stats: SecondMoment | torch.Tensor | None = None,
) -> Edit:
    """Compute the rank-r rewrite of ``site`` mapping the exemplars' keys at x' to their values at x.

    The model is not changed: apply the returned :class:`~modeledit.edit.Edit`. ``exemplars`` are in the
    model's input space (see :meth:`Exemplars.from_images`). ``metrics`` holds ``objective_before``,
    ``objective_after`` (the paper's L1 on the exemplars), ``seconds`` and ``solver``.

    Example:
        >>> edit = rewrite(lm.model, "features.14", ex, EditConfig(solver="adam", lr=1e-3, steps=10000), stats=st)
    """
    cfg = config or EditConfig()
    site = get_site(model, site)
    rank = cfg.validate(site.key_channels)
    if site.kind == "linear" and resolve_module(model, site.layer).weight.dim() != 2:
        raise TypeError(f"site {site.name} is linear but its weight is not a matrix")
    was_training = model.training
    model.eval()
    try:
        t0 = time.perf_counter()
        tens = exemplars if isinstance(exemplars, ExemplarTensors) else collect(model, site, exemplars, cfg.mode)
        c = _stats_matrix(stats, site, cfg.stats_ridge)
        keys, kw = _flat_keys(tens)
        dirs = update_direction(keys, kw, c, rank).to(tens.key.dtype)
        with torch.no_grad():
            before = float(site_objective(model, site, tens))
        t_solve = time.perf_counter()
        lam = SOLVERS[cfg.solver](model, site, tens, dirs, cfg)
        solve_seconds = time.perf_counter() - t_solve
        param = f"{site.layer}.weight"
        change = ParamChange("lowrank", {"lam": lam.detach().contiguous(), "dir": dirs.detach().contiguous()})
        edit = Edit.from_changes(model, "rewrite", {param: change}, sites=[site.name], config=asdict(cfg))
        new_w = edit.new_values(model)[param]
        new_w = new_w if new_w.dim() == 4 else new_w[:, :, None, None]
        with torch.no_grad():
            after = float(site_objective(model, site, tens, new_w))
        edit.metrics = {
            "objective_before": before,
            "objective_after": after,
            "seconds": time.perf_counter() - t0,
            "solve_seconds": solve_seconds,
            "solver": cfg.solver,
            "layer": site.layer,
            "site": site.name,
            "rank": rank,
            "exemplars": int(tens.key.shape[0]),
        }
        log.info("rewrite %s (%s, rank %d): objective %.4g -> %.4g in %.2fs", site.name, cfg.solver, rank, before, after, edit.metrics["seconds"])
        return edit
    finally:
        model.train(was_training)
