"""Cross-validated linear probes, batched over positions.

scikit-learn fits one model per call; 32 positions x 5 folds x 10 attributes would be 1,600 fits
dominated by per-call overhead, so the class-balanced ridge classifier / ridge regressor is solved
here in closed form for all positions at once (``np.linalg.solve`` on ``[N, C+1, C+1]``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def fold_ids(m: int, folds: int, seed: int) -> np.ndarray:
    """``[m]`` fold index of each row: a seeded shuffle split into ``folds`` near-equal parts."""
    order = np.random.default_rng(seed).permutation(m)
    ids = np.empty(m, dtype=np.int64)
    ids[order] = np.arange(m) % folds
    return ids


def class_balanced_scores(y_true: np.ndarray, y_pred: np.ndarray, num_levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Balanced accuracy (mean recall over the classes present, as sklearn) and accuracy.

    ``y_true [m]``, ``y_pred [B, m]`` -> ``balanced [B]``, ``accuracy [B]``.
    """
    y_pred = np.atleast_2d(y_pred)
    correct = (y_pred == y_true[None]).astype(np.float64)
    onehot = np.eye(num_levels)[y_true]
    counts = onehot.sum(0)
    present = counts > 0
    recall = (correct @ onehot)[:, present] / counts[present]
    return recall.mean(1), correct.mean(1)


def _design(x: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Standardize ``x [B, m, C]`` and append an intercept column -> ``[B, m, C+1]``."""
    z = (x - mean) / sd
    return np.concatenate([z, np.ones(z.shape[:2] + (1,), dtype=z.dtype)], axis=2)


def ridge_fit(x: np.ndarray, y: np.ndarray, w: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted ridge on standardized ``x [B, m, C]`` with targets ``y [m, T]``, weights ``w [m]``.

    The intercept is not penalised. Returns ``coef [B, C+1, T]`` and the standardization used.
    """
    mean = x.mean(1, keepdims=True)
    sd = x.std(1, keepdims=True)
    sd[sd == 0] = 1.0
    d = _design(x, mean, sd).astype(np.float64)
    dw = d * w[None, :, None]
    gram = np.matmul(dw.transpose(0, 2, 1), d)
    pen = np.full(d.shape[2], alpha)
    pen[-1] = 0.0
    gram += np.diag(pen)[None]
    rhs = np.matmul(dw.transpose(0, 2, 1), y.astype(np.float64))
    coef = np.linalg.solve(gram + 1e-9 * np.eye(d.shape[2])[None], rhs)
    return coef, mean, sd


def ridge_predict(x: np.ndarray, coef: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """``[B, m, T]`` predictions."""
    return np.matmul(_design(x, mean, sd).astype(np.float64), coef)


def balanced_weights(y: np.ndarray, num_levels: int) -> np.ndarray:
    """sklearn's ``class_weight="balanced"`` as per-row weights: ``m / (L * n_y)``."""
    counts = np.bincount(y, minlength=num_levels).astype(np.float64)
    present = (counts > 0).sum()
    return len(y) / (present * counts[y])


@dataclass
class ProbeScores:
    """Cross-validated scores per position (or one entry for all positions together)."""

    balanced_accuracy: np.ndarray
    accuracy: np.ndarray


def linear_classify_cv(x: np.ndarray, y: np.ndarray, num_levels: int, folds: np.ndarray, alpha: float) -> ProbeScores:
    """Class-balanced ridge classifier on ``x [B, m, C]`` predicting ``y [m]``; out-of-fold scores per B."""
    pred = np.zeros((x.shape[0], len(y)), dtype=np.int64)
    onehot = np.eye(num_levels)[y]
    for f in np.unique(folds):
        tr, te = folds != f, folds == f
        w = balanced_weights(y[tr], num_levels)
        coef, mean, sd = ridge_fit(x[:, tr], onehot[tr], w, alpha)
        pred[:, te] = ridge_predict(x[:, te], coef, mean, sd).argmax(-1)
    bal, acc = class_balanced_scores(y, pred, num_levels)
    return ProbeScores(bal, acc)


def linear_regress_cv(x: np.ndarray, values: np.ndarray, folds: np.ndarray, alpha: float) -> np.ndarray:
    """Ridge regression of ``values [m]`` from ``x [B, m, C]``; out-of-fold R^2 per B."""
    pred = np.zeros((x.shape[0], len(values)))
    target = (values - values.mean()) / (values.std() or 1.0)
    for f in np.unique(folds):
        tr, te = folds != f, folds == f
        coef, mean, sd = ridge_fit(x[:, tr], target[tr, None], np.ones(int(tr.sum())), alpha)
        pred[:, te] = ridge_predict(x[:, te], coef, mean, sd)[..., 0]
    sse = ((pred - target[None]) ** 2).sum(1)
    sst = ((target - target.mean()) ** 2).sum()
    return 1.0 - sse / sst


def onehot_classify_cv(tokens: np.ndarray, y: np.ndarray, num_codes: int, num_levels: int, folds: np.ndarray) -> ProbeScores:
    """Class-balanced ridge classifier on each position's one-hot token id, ``tokens [m, N]``.

    One-hot columns of one position are orthogonal, so the ridge solution (no intercept) is
    closed form: the score of class g for code k is the class-weighted count of g among training
    rows with code k over (their total weight + alpha), whose argmax does not depend on alpha.
    Codes unseen in training predict class 0 (all scores tie at 0), as the ridge model would.
    """
    m, n_pos = tokens.shape
    pred = np.zeros((n_pos, m), dtype=np.int64)
    offs = (np.arange(n_pos) * num_codes)[None, :]
    for f in np.unique(folds):
        tr, te = folds != f, folds == f
        w = balanced_weights(y[tr], num_levels)
        key = ((tokens[tr] + offs) * num_levels + y[tr, None]).ravel()
        table = np.bincount(key, weights=np.repeat(w, n_pos), minlength=n_pos * num_codes * num_levels)
        best = table.reshape(n_pos * num_codes, num_levels).argmax(1)
        pred[:, te] = best[(tokens[te] + offs)].T
    bal, acc = class_balanced_scores(y, pred, num_levels)
    return ProbeScores(bal, acc)
