"""Bootstrap confidence intervals for the bench's measurements, deterministic by seed.

Every statistic of the protocol is a function of how many images fall in a few *categories*: for errors
corrected (thesis 6.3), an image the unedited model gets wrong and the edited model right is *fixed*, the
reverse is *broken*, wrong both times is *still wrong*, right both times is *right*. Resampling N images
with replacement is the same as drawing the category counts from a multinomial(N, observed fractions),
so the bootstraps here draw counts, not indices: exact in distribution and fast.

* :func:`errors_corrected_interval`: (N_pre - N_post) / N_pre over one set of images, images resampled.
* :func:`paired_difference_interval` / :func:`flip_change_interval`: the mean of ``after - before`` on
  the same images (a paired change of accuracy), from per-image outcomes or from the flip counts alone
  (bootstrap, or the normal approximation of the multinomial).
* :func:`hierarchical_interval`: the mean over *units* (pair x target class x exemplar count x seed) of a
  per-unit metric, resampling units with replacement and then the images within each drawn unit. Units
  whose metric is undefined (NaN: no error to correct) are excluded and counted.
* :func:`hierarchical_change_interval`: the mean over units of a clean-accuracy change whose images are
  *shared* by all units (one clean set): units are resampled, and the clean images once per replicate
  for all units alike (a crossed, not nested, design).

Intervals are 95% percentile intervals by default; ``n_boot`` defaults to 2000.

Example:
    >>> est = errors_corrected_interval(pre_err=[1, 1, 1, 0], post_err=[0, 0, 1, 0], seed=0)
    >>> round(est.value, 3), est.low <= est.value <= est.high
    (0.667, True)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Hashable, Sequence

import numpy as np

N_BOOT = 2000
LEVEL = 0.95

# category codes of one image for errors corrected: code = 2 * pre_err + post_err
RIGHT, BROKEN, FIXED, STILL_WRONG = 0, 1, 2, 3


@dataclass(frozen=True)
class Estimate:
    """A point value with its percentile interval.

    ``n_units``: units (or images, for single-set intervals) the value averages; ``n_excluded``: units left
    out because their metric is undefined; ``n_boot_valid``: bootstrap replicates where the statistic was
    defined (the interval is taken over those).
    """

    value: float
    low: float
    high: float
    n_units: int = 1
    n_excluded: int = 0
    n_boot_valid: int = 0

    def as_dict(self, prefix: str) -> dict[str, float | int]:
        """``{prefix: value, prefix_lo: low, prefix_hi: high}`` (table columns)."""
        return {prefix: self.value, f"{prefix}_lo": self.low, f"{prefix}_hi": self.high}

    def negated(self) -> "Estimate":
        """The estimate of minus the statistic (e.g. a drop from a change): value negated, bounds swapped."""
        return Estimate(0.0 - self.value, 0.0 - self.high, 0.0 - self.low, self.n_units, self.n_excluded, self.n_boot_valid)

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _check(n_boot: int, level: float) -> None:
    if n_boot < 1:
        raise ValueError(f"n_boot must be positive, got {n_boot}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")


def percentile_interval(boots: np.ndarray, level: float = LEVEL) -> tuple[float, float, int]:
    """(low, high, number of finite replicates) of the central ``level`` percentile interval; NaN replicates
    are ignored (all NaN: a NaN interval)."""
    b = np.asarray(boots, dtype=float).ravel()
    b = b[np.isfinite(b)]
    if b.size == 0:
        return float("nan"), float("nan"), 0
    a = (1 - level) / 2
    return float(np.quantile(b, a)), float(np.quantile(b, 1 - a)), int(b.size)


def multinomial_counts(rng: np.random.Generator, n: np.ndarray | int, counts: np.ndarray, size: tuple[int, ...] = ()) -> np.ndarray:
    """Draws of category counts: multinomial(n, counts / counts.sum(-1)), vectorised over leading axes.

    ``counts`` (..., C): the observed counts of each category (rows may differ); ``n`` broadcasts against
    ``counts[..., 0]``; ``size`` prepends axes of independent draws. Drawn by conditional binomials.
    """
    c = np.asarray(counts, dtype=float)
    shape = tuple(size) + c.shape[:-1]
    remaining_n = np.broadcast_to(np.asarray(n, dtype=np.int64), shape).copy()
    remaining_p = np.broadcast_to(c.sum(-1), shape).astype(float).copy()
    out = np.zeros(shape + (c.shape[-1],), dtype=np.int64)
    for k in range(c.shape[-1] - 1):
        ck = np.broadcast_to(c[..., k], shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.where(remaining_p > 0, ck / np.where(remaining_p > 0, remaining_p, 1.0), 0.0)
        draw = rng.binomial(remaining_n, np.clip(p, 0.0, 1.0))
        out[..., k] = draw
        remaining_n = remaining_n - draw
        remaining_p = remaining_p - ck
    out[..., -1] = remaining_n
    return out


# ---------------------------------------------------------------------------------------------------
# one set of images


def corrected_codes(pre_err: Sequence[bool], post_err: Sequence[bool]) -> np.ndarray:
    """Per-image category codes (RIGHT, BROKEN, FIXED, STILL_WRONG) from errors before and after."""
    a, b = np.asarray(pre_err, dtype=bool), np.asarray(post_err, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"pre_err and post_err must have the same length, got {a.size} and {b.size}")
    return 2 * a.astype(np.int64) + b.astype(np.int64)


def joint_codes(pre_err: Sequence[bool], post_err_a: Sequence[bool], post_err_b: Sequence[bool]) -> np.ndarray:
    """Per-image codes 4 * pre_err + 2 * post_err_a + post_err_b, for comparing two edits on the same images."""
    a, b, c = (np.asarray(v, dtype=bool) for v in (pre_err, post_err_a, post_err_b))
    if not a.shape == b.shape == c.shape:
        raise ValueError(f"need the same images before and after both edits, got {a.size}, {b.size}, {c.size}")
    return 4 * a.astype(np.int64) + 2 * b.astype(np.int64) + c.astype(np.int64)


def corrected_difference_from_counts(counts: np.ndarray) -> np.ndarray:
    """Errors corrected by edit b minus by edit a, (N_post_a - N_post_b) / N_pre, from :func:`joint_codes`
    counts (..., 8); NaN where N_pre = 0."""
    c = np.asarray(counts, dtype=float)
    n_pre = c[..., 4:].sum(-1)
    post_a = c[..., [2, 3, 6, 7]].sum(-1)
    post_b = c[..., [1, 3, 5, 7]].sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n_pre > 0, (post_a - post_b) / np.where(n_pre > 0, n_pre, 1.0), np.nan)


def code_counts(codes: Sequence[int], n_categories: int = 4) -> np.ndarray:
    return np.bincount(np.asarray(codes, dtype=np.int64), minlength=n_categories)[:n_categories]


def corrected_from_counts(counts: np.ndarray) -> np.ndarray:
    """Errors corrected (N_pre - N_post) / N_pre from category counts (..., 4); NaN where N_pre = 0."""
    c = np.asarray(counts, dtype=float)
    n_pre = c[..., FIXED] + c[..., STILL_WRONG]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n_pre > 0, (c[..., FIXED] - c[..., BROKEN]) / np.where(n_pre > 0, n_pre, 1.0), np.nan)


def count_interval(counts: Sequence[int], metric: Callable[[np.ndarray], np.ndarray], n_boot: int = N_BOOT, seed: int = 0,
                   level: float = LEVEL) -> Estimate:
    """A metric of category counts over one set of images, images resampled (multinomial on the counts)."""
    _check(n_boot, level)
    c = np.asarray(counts, dtype=np.int64)
    value = float(metric(c))
    rng = np.random.default_rng(seed)
    boots = metric(multinomial_counts(rng, int(c.sum()), c, size=(n_boot,)))
    lo, hi, valid = percentile_interval(boots, level)
    return Estimate(value, lo, hi, n_units=int(c.sum()), n_boot_valid=valid)


def errors_corrected_interval(pre_err: Sequence[bool], post_err: Sequence[bool], n_boot: int = N_BOOT, seed: int = 0,
                              level: float = LEVEL) -> Estimate:
    """Errors corrected (N_pre - N_post) / N_pre over a set of images, with a bootstrap over the images.

    ``pre_err`` / ``post_err``: per image (already restricted to images whose original the unedited model
    gets right), whether it is misclassified before / after the edit. Replicates without any error
    (0/0) are dropped; with none at all the estimate is NaN.

    Example:
        >>> errors_corrected_interval([1, 1, 1, 1], [0, 0, 0, 0]).low
        1.0
    """
    return count_interval(code_counts(corrected_codes(pre_err, post_err)), corrected_from_counts, n_boot, seed, level)


def _change_from_counts(counts: np.ndarray) -> np.ndarray:
    """Mean paired change from counts of (-1, 0, +1) differences."""
    c = np.asarray(counts, dtype=float)
    n = c.sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, (c[..., 2] - c[..., 0]) / np.where(n > 0, n, 1.0), np.nan)


def flip_change_interval(good: int, bad: int, n: int, method: str = "bootstrap", n_boot: int = N_BOOT, seed: int = 0,
                         level: float = LEVEL) -> Estimate:
    """The paired accuracy change (good - bad) / n from flip counts alone.

    ``good``: images wrong before and right after; ``bad``: right before, wrong after; ``n``: all images.
    ``method="bootstrap"`` resamples the n images; ``"normal"`` uses the normal approximation of the
    multinomial (variance (p_good + p_bad - change^2) / n).

    Example:
        >>> flip_change_interval(good=0, bad=3, n=100, method="normal").value
        -0.03
    """
    if min(good, bad) < 0 or good + bad > n or n < 1:
        raise ValueError(f"need 0 <= good, bad and good + bad <= n >= 1, got good={good}, bad={bad}, n={n}")
    counts = np.array([bad, n - good - bad, good], dtype=np.int64)
    if method == "bootstrap":
        return count_interval(counts, _change_from_counts, n_boot, seed, level)
    if method == "normal":
        from statistics import NormalDist

        _check(1, level)
        change = (good - bad) / n
        var = max((good + bad) / n - change ** 2, 0.0) / n
        z = NormalDist().inv_cdf(1 - (1 - level) / 2)
        half = z * var ** 0.5
        return Estimate(change, change - half, change + half, n_units=n)
    raise ValueError(f"method must be 'bootstrap' or 'normal', got {method!r}")


def paired_difference_interval(before: Sequence[float], after: Sequence[float], n_boot: int = N_BOOT, seed: int = 0,
                               level: float = LEVEL) -> Estimate:
    """The mean of ``after - before`` over paired images (e.g. correctness after and before an edit),
    resampling the pairs. Boolean / 0-1 outcomes go through the flip counts (same distribution, fast).

    Example:
        >>> paired_difference_interval([1, 1, 0, 1], [1, 0, 0, 1]).value
        -0.25
    """
    a, b = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"need the same non-zero number of paired values, got {a.size} and {b.size}")
    d = b - a
    if np.isin(d, (-1.0, 0.0, 1.0)).all():
        return flip_change_interval(int((d > 0).sum()), int((d < 0).sum()), d.size, "bootstrap", n_boot, seed, level)
    _check(n_boot, level)
    rng = np.random.default_rng(seed)
    boots = np.concatenate([d[rng.integers(0, d.size, size=(min(256, n_boot - s), d.size))].mean(1)
                            for s in range(0, n_boot, 256)])
    lo, hi, valid = percentile_interval(boots, level)
    return Estimate(float(d.mean()), lo, hi, n_units=int(d.size), n_boot_valid=valid)


# ---------------------------------------------------------------------------------------------------
# means over units


def draw_units(rng: np.random.Generator, n_boot: int, k: int, clusters: Sequence[Hashable] | None = None) -> np.ndarray:
    """Bootstrap draws of unit indices, (n_boot, L) with -1 padding: k units with replacement, or, with
    ``clusters`` (one label per unit, e.g. its concept-style pair), as many clusters with replacement as
    there are, each bringing all its units."""
    if clusters is None:
        return rng.integers(0, k, size=(n_boot, k))
    if len(clusters) != k:
        raise ValueError(f"need one cluster label per unit, got {len(clusters)} for {k} units")
    labels = list(dict.fromkeys(clusters))
    members = [[u for u in range(k) if clusters[u] == lab] for lab in labels]
    width = max(len(m) for m in members)
    table = np.full((len(labels), width), -1, dtype=np.int64)
    for i, m in enumerate(members):
        table[i, :len(m)] = m
    picked = rng.integers(0, len(labels), size=(n_boot, len(labels)))
    return table[picked].reshape(n_boot, -1)


def _masked_mean(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Row means over the valid, finite entries (NaN where none)."""
    ok = valid & np.isfinite(values)
    n = ok.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.where(ok, values, 0.0).sum(1) / np.where(n > 0, n, 1), np.nan)


