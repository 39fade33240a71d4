"""Single-token copy-paste between the two ends of an attribute, measured on decoded pixels.

The low end of a factor is its lowest bin; the high end its highest bin, or, for the circular object hue, the
opposite bin (``n_bins // 2``). Pasting the token at one position from high-end images into low-end images and
measuring the decoded result with :mod:`probe.swap.measurers` gives the fraction of the low-to-high gap that
position moves (:func:`moved_by_paste`).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from probe.swap.measurers import moved_fraction


def end_groups(factor: str, factors: pd.DataFrame, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of the low end and the high end of ``factor`` (from its ``<factor>_bin`` column)."""
    b = factors[f"{factor}_bin"].to_numpy()
    if factor == "obj_hue":  # circular: lowest bin vs the opposite quarter of the hue circle
        return np.flatnonzero(b == 0), np.flatnonzero(b == n_bins // 2)
    return np.flatnonzero(b == 0), np.flatnonzero(b == n_bins - 1)


@torch.no_grad()
def decode(model: torch.nn.Module, q: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Decoded images ``[M,3,H,W]`` in [0, 1] of tokens ``q [M,N,C]`` (``model.decode``), in batches."""
    return torch.cat([model.decode(q[s : s + batch]) for s in range(0, len(q), batch)])


def paste(q_low: torch.Tensor, q_high: torch.Tensor, position: int) -> torch.Tensor:
    """``q_low [K,N,C]`` with the tokens at ``position`` replaced by those of ``q_high [K,N,C]`` (a copy)."""
    q = q_low.clone()
    q[:, position] = q_high[:, position]
    return q


@torch.no_grad()
def moved_by_paste(model: torch.nn.Module, q_low: torch.Tensor, q_high: torch.Tensor, position: int,
                   measure: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], masks_low: torch.Tensor,
                   m_low: torch.Tensor, m_high: torch.Tensor) -> float:
    """Fraction of the gap ``m_high - m_low`` moved by pasting ``q_high[:, position]`` into ``q_low``.

    ``q_low, q_high [K,N,C]`` are paired tokens; ``m_low, m_high`` the measures of their decoded images;
    ``masks_low [K,1,H,W]`` the object masks of the low-end images (the measured ones).
    """
    return moved_fraction(m_low, m_high, measure(decode(model, paste(q_low, q_high, position)), masks_low))
