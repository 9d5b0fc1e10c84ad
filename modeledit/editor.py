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
  :data:`ADAM_GRID`. The loop runs on the bound site, on the objective's positions only (their keys
  gathered once: the positions for 1x1 convs and linear layers, an unfold otherwise), with the L1
  gradient written out and preallocated buffers: the same function and gradient as autograd through
  the convolution, at a fraction of the cost.
* ``linear``: one shared ridge solve of the pre-activation against a linear target (the MEMIT form; no IRLS or active
  sets): fast and approximate, for many rules at once (:mod:`modeledit.rules`).
* ``closed_form``: with BN in eval mode the site is affine in Λ before its nonlinearity:
  pre-activation z_o = z0_o + s_o · (Λ_o · P), where P stacks the projected keys dᵀk of every kernel tap
  seen by an output position (an unfold), s_o the folded BN scale and z0 the unedited pre-activation.
  Each output channel's Λ_o (kh·kw·r unknowns) solves a small weighted least-squares problem with a
  relative ridge (primal normal equations, or the dual P x P form when there are more unknowns than
  positions; symmetric positive definite, solved by Cholesky on √weight-scaled rows, so positions of
  weight 0 contribute nothing and are dropped before the solve). With equal weights on an identity
  site every channel shares one matrix: one linear solve, the MEMIT form ΔW ∝ R Kᵀ(λC + K Kᵀ)⁻¹ in
  whitened coordinates; this is the first pass, and with ``l1=False`` the only one. Identity sites: target z = v* everywhere. ReLU sites: a Gauss-Newton active set per
  channel, the positions where the current prediction is positive (target v*, which is 0 for the
  violations where v* = 0), re-derived every pass. The L1 objective is approached by iteratively
  reweighted least squares. Each pass takes the best step λ + α(λ_LS - λ),
  α in {``extrapolate``, ..., 4, 2, 1, 1/2, ..., 1/16}, by the true objective, so the objective never rises;
  passes stop when it improves by less than ``tol``. The over-relaxed steps (α > 1) shorten IRLS's slow
  linear tail at identity sites, where the L1 objective is convex; ReLU sites keep α <= 1, because there a
  longer step can leave its linear piece and end in a worse local optimum of the non-convex objective.

Example:
    >>> from modeledit.editor import EditConfig, rewrite
    >>> edit = rewrite(lm, site, exemplars, config=EditConfig(solver="closed_form"), stats=st)
    >>> edit.metrics["objective_before"], edit.metrics["objective_after"]
    >>> edit.apply(lm.model)
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from modeledit.config import JsonConfig
from modeledit.edit import Edit, ParamChange
from modeledit.exemplars import MODES, Exemplars, ExemplarTensors, collect
from modeledit.layers import BoundSite, EditSite, bind_site
from modeledit.models import as_loaded, as_module
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
    extrapolate: float = 4.0         # largest over-relaxed step α > 1 tried per pass at identity sites (1: none)

    def validate(self, key_dim: int) -> int:
        """The numeric rank, after checking the config against a site with ``key_dim`` key channels."""
        if self.solver not in SOLVERS:
            raise ValueError(f"unknown solver {self.solver!r}; choose from {sorted(SOLVERS)}")
        if self.mode not in MODES:
            raise ValueError(f"unknown objective mode {self.mode!r}; choose from {MODES}")
        if not self.extrapolate >= 1.0:
            raise ValueError(f"extrapolate must be at least 1 (1: damped steps only), got {self.extrapolate!r}")
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


def update_direction(keys: torch.Tensor, weights: torch.Tensor, c: torch.Tensor | None, rank: int,
                     inv_sqrt: torch.Tensor | None = None) -> torch.Tensor:
    """d = C⁻¹D = C^{-1/2}E (d x rank, float64): E the top eigenvectors of the whitened exemplar keys' second moment.

    ``inv_sqrt``: C^{-1/2} already computed (many rules at one site); then, with fewer keys than dimensions, E comes
    from the keys' n x n Gram matrix (the same eigenvectors, up to sign, at a fraction of the cost)."""
    dim = keys.shape[1]
    with single_threaded():
        if inv_sqrt is None:
            if c is None:
                c = torch.eye(dim, dtype=torch.float64, device=keys.device)
            c = c.to(keys.device, torch.float64)
            s, u = torch.linalg.eigh(0.5 * (c + c.T))
            inv_sqrt = (u * s.clamp_min(torch.finfo(torch.float64).tiny).rsqrt()) @ u.T
        elif rank <= keys.shape[0] < dim:
            kw = (keys @ inv_sqrt.to(keys.device, torch.float64)) * weights.sqrt()[:, None]
            g = kw @ kw.T
            _, v = torch.linalg.eigh(0.5 * (g + g.T))
            e = kw.T @ v.flip(-1)[:, :rank]
            return inv_sqrt.to(keys.device, torch.float64) @ (e / e.norm(dim=0).clamp_min(torch.finfo(torch.float64).tiny))
        inv_sqrt = inv_sqrt.to(keys.device, torch.float64)
        kw = keys @ inv_sqrt
        m = (kw * weights[:, None]).T @ kw
        _, e = torch.linalg.eigh(0.5 * (m + m.T))
    e = e.flip(-1)[:, :rank]                     # top-r, descending
    return inv_sqrt @ e


