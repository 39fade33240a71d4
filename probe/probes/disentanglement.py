"""Disentanglement metrics with google-research/disentanglement_lib's definitions.

Codes are token positions, factors are attributes (continuous ones binned into quantiles).

* MIG (mig.py): per factor, the gap between the two largest code-factor MIs over the factor's
  entropy; the score is the mean over factors. disentanglement_lib discretizes continuous codes
  with a 20-bin histogram; token ids are already discrete, so the MI is taken on the ids directly.
* Modularity (modularity_explicitness.py): per code ``1 - (sum of squared MI - max) / (max (F-1))``,
  0 where the max is 0; the score is the mean over codes.
* DCI (dci.py): from an importance matrix ``[codes, factors]``: disentanglement per code
  ``1 - H_F(p)`` weighted by the code's share of importance; completeness per factor
  ``1 - H_codes(p)`` weighted likewise (entropies in base F / base #codes, +1e-11 as there).
* SAP (sap_score.py, discrete factors): per factor, the gap between the two best per-code
  classification accuracies; the score is the mean over factors.

Deviations (documented in :func:`probe.probes.run_probes`): MI uses all images rather than
``num_train=10000``; "adjusted" variants subtract the permutation-null mean from the MI first
(plug-in MI is biased upward by roughly (K-1)(L-1)/2M with K codes); DCI's importance is by default
|ridge weights| (fast) rather than gradient-boosted-tree importances (``dci_importance="gbt"``);
SAP's per-code classifier is the class-balanced linear probe on the position's one-hot id.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats

if TYPE_CHECKING:
    from probe.probes.linear import RidgeDesign


def mig_per_factor(mi: np.ndarray, entropy: np.ndarray) -> np.ndarray:
    """``mi [codes, factors]``, ``entropy [factors]`` -> ``[factors]`` normalised gaps."""
    if mi.shape[0] < 2:
        return np.full(mi.shape[1], np.nan)
    s = np.sort(mi, axis=0)[::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return (s[0] - s[1]) / entropy


def mig(mi: np.ndarray, entropy: np.ndarray) -> float:
    """Mutual information gap (disentanglement_lib ``discrete_mig``)."""
    return float(np.mean(mig_per_factor(mi, entropy)))


def modularity_per_code(mi: np.ndarray) -> np.ndarray:
    """``mi [codes, factors]`` -> ``[codes]`` modularity."""
    sq = np.square(mi)
    mx = sq.max(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = 1.0 - (sq.sum(1) - mx) / (mx * (sq.shape[1] - 1.0))
    score[mx == 0.0] = 0.0
    return score


def modularity(mi: np.ndarray) -> float:
    """Modularity score (disentanglement_lib ``modularity_score``)."""
    return float(np.mean(modularity_per_code(mi)))


def dci_disentanglement_per_code(importance: np.ndarray) -> np.ndarray:
    """``[codes]``; NaN with a single factor (entropy in base 1 is undefined)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 - stats.entropy(importance.T + 1e-11, base=importance.shape[1])


def _importance_weighted(scores: np.ndarray, importance: np.ndarray, axis: int) -> float:
    """``scores`` averaged with weights = each row's (``axis=1``: codes) or column's (``axis=0``: factors) share
    of the total importance ``[codes, factors]``; equal weights when all importance is 0."""
    if importance.sum() == 0.0:
        importance = np.ones_like(importance)
    return float(np.sum(scores * (importance.sum(axis) / importance.sum())))


def dci_disentanglement(importance: np.ndarray) -> float:
    """DCI disentanglement of an importance matrix ``[codes, factors]``: per-code scores weighted by the codes'
    share of importance."""
    return _importance_weighted(dci_disentanglement_per_code(importance), importance, axis=1)


