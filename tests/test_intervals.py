"""The bootstrap intervals on tiny hand-computed cases."""
from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from modeledit.eval.intervals import (BROKEN, FIXED, RIGHT, STILL_WRONG, code_counts, corrected_codes,
                                      corrected_difference_from_counts, corrected_from_counts, errors_corrected_interval,
                                      flip_change_interval, hierarchical_change_interval, hierarchical_interval, joint_codes,
                                      multinomial_counts, paired_difference_interval, percentile_interval)


def test_codes_and_counts_by_hand():
    codes = corrected_codes([1, 1, 0, 0, 1], [0, 1, 1, 0, 0])
    assert codes.tolist() == [FIXED, STILL_WRONG, BROKEN, RIGHT, FIXED]
    counts = code_counts(codes)
    assert counts.tolist() == [1, 1, 2, 1]
    # N_pre = 3 (fixed 2 + still wrong 1), N_post = 2 (broken 1 + still wrong 1): (3 - 2) / 3
    assert corrected_from_counts(counts) == pytest.approx(1 / 3)
    assert math.isnan(corrected_from_counts(np.array([5, 2, 0, 0])))


def test_interval_of_a_constant_is_a_point():
    every_error_fixed = errors_corrected_interval([1] * 7, [0] * 7, n_boot=300)
    assert (every_error_fixed.value, every_error_fixed.low, every_error_fixed.high) == (1.0, 1.0, 1.0)
    nothing_changes = flip_change_interval(good=0, bad=0, n=50, n_boot=300)
    assert (nothing_changes.value, nothing_changes.low, nothing_changes.high) == (0.0, 0.0, 0.0)
    same_for_every_unit = hierarchical_interval([[3, 0, 4, 0], [3, 0, 4, 0]], n_boot=300)
    assert (same_for_every_unit.low, same_for_every_unit.high) == (1.0, 1.0)


def test_no_errors_is_nan():
    est = errors_corrected_interval([0, 0, 0], [0, 1, 0], n_boot=100)
    assert math.isnan(est.value) and math.isnan(est.low) and est.n_boot_valid == 0


def test_binomial_case_matches_the_normal_interval():
    # 1000 images, 100 fixed (wrong -> right), none broken: change 0.1, sd sqrt(0.1 * 0.9 / 1000)
    boot = flip_change_interval(good=100, bad=0, n=1000, n_boot=4000, seed=1)
    normal = flip_change_interval(good=100, bad=0, n=1000, method="normal")
    half = NormalDist().inv_cdf(0.975) * math.sqrt(0.1 * 0.9 / 1000)
    assert normal.value == pytest.approx(0.1)
    assert (normal.low, normal.high) == pytest.approx((0.1 - half, 0.1 + half))
    assert boot.low == pytest.approx(normal.low, abs=0.004) and boot.high == pytest.approx(normal.high, abs=0.004)
    # a paired change: good and bad both count in the variance, (p_g + p_b - d^2) / n
    normal2 = flip_change_interval(good=30, bad=10, n=400, method="normal")
    var = (40 / 400 - (20 / 400) ** 2) / 400
    assert normal2.high - normal2.value == pytest.approx(NormalDist().inv_cdf(0.975) * math.sqrt(var))


def test_errors_corrected_bootstrap_matches_index_resampling():
    # the multinomial-on-counts draw is the image bootstrap: compare with explicit index resampling
    pre = np.array([1] * 20 + [0] * 30, bool)
    post = np.array([0] * 12 + [1] * 8 + [1] * 4 + [0] * 26, bool)
    est = errors_corrected_interval(pre, post, n_boot=4000, seed=3)
    assert est.value == pytest.approx((20 - 12) / 20)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, pre.size, size=(4000, pre.size))
    a, b = pre[idx], post[idx]
    boots = (a.sum(1) - b.sum(1)) / a.sum(1)
    assert est.low == pytest.approx(np.quantile(boots, 0.025), abs=0.04)
    assert est.high == pytest.approx(np.quantile(boots, 0.975), abs=0.04)


def test_reproducible_with_a_seed():
    pre, post = [1, 1, 1, 0, 1, 0, 1], [0, 1, 0, 1, 0, 0, 1]
    assert errors_corrected_interval(pre, post, seed=5) == errors_corrected_interval(pre, post, seed=5)
    assert errors_corrected_interval(pre, post, seed=5) != errors_corrected_interval(pre, post, seed=6)
    units = [[1, 0, 3, 2], [0, 1, 1, 4], [2, 0, 0, 1]]
    assert hierarchical_interval(units, seed=2) == hierarchical_interval(units, seed=2)
    g, b = [[1, 2], [], [7]], [[3], [4, 5], []]
    assert hierarchical_change_interval(g, b, 20, seed=2) == hierarchical_change_interval(g, b, 20, seed=2)


