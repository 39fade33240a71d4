"""MI / AMI / Cramer's V against scikit-learn and scipy; the permutation grid against direct loops."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats.contingency import association
from sklearn.metrics import adjusted_mutual_info_score, mutual_info_score

from probe.probes.information import (
    adjusted_mutual_info,
    contingency_grid,
    entropy,
    expected_mi,
    mutual_info,
)


def _pair(k: int, levels: int, m: int, seed: int, dep: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, levels, m)
    x = np.where(rng.random(m) < dep, y * (k // levels) + rng.integers(0, max(k // levels, 1), m), rng.integers(0, k, m))
    return x, y


@pytest.mark.parametrize("k,levels,m", [(3, 2, 40), (50, 4, 300), (4096, 5, 3000), (7, 7, 1000)])
def test_mi_and_ami_match_sklearn(k: int, levels: int, m: int) -> None:
    for seed in range(3):
        x, y = _pair(k, levels, m, seed)
        assert mutual_info(x, y) == pytest.approx(mutual_info_score(y, x), abs=1e-12)
        assert adjusted_mutual_info(x, y) == pytest.approx(adjusted_mutual_info_score(y, x), abs=1e-10)
        assert entropy(y) == pytest.approx(mutual_info_score(y, y), abs=1e-12)


def test_ami_limit_cases_match_sklearn() -> None:
    one = np.zeros(20, dtype=int)
    same = np.arange(20) % 4
    for a, b in [(one, one), (same, same), (one, same)]:
        assert adjusted_mutual_info(a, b) == pytest.approx(adjusted_mutual_info_score(a, b))


def test_expected_mi_is_the_permutation_mean() -> None:
    x, y = _pair(12, 3, 200, seed=4)
    rng = np.random.default_rng(0)
    null = [mutual_info(x, rng.permutation(y)) for _ in range(3000)]
    assert expected_mi(x, y) == pytest.approx(np.mean(null), rel=0.02)


def test_grid_matches_per_position_reference() -> None:
    rng = np.random.default_rng(1)
    m, n_pos, k, levels = 600, 5, 40, 3
    tokens = rng.integers(0, k, (m, n_pos))
    labels = rng.integers(0, levels, m)
    tokens[:, 2] = labels * 10 + rng.integers(0, 10, m)  # one dependent position
    perms = np.vstack([np.arange(m), rng.permutation(m), rng.permutation(m)])
    g = contingency_grid(tokens, labels, perms, k, levels)
    assert g.mi.shape == (n_pos, 3) and g.cramers_v.shape == (n_pos, 3)
    for n in range(n_pos):
        for p in range(3):
            lab = labels[perms[p]]
            assert g.mi[n, p] == pytest.approx(mutual_info_score(lab, tokens[:, n]), abs=1e-12)
            table = pd.crosstab(tokens[:, n], lab).to_numpy()
            assert g.cramers_v[n, p] == pytest.approx(association(table, method="cramer"), abs=1e-10)
        assert g.ami[n] == pytest.approx(adjusted_mutual_info_score(labels, tokens[:, n]), abs=1e-10)
        assert g.token_entropy[n] == pytest.approx(entropy(tokens[:, n]))
    assert g.mi[2, 0] == g.mi[:, 0].max()


def test_ami_all_matches_sklearn_for_observed_and_permuted_labels() -> None:
    from probe.probes.information import ami_all, contingency_grid

    rng = np.random.default_rng(4)
    tokens = rng.integers(0, 40, (500, 3)).astype(np.int64)
    labels = (tokens[:, 1] % 3 + rng.integers(0, 2, 500)) % 3  # position 1 carries the label, noisily
    perms = np.stack([np.arange(500), *[rng.permutation(500) for _ in range(4)]])
    grid = contingency_grid(tokens, labels.astype(np.int32), perms, 40, 3)
    got = ami_all(grid.mi, grid.emi, grid.token_entropy, grid.label_entropy)
    for n in range(3):
        for j, perm in enumerate(perms):
            assert got[n, j] == pytest.approx(adjusted_mutual_info_score(labels[perm], tokens[:, n]), abs=1e-9)
