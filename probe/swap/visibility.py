"""Is the attribute visible to its measurer? Directions the labels define, and the test that gates verdicts.

A swap verdict claims that some positions carry *the attribute the user named*. The measurer reads images;
the labels say which images sit at which end of the attribute. Two things must hold before any claim:

1. **Visible**: on the reconstructions, the measurer separates the ends the labels define. Tested with a
   permutation test on the end labels (statistic: the between-end sum of squares of the measured values,
   so it serves two ends, several categories and vector readings alike; ``p = (1 + #{perm >= obs}) /
   (1 + n_perm)``).
2. **Reconstructed**: the reconstructions keep the originals' gap: the gap between the ends' mean readings
   on the reconstructions, projected on the originals' direction, over the originals' gap, is at least a
   threshold (0.1 by default). Only measured when the original images' readings are given.

Movement is then measured along the direction the labels define, not along each pair's own measured gap:
for a pair from end ``a`` to end ``b`` the unit vector from ``a``'s mean reading to ``b``'s
(:func:`label_directions`, on the reconstructions). :func:`along` projects a recipient, donor and swapped
reading on it: ``moved = (swapped - recipient) . u`` and ``gap = (donor - recipient) . u``, both signed (a
paste that moves the wrong way has ``moved < 0``). Pairs whose two images differ in a way the labels do not
explain (random pairs under permuted labels) then move nothing on average.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

#: permutations of the visibility test
N_PERM = 2000


def _as_2d(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, float)
    return v[:, None] if v.ndim == 1 else v


def end_means(values: np.ndarray, ends: Sequence[Hashable]) -> dict[Hashable, np.ndarray]:
    """Mean reading ``[D]`` per end, from readings ``[M]`` / ``[M, D]`` and each image's end label ``[M]``."""
    v, e = _as_2d(values), np.asarray(ends, dtype=object)
    if len(v) != len(e):
        raise ValueError(f"{len(v)} readings but {len(e)} end labels")
    return {k: v[e == k].mean(0) for k in dict.fromkeys(e.tolist())}


def label_directions(values: np.ndarray, ends: Sequence[Hashable]) -> dict[tuple[Hashable, Hashable], np.ndarray]:
    """Unit vector ``[D]`` from end ``a``'s mean reading to end ``b``'s, for every ordered pair of ends
    (a zero vector where the two means coincide)."""
    mu = end_means(values, ends)
    out = {}
    for a, ma in mu.items():
        for b, mb in mu.items():
            if a == b:
                continue
            d = mb - ma
            nrm = float(np.sqrt((d**2).sum()))
            out[(a, b)] = d / nrm if nrm > 0 else np.zeros_like(d)
    return out


def pair_directions(directions: dict[tuple[Hashable, Hashable], np.ndarray], recipient_ends: Sequence[Hashable],
                    donor_ends: Sequence[Hashable]) -> np.ndarray:
    """Per pair ``[P, D]`` the direction of its (recipient end, donor end)."""
    rows = [directions[(a, b)] for a, b in zip(recipient_ends, donor_ends)]
    dim = len(next(iter(directions.values()))) if directions else 1
    return np.stack(rows) if rows else np.zeros((0, dim))


