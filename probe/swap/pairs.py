"""(recipient, donor) pairs for an attribute, from opposite ends of it, seeded and stratified.

- continuous: the low end is the rows at or below the ``quantile`` quantile, the high end those at or
  above ``1 - quantile``; half the pairs go low -> high, half high -> low;
- circular (hues, values in turns): two opposite arcs of width ``quantile`` turns, centred on the
  ``anchor`` and on ``anchor + 0.5``, both directions;
- categorical: every ordered pair of distinct categories gets the same share of pairs (recipient from
  the first, donor from the second).

Each pair also gets a same-end donor: another row from the recipient's own end (the ``same_end``
control). Pairs are drawn without replacement inside each stratum while rows last.
"""
from __future__ import annotations

import itertools
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class PairConfig:
    """How pairs are drawn.

    Attributes:
        n: pairs per attribute.
        quantile: width of each end (continuous: the lower / upper quantile; circular: the arc in turns).
        anchor: centre of the first circular end (turns).
        seed: the seed; the attribute's name is mixed in so attributes get independent draws.
    """

    n: int = 256
    quantile: float = 0.25
    anchor: float = 0.0
    seed: int = 0


def _rng(seed: int, attribute: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(attribute.encode())])


def _draw(rng: np.random.Generator, pool: np.ndarray, k: int) -> np.ndarray:
    """``k`` rows of ``pool``, without replacement while it lasts."""
    if len(pool) == 0:
        return np.zeros(0, dtype=np.int64)
    reps = -(-k // len(pool))
    return np.concatenate([rng.permutation(pool) for _ in range(reps)])[:k]


def _same_end(rng: np.random.Generator, pool: np.ndarray, recipients: np.ndarray) -> np.ndarray:
    """For each recipient another row of its end (the recipient itself only when the end has one row)."""
    if len(pool) < 2:
        return recipients.copy()
    out = rng.choice(pool, len(recipients))
    clash = out == recipients
    while clash.any():
        out[clash] = rng.choice(pool, int(clash.sum()))
        clash = out == recipients
    return out


def ends(values: pd.Series | np.ndarray, kind: str, *, quantile: float = 0.25, anchor: float = 0.0,
         circular: bool = False) -> dict[str, np.ndarray]:
    """The ends of an attribute: name -> row positions. Continuous: ``low`` / ``high``; circular:
    ``arc0`` / ``arc1``; categorical: one end per category."""
    v = pd.Series(values).reset_index(drop=True)
    if kind == "categorical":
        keys = v.astype(str)
        return {str(c): np.flatnonzero(keys.to_numpy() == c) for c in sorted(keys.unique())}
    x = v.to_numpy(dtype=np.float64)
    ok = np.isfinite(x)
    if circular:
        d0 = np.abs(((x - anchor + 0.5) % 1.0) - 0.5)
        d1 = np.abs(((x - anchor) % 1.0) - 0.5)
        w = quantile / 2
        return {"arc0": np.flatnonzero(ok & (d0 <= w)), "arc1": np.flatnonzero(ok & (d1 <= w))}
    lo, hi = np.nanquantile(x, [quantile, 1 - quantile])
    return {"low": np.flatnonzero(ok & (x <= lo)), "high": np.flatnonzero(ok & (x >= hi))}


def sample_pairs(attributes: pd.DataFrame, attribute: str, kind: str, config: PairConfig | None = None, *,
                 circular: bool = False) -> pd.DataFrame:
    """Pairs for ``attribute`` (a column of ``attributes``, one row per stored image).

    Returns a DataFrame, one row per pair: ``attribute``, ``recipient``, ``donor``, ``same_end_donor``
    (row positions in ``attributes``), ``recipient_end``, ``donor_end``, ``recipient_value``,
    ``donor_value``. Raises ``ValueError`` naming the attribute when an end is empty.

    Examples:
        >>> import pandas as pd
        >>> attrs = pd.DataFrame({"lighting": [0.1, 0.2, 0.3, 0.7, 0.8, 0.9, 0.5, 0.4]})
        >>> pairs = sample_pairs(attrs, "lighting", "continuous", PairConfig(n=4, quantile=0.4))
        >>> sorted(set(attrs["lighting"][pairs["recipient"]] < 0.5) | set(attrs["lighting"][pairs["donor"]] < 0.5))
        [False, True]
        >>> len(pairs), list(pairs.columns[:4])
        (4, ['attribute', 'recipient', 'donor', 'same_end_donor'])
    """
    cfg = config or PairConfig()
    if attribute not in attributes.columns:
        raise ValueError(f"attribute {attribute!r} is not a column of the store; known: {list(attributes.columns)}")
    rng = _rng(cfg.seed, attribute)
    groups = ends(attributes[attribute], kind, quantile=cfg.quantile, anchor=cfg.anchor, circular=circular)
    groups = {k: v for k, v in groups.items() if len(v)}
    if len(groups) < 2:
        raise ValueError(f"attribute {attribute!r} has fewer than two non-empty ends ({list(groups)}): "
                         f"cannot draw contrasting pairs")
    strata = list(itertools.permutations(sorted(groups), 2))
    per = [cfg.n // len(strata) + (i < cfg.n % len(strata)) for i in range(len(strata))]
    parts = []
    for (a, b), k in zip(strata, per):
        if k == 0:
            continue
        rec = _draw(rng, groups[a], k)
        don = _draw(rng, groups[b], k)
        parts.append(pd.DataFrame({"recipient": rec, "donor": don,
                                   "same_end_donor": _same_end(rng, groups[a], rec),
                                   "recipient_end": a, "donor_end": b}))
    out = pd.concat(parts, ignore_index=True)
    vals = attributes[attribute].to_numpy()
    out.insert(0, "attribute", attribute)
    out["recipient_value"] = vals[out["recipient"].to_numpy()]
    out["donor_value"] = vals[out["donor"].to_numpy()]
    return out


def pairs_for(attributes: pd.DataFrame, names: Sequence[str], kinds: dict[str, str],
              config: PairConfig | None = None, circular: Sequence[str] = ()) -> pd.DataFrame:
    """Pairs for several attributes, stacked, with a global ``pair`` id (0..)."""
    frames = [sample_pairs(attributes, a, kinds[a], config, circular=a in set(circular)) for a in names]
    out = pd.concat(frames, ignore_index=True)
    out.insert(0, "pair", np.arange(len(out)))
    return out
