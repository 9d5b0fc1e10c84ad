r"""Many rules in one solve, preservation of kept keys, and edit sequences measured against a pinned base.

A *rule* is one exemplar set (original images x, transformed x', optional masks) at a site: "x' should act
like x". :func:`rewrite_rules` fixes several rules with one closed-form update of one site:

* each rule keeps its own direction from its own whitened keys (:func:`modeledit.editor.update_direction`:
  d_i = C^{-1/2} E_i), and the update's row space is the span of all of them, d = C^{-1/2} U with U an
  orthonormal basis of [E_1 ... E_k] (rank up to k x r, at most the key dimension);
* Λ is the joint least-squares solution over every rule's keys: the editor's solvers
  (:data:`modeledit.editor.SOLVERS`: ``closed_form`` with its ReLU active sets and IRLS, ``linear`` the one
  shared ridge solve, ``adam``) run on all rules' exemplar tensors at once. A batch of one rule is the
  single-rule :func:`~modeledit.editor.rewrite`;
* ``form="full"`` is the unrestricted MEMIT-style update (every whitened direction: ΔW ∝ R Kᵀ(λC + KKᵀ)⁻¹).

Preservation (AlphaEdit, Fang et al. 2025: ΔP = R K1ᵀP (K_p K_pᵀP + K1 K1ᵀP + I)⁻¹). ``keep=`` gives images (or
a second moment) whose site outputs must not change, ``protect=`` the keys of earlier edits (AlphaEdit's cache of
past keys K_p). Three parts, all in the edit's metadata (``metrics["keep"]``):

* the projection P: the eigenvectors U0 of the kept keys' second moment whose eigenvalues are at most
  ``keep_threshold`` x the largest span the approximate null space, and the directions are projected, d ← U0 U0ᵀ d
  (``keep_threshold=None``: no projection). Exact (ΔW k = 0) where the kept keys leave a true null space;
* the penalised solve of Λ (the ``linear`` solver's one ridge solve with extra terms; with ``keep``/``protect`` or a
  ``norm_weight`` this replaces ``config.solver``): with x the projected, unfolded keys (in the directions' units),
  n the exemplars' weighted positions, minimise Σ_exemplars (x θ - r)² + ``keep_weight``·n·E_kept[(x θ)²] +
  ``past_weight``·Σ_protected (x θ)² + ``norm_weight``·n·‖θ‖². The last is AlphaEdit's absolute "+I": the directions
  are C-orthonormal (dᵀCd = I), so ‖θ‖² is the expected squared output change of a training key (taps taken as
  independent) and the term does not depend on the keys' scale (without statistics it is scaled by the kept or
  exemplar keys' mean energy). The kept and protected terms use the keys' unfolded (tap x channel) second moments;
  a bare (d, d) second moment is taken tap by tap;
* ``max_norm`` optionally bounds ‖ΔW‖_F / ‖W‖_F (the update is scaled down to it).

Measured (see :data:`NORM_WEIGHT`): the projection alone does not protect full-rank kept keys (the relative ridge
lets Λ grow along the weak directions: a 60-rule sequence reached an objective of 1e14); the absolute norm term and the
kept/past output penalties do (the same sequence stays bounded and keeps every rule's fix, results/world/rules).

Sequences (:class:`RuleSequence`): rules added one by one; each new edit is solved on the model carrying the
earlier ones, with the earlier rules' keys protected (``protect``: the penalty keeps their current, edited outputs)
and ``keep`` (K0: e.g. the training statistics) projected and penalised. The sequence
holds a frozen copy of the base weights (:class:`PinnedBase`); :func:`measure_sequence` takes the sequence, not a
model, restores the pinned base itself and measures after every step, so "before" is always the base model.

Example:
    >>> from modeledit.rules import Rule, rewrite_rules, RuleSequence, measure_sequence
    >>> rules = [Rule.from_images(lm, "road:snow", [x1], [x1_snow]), Rule.from_images(lm, "grass:wood", [x2], [x2_wood])]
    >>> edit = rewrite_rules(lm, rules, "features.15", stats=st)            # one Edit, both rules
    >>> [(r["name"], r["objective_before"], r["objective_after"]) for r in edit.metrics["rules"]]
    >>> edit = rewrite_rules(lm, rules, "features.15", stats=st, keep=clean_images)   # clean outputs kept
    >>> seq = RuleSequence(lm, "features.15", stats=st)
    >>> for r in rules: seq.add(r)
    >>> rows = measure_sequence(seq, {"road:snow": (x, x_snow, y), "grass:wood": (x2, x2_wood, y2)}, clean=(xc, yc))
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from modeledit.edit import Edit, EditSequence, ParamChange
from modeledit.editor import SOLVERS, EditConfig, _flat_keys, _image_list, _stats_matrix, resolve_stats, update_direction
from modeledit.exemplars import Exemplars, ExemplarTensors, collect
from modeledit.layers import BoundSite, EditSite, bind_site, capture_sites, get_site
from modeledit.models import as_loaded
from modeledit.provenance import model_hash
from modeledit.stats import SecondMoment, single_threaded

log = logging.getLogger(__name__)

#: default relative eigenvalue threshold of the kept keys' null space. Measured (results/world/rules/keep_threshold.json,
#: world_vgg features.15, six rules, 64 kept images): 1e-2 leaves 76 of 96 directions and 95% of the rules' objective
#: gain; lower thresholds leave none (<= 1e-4) or cost more gain. The kept outputs are kept exactly only where the
#: kept keys do not span the key space; with full-rank kept keys the projection alone (that measurement, before the
#: penalised solve) let the update grow along the weak directions and the kept outputs moved as much as without keep
#: (35%): the penalties below are what protects them. ``max_norm`` has no default: it trades the fix against preservation.
KEEP_THRESHOLD = 1e-2
#: default weights of the penalised solve used with ``keep``/``protect``: the absolute norm term (AlphaEdit's "+I", per
#: exemplar position, in units of a training key's output change), the kept keys' output change (per exemplar position,
#: mean over kept keys) and the protected (past) keys' output change (summed over their positions, as AlphaEdit's
#: K_p K_pᵀ). Measured (results/world/rules/keep_grid_15, 15 world_vgg rules in sequence): with the rank-restricted form
#: the norm weight hardly matters (0.01 and 0.1 identical) and past_weight 1 keeps 1.01 of the rules' objective gains on
#: average (worst 0.87) at -2 pp clean; the full form needs norm_weight=10 (past_weight=10: worst 0.99, -3.7 pp; 0.1:
#: -42 pp). Joint keep of 64 images (tests/test_rules.py): keep_weight 1 moves them 0.19 against 1.5 without keep.
NORM_WEIGHT = 1e-2
KEEP_WEIGHT = 1.0
PAST_WEIGHT = 1.0
PAST_MODE = "sum"
#: a preserved :class:`RuleSequence`'s defaults (form, norm_weight, past_weight, past_mode), chosen by measurement
#: (results/world/rules/world_vgg_grid: 60 world_vgg rules, eight settings, picked on validation halves by a rule fixed
#: before the run: most errors corrected at the end among settings where >= 95% of the rules keep >= 90% of their fix).
#: On the test halves: 55 of 58 rules keep >= 90% (worst 0.83), 0.69 of test errors corrected at the end, clean -6.2 pp
#: after 60 edits. ``past_mode="sum", past_weight=10`` keeps every rule (55/55) but corrects 0.58 (clean -4.0 pp); the
#: rank-restricted form keeps 34-47 of 60 whatever the weights.
SEQUENCE_DEFAULTS = {"form": "full", "norm_weight": 10.0, "past_weight": 100.0, "past_mode": "mean"}
#: the joint solve's forms: each rule's own directions (their span), or every whitened direction (MEMIT)
FORMS = ("directions", "full")
#: how the past (protected) keys' penalty is scaled: ``sum`` over their positions (AlphaEdit's K_p K_pᵀ: the
#: protection grows with every earlier rule, so later edits move less), or ``mean`` over them times the new
#: exemplars' positions (a constant balance between the new rule and everything protected, like ``keep``)
PAST_MODES = ("sum", "mean")


# ---------------------------------------------------------------------------------------------
# rules and their cached keys


@dataclass
class Rule:
    """One exemplar set: ``exemplars`` (x, x' in [0, 1], optional masks) under a ``name``."""

    name: str
    exemplars: Exemplars

    @classmethod
    def from_images(cls, lm: Any, name: str, originals: Any, transformed: Any, masks: Any = None, size: int | None = None) -> "Rule":
        """A rule from image(s) as :meth:`~modeledit.exemplars.Exemplars.from_images` takes them (one or a list each)."""
        return cls(name, Exemplars.from_images(lm, _image_list(originals), _image_list(transformed),
                                               None if masks is None else _image_list(masks), size=size))


@dataclass
class RuleKeys:
    """A rule's keys and values collected at ``site`` (what a joint solve needs: collect once, solve often)."""

    name: str
    site: str
    tensors: ExemplarTensors


def collect_rules(lm: Any, rules: Sequence[Rule | RuleKeys], site: EditSite | BoundSite | int | str, mode: str = "whole") -> list[RuleKeys]:
    """Every rule's exemplar keys and values at ``site`` (rules already collected there are kept as they are)."""
    lm = as_loaded(lm, "collecting rules' keys")
    site = get_site(lm.model, site.site if isinstance(site, BoundSite) else site)
    out, names = [], set()
    for r in rules:
        if isinstance(r, RuleKeys):
            if r.site != site.name:
                raise ValueError(f"rule {r.name!r} was collected at site {r.site!r}, not {site.name!r}; collect it at the edited site")
            out.append(r)
        elif isinstance(r, Rule):
            out.append(RuleKeys(r.name, site.name, collect(lm, site, r.exemplars, mode)))
        else:
            raise TypeError(f"rules must be Rule or RuleKeys values, got {type(r).__name__}; build one with Rule.from_images(lm, name, x, x')")
        if out[-1].name in names:
            raise ValueError(f"two rules are named {out[-1].name!r}; give each rule its own name")
        names.add(out[-1].name)
    return out


def _concat(keys: Sequence[RuleKeys]) -> ExemplarTensors:
    ts = [k.tensors for k in keys]
    shapes = {tuple(t.key.shape[1:]) for t in ts}
    if len(shapes) > 1:
        raise ValueError(f"the rules' keys have different shapes {sorted(shapes)}: their images differ in size; give every rule's "
                         "exemplars one size (Exemplars.from_images(..., size=N))")
    skips = [t.skip is None for t in ts]
    if any(skips) and not all(skips):
        raise ValueError("some rules carry a skip input and some do not; collect every rule at the same site")
    cat = lambda name: torch.cat([getattr(t, name) for t in ts])  # noqa: E731
    return ExemplarTensors(key=cat("key"), skip=None if ts[0].skip is None else cat("skip"), value=cat("value"),
                           weight=cat("weight"), key_weight=cat("key_weight"))


@torch.no_grad()
def _rule_objectives(bound: BoundSite, tens: ExemplarTensors, sizes: Sequence[int], weight: torch.Tensor | None = None,
                     chunk: int = 512) -> list[float]:
    """Each rule's objective (:func:`modeledit.editor.site_objective` on its own exemplars) from one pass over all of them."""
    err, norm = [], []
    for i in range(0, tens.key.shape[0], chunk):
        sl = slice(i, i + chunk)
        out = bound.forward(tens.key[sl], None if tens.skip is None else tens.skip[sl], weight)
        err.append(((out - tens.value[sl]).abs() * tens.weight[sl]).flatten(1).sum(1).double())
        norm.append(tens.weight[sl].flatten(1).sum(1).double() * tens.value.shape[1])
    e, n = torch.cat(err).split(list(sizes)), torch.cat(norm).split(list(sizes))
    return [float(a.sum() / b.sum()) for a, b in zip(e, n)]


# ---------------------------------------------------------------------------------------------
# kept keys


@dataclass
class KeptKeys:
    """Keys whose site outputs an edit keeps: their channel second moment E[k kᵀ] (d, d) for the projection, their
    unfolded (channel x tap) second moment (d·kh·kw)² over the site's output positions for the penalty (None when only
    a channel moment was given: the penalty then takes taps as independent), both means over ``count`` positions,
    float64 on the CPU. ``total()`` gives sums (AlphaEdit's K Kᵀ)."""

    moment: torch.Tensor
    unfolded: torch.Tensor | None
    count: int
    site: str = ""            # where the keys were taken ("" for a bare (d, d) matrix)

    def merged(self, other: "KeptKeys") -> "KeptKeys":
        if self.site and other.site and self.site != other.site:
            raise ValueError(f"kept keys of site {self.site!r} and of site {other.site!r} cannot be merged")
        n = self.count + other.count
        mix = lambda a, b: (a * self.count + b * other.count) / n  # noqa: E731
        unf = None if self.unfolded is None or other.unfolded is None else mix(self.unfolded, other.unfolded)
        return KeptKeys(mix(self.moment, other.moment), unf, n, self.site or other.site)


def _unfolded_sum(bound: BoundSite, key: torch.Tensor, weight: torch.Tensor | None, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(Σ_p w_p u_p u_pᵀ over output positions (u: the unfolded keys, channel-major like Λ), Σ of the channel outer
    products over key positions, Σ_p w_p) for keys (N, d, H, W) and output-position weights (N, 1, Ho, Wo) or None."""
    from modeledit.editor import _unfold_projected

    d = key.shape[1]
    kh, kw = bound.weight.shape[2:]
    eye = torch.eye(d, dtype=key.dtype, device=key.device)
    dt = d * kh * kw
    unf = torch.zeros(dt, dt, dtype=torch.float64, device=key.device)
    chan = torch.zeros(d, d, dtype=torch.float64, device=key.device)
    n = 0.0
    with single_threaded() if key.device.type == "cpu" else contextlib.nullcontext():
        for i in range(0, key.shape[0], chunk):
            k = key[i:i + chunk]
            u = _unfold_projected(bound, k, eye, (kh, kw)).double()
            w = torch.ones(u.shape[0], dtype=torch.float64, device=u.device) if weight is None else weight[i:i + chunk].reshape(-1).double()
            unf += (u * w[:, None]).T @ u
            n += float(w.sum())
            kf = k.permute(0, 2, 3, 1).reshape(-1, d).double()
            chan += kf.T @ kf
    return unf.cpu(), chan.cpu(), n


def kept_keys(lm: Any, bound: BoundSite, keep: Any, batch_size: int = 64) -> KeptKeys:
    """The keys to keep at ``bound``'s site. ``keep``: images (N, 3, H, W) in [0, 1] or a list of them, :class:`RuleKeys`
    (or a list: their exemplar keys, weighted like their objective), a :class:`KeptKeys`, a
    :class:`~modeledit.stats.SecondMoment` or a (d, d) tensor (a second moment; the penalty then takes taps as independent)."""
    from modeledit.images import check_batch01

    site = bound.site
    d = site.key_channels
    if isinstance(keep, KeptKeys):
        if keep.site and keep.site != site.name:
            raise ValueError(f"the kept keys were taken at site {keep.site!r}, not {site.name!r}; take them at the edited site")
        out = keep
    elif isinstance(keep, SecondMoment):
        if keep.site and keep.site != site.name:
            raise ValueError(f"the keep statistics were computed at site {keep.site!r}, not {site.name!r}; compute them at the edited site")
        out = KeptKeys(keep.mean.double().cpu(), None, int(keep.count), site.name)
    elif isinstance(keep, RuleKeys) or (isinstance(keep, (list, tuple)) and keep and all(isinstance(k, RuleKeys) for k in keep)):
        ks = [keep] if isinstance(keep, RuleKeys) else list(keep)
        for k in ks:
            if k.site != site.name:
                raise ValueError(f"the kept rule {k.name!r} was collected at site {k.site!r}, not {site.name!r}; collect it at the edited site")
        unf, chan, n, nk = 0, 0, 0.0, 0
        for k in ks:
            u, c, m = _unfolded_sum(bound, k.tensors.key, k.tensors.weight)
            unf, chan, n, nk = unf + u, chan + c, n + m, nk + k.tensors.key[:, :1].numel()
        if n == 0:
            raise ValueError("the keep set is empty (no keys); give at least one image to keep, or leave keep out")
        out = KeptKeys(chan / max(nk, 1), unf / n, int(round(n)), site.name)
    elif isinstance(keep, torch.Tensor) and keep.dim() == 2:
        m = keep.detach().double().cpu()
        if m.shape == (d, d) and not (bool(torch.isfinite(m).all()) and torch.allclose(m, m.T, rtol=1e-6, atol=1e-9)
                                      and float(torch.linalg.eigvalsh(m).min()) >= -1e-6 * max(float(m.abs().max()), 1e-30)
                                      and float(m.abs().max()) > 0):
            raise ValueError("the keep matrix must be a second moment of keys: finite, symmetric, positive semidefinite and not zero")
        out = KeptKeys(m, None, 1)
    else:
        imgs = keep if isinstance(keep, torch.Tensor) else (torch.stack(list(keep)) if isinstance(keep, (list, tuple)) and keep else None)
        if imgs is None or imgs.dim() != 4 or imgs.shape[0] == 0:
            raise ValueError("the keep set is empty or not images: give (N, 3, H, W) images in [0, 1], a SecondMoment or a (d, d) "
                             "matrix of the keys to keep, or leave keep out")
        imgs = check_batch01(imgs, "images to keep")
        lm = as_loaded(lm, "keeping images' outputs")
        dev = next(lm.model.parameters()).device
        unf, chan, n, nk = 0, 0, 0.0, 0
        for i in range(0, imgs.shape[0], batch_size):
            k = capture_sites(lm.model, lm.normalize(imgs[i:i + batch_size].to(dev)), [site], stop_after=True)[site.name].key
            u, c, m = _unfolded_sum(bound, k, None)
            unf, chan, n, nk = unf + u, chan + c, n + m, nk + k[:, :1].numel()
        out = KeptKeys(chan / nk, unf / n, int(nk), site.name)
    if out.count == 0:
        raise ValueError("the keep set is empty (no keys); give at least one image to keep, or leave keep out")
    if out.moment.shape != (d, d):
        raise ValueError(f"the keep second moment has shape {tuple(out.moment.shape)} but site {site.name} has {d} key channels")
    return out


def _penalty_block(kept: KeptKeys, dirs: torch.Tensor, taps: int) -> torch.Tensor:
    """E_kept[x xᵀ] (r·taps)² for x the kept keys unfolded and projected on ``dirs`` (d, r): Tᵀ U T with T = D ⊗ I_taps,
    or, from a channel moment only, (Dᵀ M D) ⊗ I_taps."""
    dd = dirs.double().cpu()
    if kept.unfolded is None:
        return torch.kron(dd.T @ kept.moment @ dd, torch.eye(taps, dtype=torch.float64))
    t = torch.kron(dd, torch.eye(taps, dtype=torch.float64))
    return t.T @ kept.unfolded @ t


def null_space(moment: torch.Tensor, threshold: float = KEEP_THRESHOLD) -> torch.Tensor:
    """U0 (d, q) float64: eigenvectors of ``moment`` with eigenvalue at most ``threshold`` x the largest (AlphaEdit's projection P = U0 U0ᵀ)."""
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"keep_threshold must be in [0, 1) (a fraction of the kept keys' largest eigenvalue), got {threshold}")
    with single_threaded():
        s, u = torch.linalg.eigh(0.5 * (moment + moment.T).double())
    top = float(s[-1].clamp_min(0))
    return u[:, s <= threshold * top + 1e-300] if top > 0 else u


# ---------------------------------------------------------------------------------------------
# the joint solve


def _sqrt_pair(c: torch.Tensor | None, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    if c is None:
        eye = torch.eye(d, dtype=torch.float64)
        return eye, eye
    with single_threaded():
        s, u = torch.linalg.eigh(0.5 * (c + c.T))
    s = s.clamp_min(torch.finfo(torch.float64).tiny)
    return (u * s.sqrt()) @ u.T, (u * s.rsqrt()) @ u.T


def joint_directions(raw: torch.Tensor, c_sqrt: torch.Tensor, c_inv_sqrt: torch.Tensor, tol: float = 1e-8) -> torch.Tensor:
    """d = C^{-1/2} U (d, q) with U an orthonormal basis of span(C^{1/2} raw): dᵀ C d = I, span(d) = span(raw)."""
    w = c_sqrt @ raw
    with single_threaded():
        u, s, _ = torch.linalg.svd(w, full_matrices=False)
    keep = s > tol * float(s.max()) if s.numel() and float(s.max()) > 0 else torch.zeros_like(s, dtype=torch.bool)
    return c_inv_sqrt @ u[:, keep]


def check_solve_settings(*, form: str | None = None, past_mode: str | None = None, keep_weight: float | None = None,
                         past_weight: float | None = None, norm_weight: float | None = None, max_norm: float | None = None,
                         keep_threshold: float | None = None) -> None:
    """Refuse a joint solve's settings that make no sense, in one sentence, before any work (None: not given)."""
    import math

    if form is not None and form not in FORMS:
        raise ValueError(f"unknown form {form!r}; choose from {FORMS}")
    if past_mode is not None and past_mode not in PAST_MODES:
        raise ValueError(f"unknown past_mode {past_mode!r}; choose from {PAST_MODES}")
    for name, v in (("keep_weight", keep_weight), ("past_weight", past_weight), ("norm_weight", norm_weight)):
        if v is not None and not (v >= 0 and math.isfinite(v)):
            raise ValueError(f"{name} must be a finite, non-negative penalty weight, got {v}")
    if max_norm is not None and not (max_norm > 0 and math.isfinite(max_norm)):
        raise ValueError(f"max_norm must be a finite positive bound on the update's relative Frobenius norm, got {max_norm}")
    if keep_threshold is not None and not 0 < keep_threshold < 1:
        raise ValueError(f"keep_threshold is a relative eigenvalue cut in (0, 1) (None: no projection), got {keep_threshold}")


def rewrite_rules(
    model: Any,
    rules: Sequence[Rule | RuleKeys],
    site: EditSite | BoundSite | int | str,
    config: EditConfig | None = None,
    *,
    stats: Any = None,
    keep: Any = None,
    keep_threshold: float | None = KEEP_THRESHOLD,
    keep_weight: float = KEEP_WEIGHT,
    protect: Any = None,
    past_weight: float = PAST_WEIGHT,
    past_mode: str = PAST_MODE,
    norm_weight: float | None = None,
    max_norm: float | None = None,
    form: str = "directions",
    **fields: Any,
) -> Edit:
    """One update of ``site`` that fixes every rule: the joint least-squares solution over all rules' keys.

    ``model`` is a :class:`~modeledit.models.LoadedModel`; ``rules`` are :class:`Rule` values (or their keys,
    :class:`RuleKeys`, from :func:`collect_rules`: collect once, solve often). ``config`` (or its fields as
    keywords) is the editor's :class:`~modeledit.editor.EditConfig`: ``rank`` is each rule's rank r, ``solver``
    any of :data:`modeledit.editor.SOLVERS` (``closed_form``, ``linear`` for thousands of rules, ``adam``).
    ``form``: ``"directions"`` (the span of the rules' own directions) or ``"full"`` (unrestricted, MEMIT).
    ``keep``: images / second moment / RuleKeys whose site outputs must not change (see the module docstring),
    ``keep_threshold`` the relative eigenvalue cut of their null space (None: no projection), ``keep_weight`` their
    output-change penalty; ``protect``: RuleKeys / :class:`KeptKeys` of earlier edits whose current outputs are kept by
    the penalty ``past_weight`` (``past_mode``: summed over their positions as AlphaEdit's K_p K_pᵀ, or their mean times
    the exemplars' positions, see :data:`PAST_MODES`); ``norm_weight`` the absolute norm term (default
    :data:`NORM_WEIGHT` with ``keep``/``protect``, else 0); with any of them Λ is the penalised ``linear`` solve.
    ``max_norm`` a bound on ‖ΔW‖/‖W‖.
    The model is not changed. ``metrics["rules"]`` lists each rule's name and objective before/after;
    ``metrics["keep"]`` the preservation settings and the null space's dimension.

    Example:
        >>> edit = rewrite_rules(lm, [rule_a, rule_b], "features.15", stats=st, keep=clean_x)
    """
    if config is not None and fields:
        raise TypeError(f"give either config= or its fields ({sorted(fields)}) as keywords, not both")
    cfg = config or EditConfig(**fields)
    if isinstance(rules, (Rule, RuleKeys)):
        raise TypeError("rewrite_rules takes a list of rules; wrap a single one: rewrite_rules(lm, [rule], ...)")
    check_solve_settings(form=form, past_mode=past_mode, keep_weight=keep_weight, past_weight=past_weight, norm_weight=norm_weight,
                         max_norm=max_norm, keep_threshold=keep_threshold)
    if not rules:
        raise ValueError("no rules given; pass at least one Rule")
    lm = as_loaded(model, "rewrite_rules")
    module = lm.model
    bound = bind_site(module, site)
    site = bound.site
    rank = cfg.validate(site.key_channels)
    stats = resolve_stats(lm, site, stats)
    was_training = module.training
    module.eval()
    try:
        t0 = time.perf_counter()
        keys = collect_rules(lm, rules, site, cfg.mode)
        c, stats_info = _stats_matrix(stats, site, cfg.stats_ridge)
        dim = site.key_channels
        c_sqrt, c_isqrt = _sqrt_pair(c, dim)
        if form == "full":
            raw = c_isqrt
        else:
            cpu = torch.device("cpu")
            raw = torch.cat([update_direction(*(t.to(cpu) for t in _flat_keys(k.tensors)), None, rank, inv_sqrt=c_isqrt)
                             for k in keys], 1) if len(keys) > 1 else update_direction(*_flat_keys(keys[0].tensors), c, rank).cpu()
        keep_info: dict[str, Any] = {"threshold": None, "null_dim": None, "kept_keys": 0, "max_norm": max_norm, "scaled": 1.0,
                                     "keep_weight": None, "protected_keys": 0, "past_weight": None, "past_mode": None,
                                     "norm_weight": None}
        kept = kept_keys(lm, bound, keep) if keep is not None else None
        past = kept_keys(lm, bound, protect) if protect is not None else None
        if kept is not None:
            keep_info.update(kept_keys=kept.count, keep_weight=keep_weight)
            if keep_threshold is not None:
                u0 = null_space(kept.moment, keep_threshold)
                keep_info.update(threshold=keep_threshold, null_dim=int(u0.shape[1]))
                raw = u0 @ (u0.T @ raw)
        if past is not None:
            keep_info.update(protected_keys=past.count, past_weight=past_weight, past_mode=past_mode)
        if norm_weight is None:
            norm_weight = NORM_WEIGHT if (kept is not None or past is not None) else 0.0
        penalised = kept is not None or past is not None or norm_weight > 0
        if penalised:
            keep_info["norm_weight"] = norm_weight
        dirs = joint_directions(raw, c_sqrt, c_isqrt)
        tens = _concat(keys)
        dev, dt = tens.key.device, tens.key.dtype
        w0 = bound.weight.detach()
        out_c, _, kh, kw = w0.shape
        sizes = [k.tensors.key.shape[0] for k in keys]
        before = _rule_objectives(bound, tens, sizes)
        t_solve = time.perf_counter()
        if dirs.shape[1] == 0:
            warnings.warn(f"the kept keys leave no direction free at {site.name} (null space of dimension 0 at threshold "
                          f"{keep_threshold}); the edit changes nothing: raise keep_threshold or keep fewer keys", UserWarning, stacklevel=2)
            dirs = torch.zeros(dim, 1, dtype=torch.float64)
            lam = torch.zeros(out_c, 1, kh, kw, dtype=w0.dtype, device=w0.device)
        elif penalised:
            from modeledit.editor import solve_linear

            taps = kh * kw
            n_pos = float(tens.weight.sum())
            m = dirs.shape[1] * taps
            scale = 1.0
            if c is None:       # directions orthonormal in the Euclidean metric: measure θ in units of a mean key's energy
                ref = kept.moment if kept is not None else (lambda k: k.T @ k / max(len(k), 1))(_flat_keys(tens)[0].cpu())
                scale = float(ref.diagonal().mean())
            q = torch.eye(m, dtype=torch.float64) * (norm_weight * n_pos * scale)
            if kept is not None and keep_weight > 0:
                q += keep_weight * n_pos * _penalty_block(kept, dirs, taps)
            if past is not None and past_weight > 0:
                q += past_weight * (past.count if past_mode == "sum" else n_pos) * _penalty_block(past, dirs, taps)
            lam = solve_linear(module, bound, tens, dirs.to(dev, dt), cfg, penalty=q.to(dev))
        else:
            lam = SOLVERS[cfg.solver](module, bound, tens, dirs.to(dev, dt), cfg)
        solve_seconds = time.perf_counter() - t_solve
        dirs = dirs.to(dev, dt)
        if max_norm is not None:
            dw = torch.einsum("orij,dr->odij", lam.double(), dirs.double())
            ratio = float(dw.norm() / w0.double().norm().clamp_min(1e-30))
            if ratio > max_norm:
                keep_info["scaled"] = max_norm / ratio
                lam = (lam.double() * keep_info["scaled"]).to(lam.dtype)
        param = f"{site.layer}.weight"
        change = ParamChange("lowrank", {"lam": lam.detach().contiguous(), "dir": dirs.detach().contiguous()})
        conf = {**asdict(cfg), "form": form, "keep_threshold": keep_info["threshold"], "max_norm": max_norm,
                "keep_weight": keep_info["keep_weight"], "past_weight": keep_info["past_weight"],
                "past_mode": keep_info["past_mode"], "norm_weight": keep_info["norm_weight"],
                "rules": [k.name for k in keys]}
        edit = Edit.from_changes(module, "rewrite_rules", {param: change}, sites=[site.name], config=conf)
        new_w = edit.new_values(module)[param]
        new_w = new_w if new_w.dim() == 4 else new_w[:, :, None, None]
        after = _rule_objectives(bound, tens, sizes, new_w)
        rel = float((new_w.double() - w0.double()).norm() / w0.double().norm().clamp_min(1e-30))
        edit.metrics.update({
            "rules": [{"name": k.name, "objective_before": b, "objective_after": a} for k, b, a in zip(keys, before, after)],
            "objective_before": float(np.mean(before)),
            "objective_after": float(np.mean(after)),
            "n_rules": len(keys),
            "rank": int(dirs.shape[1]),
            "rank_per_rule": rank,
            "form": form,
            "keep": keep_info,
            "update_norm": rel,
            "seconds": time.perf_counter() - t0,
            "solve_seconds": solve_seconds,
            "solver": "linear (penalised)" if penalised else cfg.solver,
            "layer": site.layer,
            "site": site.name,
            "statistics": stats_info,
        })
        log.info("rewrite_rules %s: %d rules, rank %d, mean objective %.4g -> %.4g in %.2fs", site.name, len(keys), dirs.shape[1],
                 edit.metrics["objective_before"], edit.metrics["objective_after"], edit.metrics["seconds"])
        return edit
    finally:
        module.train(was_training)


def scale_edit(edit: Edit, strength: float) -> Edit:
    """The same low-rank edit with its update multiplied by ``strength`` (same base)."""
    changes = {n: ParamChange(c.op, {**c.tensors, "lam": c.tensors["lam"] * strength}) for n, c in edit.changes.items()}
    # every other field (the weights record, versions) stays the edit's own
    return dataclasses.replace(edit, changes=changes, base_hashes=dict(edit.base_hashes), sites=list(edit.sites),
                               config={**edit.config, "strength": strength}, metrics={**edit.metrics, "strength": strength})


# ---------------------------------------------------------------------------------------------
# sequences against a pinned base


class PinnedBase:
    """A frozen copy of a model's parameters and buffers, and their hash: the reference every metric uses."""

    def __init__(self, model: nn.Module) -> None:
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.hash = model_hash(model)

    @contextlib.contextmanager
    def restored(self, model: nn.Module) -> Iterator[nn.Module]:
        """The model holds the pinned base inside the block (whatever it held before), and its own state again after."""
        own = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if set(own) != set(self.state):
            raise ValueError("the model's parameters are not those of the pinned base; use the model the sequence was built on")
        model.load_state_dict(self.state)
        try:
            yield model
        finally:
            model.load_state_dict(own)


class RuleSequence:
    """Rules fixed one after another at one site, each new edit solved on the model carrying the earlier ones.

    With ``preserve`` every new edit protects the earlier rules' keys (AlphaEdit's cache of past keys: the penalty
    ``past_weight`` keeps their current, edited outputs; see :func:`rewrite_rules`' ``protect``); ``form``,
    ``norm_weight``, ``past_weight`` and ``past_mode`` left out (None) take :data:`SEQUENCE_DEFAULTS` (measured), or
    without ``preserve`` the single rewrite's form (``directions``, no norm term); ``keep`` (images / a
    second moment to keep, e.g. the training statistics: AlphaEdit's K0) is projected away (``keep_threshold``) and
    penalised (``keep_weight``) at every step, with or without ``preserve``; ``norm_weight`` and ``max_norm`` as in
    :func:`rewrite_rules`. The model given is never left changed: the sequence pins a copy of its base weights at
    construction, and :attr:`edits` (an :class:`~modeledit.edit.EditSequence`) applies to that base in order.

    Example:
        >>> seq = RuleSequence(lm, "features.15", stats=st)
        >>> for rule in rules: seq.add(rule)
        >>> with seq.applied():  lm.predict(x)                # base + every edit
    """

    def __init__(self, lm: Any, site: EditSite | int | str, *, stats: Any = None, config: EditConfig | None = None,
                 preserve: bool = True, keep: Any = None, keep_threshold: float | None = KEEP_THRESHOLD,
                 keep_weight: float = KEEP_WEIGHT, past_weight: float | None = None, past_mode: str | None = None,
                 norm_weight: float | None = None, max_norm: float | None = None, form: str | None = None) -> None:
        self.lm = as_loaded(lm, "a rule sequence")
        self.site = get_site(self.lm.model, site)
        self.stats = resolve_stats(self.lm, self.site, stats)
        self.config = config or EditConfig()
        given = {"form": form, "norm_weight": norm_weight, "past_weight": past_weight, "past_mode": past_mode}
        plain = {"form": "directions", "norm_weight": None, "past_weight": PAST_WEIGHT, "past_mode": PAST_MODE}
        form, norm_weight, past_weight, past_mode = (v if v is not None else (SEQUENCE_DEFAULTS if preserve else plain)[k]
                                                     for k, v in given.items())
        self.preserve, self.keep_threshold, self.max_norm, self.form = preserve, keep_threshold, max_norm, form
        check_solve_settings(form=form, past_mode=past_mode, keep_weight=keep_weight, past_weight=past_weight,
                             norm_weight=norm_weight, max_norm=max_norm, keep_threshold=keep_threshold)   # before any step
        self.keep_weight, self.past_weight, self.past_mode, self.norm_weight = keep_weight, past_weight, past_mode, norm_weight
        self.base = PinnedBase(self.lm.model)
        self.edits = EditSequence()
        self.rules: list[RuleKeys] = []
        bound = bind_site(self.lm.model, self.site)
        self._keep = kept_keys(self.lm, bound, keep) if keep is not None else None
        self._past: KeptKeys | None = None

    def __len__(self) -> int:
        return len(self.edits.edits)

    def _replay(self) -> EditSequence:
        """The edits as a sequence of their own (fresh apply/revert bookkeeping), so whatever the caller did with
        :attr:`edits` on the model (applied them, or not) never changes what the sequence measures or solves on."""
        return EditSequence([dataclasses.replace(e) for e in self.edits.edits])

    def past_keys(self) -> KeptKeys | None:
        """The earlier rules' keys (their second moments: the cache of past keys), None before the first rule."""
        return self._past

    @contextlib.contextmanager
    def applied(self) -> Iterator[nn.Module]:
        """The model holds base + every edit so far inside the block; its own state again after."""
        model = self.lm.model
        with self.base.restored(model):
            with self._replay().applied(model):
                yield model

    def add(self, rule: Rule | RuleKeys) -> Edit:
        """Solve ``rule`` on base + earlier edits (protecting earlier rules' keys with ``preserve``), append and return its edit."""
        model = self.lm.model
        if any(r.name == getattr(rule, "name", None) for r in self.rules):
            raise ValueError(f"rule {rule.name!r} is already in the sequence; give each rule its own name")
        with self.base.restored(model):
            keys = collect_rules(self.lm, [rule], self.site, self.config.mode)[0]   # values from the pinned base
            protect = self._past if self.preserve else None
            with self._replay().applied(model):       # a step the kept keys leave no room for warns (rewrite_rules)
                edit = rewrite_rules(self.lm, [keys], self.site, self.config, stats=self.stats, keep=self._keep,
                                     keep_threshold=self.keep_threshold, keep_weight=self.keep_weight, protect=protect,
                                     past_weight=self.past_weight, past_mode=self.past_mode, norm_weight=self.norm_weight,
                                     max_norm=self.max_norm, form=self.form)
            if self.preserve:
                mine = kept_keys(self.lm, bind_site(model, self.site), keys)
                self._past = mine if self._past is None else self._past.merged(mine)
        edit.metrics["step"] = len(self.edits.edits)
        self.edits.append(edit)
        self.rules.append(keys)
        log.info("rule sequence step %d (%s): objective %.4g -> %.4g", len(self.edits.edits), keys.name,
                 edit.metrics["objective_before"], edit.metrics["objective_after"])
        return edit


def _corrected(orig_ok: np.ndarray, pre_ok: np.ndarray, post_ok: np.ndarray) -> tuple[int, int, float]:
    """(errors before, errors after, errors corrected (thesis 6.3)) over images whose original the base gets right."""
    n_pre, n_post = int((orig_ok & ~pre_ok).sum()), int((orig_ok & ~post_ok).sum())
    return n_pre, n_post, (float("nan") if n_pre == 0 else (n_pre - n_post) / n_pre)


def measure_sequence(seq: RuleSequence, tests: Mapping[str, tuple[torch.Tensor, torch.Tensor, Any]], clean: Any = None,
                     batch_size: int = 256, progress: bool = True) -> list[dict[str, Any]]:
    """After every step of ``seq``: each earlier rule's correction on its test images and its retention, and the clean change.

    ``tests`` maps a rule's name to (originals, transformed, labels) ([0, 1] images, labels an int sequence or None for
    the base model's own predictions on the originals); ``clean`` is images or (images, labels). The "before" predictions
    are always those of the pinned base (restored from the sequence's frozen copy, whatever state the model is in). Rows:
    ``step`` (0-based, the edit just added), ``rule``, ``n_pre``, ``n_post``, ``corrected``, ``retention`` (its
    correction now / right after its own step), ``clean_changed`` (fraction of clean predictions that moved) and, with
    labels, ``clean_acc_change``. Progress: a bar over the steps (``progress``) and one log line per step.
    """
    from modeledit.progress import tqdm
    from modeledit.suffix import SuffixEvaluator

    if not isinstance(seq, RuleSequence):
        raise TypeError(f"measure_sequence takes the RuleSequence (it restores the pinned base itself), got {type(seq).__name__}")
    names = [r.name for r in seq.rules]
    missing = [n for n in names if n not in tests]
    if missing:
        raise ValueError(f"no test images for rule(s) {missing}; give tests[name] = (originals, transformed, labels) for every rule")
    lm, site, model = seq.lm, seq.site, seq.lm.model
    n_classes = len(lm.class_names)
    tests = {n: _pairs_and_labels(tests[n], f"rule {n!r}'s test", n_classes) for n in names}     # checked before any work
    cx, cy = _images_and_labels(clean, "clean", n_classes) if clean is not None else (None, None)
    ev = SuffixEvaluator(model, lm.normalize)
    sets = {n: (ev.image_set(tests[n][0]), ev.image_set(tests[n][1])) for n in names}
    cset = ev.image_set(cx) if cx is not None else None
    rows: list[dict[str, Any]] = []
    try:
        with seq.base.restored(model):
            assert model_hash(model) == seq.base.hash
            ref = {}
            for n in names:
                orig = ev.predict(sets[n][0], site).numpy()
                y = np.asarray(tests[n][2]) if tests[n][2] is not None else orig
                ref[n] = (y, orig == y, ev.predict(sets[n][1], site).numpy() == y)
            cpre = ev.predict(cset, site).numpy() if cset is not None else None
            own: dict[str, float] = {}
            replay = seq._replay()
            try:
                for i, _ in tqdm(replay.steps(model), total=len(names), desc="measure sequence", unit="step", disable=not progress):
                    cpost = ev.predict(cset, site).numpy() if cset is not None else None
                    for j in range(i + 1):
                        n = names[j]
                        y, orig_ok, pre_ok = ref[n]
                        post_ok = ev.predict(sets[n][1], site).numpy() == y
                        n_pre, n_post, corr = _corrected(orig_ok, pre_ok, post_ok)
                        if j == i:
                            own[n] = corr
                        row = {"step": i, "rule": n, "n_pre": n_pre, "n_post": n_post, "corrected": corr,
                               "retention": corr / own[n] if own[n] == own[n] and own[n] > 0 else float("nan")}
                        if cpre is not None:
                            row["clean_changed"] = float((cpre != cpost).mean())
                            if cy is not None:
                                yc = np.asarray(cy)
                                row["clean_acc_change"] = float((cpost == yc).mean() - (cpre == yc).mean())
                        rows.append(row)
                    now = [r["corrected"] for r in rows if r["step"] == i and r["corrected"] == r["corrected"]]
                    log.info("measure sequence: step %d/%d, mean correction of the %d rules so far %.3f%s", i + 1, len(names), i + 1,
                             float(np.mean(now)) if now else float("nan"),
                             f", clean change {rows[-1]['clean_changed']:.3f}" if "clean_changed" in rows[-1] else "")
            finally:
                replay.revert(model)
    finally:
        ev.close()
    return rows


# ---------------------------------------------------------------------------------------------
# where to edit

#: strengths (fractions of the closed-form update) tried per site when ranking sites
SITE_STRENGTHS = (0.25, 0.5, 0.75, 1.0)
#: the clean-accuracy drop a site's edit may cost in rank_sites by default (the paper's 0.25 pp)
SITE_BUDGET = 0.0025


def _images_and_labels(data: Any, what: str, num_classes: int) -> tuple[torch.Tensor, np.ndarray | None]:
    """``data`` = images or (images, labels), checked (:func:`~modeledit.images.check_batch01`, one label per image)."""
    from modeledit.images import check_batch01, check_labels

    x, y = (data[0], data[1]) if isinstance(data, (tuple, list)) and len(data) == 2 else (data, None)
    x = check_batch01(x, f"{what} images")
    return x, None if y is None else check_labels(y, len(x), num_classes, what)


def _pairs_and_labels(data: Any, what: str, num_classes: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray | None]:
    """(originals, transformed, labels or None), checked: images in [0, 1], as many transformed as originals, one label each."""
    from modeledit.images import check_batch01, check_labels

    if not (isinstance(data, (tuple, list)) and len(data) == 3):
        raise ValueError(f"the {what} set is (originals, transformed, labels or None)")
    x, xp = check_batch01(data[0], f"{what} originals"), check_batch01(data[1], f"{what} transformed images")
    if x.shape != xp.shape:
        raise ValueError(f"the {what} set has originals of shape {tuple(x.shape)} but transformed images of shape {tuple(xp.shape)}; "
                         "give one transformed image of the same size per original")
    return x, xp, None if data[2] is None else check_labels(data[2], len(x), num_classes, what)


def rank_sites(
    lm: Any,
    rule: Rule,
    *,
    clean: Any,
    val: tuple[torch.Tensor, torch.Tensor, Any] | None = None,
    stats: Any = None,
    sites: Sequence[int | str] | None = None,
    budget: float = SITE_BUDGET,
    strengths: Sequence[float] = SITE_STRENGTHS,
    config: EditConfig | None = None,
    test: tuple[torch.Tensor, torch.Tensor, Any] | None = None,
) -> list[dict[str, Any]]:
    """Rank edit sites for ``rule`` by validation correction at a clean budget, best first (a closed-form sweep).

    At every site (``sites``, default all) the rule's rewrite is solved once and applied at each of ``strengths``;
    predictions come from the site on (:class:`~modeledit.suffix.SuffixEvaluator`: each image set's prefix once). A
    strength qualifies when the clean accuracy drops by at most ``budget`` (labels of ``clean`` = (images, labels), or
    the base model's own predictions); the site's score is its best qualifying validation correction (thesis 6.3,
    0: no change). ``val`` = (originals, transformed, labels or None); default the rule's own exemplars (in-sample).
    ``stats``: images (N, 3, H, W) in [0, 1] to compute each site's C from, a mapping site name -> SecondMoment, a
    callable site -> SecondMoment, or None (C = I). Rows: ``rank``, ``site_index``, ``site``, ``val_corrected``,
    ``strength``, ``clean_drop`` (on ``n_clean`` images), ``val_errors`` (the validation errors there were to correct), ``objective_before``/``after`` and ``seconds``; with ``test`` (as ``val``) also
    ``test_corrected`` at the chosen strength (0 where no strength qualified), to check the ranking on held-out images.

    Example:
        >>> rows = rank_sites(lm, rule, clean=clean_x, stats=train_x)
        >>> rows[0]["site"]                  # the recommended site
    """
    from modeledit.editor import rewrite
    from modeledit.layers import list_sites
    from modeledit.stats import second_moment
    from modeledit.suffix import SuffixEvaluator

    lm = as_loaded(lm, "ranking sites")
    if not isinstance(rule, Rule):
        raise TypeError(f"rank_sites takes one Rule, got {type(rule).__name__}")
    if not 0 <= budget < 1:
        raise ValueError(f"budget is a clean-accuracy drop in [0, 1) (0.0025 = 0.25 pp), got {budget}")
    if not strengths or any(not 0 < s <= 1 for s in strengths):
        raise ValueError(f"strengths must be fractions in (0, 1], got {list(strengths)}")
    if sites is None:
        chosen = list_sites(lm.model)
    else:
        chosen = [get_site(lm.model, s) for s in sites]
        named = [s.name for s in chosen]
        twice = sorted({n for n in named if named.count(n) > 1})
        if twice:
            raise ValueError(f"sites {list(sites)} name {', '.join(twice)} more than once; list each site once")
    n_classes = len(lm.class_names)
    cx, cy = _images_and_labels(clean, "clean", n_classes)
    vx, vxp, vy = _pairs_and_labels(val if val is not None else (rule.exemplars.x, rule.exemplars.x_prime, None), "validation", n_classes)
    if test is not None:
        test = _pairs_and_labels(test, "test", n_classes)
    if isinstance(stats, torch.Tensor):
        from modeledit.images import check_batch01

        stats = check_batch01(stats, "statistics images")
    if torch.equal(rule.exemplars.x, rule.exemplars.x_prime):
        raise ValueError("the transformed exemplars are the same pictures as the originals: there is nothing to learn at any "
                         "site; give the restyled copies as the transformed images")
    if len(cx) * budget < 1:
        log.warning("the clean set's %d images resolve %.2f pp, coarser than the %.2f pp budget: a site qualifies only if "
                    "no clean prediction changes; give more clean images for a finer budget", len(cx), 100 / len(cx), 100 * budget)
    cfg = config or EditConfig()
    model = lm.model
    rows = []
    with SuffixEvaluator(model, lm.normalize) as ev:
        sets = {"clean": ev.image_set(cx), "orig": ev.image_set(vx), "trans": ev.image_set(vxp)}
        if test is not None:
            sets.update(test_orig=ev.image_set(test[0]), test_trans=ev.image_set(test[1]))
        for site in chosen:
            t0 = time.perf_counter()
            if callable(stats):
                st = stats(site)
            elif isinstance(stats, Mapping):
                st = stats[site.name]
            elif isinstance(stats, torch.Tensor):
                st = second_moment(lm, site, [stats[i:i + 64] for i in range(0, len(stats), 64)], progress=False)
            else:
                st = stats
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                edit = rewrite(lm, site, rule.exemplars, config=cfg, stats=st)
            cpre = ev.predict(sets["clean"], site).numpy()
            yc = cy if cy is not None else cpre
            orig = ev.predict(sets["orig"], site).numpy()
            yv = np.asarray(vy) if vy is not None else orig
            orig_ok, pre_ok = orig == yv, ev.predict(sets["trans"], site).numpy() == yv
            best = {"val_corrected": 0.0, "strength": 0.0, "clean_drop": 0.0, "val_errors": int((orig_ok & ~pre_ok).sum())}
            tried = []
            for s in strengths:
                with scale_edit(edit, s).applied(model):
                    post_ok = ev.predict(sets["trans"], site).numpy() == yv
                    drop = float((cpre == yc).mean() - (ev.predict(sets["clean"], site).numpy() == yc).mean())
                corr = _corrected(orig_ok, pre_ok, post_ok)[2]
                tried.append({"strength": s, "val_corrected": corr, "clean_drop": drop})
                if drop <= budget + 1e-12 and corr == corr and corr > best["val_corrected"]:
                    best.update(val_corrected=corr, strength=s, clean_drop=drop)
            if test is not None:
                tor = ev.predict(sets["test_orig"], site).numpy()
                ty = np.asarray(test[2]) if test[2] is not None else tor
                tpre = ev.predict(sets["test_trans"], site).numpy() == ty
                best["test_corrected"] = 0.0
                if best["strength"] > 0:
                    with scale_edit(edit, best["strength"]).applied(model):
                        tpost = ev.predict(sets["test_trans"], site).numpy() == ty
                    best["test_corrected"] = _corrected(tor == ty, tpre, tpost)[2]
            rows.append({"site_index": site.index, "site": site.name, **best, "n_clean": len(cx),
                         "objective_before": edit.metrics["objective_before"], "objective_after": edit.metrics["objective_after"],
                         "tried": tried, "seconds": time.perf_counter() - t0})
    rows.sort(key=lambda r: (-r["val_corrected"], r["clean_drop"]))
    for i, r in enumerate(rows):
        r["rank"] = i + 1
    return rows


def no_recommendation(rows: Sequence[Mapping[str, Any]], budget: float) -> str | None:
    """Why a :func:`rank_sites` ranking recommends no site (None when its top site corrects something): either the base
    model already gets every transformed validation image right (nothing to correct), or no site's edit corrects an
    error within the clean ``budget``. Its first site would otherwise be proposed as if it were the best."""
    if rows and rows[0]["val_corrected"] > 0:
        return None
    if rows and rows[0].get("val_errors", 1) == 0:
        return ("the model already classifies every transformed validation image as its original: there is no error to "
                "correct, so no site can be ranked")
    return f"no site corrects any validation error within a clean drop of {budget * 100:.2f} pp"