def dci_completeness_per_factor(importance: np.ndarray) -> np.ndarray:
    """``[factors]``; NaN with a single code."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 - stats.entropy(importance + 1e-11, base=importance.shape[0])


def dci_completeness(importance: np.ndarray) -> float:
    """DCI completeness of an importance matrix ``[codes, factors]``: per-factor scores weighted by the factors'
    share of importance."""
    return _importance_weighted(dci_completeness_per_factor(importance), importance, axis=0)


def sap_per_factor(score: np.ndarray) -> np.ndarray:
    """``score [codes, factors]`` -> ``[factors]`` gap between the two best codes."""
    if score.shape[0] < 2:
        return np.full(score.shape[1], np.nan)
    s = np.sort(score, axis=0)
    return s[-1] - s[-2]


def sap(score: np.ndarray) -> float:
    """SAP score (disentanglement_lib ``SAP_score``)."""
    return float(np.mean(sap_per_factor(score)))


def dci_importance_linear(
    design: RidgeDesign, y: np.ndarray, num_levels: int, *, code_of_column: np.ndarray, num_codes: int
) -> tuple[np.ndarray, float, float]:
    """Importance of each code for one factor from |ridge weights| (train fold 0, test fold 1).

    Args:
        design: a :class:`probe.probes.linear.RidgeDesign` of ``[1, m, D]`` standardized columns
            whose folds are 0 (train) and 1 (test).
        y: ``[m]`` factor labels of the design's rows.
        code_of_column: ``[D]`` the code (position) each column belongs to.

    Returns:
        ``importance [num_codes]`` (column importances summed per code), train and test accuracy of
        the class-balanced ridge classifier.
    """
    from probe.probes.linear import balanced_targets

    train = design.folds == design.fold_values[0]
    targets = balanced_targets(y, num_levels)
    targets[~train] = 0.0
    w = design.coef(targets, 1)[0]  # fitted without fold 1 (the test rows)
    pred = np.matmul(design.d[0], w).argmax(1)
    col_imp = np.abs(w[:-1]).sum(1)  # drop the intercept row
    imp = np.bincount(code_of_column, weights=col_imp, minlength=num_codes)
    return imp, float(np.mean(pred[train] == y[train])), float(np.mean(pred[~train] == y[~train]))


def dci_importance_gbt(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, *,
    code_of_column: np.ndarray, num_codes: int, seed: int = 0,
) -> tuple[np.ndarray, float, float]:
    """disentanglement_lib's importance: sklearn ``GradientBoostingClassifier()`` (default
    hyper-parameters) feature importances, summed per code; train and test accuracy."""
    from sklearn.ensemble import GradientBoostingClassifier

    model = GradientBoostingClassifier(random_state=seed)
    model.fit(x_train, y_train)
    col_imp = np.abs(model.feature_importances_)
    acc_tr = float(np.mean(model.predict(x_train) == y_train))
    acc_te = float(np.mean(model.predict(x_test) == y_test))
    return np.bincount(code_of_column, weights=col_imp, minlength=num_codes), acc_tr, acc_te


#: Columns of :func:`metrics_table`.
METRIC_COLUMNS = ["metric", "scope", "position", "attribute", "value"]


@dataclass
class FactorScores:
    """What the metrics read of one factor (attribute), gathered by the probe units of
    :mod:`probe.probes.units`; a field stays None when its probe did not run.

    Attributes:
        mi: ``[N]`` plug-in MI of each code (position) with the factor (nats).
        mi_null: ``[N]`` its permutation-null mean (for the ``*_adjusted`` metrics).
        entropy: the factor's entropy (nats).
        accuracy: ``[N]`` per-code classification accuracy (SAP).
        importance: ``[N]`` importance of each code for the factor (DCI).
        info_train / info_test: train / test accuracy of the DCI classifier (informativeness).
    """

    mi: np.ndarray | None = None
    mi_null: np.ndarray | None = None
    entropy: float | None = None
    accuracy: np.ndarray | None = None
    importance: np.ndarray | None = None
    info_train: float | None = None
    info_test: float | None = None


def metrics_table(factors: Mapping[str, FactorScores]) -> pd.DataFrame:
    """Every metric, overall and per position / per attribute, from the factors' scores (those with an MI);
    SAP and DCI only where every such factor has their scores. Columns :data:`METRIC_COLUMNS`: ``metric,
    scope (overall|position|attribute), position, attribute, value``."""
    names = [k for k, f in factors.items() if f.mi is not None]
    if not names:
        return pd.DataFrame(columns=METRIC_COLUMNS)
    fs = [factors[k] for k in names]
    out: list[tuple] = []

    def add(metric: str, scope: str, values: np.ndarray | float, labels: Sequence | None = None) -> None:
        if scope == "overall":
            out.append((metric, scope, None, None, float(values)))
            return
        for lab, v in zip(labels, np.asarray(values, dtype=np.float64)):
            out.append((metric, scope, int(lab) if scope == "position" else None, lab if scope == "attribute" else None,
                        float(v)))

    mi = np.stack([f.mi for f in fs], 1)  # [N, A]
    h = np.asarray([f.entropy for f in fs])
    positions = list(range(mi.shape[0]))
    for suffix, mat in (("", mi), ("_adjusted", np.maximum(mi - np.stack([f.mi_null for f in fs], 1), 0.0))):
        add("mig" + suffix, "overall", mig(mat, h))
        add("mig" + suffix, "attribute", mig_per_factor(mat, h), names)
        add("modularity" + suffix, "overall", modularity(mat))
        add("modularity" + suffix, "position", modularity_per_code(mat), positions)
    if all(f.accuracy is not None for f in fs):
        acc = np.stack([f.accuracy for f in fs], 1)  # [N, A]
        add("sap", "overall", sap(acc))
        add("sap", "attribute", sap_per_factor(acc), names)
    if all(f.importance is not None for f in fs):
        imp = np.stack([f.importance for f in fs], 1)  # [N, A]
        add("dci_disentanglement", "overall", dci_disentanglement(imp))
        add("dci_disentanglement", "position", dci_disentanglement_per_code(imp), positions)
        add("dci_completeness", "overall", dci_completeness(imp))
        add("dci_completeness", "attribute", dci_completeness_per_factor(imp), names)
        add("dci_informativeness_train", "overall", float(np.mean([f.info_train for f in fs])))
        add("dci_informativeness_test", "overall", float(np.mean([f.info_test for f in fs])))
    return pd.DataFrame(out, columns=METRIC_COLUMNS)
