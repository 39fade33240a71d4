"""Intervals of the ratio estimator: reference values, shapes, and coverage at the sizes users run."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from probe.swap.familywise import adjusted_lower_bounds, familywise_alpha
from probe.swap.intervals import DEFAULT_METHOD, METHODS, lower_bound, ratio_interval, ratio_se


def _pairs(n: int, seed: int, g: int | None = None, sd: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (n,) if g is None else (g, n)
    gap = rng.uniform(0.5, 1.0, shape) + rng.normal(0, sd * 0.5, shape)
    return 0.7 * gap + rng.normal(0, sd, shape), gap


def test_t_interval_with_unit_gaps_is_the_one_sample_t_interval() -> None:
    moved, _ = _pairs(20, 0)
    ci = ratio_interval(moved, np.ones(20), method="t", level=0.9)
    lo, hi = stats.t.interval(0.9, 19, loc=moved.mean(), scale=stats.sem(moved))
    assert ci.point == pytest.approx(moved.mean())
    assert (ci.low, ci.high) == pytest.approx((lo, hi))


def test_delta_method_se_matches_the_spread_of_the_ratio() -> None:
    x, y = _pairs(64, 1, g=4000)
    r = x.sum(1) / y.sum(1)
    assert np.median(ratio_se(x, y)) == pytest.approx(r.std(), rel=0.05)


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_bootstrap_intervals_match_scipy(method: str) -> None:
    x, y = _pairs(40, 2)
    ours = ratio_interval(x, y, method=method, n_boot=20000, seed=1)
    ref = stats.bootstrap((x, y), lambda a, b, axis=-1: a.sum(axis) / b.sum(axis), paired=True, vectorized=True,
                          method="BCa" if method == "bca" else "percentile", n_resamples=20000, random_state=1)
    # Monte Carlo error of a 2.5% quantile from 20k resamples is ~0.003 here
    assert ours.low == pytest.approx(ref.confidence_interval.low, abs=0.01)
    assert ours.high == pytest.approx(ref.confidence_interval.high, abs=0.01)


@pytest.mark.parametrize("method", METHODS)
def test_groups_at_once_equal_one_at_a_time(method: str) -> None:
    x, y = _pairs(24, 3, g=3)
    both = ratio_interval(x, y, method=method, n_boot=500, seed=4)
    for g in range(3):
        one = ratio_interval(x[g], y[g], method=method, n_boot=500, seed=4)
        assert (one.point, one.low, one.high) == pytest.approx((both.point[g], both.low[g], both.high[g]))


def test_lower_bound_is_the_low_end_of_the_two_sided_interval() -> None:
    x, y = _pairs(30, 5)
    assert lower_bound(x, y, alpha=0.05) == pytest.approx(ratio_interval(x, y, level=0.9).low)
    assert lower_bound(x, y, alpha=0.01) < lower_bound(x, y, alpha=0.05)


def test_degenerate_inputs_give_nan_or_a_clear_error() -> None:
    assert np.isnan(ratio_interval(np.ones(8), -np.ones(8)).low)  # gaps sum below zero: no transfer
    assert np.isnan(ratio_interval(np.array([1.0]), np.array([1.0])).low)  # one pair: no interval
    nan_pair = ratio_interval(np.array([np.nan, 1.0, 1.2, 0.8]), np.ones(4))
    assert nan_pair.n == 3
    with pytest.raises(ValueError, match="unknown interval method"):
        ratio_interval(np.ones(4), np.ones(4), method="wald")
    with pytest.raises(ValueError, match="same shape"):
        ratio_interval(np.ones(4), np.ones(5))


@pytest.mark.parametrize("n, floor", [(16, 0.93), (64, 0.94)])
def test_default_interval_holds_its_level(n: int, floor: float) -> None:
    """Coverage of the default 95% interval over 1500 simulated data sets with heavy-tailed noise (Student t,
    3 df) on both movement and gap, as the calibration benchmark draws them. The binomial standard error of
    the rate is 0.006, so the floor minus 2.5 SE fails a method that covers 91% (the percentile bootstrap
    at 16 pairs)."""
    rng = np.random.default_rng(n)
    g = 1500
    dv = rng.uniform(0.75, 1.0, (g, n)) - rng.uniform(0.0, 0.25, (g, n))
    e = rng.standard_t(3, (3, g, n)) / np.sqrt(3) * 0.16
    moved, gap = 0.7 * dv + e[0] - e[1], dv + e[2] - e[1]
    ci = ratio_interval(moved, gap, method=DEFAULT_METHOD)
    cover = np.mean((ci.low <= 0.7) & (0.7 <= ci.high))
    assert cover >= floor - 2.5 * np.sqrt(0.95 * 0.05 / g)
    assert cover <= 0.95 + 3 * np.sqrt(0.95 * 0.05 / g)  # not bought with needlessly wide intervals


def test_familywise_bounds_are_bounds_at_alpha_over_m() -> None:
    x, y = _pairs(32, 6, g=4)
    lb = adjusted_lower_bounds([(x[g], y[g]) for g in range(4)], alpha=0.05)
    for g in range(4):
        assert lb[g] == pytest.approx(lower_bound(x[g], y[g], alpha=0.05 / 4))
    wider = adjusted_lower_bounds([(x[0], y[0])], alpha=0.05, family_size=20)
    assert wider[0] < lb[0]
    assert familywise_alpha(0.05, 10) == pytest.approx(0.005)
    ragged = adjusted_lower_bounds([(x[0], y[0]), (x[1][:20], y[1][:20])], alpha=0.05)
    assert ragged[1] == pytest.approx(lower_bound(x[1][:20], y[1][:20], alpha=0.025))
    with pytest.raises(ValueError, match="family_size"):
        adjusted_lower_bounds([(x[0], y[0]), (x[1], y[1])], family_size=1)
