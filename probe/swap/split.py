"""Discovery and confirmation pairs that share no image.

Every selection (a sweep's best position, the probes' top positions, a greedy set) is made on *discovery*
pairs; every number a verdict reads comes from *confirmation* pairs. To keep the two independent, the
images of each end of the attribute are split first (a seeded share ``fraction`` of each end goes to
discovery, the rest to confirmation), then each side's pairs are drawn among its own images only, with
the stratification of :func:`probe.swap.pairs.sample_pairs`: no recipient, donor or same-end donor of
one side appears on the other, and within a side no image is a recipient or donor twice while its end has
images left (pairs that share a decode are not independent). The confirmation images do not depend on the numbers of pairs asked for,
so a larger discovery run confirms on the same images.
"""
from __future__ import annotations

import itertools
import zlib

import numpy as np
import pandas as pd

from probe.swap.pairs import _same_end, ends

#: the two sides, in table order
SIDES = ("discovery", "confirmation")


def _rng(seed: int, attribute: str, salt: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(attribute.encode()), zlib.crc32(salt.encode())])


def split_ends(groups: dict[str, np.ndarray], *, fraction: float = 0.5, seed: int = 0,
               attribute: str = "") -> dict[str, dict[str, np.ndarray]]:
    """Each end's rows split in two disjoint parts: side -> end -> rows (each side keeps at least one row
    of every end that has two or more)."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    rng = _rng(seed, attribute, "split")
    out: dict[str, dict[str, np.ndarray]] = {s: {} for s in SIDES}
    for end, rows in groups.items():
        rows = rng.permutation(np.asarray(rows))
        k = int(round(fraction * len(rows)))
        if len(rows) >= 2:
            k = min(max(k, 1), len(rows) - 1)
        out["discovery"][end], out["confirmation"][end] = np.sort(rows[:k]), np.sort(rows[k:])
    return out


def _draw_side(groups: dict[str, np.ndarray], n: int, rng: np.random.Generator | None) -> pd.DataFrame:
    """``n`` pairs over every ordered pair of ends, stratified as :func:`probe.swap.pairs.sample_pairs` does.

    Every image is used at most once as a recipient or donor of the side until its end runs out (then the end is
    reshuffled): pairs that share an image share its decode, and dependent pairs make an interval over pairs
    too narrow (the calibration benchmark measured about 91% coverage at 16 pairs when an image could be one
    pair's recipient and another's donor)."""
    groups = {k: v for k, v in groups.items() if len(v)}
    strata = list(itertools.permutations(sorted(groups), 2))
    cols = ["recipient", "donor", "same_end_donor", "recipient_end", "donor_end"]
    if not strata or n <= 0 or rng is None:
        return pd.DataFrame(columns=cols)
    per = [n // len(strata) + (i < n % len(strata)) for i in range(len(strata))]
    queues: dict[str, list[int]] = {e: [] for e in groups}

    def take(end: str, k: int) -> np.ndarray:
        out = []
        while len(out) < k:
            if not queues[end]:
                queues[end] = [int(r) for r in rng.permutation(groups[end])]
            out.append(queues[end].pop())
        return np.asarray(out, dtype=np.int64)

    parts = []
    for (a, b), k in zip(strata, per):
        if k == 0:
            continue
        rec, don = take(a, k), take(b, k)
        parts.append(pd.DataFrame({"recipient": rec, "donor": don, "same_end_donor": _same_end(rng, groups[a], rec),
                                   "recipient_end": a, "donor_end": b}))
    return pd.concat(parts, ignore_index=True)


def split_pairs(attributes: pd.DataFrame, attribute: str, kind: str, *, discovery: int, confirmation: int,
                quantile: float = 0.25, anchor: float = 0.0, circular: bool = False, fraction: float = 0.5,
                seed: int = 0) -> pd.DataFrame:
    """Discovery and confirmation pairs for ``attribute`` on disjoint images.

    Args:
        attributes: one row per stored image; ``attribute`` is one of its columns.
        kind: ``continuous`` / ``categorical`` (with ``circular``: turns on a circle).
        discovery, confirmation: pairs on each side.
        quantile, anchor: the ends (see :class:`probe.swap.pairs.PairConfig`).
        fraction: the share of each end's images that goes to discovery.

    Returns:
        The columns of :func:`probe.swap.pairs.sample_pairs` plus ``split`` (``discovery`` /
        ``confirmation``); discovery rows first. Raises ``ValueError`` naming the attribute when an end has
        too few images to give each side one.

    Examples:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"x": range(100)})
        >>> p = split_pairs(df, "x", "continuous", discovery=8, confirmation=8)
        >>> d, c = p[p.split == "discovery"], p[p.split == "confirmation"]
        >>> used = lambda f: set(f.recipient) | set(f.donor) | set(f.same_end_donor)
        >>> used(d).isdisjoint(used(c))
        True
    """
    if attribute not in attributes.columns:
        raise ValueError(f"attribute {attribute!r} is not a column of the store; known: {list(attributes.columns)}")
    groups = {k: v for k, v in ends(attributes[attribute], kind, quantile=quantile, anchor=anchor,
                                    circular=circular).items() if len(v)}
    small = [k for k, v in groups.items() if len(v) < 2]
    if len(groups) < 2 or small:
        raise ValueError(f"attribute {attribute!r}: each end needs at least two images to split into discovery "
                         f"and confirmation (ends: { {k: len(v) for k, v in groups.items()} })")
    sides = split_ends(groups, fraction=fraction, seed=seed, attribute=attribute)
    frames = []
    for side, n in zip(SIDES, (discovery, confirmation)):
        f = _draw_side(sides[side], n, _rng(seed, attribute, side))
        f["split"] = side
        if len(f):
            frames.append(f)
    out = pd.concat(frames, ignore_index=True) if frames else _draw_side({}, 0, None).assign(split="")
    vals = attributes[attribute].to_numpy()
    out.insert(0, "attribute", attribute)
    out["recipient_value"] = vals[out["recipient"].to_numpy(dtype=np.int64)]
    out["donor_value"] = vals[out["donor"].to_numpy(dtype=np.int64)]
    return out
