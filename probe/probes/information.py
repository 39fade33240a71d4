"""Information between a position's token id and an attribute: MI, AMI, Cramer's V.

All in nats. ``mutual_info`` / ``adjusted_mutual_info`` match scikit-learn's
``mutual_info_score`` / ``adjusted_mutual_info_score`` (arithmetic normalisation); the grid
version computes every position and every permutation of the labels in one compiled pass.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from probe.probes.kernels import contingency_perm_stats, expected_mutual_info

_EPS = np.finfo(np.float64).eps


def _xlogx(counts: np.ndarray) -> float:
    """``sum c log c`` over the positive entries of ``counts`` (any shape)."""
    c = counts[counts > 0].astype(np.float64)
    return float(np.sum(c * np.log(c)))


def entropy(labels: np.ndarray) -> float:
    """Plug-in entropy (nats) of a labeling ``[M]``."""
    _, counts = np.unique(labels, return_counts=True)
    m = counts.sum()
    return float(np.log(m) - _xlogx(counts) / m) if m else 0.0


def _dense(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """``labels [M]`` renumbered ``0..L-1`` (int64 ``[M]``) and L."""
    uniq, inv = np.unique(labels, return_inverse=True)
    return inv.astype(np.int64), len(uniq)


def mutual_info(x: np.ndarray, y: np.ndarray) -> float:
    """Plug-in mutual information (nats) of two labelings ``[M]`` (= sklearn ``mutual_info_score``)."""
    xi, kx = _dense(np.asarray(x))
    yi, ky = _dense(np.asarray(y))
    m = len(xi)
    joint = np.bincount(xi * ky + yi, minlength=kx * ky)  # no Python loop per cell
    mi = (_xlogx(joint) - _xlogx(np.bincount(xi)) - _xlogx(np.bincount(yi)) + m * np.log(m)) / m
    return max(float(mi), 0.0)


def expected_mi(x: np.ndarray, y: np.ndarray) -> float:
    """Expected MI (nats) of ``x`` and ``y`` under random permutation with fixed marginals."""
    xi, _ = _dense(np.asarray(x))
    yi, _ = _dense(np.asarray(y))
    return _emi(np.bincount(xi).astype(np.float64), np.bincount(yi).astype(np.float64), len(xi))


def _emi(a: np.ndarray, b: np.ndarray, m: int) -> float:
    """Expected MI under random labellings with the margins ``a [Kx]`` and ``b [Ky]`` (counts over ``m`` items)."""
    a = a[a > 0]
    b = b[b > 0]
    vals, mult = np.unique(a, return_counts=True)
    return float(expected_mutual_info(vals.astype(np.float64), mult.astype(np.float64), b.astype(np.float64), m))


def _ami_denominator(h_x: np.ndarray | float, h_y: np.ndarray | float, emi: np.ndarray | float) -> np.ndarray:
    """sklearn's AMI denominator (arithmetic mean of the entropies minus EMI), kept at least _EPS away from 0."""
    den = 0.5 * (np.asarray(h_x) + h_y) - emi
    return np.where(den < 0, np.minimum(den, -_EPS), np.maximum(den, _EPS))


def _ami_from(mi: float, emi: float, h_x: float, h_y: float, kx: int, ky: int) -> float:
    """sklearn's adjusted_mutual_info_score (average_method='arithmetic'), including its limit cases."""
    if kx == ky == 1 or kx == ky == 0:
        return 1.0
    return float((mi - emi) / _ami_denominator(h_x, h_y, emi))


def ami_all(mi: np.ndarray, emi: np.ndarray, h_tok: np.ndarray, h_label: float) -> np.ndarray:
    """AMI of every column of ``mi [N, P+1]`` (observed and permuted labels; the marginals, hence ``emi [N]``
    and the entropies ``h_tok [N]``, ``h_label``, are the same under permutation) -> ``[N, P+1]``. The same
    formula as :func:`_ami_from` (its degenerate one-level cases aside)."""
    return (mi - emi[:, None]) / _ami_denominator(h_tok, h_label, emi)[:, None]


def adjusted_mutual_info(x: np.ndarray, y: np.ndarray) -> float:
    """Adjusted MI with scikit-learn's semantics (``adjusted_mutual_info_score``, arithmetic)."""
    x = np.asarray(x)
    y = np.asarray(y)
    _, kx = _dense(x)
    _, ky = _dense(y)
    return _ami_from(mutual_info(x, y), expected_mi(x, y), entropy(x), entropy(y), kx, ky)


@dataclass
class ContingencyGrid:
    """Statistics of the code x label table of every position, observed (column 0) and permuted.

    Attributes:
        mi: ``[N, P+1]`` plug-in MI (nats).
        cramers_v: ``[N, P+1]`` Cramer's V (NaN where a position uses a single code).
        ami: ``[N]`` adjusted MI of the observed labels (sklearn semantics).
        emi: ``[N]`` exact expected MI under permutation (the exact null mean of ``mi``).
        token_entropy: ``[N]`` entropy of each position's ids (nats).
        label_entropy: entropy of the labels (nats).
    """

    mi: np.ndarray
    cramers_v: np.ndarray
    ami: np.ndarray
    emi: np.ndarray
    token_entropy: np.ndarray
    label_entropy: float


def contingency_grid(
    tokens: np.ndarray, labels: np.ndarray, perms: np.ndarray, num_codes: int, num_levels: int
) -> ContingencyGrid:
    """MI, Cramer's V and AMI of every position of ``tokens [M, N]`` against ``labels [M]``.

    ``perms [P+1, M]`` are row permutations; row 0 should be the identity (the observed table).
    """
    m, n_pos = tokens.shape
    tok_t = np.ascontiguousarray(tokens.T, dtype=np.int16 if num_codes <= 32767 else np.int32)
    labels = np.ascontiguousarray(labels, dtype=np.int32)
    small = np.int8 if num_levels < 128 else np.int32
    labp = np.ascontiguousarray(labels.astype(small)[perms])
    ar = np.arange(m + 2, dtype=np.float64)
    xlogx = np.zeros(m + 2)
    xlogx[1:] = ar[1:] * np.log(ar[1:])
    hxy, q = contingency_perm_stats(tok_t, labp, int(num_codes), int(num_levels), np.diff(xlogx))
    b = np.bincount(labels, minlength=num_levels).astype(np.float64)
    hb = _xlogx(b)
    label_entropy = float(np.log(m) - hb / m)
    mi = np.empty_like(hxy)
    v = np.empty_like(hxy)
    ami = np.empty(n_pos)
    emi = np.empty(n_pos)
    h_tok = np.empty(n_pos)
    kb = int((b > 0).sum())
    for n in range(n_pos):
        a = np.bincount(tok_t[n].astype(np.intp), minlength=num_codes).astype(np.float64)
        ha = _xlogx(a)
        h_tok[n] = np.log(m) - ha / m
        mi[n] = np.maximum((hxy[n] - ha - hb + m * np.log(m)) / m, 0.0)
        ka = int((a > 0).sum())
        dof = min(ka - 1, kb - 1)
        chi2 = m * (q[n] - 1.0)
        v[n] = np.sqrt(np.maximum(chi2, 0.0) / (m * dof)) if dof > 0 else np.nan
        emi[n] = _emi(a, b, m)
        ami[n] = _ami_from(float(mi[n, 0]), emi[n], h_tok[n], label_entropy, ka, kb)
    return ContingencyGrid(mi, v, ami, emi, h_tok, label_entropy)