def along(recipient: np.ndarray, donor: np.ndarray, swapped: np.ndarray, direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signed movement and gap of each pair along its label direction.

    Args:
        recipient, donor, swapped: readings ``[P]`` / ``[P, D]`` (the recipient's and donor's decodes, the
            patched decode).
        direction: ``[P, D]`` unit vectors (:func:`pair_directions`) or one ``[D]`` for all pairs.

    Returns:
        ``moved [P] = (swapped - recipient) . u``, ``gap [P] = (donor - recipient) . u``.
    """
    r, d, s = _as_2d(recipient), _as_2d(donor), _as_2d(swapped)
    u = np.asarray(direction, float)
    u = np.broadcast_to(u[None] if u.ndim == 1 else u, r.shape)
    return ((s - r) * u).sum(1), ((d - r) * u).sum(1)


def _between_ss(values: np.ndarray, codes: np.ndarray, k: int) -> np.ndarray:
    """Between-group sum of squares of readings ``[M, D]`` for label codes ``[M]`` or ``[P, M]`` (ints < ``k``)."""
    total = values.sum(0)
    out = -(total**2).sum() / len(values)
    for g in range(k):
        member = (codes == g).astype(float)  # [..., M]
        n = member.sum(-1)
        sums = member @ values  # [..., D]
        out = out + np.where(n > 0, (sums**2).sum(-1) / np.maximum(n, 1), 0.0)
    return out


def _permutation_p(values: np.ndarray, codes: np.ndarray, k: int, n_perm: int, seed: int) -> float:
    """Permutation p-value of the between-end sum of squares (1.0 with fewer than two ends or three images)."""
    if k < 2 or len(values) < 3:
        return 1.0
    obs = _between_ss(values, codes, k)
    rng = np.random.default_rng(seed)
    perms = rng.permuted(np.broadcast_to(codes, (n_perm, len(codes))), axis=1)
    null = _between_ss(values, perms, k)
    # ties within rounding count as reaching the observed value
    return float((1 + (null >= obs - 1e-12 * max(abs(obs), 1.0)).sum()) / (1 + n_perm))


def mean_gap(values: np.ndarray, ends: Sequence[Hashable]) -> float:
    """The mean distance between the ends' mean readings over every pair of ends (two ends: ``|mu_b - mu_a|``)."""
    mu = list(end_means(values, ends).values())
    d = [np.sqrt(((mu[j] - mu[i]) ** 2).sum()) for i in range(len(mu)) for j in range(i + 1, len(mu))]
    return float(np.mean(d)) if d else np.nan


def kept_gap(reconstructed: np.ndarray, originals: np.ndarray, ends: Sequence[Hashable]) -> float:
    """How much of the originals' gap the reconstructions keep: over every pair of ends, the reconstructions'
    mean difference projected on the originals' direction, summed, over the originals' distances summed."""
    mr, mo = end_means(reconstructed, ends), end_means(originals, ends)
    keys = list(mo)
    num = den = 0.0
    for i in range(len(keys)):
        for j in range(i + 1, len(keys)):
            do = mo[keys[j]] - mo[keys[i]]
            nrm = float(np.sqrt((do**2).sum()))
            if nrm == 0:
                continue
            num += float(((mr[keys[j]] - mr[keys[i]]) * do).sum()) / nrm
            den += nrm
    return num / den if den > 0 else np.nan


@dataclass(frozen=True)
class Visibility:
    """Whether an attribute can be tested with its measurer (see the module docstring).

    Attributes:
        status: ``"testable"``, ``"not visible"`` (the reconstructions' ends are not told apart) or
            ``"not reconstructed"`` (the reconstructions keep less than ``min_kept`` of the originals' gap).
        p_value: the permutation test of the end labels on the reconstructions.
        gap: mean distance between the ends' mean readings on the reconstructions (measurer units).
        gap_originals: the same on the original images (NaN when not measured).
        kept: the reconstructions' gap along the originals' direction over the originals' gap (NaN when
            not measured).
        n_images: images in the test; ``n_perm``: permutations.
        p_value_originals: the permutation test on the originals (NaN when not measured).
    """

    status: str
    p_value: float
    gap: float
    gap_originals: float
    kept: float
    n_images: int
    n_perm: int
    p_value_originals: float = np.nan

    @property
    def testable(self) -> bool:
        return self.status == "testable"

    def text(self) -> str:
        s = f"{self.status}: ends p = {self.p_value:.3g} (permutation, {self.n_images} images), gap {self.gap:.3g}"
        if np.isfinite(self.kept):
            s += f", reconstructions keep {self.kept:.2f} of the originals' gap {self.gap_originals:.3g}"
        return s


def visibility(reconstructed: np.ndarray, ends: Sequence[Hashable], originals: np.ndarray | None = None, *,
               alpha: float = 0.01, min_kept: float = 0.1, n_perm: int = N_PERM, seed: int = 0) -> Visibility:
    """Test whether the measurer tells the ends of an attribute apart on the reconstructions, and whether
    the reconstructions keep the originals' gap.

    Args:
        reconstructed: readings ``[M]`` / ``[M, D]`` of each image's reconstruction (each image once).
        ends: each image's end label ``[M]`` (``low`` / ``high``, a category, ...).
        originals: readings of the original images, same shape (``None``: the reconstruction check is skipped).
        alpha: level of the permutation test; ``min_kept``: the least share of the originals' gap kept.

    Returns:
        :class:`Visibility`: ``testable`` when the reconstructions' ends differ (``p <= alpha``) and, with
        originals, keep at least ``min_kept`` of their gap; else ``not reconstructed`` when the originals'
        ends differ (the tokenizer loses what the measurer sees), else ``not visible``.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> ends = np.repeat(["low", "high"], 50)
        >>> visibility(np.where(ends == "high", 1.0, 0.0) + rng.normal(0, 0.3, 100), ends).status
        'testable'
        >>> visibility(rng.normal(0, 0.3, 100), ends).status
        'not visible'
    """
    v = _as_2d(reconstructed)
    e = np.asarray(ends, dtype=object)
    if len(v) != len(e):
        raise ValueError(f"{len(v)} readings but {len(e)} end labels")
    ok = np.isfinite(v).all(1)
    v, e = v[ok], e[ok]
    keys = list(dict.fromkeys(e.tolist()))
    codes = np.array([keys.index(x) for x in e.tolist()], dtype=int)
    gap = mean_gap(v, e) if len(keys) > 1 else np.nan
    p = _permutation_p(v, codes, len(keys), n_perm, seed)
    gap_o = kept = p_o = np.nan
    if originals is not None:
        o = _as_2d(originals)
        if o.shape[0] != ok.shape[0]:
            raise ValueError(f"{o.shape[0]} original readings but {ok.shape[0]} reconstructed")
        o = o[ok]
        gap_o = mean_gap(o, e) if len(keys) > 1 else np.nan
        kept = kept_gap(v, o, e) if len(keys) > 1 else np.nan
        p_o = _permutation_p(o, codes, len(keys), n_perm, seed)
    if p <= alpha and (originals is None or (np.isfinite(kept) and kept >= min_kept)):
        status = "testable"
    elif originals is not None and p_o <= alpha:
        status = "not reconstructed"  # the originals show the gap, the reconstructions lose it
    else:
        status = "not visible"
    return Visibility(status, p, float(gap), float(gap_o), float(kept), int(len(v)), int(n_perm), float(p_o))
