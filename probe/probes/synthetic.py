"""Synthetic tokens with planted position -> attribute structure, for tests and benchmarks."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class Planted:
    """A synthetic token set: ``tokens [M, N]``, ``features [M, N, C]`` float16, ``codebook [K, C]``,
    ``attributes`` (DataFrame with a ``ref`` column) and ``truth``: attribute -> planted position
    (None for the null attributes)."""

    tokens: np.ndarray
    features: np.ndarray
    codebook: np.ndarray
    attributes: pd.DataFrame
    truth: dict[str, int | None]


def planted_tokens(
    num_images: int = 2000,
    num_positions: int = 8,
    num_codes: int = 256,
    dim: int = 12,
    *,
    planted: dict[str, tuple[str, int, int]] | None = None,
    null: dict[str, tuple[str, int]] | None = None,
    noise: float = 0.5,
    seed: int = 0,
) -> Planted:
    """Make tokens where some positions are noisy functions of some attributes.

    Args:
        planted: name -> (kind ``"categorical"|"continuous"``, levels (continuous: bins the code
            choice follows), position). At that position, with probability ``1 - noise`` the token
            is drawn from a block of codes reserved for the attribute's level, else uniformly; the
            feature is the code's embedding plus unit-variance noise, plus a random vector per level
            on those rows (categorical) or the value along a fixed direction (continuous).
        null: name -> (kind, levels): attributes independent of everything.
        noise: fraction of planted tokens replaced by uniform random codes.
    """
    rng = np.random.default_rng(seed)
    planted = {"a": ("categorical", 4, 1)} if planted is None else planted
    null = {"z": ("categorical", 3)} if null is None else null
    m, n, k = num_images, num_positions, num_codes
    codebook = rng.standard_normal((k, dim)).astype(np.float32)
    tokens = rng.integers(0, k, size=(m, n))
    extra = np.zeros((m, n, dim), dtype=np.float32)
    cols: dict[str, np.ndarray] = {"ref": np.array([f"img{i:06d}" for i in range(m)])}
    truth: dict[str, int | None] = {}

    def draw(kind: str, levels: int) -> tuple[np.ndarray, np.ndarray]:
        if kind == "categorical":
            lab = rng.integers(0, levels, size=m)
            return lab, lab
        values = rng.uniform(0.0, 1.0, size=m)
        return values, np.minimum((values * levels).astype(np.int64), levels - 1)

    for name, (kind, levels, pos) in planted.items():
        values, lab = draw(kind, levels)
        block = k // levels
        signal = rng.random(m) >= noise
        tokens[signal, pos] = lab[signal] * block + rng.integers(0, block, size=int(signal.sum()))
        if kind == "continuous":
            direction = rng.standard_normal(dim).astype(np.float32)
            extra[:, pos] += (values[:, None] - 0.5) * 2.0 * direction
        else:  # the level also shifts the features linearly (on the rows that carry the signal)
            level_dirs = rng.standard_normal((levels, dim)).astype(np.float32)
            extra[signal, pos] += level_dirs[lab[signal]]
        cols[name] = values if kind == "continuous" else np.array([f"{name}{v}" for v in values])
        truth[name] = pos
    for name, (kind, levels) in null.items():
        values, _ = draw(kind, levels)
        cols[name] = values if kind == "continuous" else np.array([f"{name}{v}" for v in values])
        truth[name] = None
    features = (codebook[tokens] + extra + rng.standard_normal((m, n, dim)).astype(np.float32)).astype(np.float16)
    return Planted(tokens, features, codebook, pd.DataFrame(cols), truth)
