"""Compiled inner loops (numba, which umap-learn already brings in).

numpy's ``bincount`` over ``code * L + label`` needs ~25 ms per permutation for 50,000 images x
32 positions (it materialises and rescans a fresh 1.3M-cell table each time); the fused loop below
counts into a per-position table that stays in cache and accumulates ``sum n log n`` and
``sum n^2 / (a b)`` while counting, several times faster, with positions in parallel.
"""
from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(parallel=True, cache=True)
def contingency_perm_stats(
    tok: np.ndarray, labp: np.ndarray, num_codes: int, num_levels: int, dxlogx: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For every position and permutation, two sums over the code x label contingency table.

    Args:
        tok: ``[N, M]`` int16 / int32 token ids (position-major; narrow ids keep a row in cache).
        labp: ``[P, M]`` small-int labels in ``0..L-1``, one (permuted) labeling per row.
        dxlogx: ``[M + 1]`` float64 table of ``(c+1) log(c+1) - c log c``.

    Returns:
        ``hxy [N, P]`` = sum over cells of ``n_ij log n_ij`` and ``q [N, P]`` = sum of
        ``n_ij^2 / (a_i b_j)`` (a: code counts, b: label counts; both fixed under permutation).
        Both are accumulated incrementally while counting (each increment c -> c+1 adds
        ``dxlogx[c]`` and ``(2c+1) / (a_i b_j)``), so no pass over the K x L cells is needed.
    """
    n_pos, m = tok.shape
    n_perm = labp.shape[0]
    hxy = np.zeros((n_pos, n_perm))
    q = np.zeros((n_pos, n_perm))
    b = np.zeros(num_levels)
    for i in range(m):
        b[np.intp(labp[0, i])] += 1.0
    invb = np.zeros(num_levels)
    for j in range(num_levels):
        if b[j] > 0:
            invb[j] = 1.0 / b[j]
    for n in numba.prange(n_pos):
        counts = np.zeros(num_codes * num_levels, dtype=np.int32)
        a = np.zeros(num_codes)
        row = tok[n]
        for i in range(m):
            a[np.intp(row[i])] += 1.0
        inva = np.zeros(num_codes)
        for k in range(num_codes):
            if a[k] > 0:
                inva[k] = 1.0 / a[k]
        for p in range(n_perm):
            lab = labp[p]
            s = 0.0
            s2 = 0.0
            for i in range(m):
                k = np.intp(row[i])
                j = np.intp(lab[i])
                idx = k * num_levels + j
                c = counts[idx]
                s += dxlogx[c]
                s2 += (2.0 * c + 1.0) * inva[k] * invb[j]
                counts[idx] = c + 1
            for i in range(m):  # clear only the cells that were touched
                counts[np.intp(row[i]) * num_levels + np.intp(lab[i])] = 0
            hxy[n, p] = s
            q[n, p] = s2
    return hxy, q


@numba.njit(cache=True)
def expected_mutual_info(a_values: np.ndarray, a_mult: np.ndarray, b: np.ndarray, n: int) -> float:
    """Expected MI (nats) of two labelings under the fixed-marginals permutation (hypergeometric) model.

    The same quantity as scikit-learn's ``expected_mutual_information``; rows with equal counts give
    equal terms, so the sum runs over the *distinct* row counts ``a_values`` (with multiplicity
    ``a_mult``): with thousands of codes that is far fewer terms.
    """
    lg_n = math.lgamma(n + 1.0)
    log_n = math.log(n)
    emi = 0.0
    for u in range(a_values.shape[0]):
        ai = a_values[u]
        lg_ai = math.lgamma(ai + 1.0) + math.lgamma(n - ai + 1.0)
        term_u = 0.0
        for j in range(b.shape[0]):
            bj = b[j]
            lg_bj = math.lgamma(bj + 1.0) + math.lgamma(n - bj + 1.0)
            start = max(1.0, ai + bj - n)
            end = min(ai, bj)
            nij = start
            while nij <= end:
                log_p = (
                    lg_ai + lg_bj - lg_n - math.lgamma(nij + 1.0) - math.lgamma(ai - nij + 1.0)
                    - math.lgamma(bj - nij + 1.0) - math.lgamma(n - ai - bj + nij + 1.0)
                )
                term_u += (nij / n) * (log_n + math.log(nij) - math.log(ai) - math.log(bj)) * math.exp(log_p)
                nij += 1.0
        emi += a_mult[u] * term_u
    return emi

