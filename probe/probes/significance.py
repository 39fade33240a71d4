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
