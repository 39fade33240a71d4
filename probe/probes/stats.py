"""Group statistics of continuous representations: eta^2, variance change, rank correlation.

Everything is computed for all positions and all permutations at once: group sums are one-hot
matrix products (BLAS), never Python loops over cells.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata


def onehot_perm(labp: np.ndarray, num_levels: int) -> np.ndarray:
    """``[M, P * (L-1)]`` float32 one-hot of ``labp [P, M]``, dropping the last level.

    The last group's sums follow from the totals, so it needs no column (half the work for binary
    attributes).
    """
    p, m = labp.shape
    width = num_levels - 1
    z = np.zeros((m, p * width), dtype=np.float32)
    mask = labp < width
    cols = (np.arange(p)[:, None] * width + labp)[mask]
    rows = np.broadcast_to(np.arange(m), (p, m))[mask]
    z[rows, cols] = 1.0
    return z


@dataclass
class GroupStats:
    """Output of :func:`group_permutation_stats`.

    Attributes:
        eta2: ``{block: [N, P]}`` multivariate eta^2 (between-group SS / total SS, summed over the
            block's channels), column 0 being the observed labels when ``labp[0]`` is.
        logratio: ``{level: [N, P]}`` log(within-variance of that level / of the rest), the variance
            of a position being the trace of its covariance (sum over channels).
    """

    eta2: dict[str, np.ndarray]
    logratio: dict[int, np.ndarray]


def group_permutation_stats(
    blocks: dict[str, np.ndarray],
    labp: np.ndarray,
    num_levels: int,
    *,
    partition_block: str | None = None,
    partition_levels: list[int] | tuple[int, ...] = (),
    max_cols: int = 128,
) -> GroupStats:
    """Eta^2 of every block and variance log-ratios of one block, for each labeling in ``labp``.

    Args:
        blocks: name -> ``[M, N, C_b]`` float32 representations (e.g. features, codebook embeddings).
        labp: ``[P, M]`` labelings in ``0..L-1`` (row 0 usually the observed one).
        num_levels: L.
        partition_block: the block whose per-position variance change is measured.
        partition_levels: levels v for which ``log(var(v) / var(rest))`` is returned.
        max_cols: one-hot columns per matrix product (bounds the memory at ``M * max_cols`` floats).
    """
    p_total, m = labp.shape
    counts = np.bincount(labp[0], minlength=num_levels).astype(np.float64)
    if np.any(counts == 0):
        raise ValueError("every level needs at least one row")
    names = list(blocks)
    shapes = {k: blocks[k].shape for k in names}
    n_pos = shapes[names[0]][1]
    centered = {}
    total_ss = {}
    for k in names:
        x = np.asarray(blocks[k], dtype=np.float32).reshape(m, -1)
        x = x - x.mean(0, dtype=np.float64).astype(np.float32)
        centered[k] = x
        total_ss[k] = (x.astype(np.float64) ** 2).reshape(m, n_pos, -1).sum((0, 2))
    xcat = np.concatenate([centered[k] for k in names], axis=1) if len(names) > 1 else centered[names[0]]
    offsets = np.cumsum([0] + [centered[k].shape[1] for k in names])
    x2 = None
    if partition_block is not None and partition_levels:
        xp = centered[partition_block]
        x2 = (xp.astype(np.float64) ** 2).reshape(m, n_pos, -1).sum(2)  # [M, N]
    eta2 = {k: np.zeros((n_pos, p_total)) for k in names}
    logratio = {int(v): np.zeros((n_pos, p_total)) for v in partition_levels}
    width = num_levels - 1
    chunk = max(1, max_cols // width)
    for start in range(0, p_total, chunk):
        lp = labp[start : start + chunk]
        pc = lp.shape[0]
        z = onehot_perm(lp, num_levels)
        g = (z.T @ xcat).astype(np.float64).reshape(pc, width, -1)  # group sums, last group dropped
        for bi, k in enumerate(names):
            s = g[:, :, offsets[bi] : offsets[bi + 1]].reshape(pc, width, n_pos, -1)  # [pc, L-1, N, C]
            s_last = -s.sum(1)  # centered: all groups sum to zero
            between = ((s**2).sum(-1) / counts[:width, None]).sum(1) + (s_last**2).sum(-1) / counts[width]
            eta2[k][:, start : start + pc] = (between / np.maximum(total_ss[k], 1e-300)).T
        if x2 is not None:
            bi = names.index(partition_block)
            s = g[:, :, offsets[bi] : offsets[bi + 1]].reshape(pc, width, n_pos, -1)
            ss = (z.T @ x2.astype(np.float32)).astype(np.float64).reshape(pc, width, n_pos)
            ss_tot = x2.sum(0)
            for v in partition_levels:
                if v < width:
                    sv, ssv = s[:, v], ss[:, v]
                else:
                    sv, ssv = -s.sum(1), ss_tot - ss.sum(1)
                nv = counts[v]
                norm2 = (sv**2).sum(-1)  # [pc, N]
                var_in = (ssv - norm2 / nv) / max(nv - 1, 1)
                var_out = ((ss_tot - ssv) - norm2 / (m - nv)) / max(m - nv - 1, 1)
                logratio[int(v)][:, start : start + pc] = np.log(np.maximum(var_in, 1e-300) / np.maximum(var_out, 1e-300)).T
    return GroupStats(eta2, logratio)


def standardized_ranks(x: np.ndarray) -> np.ndarray:
    """Column ranks of ``x [M, D]`` (average ties), standardized to mean 0 / population sd 1."""
    r = rankdata(np.asarray(x, dtype=np.float32), axis=0).astype(np.float32)
    r -= r.mean(0)
    sd = r.std(0)
    sd[sd == 0] = np.inf  # a constant column correlates with nothing
    return r / sd


def spearman_perm(ranks: np.ndarray, attr_values: np.ndarray, perms: np.ndarray, n_pos: int) -> tuple[np.ndarray, np.ndarray]:
    """Strongest Spearman correlation per position, for each permutation of the attribute.

    Args:
        ranks: ``[M, N * C]`` from :func:`standardized_ranks` of the representation.
        attr_values: ``[M]`` raw attribute values.
        perms: ``[P, M]`` row permutations (row 0 the identity for the observed value).

    Returns:
        ``max_abs [N, P]`` max over the position's C coordinates of ``|rho|`` and ``signed [N]``
        the observed rho (permutation 0) of the strongest coordinate.
    """
    ra = standardized_ranks(attr_values[:, None])[:, 0]
    m = len(ra)
    rho = (ra[perms] @ ranks) / m  # [P, N*C]
    rho = rho.reshape(len(perms), n_pos, -1)
    max_abs = np.abs(rho).max(-1).T.astype(np.float64)
    best = np.abs(rho[0]).argmax(-1)
    signed = rho[0, np.arange(n_pos), best].astype(np.float64)
    return max_abs, signed
