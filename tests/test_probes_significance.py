"""Permutation p-values and Benjamini-Hochberg q-values: known answers and a reference implementation."""
from __future__ import annotations

import numpy as np
import pytest

from probe.probes.significance import bh_qvalues, permutation_pvalues


def _bh_reference(p: np.ndarray) -> np.ndarray:
    """Textbook BH: q_(i) = min_{j >= i} p_(j) m / j, capped at 1."""
    m = len(p)
    order = np.argsort(p)
    q_sorted = np.minimum.accumulate((p[order] * m / np.arange(1, m + 1))[::-1])[::-1]
    q = np.empty(m)
    q[order] = np.minimum(q_sorted, 1.0)
    return q


def test_bh_matches_reference_and_keeps_nan() -> None:
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.uniform(size=50), rng.uniform(0, 1e-3, size=10)])
    np.testing.assert_allclose(bh_qvalues(p), _bh_reference(p), rtol=1e-12)
    p_nan = np.array([0.01, np.nan, 0.04, 0.5])
    q = bh_qvalues(p_nan)
    assert np.isnan(q[1])
    np.testing.assert_allclose(q[[0, 2, 3]], _bh_reference(np.array([0.01, 0.04, 0.5])))


def test_permutation_pvalue_counts_exceedances() -> None:
    null = np.arange(1.0, 11.0)  # 10 permuted values 1..10
    stat = np.array([[5.0, *null], [10.5, *null], [0.0, *null], [5.0, *([5.0] * 10)]])
    p, mean, sd = permutation_pvalues(stat, tail="none")
    np.testing.assert_allclose(p, [(1 + 6) / 11, 1 / 11, 1.0, 1.0])  # ties count as >=
    assert mean[0] == pytest.approx(5.5)
    assert sd[0] == pytest.approx(np.std(null, ddof=1))


def test_gamma_tail_only_below_the_plain_floor() -> None:
    rng = np.random.default_rng(0)
    null = rng.gamma(4.0, 0.5, size=200)
    stat = np.array([[3.0, *null], [40.0, *null]])
    p_plain, _, _ = permutation_pvalues(stat, tail="none")
    p_tail, _, _ = permutation_pvalues(stat, tail="gamma")
    assert p_tail[0] == p_plain[0]  # inside the null: unchanged
    assert p_plain[1] == pytest.approx(1 / 201)
    assert 0 < p_tail[1] < 1e-10  # far beyond every permutation: extrapolated
