"""Held-out evaluation of the oracle: per-factor accuracy, R^2 and mean absolute error."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from probe.oracle.model import WorldOracle

_N_COLOURS = 6  # the colour names of probe.clip.captions (hue bins centred on 0, 1/6, ...)


def _r2(pred: np.ndarray, true: np.ndarray, ref: np.ndarray | None = None) -> float:
    """R^2; with ``ref``, the total variance is that of ``ref`` (e.g. the full set a subset is from)."""
    ref = true if ref is None else ref
    var = float(((ref - ref.mean(axis=0)) ** 2).sum(axis=-1 if ref.ndim > 1 else None).mean()) if len(ref) else 0.0
    mse = float(((pred - true) ** 2).sum(axis=-1 if true.ndim > 1 else None).mean()) if len(true) else float("nan")
    return 1.0 - mse / var if var > 0 else float("nan")


def circular_error(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Absolute difference of hues in [0, 1) on the circle, in [0, 0.5]."""
    d = np.abs(np.asarray(pred) - np.asarray(true)) % 1.0
    return np.minimum(d, 1.0 - d)


def score_predictions(pred: pd.DataFrame, factors: pd.DataFrame, model: WorldOracle,
                      reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """Compare an oracle prediction table with the true world ``factors`` (same row order).

    One row per factor: ``factor, metric, score, mae, colour_accuracy, n``. ``score`` is the
    accuracy for the shape, R^2 for linear factors, and for hues the circular R^2
    (``1 - E|u_pred - u_true|^2 / E|u_true - mean u|^2`` on unit (cos, sin) vectors);
    ``mae`` is in the factor's units (hues: fraction of the circle); ``colour_accuracy`` (hues
    only) is how often the hue falls in the right one of six colour-name bins. For a subset
    (e.g. dark images only), pass the full factor table as ``reference``: R^2 then divides by
    the full set's variance, so a narrow subset range does not make R^2 meaningless.
    """
    ref = factors if reference is None else reference
    if len(pred) != len(factors):
        raise ValueError(f"score_predictions: {len(pred)} predictions for {len(factors)} factor rows")
    rows = [{"factor": "shape", "metric": "accuracy",
             "score": float((pred["shape"].to_numpy() == factors["shape"].to_numpy()).mean()),
             "mae": np.nan, "colour_accuracy": np.nan, "n": len(pred)}]
    for h in model.config.hues:
        p, t = pred[h].to_numpy(np.float64), factors[h].to_numpy(np.float64)
        up = np.stack([np.cos(2 * np.pi * p), np.sin(2 * np.pi * p)], 1)
        ut = np.stack([np.cos(2 * np.pi * t), np.sin(2 * np.pi * t)], 1)
        bins = lambda v: np.rint(v * _N_COLOURS).astype(int) % _N_COLOURS
        r = 2 * np.pi * ref[h].to_numpy(np.float64)
        rows.append({"factor": h, "metric": "circular_r2",
                     "score": _r2(up, ut, np.stack([np.cos(r), np.sin(r)], 1)),
                     "mae": float(circular_error(p, t).mean()),
                     "colour_accuracy": float((bins(p) == bins(t)).mean()), "n": len(pred)})
    for k in model.config.ranges:
        p, t = pred[k].to_numpy(np.float64), factors[k].to_numpy(np.float64)
        rows.append({"factor": k, "metric": "r2", "score": _r2(p, t, ref[k].to_numpy(np.float64)),
                     "mae": float(np.abs(p - t).mean()),
                     "colour_accuracy": np.nan, "n": len(pred)})
    return pd.DataFrame(rows)


@torch.no_grad()
def evaluate_oracle(model: WorldOracle, images: torch.Tensor, factors: pd.DataFrame) -> pd.DataFrame:
    """Per-factor scores of ``model`` on ``images [B, 3, H, W]`` in [0, 1] (see :func:`score_predictions`)."""
    return score_predictions(model.predict(images), factors, model)


def shape_by_difficulty(correct: np.ndarray, factors: pd.DataFrame, bins: int = 4) -> pd.DataFrame:
    """Shape accuracy per quantile of blur relative to object size (global_blur / obj_scale).

    Small, blurred objects lose the corners that tell a star from a circle at 32x32, so this
    ratio is the natural difficulty axis for the shape.
    """
    ratio = (factors["global_blur"] / factors["obj_scale"]).to_numpy()
    q = pd.qcut(ratio, bins)
    return (pd.DataFrame({"blur/size": q, "correct": correct}).groupby("blur/size", observed=True)["correct"]
            .agg(accuracy="mean", n="size"))
