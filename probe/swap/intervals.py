"""Intervals for a transfer: the ratio estimator ``sum(moved) / sum(gap)`` over pairs.

A swap's transfer is the mean movement over the mean gap of ``n`` pairs (16 to 256 in practice). Four
interval methods, each for one group ``[n]`` or many groups at once ``[G, n]`` (every position of a sweep:
the bootstrap methods then resample the same pairs for every group, as a joint bootstrap over pairs does):

- ``"t"``: the delta-method (linearisation) standard error ``se = sd(moved - R gap) / (sqrt(n) mean(gap))``
  with Student's t quantiles on ``n - 1`` degrees of freedom (Cochran, *Sampling Techniques*, 3rd ed.,
  section 6.4, the classical interval of a ratio estimator);
- ``"percentile"``: the percentile bootstrap over pairs;
- ``"bca"``: the bias-corrected and accelerated bootstrap (Efron and Tibshirani 1993, section 14.3: bias
  correction from the share of resamples below the estimate, acceleration from the jackknife), the same
  definition as ``scipy.stats.bootstrap(method="BCa")``;
- ``"studentized"``: the bootstrap-t, studentizing each resample by its own delta-method standard error.

The default, :data:`DEFAULT_METHOD`, is the one the calibration benchmark (``analyses/bench_verdicts.py``,
``figures/verdict_calibration*``) found to hold its level from 16 to 256 pairs; the numbers are in that
benchmark's CSV. The bootstraps are written out with numpy (one resampling matrix shared by every group)
rather than ``scipy.stats.bootstrap``, which resamples each group on its own and is far slower for the
thousands of groups of a sweep or a calibration run; a test checks ours against scipy's on the same data.

One-sided bounds: the lower bound of a two-sided interval at level ``1 - 2 alpha`` is a one-sided bound
at level ``1 - alpha`` (:func:`lower_bound`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special, stats

#: the interval methods :func:`ratio_interval` knows
METHODS = ("t", "percentile", "bca", "studentized")
#: the method verdicts use (chosen by the calibration benchmark; see the module docstring)
DEFAULT_METHOD = "t"
#: bootstrap resamples by default
N_BOOT = 2000
#: elements of one resampled block (groups x resamples x pairs) held in memory at a time
_BLOCK = 4_000_000


@dataclass(frozen=True)
class RatioInterval:
    """A transfer and its interval: floats for one group, arrays ``[G]`` for several."""

    point: np.ndarray | float
    low: np.ndarray | float
    high: np.ndarray | float
    method: str
    level: float
    n: int


def _as_2d(moved: np.ndarray, gap: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """``[n]`` or ``[G, n]`` inputs as float ``[G, n]``; one group drops its non-finite pairs."""
    x, y = np.asarray(moved, float), np.asarray(gap, float)
    if x.shape != y.shape:
        raise ValueError(f"moved {x.shape} and gap {y.shape} must have the same shape")
    if x.ndim == 1:
        ok = np.isfinite(x) & np.isfinite(y)
        return x[ok][None], y[ok][None], True
    if x.ndim != 2:
        raise ValueError(f"moved and gap must be [n] or [G, n], got shape {x.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("several groups at once need finite moved and gap values (drop the pairs first)")
    return x, y, False


def ratio_point(moved: np.ndarray, gap: np.ndarray) -> np.ndarray:
    """``sum(moved) / sum(gap)`` along the last axis (NaN where the gap sums to <= 0)."""
    x, y = np.asarray(moved, float), np.asarray(gap, float)
    sy = y.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sy > 0, x.sum(-1) / np.where(sy > 0, sy, 1.0), np.nan)


def ratio_se(moved: np.ndarray, gap: np.ndarray) -> np.ndarray:
    """Delta-method standard error of :func:`ratio_point` along the last axis: ``sd(moved - R gap) /
    (sqrt(n) mean(gap))`` (sd with ``n - 1``)."""
    x, y = np.asarray(moved, float), np.asarray(gap, float)
    n = x.shape[-1]
    r = ratio_point(x, y)
    z = x - r[..., None] * y
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt((z**2).sum(-1) / max(n - 1, 1) / n) / y.mean(-1)


def _resamples(n: int, n_boot: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def _boot_stats(x: np.ndarray, y: np.ndarray, idx: np.ndarray, studentize: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Per group and resample ``R*`` ``[G, B]`` (and its delta-method se when ``studentize``), in blocks."""
    g, n = x.shape
    b = len(idx)
    per = max(1, _BLOCK // max(b * n, 1))
    stats_, ses = np.empty((g, b)), (np.empty((g, b)) if studentize else None)
    for s in range(0, g, per):
        xb, yb = x[s : s + per][:, idx], y[s : s + per][:, idx]  # [g', B, n]
        r = ratio_point(xb, yb)
        stats_[s : s + per] = r
        if studentize:
            ses[s : s + per] = ratio_se(xb, yb)
    return stats_, ses


def _row_quantile(sorted_rows: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per row ``[G, B]`` (sorted, NaN last) the quantile ``q [G]`` (linear interpolation over the finite values)."""
    k = np.isfinite(sorted_rows).sum(1)
    pos = np.clip(q, 0, 1) * np.maximum(k - 1, 0)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, np.maximum(k - 1, 0))
    rows = np.arange(len(sorted_rows))
    a, c = sorted_rows[rows, lo], sorted_rows[rows, hi]
    out = a + (c - a) * (pos - lo)
    return np.where((k > 0) & np.isfinite(q), out, np.nan)


def ratio_interval(moved: np.ndarray, gap: np.ndarray, *, method: str = DEFAULT_METHOD, level: float = 0.95,
                   n_boot: int = N_BOOT, seed: int = 0) -> RatioInterval:
    """The transfer ``sum(moved) / sum(gap)`` over pairs and its two-sided interval at ``level``.

    Args:
        moved, gap: per pair ``[n]`` (non-finite pairs dropped) or per group and pair ``[G, n]`` (finite).
            ``gap`` is each pair's gap along the direction the movement is measured in.
        method: one of :data:`METHODS` (see the module docstring).
        level: two-sided coverage.
        n_boot, seed: resamples and seed of the bootstrap methods.

    Returns:
        :class:`RatioInterval`; floats for ``[n]`` input, arrays ``[G]`` for ``[G, n]``. NaN where the gaps
        sum to <= 0 or fewer than two pairs remain.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> gap = rng.uniform(0.5, 1.0, 64)
        >>> ci = ratio_interval(0.7 * gap + rng.normal(0, 0.1, 64), gap)
        >>> bool(ci.low < 0.7 < ci.high)
        True
    """
    if method not in METHODS:
        raise ValueError(f"unknown interval method {method!r}; known: {list(METHODS)}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    x, y, single = _as_2d(moved, gap)
    g, n = x.shape
    point = ratio_point(x, y)
    a = (1 - level) / 2
    if n < 2:
        nan = np.full(g, np.nan)
        low = high = nan
    elif method == "t":
        se = ratio_se(x, y)
        t = stats.t.ppf(1 - a, n - 1)
        low, high = point - t * se, point + t * se
    else:
        idx = _resamples(n, n_boot, seed)
        boot, bse = _boot_stats(x, y, idx, studentize=method == "studentized")
        if method == "studentized":
            se = ratio_se(x, y)
            with np.errstate(invalid="ignore", divide="ignore"):
                tstar = (boot - point[:, None]) / bse
            tstar = np.sort(np.where(np.isfinite(tstar), tstar, np.nan), axis=1)
            low = point - _row_quantile(tstar, np.full(g, 1 - a)) * se
            high = point - _row_quantile(tstar, np.full(g, a)) * se
        else:
            srt = np.sort(np.where(np.isfinite(boot), boot, np.nan), axis=1)
            if method == "percentile":
                qlo, qhi = np.full(g, a), np.full(g, 1 - a)
            else:  # bca
                qlo, qhi = _bca_levels(x, y, point, boot, a)
            low, high = _row_quantile(srt, qlo), _row_quantile(srt, qhi)
    bad = ~np.isfinite(point)
    low, high = np.where(bad, np.nan, low), np.where(bad, np.nan, high)
    if single:
        return RatioInterval(float(point[0]), float(low[0]), float(high[0]), method, level, n)
    return RatioInterval(point, low, high, method, level, n)


def _bca_levels(x: np.ndarray, y: np.ndarray, point: np.ndarray, boot: np.ndarray,
                a: float) -> tuple[np.ndarray, np.ndarray]:
    """BCa's adjusted quantile levels ``[G]`` for the lower and upper end (Efron and Tibshirani 1993, 14.14-15)."""
    finite = np.isfinite(boot)
    nb = np.maximum(finite.sum(1), 1)
    below = ((boot < point[:, None]) & finite).sum(1) + 0.5 * ((boot == point[:, None]) & finite).sum(1)
    z0 = special.ndtri(np.clip(below / nb, 1e-12, 1 - 1e-12))
    # jackknife: leave one pair out
    sx, sy = x.sum(1, keepdims=True), y.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        jack = (sx - x) / (sy - y)  # [G, n]
    d = np.nanmean(jack, 1, keepdims=True) - jack
    num = np.nansum(d**3, 1)
    den = 6 * np.nansum(d**2, 1) ** 1.5
    acc = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)

    def level(z: float) -> np.ndarray:
        t = z0 + z
        return special.ndtr(z0 + t / (1 - acc * t))

    return level(special.ndtri(a)), level(special.ndtri(1 - a))


def lower_bound(moved: np.ndarray, gap: np.ndarray, *, alpha: float = 0.05, method: str = DEFAULT_METHOD,
                n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray | float:
    """One-sided lower confidence bound at level ``1 - alpha`` of the transfer (the low end of the two-sided
    interval at ``1 - 2 alpha``); shapes as :func:`ratio_interval`."""
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    return ratio_interval(moved, gap, method=method, level=1 - 2 * alpha, n_boot=n_boot, seed=seed).low