#: The warning of a rewrite without statistics (C = I).
NO_STATS_WARNING = ("rewrite without statistics uses C = I (Euclidean key space), so the edit will also move unrelated images "
                    "much more; pass stats=second_moment(...) of the site's keys over a dataset")


def _stats_matrix(stats: SecondMoment | torch.Tensor | None, site: EditSite, ridge: float) -> tuple[torch.Tensor | None, dict]:
    """C (float64, regularised) or None for C = I, and a JSON-able record of which statistics were used."""
    if stats is None:
        warnings.warn(NO_STATS_WARNING, UserWarning, stacklevel=3)
        log.info("no statistics given for %s: using C = I", site.name)
        return None, {"source": "none", "matrix": "identity"}
    if isinstance(stats, SecondMoment):
        if stats.site and stats.site != site.name:
            raise ValueError(f"statistics were computed at site {stats.site!r}, not {site.name!r}; compute them at the edited site")
        c = stats.regularized(ridge)
        info = {"source": "second_moment", "dataset_id": stats.dataset_id or None, "keys": int(stats.count), "ridge": ridge,
                "ridge_absolute": float((c.diagonal() - stats.mean.diagonal()).mean()) if c.shape == stats.total.shape else None,
                "site": stats.site, "model_hash": stats.model_hash or None}
    elif isinstance(stats, torch.Tensor):
        c = stats.double()
        info = {"source": "matrix", "dataset_id": None, "keys": None, "ridge": None}
    else:
        raise TypeError(f"stats must be a SecondMoment (from modeledit.stats.second_moment), a (d, d) tensor or None, got {type(stats).__name__}")
    if c.shape != (site.key_channels, site.key_channels):
        raise ValueError(f"statistics of shape {tuple(c.shape)} do not fit site {site.name} with {site.key_channels} key channels")
    return c, info


# ---------------------------------------------------------------------------------------------
# objective


def site_objective(model: nn.Module, site: EditSite | BoundSite, t: ExemplarTensors, weight: torch.Tensor | None = None) -> torch.Tensor:
    """The paper's L1: weighted mean |site_forward(k*; W) - v*| over the objective's positions and channels."""
    out = bind_site(model, site).forward(t.key, t.skip, weight)
    return ((out - t.value).abs() * t.weight).sum() / (t.weight.sum() * t.value.shape[1])


# ---------------------------------------------------------------------------------------------
# solvers: (model, site, tensors, dirs (in, r) float32, config) -> lam (out, r, kh, kw)


