"""Group statistics, ranks and linear probes against direct computations and scikit-learn."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import rankdata, spearmanr
from sklearn.linear_model import Ridge
from sklearn.metrics import balanced_accuracy_score

from probe.probes.linear import (
    RidgeDesign,
    balanced_targets,
    class_balanced_scores,
    fold_ids,
    linear_classify_cv,
    linear_regress_cv,
    onehot_classify_cv,
)
from probe.probes.stats import (
    GroupDesign,
    group_permutation_stats,
    spearman_perm,
    standardized_ranks,
)


def _eta2_direct(x: np.ndarray, lab: np.ndarray) -> float:
    """Multivariate eta^2 of ``x [m, C]``: sum over channels of between SS / total SS."""
    mu = x.mean(0)
    between = sum((lab == g).sum() * ((x[lab == g].mean(0) - mu) ** 2).sum() for g in np.unique(lab))
    return between / ((x - mu) ** 2).sum()


def _trace_var(x: np.ndarray) -> float:
    return float(x.var(0, ddof=1).sum())


def test_eta2_and_variance_ratio_match_direct() -> None:
    rng = np.random.default_rng(0)
    m, n_pos, c, levels = 400, 3, 4, 3
    lab = rng.integers(0, levels, m)
    feats = rng.standard_normal((m, n_pos, c))
    feats[:, 1] += lab[:, None] * 0.8  # position 1: mean shift
    feats[:, 2] *= np.where(lab == 2, 3.0, 1.0)[:, None]  # position 2: level 2 has more variance
    emb = rng.standard_normal((m, n_pos, 2))
    perms = np.vstack([np.arange(m), rng.permutation(m)])
    design = GroupDesign.build({"features": feats, "codebook": emb}, partition_block="features")
    gs = group_permutation_stats(design, lab[perms], levels, partition_levels=[0, 2])
    for p in range(2):
        lp = lab[perms[p]]
        for n in range(n_pos):
            assert gs.eta2["features"][n, p] == pytest.approx(_eta2_direct(feats[:, n], lp), rel=1e-4)
            assert gs.eta2["codebook"][n, p] == pytest.approx(_eta2_direct(emb[:, n], lp), rel=1e-4)
            for v in (0, 2):
                ref = np.log(_trace_var(feats[lp == v, n]) / _trace_var(feats[lp != v, n]))
                assert gs.logratio[v][n, p] == pytest.approx(ref, rel=1e-4, abs=1e-5)
    assert gs.eta2["features"][:, 0].argmax() == 1
    assert gs.logratio[2][2, 0] > 1.5  # log(9) ~ 2.2


def test_float16_ranks_match_rankdata_and_spearman_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((3000, 6)) * 4).astype(np.float16)  # many ties
    x[0, 0], x[1, 0] = -0.0, 0.0
    r = standardized_ranks(x)
    ref = rankdata(x.astype(np.float32), axis=0)
    ref = (ref - ref.mean(0)) / ref.std(0)
    np.testing.assert_allclose(r, ref, atol=1e-4)
    values = x[:, 4].astype(np.float64) + rng.standard_normal(3000)
    perms = np.vstack([np.arange(3000), rng.permutation(3000)])
    max_abs, signed = spearman_perm(r, values, perms, n_pos=2)  # 2 positions x 3 coordinates
    rho = [spearmanr(x[:, j].astype(np.float32), values)[0] for j in range(6)]
    assert max_abs[0, 0] == pytest.approx(max(abs(v) for v in rho[:3]), abs=1e-4)
    assert max_abs[1, 0] == pytest.approx(max(abs(v) for v in rho[3:]), abs=1e-4)
    assert signed[1] == pytest.approx(rho[4], abs=1e-4)


def test_ridge_design_matches_sklearn_ridge() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 5)) * [1, 2, 3, 4, 5] + 3
    y = x @ rng.standard_normal(5) + rng.standard_normal(200)
    folds = fold_ids(200, 4, seed=0)
    d = RidgeDesign(x[None], folds, alpha=2.0)
    z = (x - x.mean(0)) / x.std(0)
    for i, f in enumerate(d.fold_values):
        tr = folds != f
        ref = Ridge(alpha=2.0).fit(z[tr], y[tr])
        w = d.coef(y[:, None], i)[0, :, 0]
        np.testing.assert_allclose(w[:-1], ref.coef_, rtol=1e-5)
        assert w[-1] == pytest.approx(ref.intercept_, rel=1e-5)


def test_linear_probes_separate_signal_from_noise() -> None:
    rng = np.random.default_rng(0)
    m, n_pos, levels = 1500, 4, 3
    y = rng.integers(0, levels, m)
    x = rng.standard_normal((n_pos, m, 5))
    x[2, :, 0] += 3.0 * y  # only position 2 carries the label
    folds = fold_ids(m, 5, 0)
    sc = linear_classify_cv(RidgeDesign(x, folds), y, levels)
    assert sc.balanced_accuracy[2] > 0.9
    assert np.all(np.abs(np.delete(sc.balanced_accuracy, 2) - 1 / levels) < 0.08)
    signal = x[2, :, 0]
    r2 = linear_regress_cv(RidgeDesign(x, folds), signal + rng.standard_normal(m))  # unit noise
    assert r2[2] == pytest.approx(signal.var() / (signal.var() + 1.0), abs=0.03)
    assert np.all(np.delete(r2, 2) < 0.02)


def test_balanced_scores_and_onehot_probe() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 500)
    pred = np.where(rng.random(500) < 0.6, y, rng.integers(0, 4, 500))
    bal, acc = class_balanced_scores(y, pred[None], 4)
    assert bal[0] == pytest.approx(balanced_accuracy_score(y, pred))
    assert acc[0] == pytest.approx(np.mean(pred == y))
    t = balanced_targets(np.array([0, 0, 0, 1]), 2)
    np.testing.assert_allclose(t.sum(0), [4.0, 4.0])  # every class carries the same target mass
    tokens = np.stack([y * 7 + rng.integers(0, 7, 500), rng.integers(0, 28, 500)], 1)  # position 0 determines y
    sc = onehot_classify_cv(tokens, y, 28, 4, fold_ids(500, 5, 0))
    assert sc.balanced_accuracy[0] > 0.95
    assert abs(sc.balanced_accuracy[1] - 0.25) < 0.1


def test_group_stats_threaded_equals_serial() -> None:
    rng = np.random.default_rng(0)
    m = 1000
    feats = rng.standard_normal((m, 4, 3))
    lab = rng.integers(0, 4, m)
    labp = lab[np.vstack([np.arange(m)] + [rng.permutation(m) for _ in range(60)])]
    design = GroupDesign.build({"features": feats}, "features")
    a = group_permutation_stats(design, labp, 4, partition_levels=[0, 3], max_rows=30, n_workers=1)
    b = group_permutation_stats(design, labp, 4, partition_levels=[0, 3], max_rows=30, n_workers=2)
    np.testing.assert_array_equal(a.eta2["features"], b.eta2["features"])
    np.testing.assert_array_equal(a.logratio[3], b.logratio[3])