def hierarchical_interval(unit_counts: np.ndarray | Sequence[Sequence[int]], metric: Callable[[np.ndarray], np.ndarray] = corrected_from_counts,
                          n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL,
                          clusters: Sequence[Hashable] | None = None) -> Estimate:
    """The mean over units of a per-unit metric of category counts, with a two-stage bootstrap.

    ``unit_counts`` (K, C): each unit's image counts per category (for errors corrected, the codes of
    :func:`corrected_codes`); ``metric`` maps counts (..., C) to values (...), NaN where undefined. Units
    whose metric is NaN (no error to correct) are excluded up front and counted in ``n_excluded``. Each
    replicate draws the remaining units with replacement, then the images of each drawn unit (a
    multinomial on its counts); a drawn unit whose resample has an undefined metric is left out of that
    replicate's mean. ``clusters`` (one label per unit, e.g. the unit's concept-style pair): resample
    clusters instead of units, each drawn cluster bringing all its units (for units that are not
    independent, such as several target classes of one pair).

    Example:
        >>> hierarchical_interval([[0, 0, 2, 0], [0, 0, 0, 2]]).value   # one unit fixes all, one none
        0.5
    """
    _check(n_boot, level)
    c = np.asarray(unit_counts, dtype=np.int64)
    if c.ndim != 2:
        raise ValueError(f"unit_counts must be (units, categories), got shape {c.shape}")
    values = metric(c) if len(c) else np.zeros(0)
    keep = np.isfinite(values)
    n_excl = int((~keep).sum())
    c, values = c[keep], values[keep]
    if len(c) == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0, n_excl, 0)
    rng = np.random.default_rng(seed)
    units = draw_units(rng, n_boot, len(c), None if clusters is None else [x for x, k in zip(clusters, keep) if k])
    present = units >= 0
    units = np.where(present, units, 0)
    drawn = multinomial_counts(rng, c.sum(-1)[units], c[units])
    boots = _masked_mean(metric(drawn), present)   # a drawn unit whose resample is undefined drops out of the mean
    lo, hi, valid = percentile_interval(boots, level)
    return Estimate(float(values.mean()), lo, hi, int(len(c)), n_excl, valid)


