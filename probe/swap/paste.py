"""Single-token copy-paste between the two ends of an attribute, measured on decoded pixels.

The low end of a factor is its lowest bin; the high end its highest bin, or, for the circular object hue, the
opposite bin (``n_bins // 2``). Pasting the token at one position from high-end images into low-end images and
measuring the decoded result with a :class:`probe.measure.Measurer` gives the fraction of the low-to-high gap
that position moves (:func:`moved_by_paste`, :func:`moved_fraction`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from probe.measure import Measurer
from probe.tokenizers.base import decode_batched
from probe.swap.engine import paste_tokens


def end_groups(factor: str, factors: pd.DataFrame, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of the low end and the high end of ``factor`` (from its ``<factor>_bin`` column)."""
    b = factors[f"{factor}_bin"].to_numpy()
    if factor == "obj_hue":  # circular: lowest bin vs the opposite quarter of the hue circle
        return np.flatnonzero(b == 0), np.flatnonzero(b == n_bins // 2)
    return np.flatnonzero(b == 0), np.flatnonzero(b == n_bins - 1)


def moved_fraction(m_low: torch.Tensor, m_high: torch.Tensor, m_swap: torch.Tensor) -> float:
    """How far a swap moved the low group toward the high group, as a fraction of their gap.

    ``(mean(swap) - mean(low)) / (mean(high) - mean(low))`` on group means ``[B]`` or ``[B, D]``; vectors (hue)
    are projected on ``high - low``. 0 = no effect, 1 = the whole gap.
    """
    lo, hi, sw = m_low.double().mean(0), m_high.double().mean(0), m_swap.double().mean(0)
    gap = (hi - lo).reshape(-1)
    move = (sw - lo).reshape(-1)
    return float((move @ gap) / (gap @ gap).clamp_min(1e-12))


@torch.no_grad()
def moved_by_paste(model: torch.nn.Module, q_low: torch.Tensor, q_high: torch.Tensor, position: int,
                   measure: Measurer, masks_low: torch.Tensor | None,
                   m_low: torch.Tensor, m_high: torch.Tensor) -> float:
    """Fraction of the gap ``m_high - m_low`` moved by pasting ``q_high[:, position]`` into ``q_low``.

    ``q_low, q_high [K,N,C]`` are paired tokens; ``m_low, m_high`` the measures of their decoded images;
    ``masks_low [K,1,H,W]`` the object masks of the low-end images (the measured ones), for measurers that use them.
    """
    swapped = decode_batched(model, paste_tokens(q_low, q_high, position))
    return moved_fraction(m_low, m_high, measure(swapped, masks=masks_low))
