"""Cross-validated linear probes, batched over positions and sharing work across attributes.

scikit-learn fits one model per call; 32 positions x 5 folds x 10 attributes would be 1,600 fits,
each recomputing the same Gram matrix. Here a :class:`RidgeDesign` standardizes the inputs once
and keeps per-fold Gram inverses, so each attribute only costs one product with its targets.

The classifier is linear discriminant analysis with equal class priors (so it is class-balanced)
and a ridge-shrunk within-class covariance; least squares onto one-hot labels (a "ridge
classifier") was not used because it masks middle classes of an ordered attribute (ESL 4.2).
Balanced accuracy is scored on out-of-fold predictions. Regression probes are ridge regressions.
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


def balanced_targets(y: np.ndarray, num_levels: int) -> np.ndarray:
    """``[m, L]`` one-hot of ``y`` with each class column divided by its frequency."""
    counts = np.bincount(y, minlength=num_levels).astype(np.float64)
    scale = np.where(counts > 0, len(y) / np.maximum(counts, 1.0), 0.0)
    return np.eye(num_levels)[y] * scale[None, :]


class RidgeDesign:
    """Ridge regression of many targets on fixed inputs ``x [B, m, C]`` with fixed folds.

    Inputs are standardized once (over all m rows: only the scale is shared across folds), an
    unpenalised intercept is appended, and ``(X_train^T X_train + alpha I)^-1`` is kept per fold.
    """

    def __init__(self, x: np.ndarray, folds: np.ndarray, alpha: float = 1.0) -> None:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 3:
            raise ValueError(f"x must be [B, m, C], got shape {x.shape}")
        mean = x.mean(1, keepdims=True)
        sd = x.std(1, keepdims=True)
        sd[sd == 0] = 1.0
        b, m, c = x.shape
        self.d = np.empty((b, m, c + 1))
        self.d[..., :c] = (x - mean) / sd
        self.d[..., c] = 1.0
        self.folds = np.asarray(folds)
        self.fold_values = np.unique(self.folds)
        self.rows = [np.flatnonzero(self.folds == f) for f in self.fold_values]
        self.d_fold = [np.ascontiguousarray(self.d[:, r]) for r in self.rows]  # sliced once, reused per attribute
        grams = np.stack([np.matmul(df.transpose(0, 2, 1), df) for df in self.d_fold])
        total = grams.sum(0)
        self.alpha = float(alpha)
        self.train_gram = total[None] - grams  # [F, B, C+1, C+1]
        pen = np.full(c + 1, self.alpha)
        pen[-1] = 1e-9  # the intercept is (almost) unpenalised
        self.inv = np.linalg.inv(self.train_gram + np.diag(pen)[None, None])

    def coef(self, y: np.ndarray, fold_index: int) -> np.ndarray:
        """``[B, C+1, T]`` weights fitted on all folds but ``fold_index``, for targets ``y [m, T]``."""
        mask = self.folds != self.fold_values[fold_index]
        rhs = np.matmul(self.d[:, mask].transpose(0, 2, 1), y[mask])
        return np.matmul(self.inv[fold_index], rhs)

    def oof_predict(self, y: np.ndarray) -> np.ndarray:
        """``[B, m, T]`` out-of-fold predictions of targets ``y [m, T]``."""
        y = np.asarray(y, dtype=np.float64)
        per_fold = [np.matmul(df.transpose(0, 2, 1), y[r]) for df, r in zip(self.d_fold, self.rows)]  # [B, C+1, T]
        total = sum(per_fold)
        out = np.empty((self.d.shape[0], len(y), y.shape[1]))
        for i, r in enumerate(self.rows):
            w = np.matmul(self.inv[i], total - per_fold[i])
            out[:, r] = np.matmul(self.d_fold[i], w)
        return out


    def lda_oof_scores(self, y: np.ndarray, num_levels: int) -> np.ndarray:
        """``[B, m, L]`` out-of-fold discriminant scores of an equal-prior LDA for labels ``y [m]``.

        Within-class covariance of the training folds plus ``alpha / n_train`` on the diagonal
        (inputs are standardized, so that is a ridge shrinkage); the per-fold class sums come
        from one product with the one-hot labels, the Gram matrices are shared.
        """
        onehot = np.eye(num_levels)[y]
        per_fold = [np.matmul(df.transpose(0, 2, 1), onehot[r]) for df, r in zip(self.d_fold, self.rows)]  # [B, C+1, L]
        total = sum(per_fold)
        c = self.d.shape[2] - 1
        out = np.empty((self.d.shape[0], len(y), num_levels))
        for i, r in enumerate(self.rows):
            sums = total - per_fold[i]
            counts = sums[:, c, :]  # the intercept column counts the rows of each class
            n_train = counts[0].sum()
            present = counts[0] > 0
            mu = sums[:, :c, :] / np.maximum(counts[:, None, :], 1.0)  # [B, C, L]
            scatter = self.train_gram[i][:, :c, :c] - np.matmul(mu * counts[:, None, :], mu.transpose(0, 2, 1))
            cov = scatter / max(n_train - present.sum(), 1.0) + (self.alpha / n_train) * np.eye(c)[None]
            w = np.linalg.solve(cov, mu)  # [B, C, L]
            b = -0.5 * (mu * w).sum(1)  # [B, L]; equal priors: no log-prior term
            scores = np.matmul(self.d_fold[i][..., :c], w) + b[:, None, :]
            scores[..., ~present] = -np.inf  # a class absent from training is never predicted
            out[:, r] = scores
        return out


@dataclass
class ProbeScores:
    """Cross-validated scores per position (or one entry for all positions together)."""

    balanced_accuracy: np.ndarray
    accuracy: np.ndarray


def linear_classify_cv(design: RidgeDesign, y: np.ndarray, num_levels: int) -> ProbeScores:
    """Equal-prior (class-balanced) shrunk LDA predicting ``y [m]``; out-of-fold scores per B."""
    pred = design.lda_oof_scores(y, num_levels).argmax(-1)
    bal, acc = class_balanced_scores(y, pred, num_levels)
    return ProbeScores(bal, acc)


def linear_regress_cv(design: RidgeDesign, values: np.ndarray) -> np.ndarray:
    """Ridge regression of ``values [m]``; out-of-fold R^2 per B."""
    target = (values - values.mean()) / (values.std() or 1.0)
    pred = design.oof_predict(target[:, None])[..., 0]
    sse = ((pred - target[None]) ** 2).sum(1)
    sst = ((target - target.mean()) ** 2).sum()
    return 1.0 - sse / sst


def onehot_classify_cv(tokens: np.ndarray, y: np.ndarray, num_codes: int, num_levels: int, folds: np.ndarray) -> ProbeScores:
    """Class-balanced ridge classifier on each position's one-hot token id, ``tokens [m, N]``.

    One-hot columns of one position are orthogonal, so the ridge solution (no intercept) is closed
    form: the score of class g for code k is the balanced target mass of g among training rows with
    code k over (their count + alpha), whose argmax does not depend on alpha. Codes unseen in
    training predict class 0 (all scores tie at 0), as the ridge model would.
    """
    m, n_pos = tokens.shape
    pred = np.zeros((n_pos, m), dtype=np.int64)
    offs = (np.arange(n_pos) * num_codes)[None, :]
    counts = np.bincount(y, minlength=num_levels).astype(np.float64)
    w = len(y) / np.maximum(counts, 1.0)
    for f in np.unique(folds):
        tr, te = folds != f, folds == f
        key = ((tokens[tr] + offs) * num_levels + y[tr, None]).ravel()
        table = np.bincount(key, weights=np.repeat(w[y[tr]], n_pos), minlength=n_pos * num_codes * num_levels)
        best = table.reshape(n_pos * num_codes, num_levels).argmax(1)
        pred[:, te] = best[(tokens[te] + offs)].T
    bal, acc = class_balanced_scores(y, pred, num_levels)
    return ProbeScores(bal, acc)
