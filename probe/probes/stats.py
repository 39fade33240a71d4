"""Group statistics of continuous representations: eta^2, variance change, rank correlation.

Everything is computed for all positions and all permutations at once: group sums are one-hot
matrix products (BLAS), never Python loops over cells.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata


def onehot_perm_t(labp: np.ndarray, num_levels: int) -> np.ndarray:
    """``[P * (L-1), M]`` float32 one-hot (transposed) of ``labp [P, M]``, dropping the last level.

    The last group's sums follow from the totals, so it needs no row (half the work for binary
    attributes).
    """
    p, m = labp.shape
    width = num_levels - 1
    zt = np.zeros((p * width, m), dtype=np.float32)
    keep = labp < width
    flat = ((np.arange(p)[:, None] * width + labp) * m + np.arange(m)[None, :])[keep]
    zt.ravel()[flat] = 1.0
    return zt


@dataclass
class GroupDesign:
    """Representations prepared once for the group statistics of many attributes.

    Attributes:
        x: ``[M, D]`` float32, the blocks' ``[M, N, C_b]`` flattened, centered and concatenated.
        offsets: block name -> (first, last) column of ``x``.
        n_pos: N.
        total_ss: block name -> ``[N]`` total sum of squares per position.
        x2: ``[M, N]`` float32 per-position squared norm of the partition block (or None).
        partition_block: the block whose variance change is measured (or None).
    """

    x: np.ndarray
    offsets: dict[str, tuple[int, int]]
    n_pos: int
    total_ss: dict[str, np.ndarray]
    x2: np.ndarray | None
    partition_block: str | None

    @classmethod
    def build(cls, blocks: dict[str, np.ndarray], partition_block: str | None = None) -> GroupDesign:
        """``blocks``: name -> ``[M, N, C_b]`` (any float dtype)."""
        names = list(blocks)
        first = blocks[names[0]]
        m, n_pos = first.shape[:2]
        widths = [int(np.prod(blocks[k].shape[1:])) for k in names]
        x = np.empty((m, sum(widths)), dtype=np.float32)
        offsets: dict[str, tuple[int, int]] = {}
        total_ss: dict[str, np.ndarray] = {}
        col = 0
        x2 = None
        for k, w in zip(names, widths):
            xb = x[:, col : col + w]
            xb[...] = np.asarray(blocks[k]).reshape(m, w)
            xb -= xb.mean(0, dtype=np.float64).astype(np.float32)
            sq = np.einsum("mnc,mnc->mn", xb.reshape(m, n_pos, -1), xb.reshape(m, n_pos, -1), dtype=np.float64)
            total_ss[k] = sq.sum(0)
            if k == partition_block:
                x2 = sq.astype(np.float32)
            offsets[k] = (col, col + w)
            col += w
        return cls(x, offsets, n_pos, total_ss, x2, partition_block)

    def subset(self, rows: np.ndarray) -> GroupDesign:
        """The design restricted to ``rows`` (re-centered)."""
        blocks = {k: self.x[rows, a:b].reshape(len(rows), self.n_pos, -1) for k, (a, b) in self.offsets.items()}
        return GroupDesign.build(blocks, self.partition_block)


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
    design: GroupDesign,
    labp: np.ndarray,
    num_levels: int,
    *,
    blocks: tuple[str, ...] | None = None,
    partition_levels: list[int] | tuple[int, ...] = (),
    max_rows: int = 128,
    n_workers: int = 1,
) -> GroupStats:
    """Eta^2 of the design's blocks and variance log-ratios of its partition block, per labeling.

    Args:
        design: see :class:`GroupDesign` (its rows must match ``labp``'s columns).
        labp: ``[P, M]`` labelings in ``0..L-1`` (row 0 usually the observed one).
        num_levels: L.
        blocks: blocks whose eta^2 is wanted (default all).
        partition_levels: levels v for which ``log(var(v) / var(rest))`` is returned.
        max_rows: one-hot rows per matrix product (bounds the memory at ``M * max_rows`` floats).
        n_workers: threads, each running whole (single-threaded) products on its own chunks of
            labelings. Preferred to multi-threaded BLAS: OpenBLAS threads spin-wait at every
            synchronisation, which on an oversubscribed machine cost 30x the CPU time (measured).
    """
    p_total, m = labp.shape
    counts = np.bincount(labp[0], minlength=num_levels).astype(np.float64)
    if np.any(counts == 0):
        raise ValueError("every level needs at least one row")
    n_pos = design.n_pos
    blocks = tuple(design.offsets) if blocks is None else blocks
    cols = sorted({c for k in blocks for c in range(*design.offsets[k])} | (
        set(range(*design.offsets[design.partition_block])) if partition_levels and design.partition_block else set()))
    contiguous = cols == list(range(cols[0], cols[-1] + 1)) if cols else True
    lo = cols[0] if cols else 0
    x = design.x[:, lo : cols[-1] + 1] if contiguous else design.x[:, cols]
    eta2 = {k: np.zeros((n_pos, p_total)) for k in blocks}
    logratio = {int(v): np.zeros((n_pos, p_total)) for v in partition_levels}
    width = num_levels - 1
    chunk = max(1, max_rows // width)

    def block_cols(k: str) -> slice:
        a, b = design.offsets[k]
        return slice(a - lo, b - lo)

    def one_chunk(start: int) -> None:
        lp = labp[start : start + chunk]
        pc = lp.shape[0]
        zt = onehot_perm_t(lp, num_levels)
        g = (zt @ x).astype(np.float64).reshape(pc, width, -1)  # group sums, last group dropped
        for k in blocks:
            s = g[:, :, block_cols(k)].reshape(pc, width, n_pos, -1)  # [pc, L-1, N, C]
            s_last = -s.sum(1)  # centered: all groups sum to zero
            between = ((s**2).sum(-1) / counts[:width, None]).sum(1) + (s_last**2).sum(-1) / counts[width]
            eta2[k][:, start : start + pc] = (between / np.maximum(design.total_ss[k], 1e-300)).T
        if partition_levels:
            s = g[:, :, block_cols(design.partition_block)].reshape(pc, width, n_pos, -1)
            ss = (zt @ design.x2).astype(np.float64).reshape(pc, width, n_pos)
            ss_tot = design.total_ss[design.partition_block]
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

    starts = list(range(0, p_total, chunk))
    if n_workers > 1:  # independent single-threaded products in a thread pool (numpy releases the GIL)
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(n_workers) as pool:
            list(pool.map(one_chunk, starts))
    else:
        for st in starts:
            one_chunk(st)
    return GroupStats(eta2, logratio)


def _ranks_float16(x: np.ndarray, chunk: int = 16) -> np.ndarray:
    """Average-tie column ranks of float16 ``x [M, D]`` by counting (65,536 possible values), O(M D).

    Sorting each column (scipy's rankdata) costs seconds on 50,000 x 384; float16 features (the
    store's dtype) can be ranked by a histogram of their order-preserving integer keys instead.
    Columns go ``chunk`` at a time to keep the temporaries small.
    """
    bits_all = np.ascontiguousarray(x).view(np.uint16)
    m, d = bits_all.shape
    out = np.empty((m, d), dtype=np.float32)
    for c0 in range(0, d, chunk):
        bits = bits_all[:, c0 : c0 + chunk].astype(np.int32)
        w = bits.shape[1]
        bits[bits == 0x8000] = 0  # -0 == +0
        key = np.where(bits & 0x8000, 0xFFFF - bits, bits | 0x8000)  # monotone in the float value
        flat = (key + (np.arange(w, dtype=np.int32) << 16)[None, :]).ravel()
        counts = np.bincount(flat, minlength=w << 16).reshape(w, 1 << 16)
        before = np.cumsum(counts, axis=1) - counts  # rows with a smaller key in the same column
        avg = (before + (counts + 1) / 2.0).astype(np.float32).ravel()
        out[:, c0 : c0 + w] = avg[flat].reshape(m, w)
    return out


def standardized_ranks(x: np.ndarray) -> np.ndarray:
    """Column ranks of ``x [M, D]`` (average ties), standardized to mean 0 / population sd 1."""
    x = np.asarray(x)
    if x.dtype == np.float16 and not np.isnan(x).any():
        r = _ranks_float16(x).astype(np.float32)
    else:
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