def test_paired_difference():
    est = paired_difference_interval([1, 1, 0, 1], [1, 0, 0, 1], n_boot=500)
    assert est.value == pytest.approx(-0.25) and est.low <= -0.25 <= est.high
    cont = paired_difference_interval([0.0, 0.0, 0.0], [0.5, 0.5, 0.5], n_boot=100)
    assert (cont.value, cont.low, cont.high) == (0.5, 0.5, 0.5)
    with pytest.raises(ValueError):
        paired_difference_interval([1, 0], [1])


def test_hierarchical_excludes_nan_units_and_reports_them():
    # unit 0 fixes both its errors (1.0), unit 1 fixes none (0.0), unit 2 has no error (excluded)
    est = hierarchical_interval([[0, 0, 2, 0], [5, 0, 0, 2], [9, 1, 0, 0]], n_boot=2000, seed=0)
    assert est.value == pytest.approx(0.5)
    assert est.n_units == 2 and est.n_excluded == 1
    # images inside each unit never change its metric here, so replicates are means of {1, 0} draws: 0, 0.5 or 1
    assert (est.low, est.high) == (0.0, 1.0)
    allnan = hierarchical_interval([[3, 0, 0, 0]], n_boot=50)
    assert math.isnan(allnan.value) and allnan.n_units == 0 and allnan.n_excluded == 1


def test_hierarchical_change_is_crossed_on_the_shared_set():
    # two units flip the same 2 images of 100 to wrong: every replicate of the mean equals -(weight of those 2) / 100
    est = hierarchical_change_interval([[], []], [[0, 1], [0, 1]], n=100, n_boot=3000, seed=0)
    assert est.value == pytest.approx(-0.02)
    single = flip_change_interval(good=0, bad=2, n=100, n_boot=3000, seed=0)
    # crossed: both units move together, so the interval is that of one unit's change
    assert est.low == pytest.approx(single.low, abs=0.011) and est.high == pytest.approx(single.high, abs=0.011)
    with pytest.raises(ValueError, match="indices"):
        hierarchical_change_interval([[100]], [[]], n=100)


def test_corrected_difference_of_two_edits():
    # 4 images wrong before; edit a fixes 1, edit b fixes 3 and breaks 1 right image: (3 - 2) / 4 - (1 - 0) / 4
    pre = [1, 1, 1, 1, 0]
    a = [0, 1, 1, 1, 0]
    b = [0, 0, 0, 1, 1]
    counts = code_counts(joint_codes(pre, a, b), 8)
    assert corrected_difference_from_counts(counts) == pytest.approx(((4 - 2) - (4 - 3)) / 4)


def test_multinomial_counts_keep_totals_and_zero_categories():
    rng = np.random.default_rng(0)
    draws = multinomial_counts(rng, np.array([10, 4]), np.array([[5, 0, 5], [0, 0, 2]]), size=(100,))
    assert draws.shape == (100, 2, 3)
    assert (draws.sum(-1) == np.array([10, 4])).all()
    assert (draws[:, 0, 1] == 0).all() and (draws[:, 1, :2] == 0).all()


def test_percentile_interval_ignores_nan():
    lo, hi, valid = percentile_interval(np.array([np.nan, 1.0, 1.0, np.nan]))
    assert (lo, hi, valid) == (1.0, 1.0, 2)


def test_cluster_resampling_keeps_a_clusters_units_together():
    from modeledit.eval.intervals import draw_units

    rng = np.random.default_rng(0)
    draws = draw_units(rng, 200, 5, clusters=["a", "a", "a", "b", "b"])
    assert draws.shape == (200, 2 * 3)
    for row in draws:
        got = sorted(v for v in row if v >= 0)
        # each drawn cluster brings all its units: rows are made of {0, 1, 2} and {3, 4} blocks
        assert got.count(0) == got.count(1) == got.count(2) and got.count(3) == got.count(4)
    # pair a: two units both fix everything (1.0), pair b: two units fix nothing (0.0); unit mean 0.5 either way
    counts = [[0, 0, 3, 0], [0, 0, 3, 0], [0, 0, 0, 3], [0, 0, 0, 3]]
    by_pair = hierarchical_interval(counts, n_boot=2000, seed=1, clusters=["a", "a", "b", "b"])
    assert by_pair.value == pytest.approx(0.5)
    # two clusters: replicates are means over {a, a}, {a, b}, {b, b} -> 1, 0.5, 0
    assert (by_pair.low, by_pair.high) == (0.0, 1.0)
    change = hierarchical_change_interval([[], [], [], []], [[0], [0], [], []], n=10, n_boot=500, clusters=["a", "a", "b", "b"])
    assert change.value == pytest.approx(-0.05)
