"""Permutation p-values and Benjamini-Hochberg q-values."""
from __future__ import annotations

import numpy as np
from scipy import stats


def permutation_pvalues(stat: np.ndarray, *, tail: str = "gamma") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-sided (large is extreme) p-values from ``stat [..., P+1]`` whose column 0 is observed.

    The plain permutation p-value is ``(1 + #{null >= observed}) / (1 + P)`` (never zero, valid
    at any P). With ``tail="gamma"``, cells whose observed value exceeds *every* permuted one get
    the upper tail of a gamma distribution matched to the null's mean and variance instead (capped
    at the plain value), so strong effects are not all tied at ``1 / (1 + P)``.

    Returns:
        ``p [...]``, ``null_mean [...]``, ``null_sd [...]``.
    """
    stat = np.asarray(stat, dtype=np.float64)
    obs = stat[..., 0]
    null = stat[..., 1:]
    n_perm = null.shape[-1]
    if n_perm == 0:
        nan = np.full(obs.shape, np.nan)
        return nan, nan.copy(), nan.copy()
    tol = 1e-9 * np.abs(obs) + 1e-15  # permuted tables identical to the observed one count as >=
    exceed = (null >= (obs - tol)[..., None]).sum(-1)
    p = (1.0 + exceed) / (1.0 + n_perm)
    mean = null.mean(-1)
    sd = null.std(-1, ddof=1) if n_perm > 1 else np.zeros_like(mean)
    if tail == "gamma":
        sel = (exceed == 0) & (sd > 0) & (mean > 0) & np.isfinite(obs)
        if np.any(sel):
            shape = mean[sel] ** 2 / sd[sel] ** 2
            scale = sd[sel] ** 2 / mean[sel]
            tail_p = stats.gamma.sf(obs[sel], shape, scale=scale)
            p[sel] = np.clip(np.minimum(tail_p, p[sel]), 1e-300, None)
    elif tail != "none":
        raise ValueError(f"tail must be 'gamma' or 'none', got {tail!r}")
    p[~np.isfinite(obs)] = np.nan
    return p, mean, sd


def bh_qvalues(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values over all finite entries of ``p`` (NaN stays NaN)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = stats.false_discovery_control(p[ok], method="bh")
    return q


def maxt_pvalues(stat: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Family-wise p-values over the rows of ``stat [N, P+1]`` (column 0 observed, as above): single-step
    maxT (Westfall & Young 1993). Each row's observed value is tested against the permuted *maxima over
    rows*, so "some row is significant" keeps the family-wise error rate over the ``N`` rows.

    Returns:
        ``p [N]`` per row (plain permutation p-values, never below ``1 / (P + 1)``), ``p_any`` (the
        smallest of them: the test of "some row carries a signal", the max over rows against the
        permuted maxima) and ``max_stat [P+1]`` (observed and permuted maxima).
    """
    stat = np.asarray(stat, dtype=np.float64)
    max_stat = np.nanmax(stat, axis=0)  # [P+1]
    n_perm = stat.shape[1] - 1
    grid = np.concatenate([stat[:, :1], np.broadcast_to(max_stat[1:], (stat.shape[0], n_perm))], axis=1)
    p, _, _ = permutation_pvalues(grid, tail="none")
    p_any, _, _ = permutation_pvalues(max_stat[None], tail="none")
    return p, float(p_any[0]), max_stat