def hierarchical_change_interval(good: Sequence[Sequence[int]], bad: Sequence[Sequence[int]], n: int, n_boot: int = N_BOOT,
                                 seed: int = 0, level: float = LEVEL, clusters: Sequence[Hashable] | None = None) -> Estimate:
    """The mean over units of a paired accuracy change (good - bad) / n measured on one shared set of n images.

    ``good[u]`` / ``bad[u]``: the indices (into the shared set) of images unit u's edit turned right /
    wrong. Each replicate draws units with replacement and resamples the n shared images once, for all
    units alike (their changes are measured on the same images, so they are crossed, not nested).
    ``clusters``: as in :func:`hierarchical_interval`.

    Example:
        >>> hierarchical_change_interval(good=[[], []], bad=[[0], [1]], n=100).value
        -0.01
    """
    _check(n_boot, level)
    if len(good) != len(bad):
        raise ValueError(f"good and bad must list the same units, got {len(good)} and {len(bad)}")
    if n < 1:
        raise ValueError(f"the shared set must have images, got n={n}")
    k = len(good)
    if k == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0, 0, 0)
    flipped = sorted({int(i) for g in good for i in g} | {int(i) for b in bad for i in b})
    if flipped and (flipped[0] < 0 or flipped[-1] >= n):
        raise ValueError(f"flip indices must lie in [0, {n}), got {flipped[0]}..{flipped[-1]}")
    pos = {i: j for j, i in enumerate(flipped)}
    m = len(flipped)
    sign = np.zeros((k, m))
    for u in range(k):
        for i in good[u]:
            sign[u, pos[int(i)]] += 1.0
        for i in bad[u]:
            sign[u, pos[int(i)]] -= 1.0
    values = sign.sum(1) / n
    rng = np.random.default_rng(seed)
    units = draw_units(rng, n_boot, k, clusters)
    present = units >= 0
    units = np.where(present, units, 0)
    if m == 0:
        boots = np.zeros(n_boot)
    else:
        # counts of the flipped images among n draws; the other images are lumped (they contribute 0)
        # counts of the flipped images among n draws (the other images contribute 0): how many draws land
        # on a flipped image is binomial(n, m / n), and those draws are uniform over the m flipped images
        hits = rng.binomial(n, m / n, size=n_boot)
        picks = rng.integers(0, m, size=int(hits.sum()))
        starts = np.r_[0, np.cumsum(hits)]
        nz = [np.flatnonzero(sign[u]) for u in range(k)]          # each unit's own flips (sparse rows)
        boots = np.empty(n_boot)
        for b0 in range(0, n_boot, 256):                          # in blocks: (block, m) weights at a time
            b1 = min(b0 + 256, n_boot)
            which = np.repeat(np.arange(b1 - b0), hits[b0:b1]) * m + picks[starts[b0]:starts[b1]]
            weights = np.bincount(which, minlength=(b1 - b0) * m).reshape(b1 - b0, m)
            per_unit = np.stack([weights[:, cols] @ sign[u, cols] for u, cols in enumerate(nz)], axis=1) / n  # (block, k)
            boots[b0:b1] = _masked_mean(np.take_along_axis(per_unit, units[b0:b1], axis=1), present[b0:b1])
    lo, hi, valid = percentile_interval(boots, level)
    return Estimate(float(values.mean()), lo, hi, k, 0, valid)