def _unfold_projected(site: BoundSite, key: torch.Tensor, dirs: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
    """(positions, r*kh*kw): projected keys seen by each output position, ordered like Λ.reshape(out, -1)."""
    geo = site.geometry
    if geo["groups"] != 1:
        raise ValueError(f"site {site.name} is a grouped convolution; rank-one rewrites need a dense layer")
    p = torch.einsum("ndhw,dr->nrhw", key, dirs)
    if site.pointwise:
        return _positions(p)
    cols = F.unfold(p, kernel, dilation=geo["dilation"], padding=geo["padding"], stride=geo["stride"])
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def _positions(t: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N*H*W, C)."""
    return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])


def _spd_solve(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Solve batched symmetric positive definite systems a x = b (b (..., n, k)) by Cholesky; systems whose
    factorisation fails (numerically indefinite) fall back to a least-squares solve. Only the lower triangle
    of ``a`` is read (the upper may hold anything)."""
    chol, info = torch.linalg.cholesky_ex(a)
    if bool((info == 0).all()):
        return torch.cholesky_solve(b, chol)
    x = torch.empty_like(b)
    ok = info == 0
    if bool(ok.any()):
        x[ok] = torch.cholesky_solve(b[ok], chol[ok])
    bad = a[~ok].tril()
    bad = bad + bad.tril(-1).mT                                                   # the symmetric matrix Cholesky saw
    x[~ok] = torch.linalg.lstsq(bad, b[~ok], driver="gelsd" if a.device.type == "cpu" else None).solution
    return x


class _Ridge:
    """Per output channel o: argmin_λ Σ_p ω_po (s_o x_p·λ - rhs_po)² + μ_o‖λ‖², μ_o = ridge x mean diagonal.

    Built once per solve for the fixed projected keys x (P, m); :meth:`solve` takes omega and rhs (P, c)
    and s (c,) and returns λ (c, m). ``omega`` None means weight 1 everywhere: every channel then shares
    one matrix (the MEMIT-style single solve). Otherwise each channel solves its own symmetric positive
    definite system by Cholesky: the primal normal equations (m x m; from the precomputed products
    x_p x_pᵀ, lower triangles only, when they are small, else from rows scaled by √ω) when m <= P, the
    dual (kernel) form (P x P, from the Gram matrix x xᵀ scaled by √ω_p √ω_q) otherwise. A zero weight gives
    a zero row, never a division. Channels go in memory-bounded chunks, so Ctrl-C is honoured between chunks.
    """

    def __init__(self, x: torch.Tensor, ridge: float) -> None:
        x = x.contiguous()
        self.x, self.ridge = x, ridge
        p, m = x.shape
        self.dual = m > p
        self.sq = (x * x).sum(1)
        self.gram = x @ x.T if self.dual else None
        self.outer = None
        if not self.dual and p * m * m <= 4e6:
            # the lower triangles of x_p x_pᵀ, (T = m(m+1)/2, P): the Cholesky factorisation reads nothing else
            lower = torch.tril_indices(m, m, device=x.device)
            self.lower = lower[0] * m + lower[1]                                     # flat (i, j), i >= j
            self.diag = (lower[0] == lower[1]).nonzero().squeeze(1)                 # their diagonal entries
            self.outer = (x[:, lower[0]] * x[:, lower[1]]).T.contiguous()
        n = min(m, p)
        self.eye = torch.eye(n, dtype=x.dtype, device=x.device)

    def solve(self, omega: torch.Tensor | None, rhs: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        x, ridge, eye = self.x, self.ridge, self.eye
        p, m = x.shape
        if omega is None:
            # s_o² (XᵀX + μ'I) λ_o = s_o Xᵀ r_o with μ' = ridge·Σ‖x_p‖²/m: one matrix for all channels
            mu = ridge * self.sq.sum() / m
            if not self.dual:
                return (_spd_solve(x.T @ x + mu * eye, x.T @ rhs) / s).T
            return (x.T @ _spd_solve(self.gram + mu * eye, rhs) / s).T
        out_c = rhs.shape[1]
        per = m * m if self.outer is not None else (p * m if not self.dual else p * p)
        if self.outer is not None:
            omr = torch.mul(omega, rhs)                                                   # (P, c)
        # the scaled-rows path works on (c, P, m) copies: keep them cache-sized
        chunk = max(1, int((2e7 if self.outer is not None or self.dual else 2e6) // per))
        lam = torch.empty(out_c, m, dtype=x.dtype, device=x.device)
        for c0 in range(0, out_c, chunk):
            sl = slice(c0, min(out_c, c0 + chunk))
            om, r, sc = omega[:, sl], rhs[:, sl], s[sl]
            mu = ridge * (om.T @ self.sq) * sc * sc / m + 1e-12                                # (c,)
            if self.outer is not None:
                low = (self.outer @ om).mul_(sc * sc)                                     # (T, c)
                low[self.diag] += mu
                a = torch.zeros(sl.stop - c0, m * m, dtype=x.dtype, device=x.device)
                a[:, self.lower] = low.T                                                  # upper triangle unread
                b = (x.T @ omr[:, sl]).mul_(sc).T                                         # (c, m)
                lam[sl] = _spd_solve(a.view(-1, m, m), b.unsqueeze(-1)).squeeze(-1)
            elif not self.dual:
                w = om.clamp_min(0).sqrt().T                                                  # (c, P)
                xw = x[None] * w[:, :, None]                                                  # (c, P, m)
                a = (xw.transpose(1, 2) @ xw) * (sc * sc)[:, None, None] + mu[:, None, None] * eye
                b = ((om * r).T @ x) * sc[:, None]
                lam[sl] = _spd_solve(a, b.unsqueeze(-1)).squeeze(-1)
            else:
                w = om.clamp_min(0).sqrt().T                                                  # (c, P)
                a = self.gram[None] * (w[:, :, None] * w[:, None, :]) * (sc * sc)[:, None, None] + mu[:, None, None] * eye
                alpha = _spd_solve(a, (w * r.T).unsqueeze(-1)).squeeze(-1)                    # (c, P)
                lam[sl] = sc[:, None] * ((alpha * w) @ x)
        return lam


@torch.no_grad()
def solve_closed_form(model: nn.Module, site: EditSite | BoundSite, t: ExemplarTensors, dirs: torch.Tensor, cfg: EditConfig) -> torch.Tensor:
    """Λ of the closed form (see the module docstring). On CPU it runs on one thread: its work is many small
    batched solves, for which threads cost more than they give (on the shared 2-core machine the full rank
    at MobileNetV2 features.12 took 14 s on two threads and 0.4 s on one)."""
    with single_threaded() if t.key.device.type == "cpu" else contextlib.nullcontext():
        return _closed_form(model, site, t, dirs, cfg)


def _closed_form(model: nn.Module, site: EditSite | BoundSite, t: ExemplarTensors, dirs: torch.Tensor, cfg: EditConfig) -> torch.Tensor:
    site = bind_site(model, site)
    w0 = site.weight.detach()
    out_c, _, kh, kw = w0.shape
    r = dirs.shape[1]
    m = r * kh * kw
    x = _unfold_projected(site, t.key, dirs, (kh, kw)).double().contiguous()  # (P, m)
    s = site.scale.double()
    z0 = site.preactivation(t.key, t.skip, w0)
    z0, v = _positions(z0).double(), _positions(t.value).double()               # (P, out)
    pos_w = t.weight.reshape(-1).double()                                        # (P,)
    if x.shape[0] != z0.shape[0]:
        raise RuntimeError(f"unfolded keys give {x.shape[0]} positions but the site's value has {z0.shape[0]}")
    # zero-weight positions never enter the solve; they only count in the IRLS floor (mean residual over the map)
    used = pos_w > 0
    n_all, rest = x.shape[0], None
    if not bool(used.all()):
        rest = (x[~used], z0[~used], v[~used])
        x, z0, v, pos_w = x[used], z0[used], v[used], pos_w[used]
    p = x.shape[0]
    flops = out_c * (p * m * m + m ** 3 / 3) if m <= p else out_c * p ** 3 / 3 + p * p * m
    if flops > 2e11:
        raise ValueError(
            f"the closed form at {site.name} needs ~{flops:.1e} flops per pass ({m} unknowns per channel, {p} positions); "
            "use solver 'adam', a smaller rank or fewer exemplar positions"
        )
    relu = site.relu
    ridge = _Ridge(x, cfg.ridge)
    uniform = bool((pos_w == 1).all())
    # over-relaxed steps only where the objective is convex (identity sites): at a ReLU site a step beyond the
    # least-squares one can leave its linear piece for a worse local optimum (seen at vgg16_bn features.24/.40)
    over = [] if relu else [2.0 ** k for k in range(int(math.log2(cfg.extrapolate)), 0, -1)]   # ..., 4, 2
    alphas = torch.tensor((*over, 1.0, 0.5, 0.25, 0.125, 0.0625), dtype=x.dtype, device=x.device)
    chan = torch.arange(out_c, device=x.device)

    n_a, n_sets = len(alphas), (2 if relu else 1)
    s_rep = s.repeat(n_sets)
    rhs_rep = (v - z0).repeat(1, n_sets)
    vpos = v > 0

    def objectives(z: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
        """Candidates λ + α(λ_LS,k - λ) through their outputs: z = z0 + s·xλᵀ (P, out), xs = s·x stepᵀ (S, P, out) -> (S*A, out)."""
        per = max(1, int(2e7 // max(1, p * out_c * n_a)))
        outs = []
        for i in range(0, xs.shape[0], per):
            part = xs[i:i + per]
            zc = buf[:part.shape[0]]                                                             # (S', A, P, out), reused
            torch.addcmul(z, alphas[None, :, None, None], part[:, None], out=zc)
            if relu:
                zc.clamp_min_(0)
            zc.sub_(v).abs_()
            outs.append((zc.sum(2) if uniform else (zc * pos_w[:, None]).sum(2)).flatten(0, 1))
        return torch.cat(outs)

    omega_buf = torch.empty(p, n_sets * out_c, dtype=x.dtype, device=x.device)
    # one preallocated candidate buffer: a fresh multi-megabyte tensor every pass costs page faults
    buf = torch.empty(min(n_sets, max(1, int(2e7 // max(1, p * out_c * n_a)))), n_a, p, out_c, dtype=x.dtype, device=x.device)
    lam = torch.zeros(out_c, m, dtype=torch.float64, device=x.device)
    z = z0.clamp_min(0) if relu else z0
    cur = ((z - v).abs() * pos_w[:, None]).sum(0)
    passes = max(1, cfg.passes) if (relu or cfg.l1) else 1
    for it in range(passes):
        z = (x @ lam.T).mul_(s).add_(z0)
        irls = None
        if cfg.l1 and it > 0:
            res = z.clamp_min(0) if relu else z.clone()
            res.sub_(v).abs_()
            total = float(res.sum())
            if rest is not None:
                zr = rest[1] + (rest[0] @ lam.T) * s
                total += float(((zr.clamp_min(0) if relu else zr) - rest[2]).abs().sum())
            irls = res.clamp_min_(1e-3 * total / (n_all * out_c) + 1e-12).reciprocal_()
        if relu:
            # Gauss-Newton active set (prediction > 0), and the same plus every position with v* > 0: both in one solve
            act = z > 0
            wpos = pos_w[:, None] if irls is None else (irls if uniform else irls * pos_w[:, None])
            torch.mul(act, wpos, out=omega_buf[:, :out_c])
            torch.mul(act | vpos, wpos, out=omega_buf[:, out_c:])
            omega = omega_buf
        elif irls is None and uniform:
            omega = None                                                         # identity site, first pass: one shared solve
        else:
            omega = pos_w[:, None].expand(p, out_c)
            omega = omega * irls if irls is not None else omega
        step = ridge.solve(omega, rhs_rep, s_rep).view(n_sets, out_c, m) - lam      # (S, out, m)
        xs = torch.matmul(x, step.transpose(1, 2)).mul_(s)                             # (S, P, out)
        objs = objectives(z, xs).nan_to_num_(float("inf"))                            # (S*A, out): set-major, then α
        best_obj, k = objs.min(0)
        better = best_obj < cur
        chosen = lam + alphas[k % n_a][:, None] * step[k // n_a, chan]
        lam = torch.where(better[:, None], chosen, lam)
        before, cur = float(cur.sum()), torch.minimum(best_obj, cur)
        if float(cur.sum()) >= before * (1 - cfg.tol):
            break
    return lam.reshape(out_c, r, kh, kw).to(w0.dtype)


class _AdamProblem:
    """The adam objective on a bound site as one matrix product per step, with preallocated buffers.

    Only positions with a positive weight are kept (the masked objective touches no other output), and
    the keys each kept output position sees are gathered once (the positions themselves for 1x1 convs
    and linear layers, an unfold otherwise), so a step is pre = base + (cols Δᵀ)·s, the L1 gradient by
    hand, and gradΔ = (g·s)ᵀ cols: the same function and gradient as autograd through the convolution.
    """

    #: largest gathered key matrix (elements) before falling back to autograd through the convolution
    MAX_COLS = 6e7

    def __init__(self, site: BoundSite, t: ExemplarTensors, w0: torch.Tensor) -> None:
        out_c, cin, kh, kw = w0.shape
        geo = site.geometry
        norm = t.weight.sum() * t.value.shape[1]
        wpos = t.weight.reshape(-1)
        used = wpos > 0
        n_used = int(used.sum())
        self.ok = geo["groups"] == 1 and n_used * cin * kh * kw <= self.MAX_COLS
        if not self.ok:
            return
        if site.pointwise:
            cols = _positions(t.key)
        else:
            cols = F.unfold(t.key, (kh, kw), dilation=geo["dilation"], padding=geo["padding"], stride=geo["stride"])
            cols = cols.transpose(1, 2).reshape(-1, cols.shape[1])
        all_used = n_used == wpos.numel()
        pick = (lambda a: a.contiguous()) if all_used else (lambda a: a[used].contiguous())
        self.cols = pick(cols)                                                           # (P, cin*kh*kw)
        self.base = pick(_positions(site.preactivation(t.key, t.skip, w0)))             # (P, out)
        self.value = pick(_positions(t.value))
        self.wgt = pick((wpos / norm)[:, None].expand(-1, out_c))                       # (P, out): ω / norm
        self.scale = site.scale.view(1, -1)
        self.relu = site.relu
        p = self.cols.shape[0]
        self.pre = torch.empty(p, out_c, dtype=w0.dtype, device=w0.device)
        self.g = torch.empty_like(self.pre)
        self.grad = torch.empty(out_c, self.cols.shape[1], dtype=w0.dtype, device=w0.device)

    def gradient(self, delta: torch.Tensor) -> torch.Tensor:
        """d loss / d Δ for Δ (out, cin*kh*kw), into a preallocated buffer."""
        pre, g = self.pre, self.g
        torch.matmul(self.cols, delta.T, out=pre)
        pre.mul_(self.scale).add_(self.base)
        if self.relu:
            pre.clamp_min_(0)
        torch.sub(pre, self.value, out=g)
        g.sign_().mul_(self.wgt)
        if self.relu:
            g.mul_(pre > 0)                      # relu'(z) = 1 where the output is positive (autograd's choice at 0)
        g.mul_(self.scale)
        return torch.matmul(g.T, self.cols, out=self.grad)


def _adam(params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)   # one pass over the weight per step
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr)


def solve_adam(model: nn.Module, site: EditSite | BoundSite, t: ExemplarTensors, dirs: torch.Tensor, cfg: EditConfig) -> torch.Tensor:
    from modeledit.progress import tqdm

    site = bind_site(model, site)
    w0 = site.weight.detach()
    out_c, cin, kh, kw = w0.shape
    q, rmat = torch.linalg.qr(dirs.double())
    q = q.to(w0.dtype)
    every = max(1, cfg.project_every)

    def project(dw: torch.Tensor) -> torch.Tensor:          # each tap's ΔW_tap Q Qᵀ; dw (out, cin, taps)
        return torch.einsum("ork,br->obk", torch.einsum("oak,ar->ork", dw, q), q)

    prob = _AdamProblem(site, t, w0)
    with torch.no_grad():
        if prob.ok:
            delta = torch.zeros(out_c, cin * kh * kw, dtype=w0.dtype, device=w0.device, requires_grad=True)
            opt = _adam([delta], cfg.lr)
            d3 = delta.detach().view(out_c, cin, kh * kw)
            for step in tqdm(range(cfg.steps), desc=f"adam {site.name}", leave=False, mininterval=2.0):
                delta.grad = prob.gradient(delta.detach())
                opt.step()
                if (step + 1) % every == 0:
                    d3.copy_(project(d3))
        else:                                            # grouped or huge: autograd through the site's convolution
            delta = torch.zeros_like(w0, requires_grad=True)
            opt = _adam([delta], cfg.lr)
            norm = t.weight.sum() * t.value.shape[1]
            d3 = delta.detach().view(out_c, cin, kh * kw)
            for step in tqdm(range(cfg.steps), desc=f"adam {site.name}", leave=False, mininterval=2.0):
                opt.zero_grad(set_to_none=True)
                with torch.enable_grad():
                    out = site.forward(t.key, t.skip, w0 + delta)
                    loss = ((out - t.value).abs() * t.weight).sum() / norm
                    loss.backward()
                opt.step()
                if (step + 1) % every == 0:
                    d3.copy_(project(d3))
        dw = project(delta.detach().reshape(out_c, cin, kh * kw)).reshape(out_c, cin, kh, kw)
        # ΔW_tap = ΔW_tap Q Qᵀ and d = Q R  =>  ΔW_tap = (ΔW_tap Q R⁻ᵀ) dᵀ
        lam = torch.einsum("oaij,ar->orij", dw.double(), q.double())
        rinv_t = torch.linalg.inv(rmat).T
        lam = torch.einsum("orij,rs->osij", lam, rinv_t)
    return lam.to(w0.dtype)


@torch.no_grad()
def solve_linear(model: nn.Module, site: EditSite | BoundSite, t: ExemplarTensors, dirs: torch.Tensor, cfg: EditConfig,
                 chunk: int = 256, penalty: torch.Tensor | None = None) -> torch.Tensor:
    """Λ of one shared ridge solve (the MEMIT form, no IRLS or active sets): the least-squares fit of the
    pre-activation to a linear target, t = v* where the site is linear or v* > 0, else min(z0, 0) (a ReLU output of 0 is
    reached by any non-positive pre-activation, so already-silent positions keep theirs), weighted by the objective's
    position weights. The normal equations are accumulated over exemplars in chunks of ``chunk`` images, so thousands
    of rules' keys fit in memory; one (r·kh·kw)² system is solved for every output channel at once. Fast and
    approximate: it ignores the L1 objective and the ReLU's kink that ``closed_form`` follows. ``penalty``: an extra
    (r·kh·kw)² positive semidefinite matrix added to the normal equations after the relative ridge (a quadratic penalty
    on the scaled update, e.g. :func:`modeledit.rules.rewrite_rules`' kept-output and norm terms)."""
    site = bind_site(model, site)
    w0 = site.weight.detach()
    out_c, _, kh, kw = w0.shape
    r = dirs.shape[1]
    m = r * kh * kw
    s = site.scale.double()
    a = torch.zeros(m, m, dtype=torch.float64, device=w0.device)
    b = torch.zeros(m, out_c, dtype=torch.float64, device=w0.device)
    with single_threaded() if w0.device.type == "cpu" else contextlib.nullcontext():
        for i in range(0, t.key.shape[0], chunk):
            sl = slice(i, i + chunk)
            x = _unfold_projected(site, t.key[sl], dirs, (kh, kw)).double()
            z0 = _positions(site.preactivation(t.key[sl], None if t.skip is None else t.skip[sl], w0)).double()
            v = _positions(t.value[sl]).double()
            target = torch.where(v > 0, v, z0.clamp_max(0)) if site.relu else v
            sw = t.weight[sl].reshape(-1).double().sqrt()[:, None]
            x, rhs = x * sw, (target - z0) * sw
            a += x.T @ x
            b += x.T @ rhs
        mu = cfg.ridge * float(a.diagonal().sum()) / m + 1e-12
        a.diagonal().add_(mu)
        if penalty is not None:
            a += penalty.to(a)
        lam = (_spd_solve(a, b) / s).T                                                        # (out, m)
    return lam.reshape(out_c, r, kh, kw).to(w0.dtype)


Solver = Callable[[nn.Module, EditSite, ExemplarTensors, torch.Tensor, EditConfig], torch.Tensor]
#: solver name -> ``fn(model, site, tensors, dirs, config) -> Λ``: the one list of solvers (``EditConfig.solver``,
#: ``modeledit edit --solver`` and its help read it), filled only by :func:`register_solver`, the built-ins too
SOLVERS: dict[str, Solver] = {}


def register_solver(name: str, fn: Solver, replace: bool = False) -> None:
    """Add a solver ``fn(model, site, tensors, dirs, config) -> Λ (out, r, kh, kw)`` under ``name``: ``EditConfig(solver=name)``
    and ``modeledit edit --solver name`` then use it. The built-in solvers are registered the same way. A name that is
    taken by another function is a ValueError unless ``replace``.

    Example:
        >>> register_solver("my_solver", lambda model, site, t, dirs, cfg: solve_closed_form(model, site, t, dirs, cfg))
        >>> rewrite(lm, site, exemplars, config=EditConfig(solver="my_solver"))
    """
    if not isinstance(name, str) or not name or any(c.isspace() or c == "," for c in name):
        raise ValueError(f"a solver name is one word without spaces or commas, got {name!r}")
    if not callable(fn):
        raise TypeError(f"solver {name!r} must be a function (model, site, tensors, dirs, config) -> Λ, got {type(fn).__name__}")
    if SOLVERS.get(name, fn) is not fn and not replace:
        raise ValueError(f"solver {name!r} is already registered; choose another name or pass replace=True")
    SOLVERS[name] = fn


register_solver("closed_form", solve_closed_form)
register_solver("adam", solve_adam)
register_solver("linear", solve_linear)


# ---------------------------------------------------------------------------------------------
# entry point


def _image_list(images: Any) -> list[Any]:
    """One image (path, PIL, array, (3, H, W) tensor), a batch (N, 3, H, W) or a list, as a list."""
    if isinstance(images, (list, tuple)):
        return list(images)
    if isinstance(images, torch.Tensor) and images.dim() == 4:
        return list(images)
    return [images]


def resolve_stats(lm: Any, site: EditSite, stats: Any, batch_size: int = 32) -> SecondMoment | torch.Tensor | None:
    """Statistics as the editor takes them: a SecondMoment, a (d, d) tensor or None as given; a folder of
    images (path) or a dataset / loader of [0, 1] images is streamed through ``lm`` at ``site`` (a folder's
    result is cached under its identity)."""
    import os

    from modeledit.image_folder import ImageFolder
    from modeledit.stats import second_moment

    if stats is None or isinstance(stats, (SecondMoment, torch.Tensor)):
        return stats
    if isinstance(stats, (str, os.PathLike)):
        data = ImageFolder(stats, size=lm.input_size)   # the folder `modeledit stats DIR` reads: the same identity, the same cache
        loader = torch.utils.data.DataLoader(data, batch_size=batch_size)
        return second_moment(lm, site, loader, dataset_id=data.identity)
    if isinstance(stats, torch.utils.data.Dataset):
        stats = torch.utils.data.DataLoader(stats, batch_size=batch_size)
    if isinstance(stats, torch.utils.data.DataLoader):
        return second_moment(lm, site, stats, dataset_id=None)
    raise TypeError(f"stats must be a SecondMoment, a (d, d) tensor, a folder of images, a dataset or loader of [0, 1] images, "
                    f"or None; got {type(stats).__name__}")


def rewrite(
    model: Any,
    site: EditSite | BoundSite | int | str,
    exemplars: Any,
    transformed: Any = None,
    *,
    mask: Any = None,
    config: EditConfig | None = None,
    stats: Any = None,
    target: Any = None,
    **fields: Any,
) -> Edit:
    """Compute the rank-r rewrite of ``site`` mapping the exemplars' keys at x' to their values at x.

    ``model`` is a :class:`~modeledit.models.LoadedModel`; images are in [0, 1]. Give either
    :class:`~modeledit.exemplars.Exemplars` or the original image(s) and, as ``transformed``, the same
    picture(s) with the concept restyled (paths, PIL images, arrays or tensors; one or a list), with
    optional concept ``mask`` (s). ``config`` (or its fields as keywords, e.g. ``rank=1, mode="masked"``)
    sets the solver. ``stats``: the keys' second moment C (a SecondMoment, a folder of images or a
    dataset to compute it from); without it C = I, with a warning (edits then move unrelated images far
    more). The model is not changed: apply the returned :class:`~modeledit.edit.Edit`. ``metrics``
    holds ``objective_before``, ``objective_after`` (the paper's L1 on the exemplars), ``seconds``,
    ``solve_seconds`` (wall) and ``solve_cpu_seconds`` (process CPU time) of the solver, ``solver`` and
    which ``statistics`` were used. ``target`` is not used (a rewrite keeps the values the originals have); it
    is there so every method of the comparison shares one call shape, ``fn(lm, site, exemplars, target=...,
    config=..., stats=...)`` (:mod:`modeledit.eval.methods`).

    Example:
        >>> edit = rewrite(lm, "features.14", "road.png", "road_snow.png", mask="road_mask.png", stats="val_images/")
        >>> edit = rewrite(lm, -1, ex, config=EditConfig(solver="adam", lr=1e-3, steps=10000), stats=st)
    """
    if isinstance(transformed, EditConfig):
        raise TypeError("pass the EditConfig as config=... (the fourth argument is the transformed image)")
    if config is not None and fields:
        raise TypeError(f"give either config= or its fields ({sorted(fields)}) as keywords, not both")
    cfg = config or EditConfig(**fields)
    if isinstance(exemplars, ExemplarTensors):
        lm = None
        if transformed is not None or mask is not None:
            raise TypeError("collected ExemplarTensors already hold keys and values; give no transformed images or mask")
    else:
        lm = as_loaded(model, "rewrite")
        if not isinstance(exemplars, Exemplars):
            if transformed is None:
                raise TypeError("give the transformed image(s) too: rewrite(lm, site, original, transformed)")
            exemplars = Exemplars.from_images(lm, _image_list(exemplars), _image_list(transformed),
                                              masks=None if mask is None else _image_list(mask))
        elif transformed is not None or mask is not None:
            raise TypeError("Exemplars already hold the transformed images and masks; give no transformed or mask")
    module = as_module(model)
    bound = bind_site(module, site)
    stats = resolve_stats(lm, bound.site, stats) if lm is not None else stats
    model = module
    site = bound.site
    rank = cfg.validate(site.key_channels)
    if site.kind == "linear" and bound.layer_module.weight.dim() != 2:
        raise TypeError(f"site {site.name} is linear but its weight is not a matrix")
    was_training = model.training
    model.eval()
    try:
        t0 = time.perf_counter()
        tens = exemplars if isinstance(exemplars, ExemplarTensors) else collect(lm, site, exemplars, cfg.mode)
        c, stats_info = _stats_matrix(stats, site, cfg.stats_ridge)
        keys, kw = _flat_keys(tens)
        dirs = update_direction(keys, kw, c, rank).to(tens.key.dtype)
        with torch.no_grad():
            before = float(site_objective(model, bound, tens))
        t_solve, c_solve = time.perf_counter(), time.process_time()
        lam = SOLVERS[cfg.solver](model, bound, tens, dirs, cfg)
        if lam.is_cuda:   # GPU kernels run asynchronously: the solve's time is the time to its result
            torch.cuda.synchronize(lam.device)
        solve_seconds, solve_cpu = time.perf_counter() - t_solve, time.process_time() - c_solve
        param = f"{site.layer}.weight"
        change = ParamChange("lowrank", {"lam": lam.detach().contiguous(), "dir": dirs.detach().contiguous()})
        edit = Edit.from_changes(model, "rewrite", {param: change}, sites=[site.name], config=asdict(cfg))
        new_w = edit.new_values(model)[param]
        new_w = new_w if new_w.dim() == 4 else new_w[:, :, None, None]
        with torch.no_grad():
            after = float(site_objective(model, bound, tens, new_w))
        edit.metrics.update({
            "objective_before": before,
            "objective_after": after,
            "seconds": time.perf_counter() - t0,
            "solve_seconds": solve_seconds,
            "solve_cpu_seconds": solve_cpu,
            "solver": cfg.solver,
            "layer": site.layer,
            "site": site.name,
            "rank": rank,
            "exemplars": int(tens.key.shape[0]),
            "statistics": stats_info,
            "device": str(lam.device),
        })
        log.info("rewrite %s (%s, rank %d): objective %.4g -> %.4g in %.2fs", site.name, cfg.solver, rank, before, after, edit.metrics["seconds"])
        return edit
    finally:
        model.train(was_training)
