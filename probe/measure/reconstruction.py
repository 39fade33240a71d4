"""How well a tokenizer reconstructs images, and how much of an attribute survives the reconstruction.

- :func:`ssim`: per-image structural similarity (scikit-image's ``structural_similarity``, the reference
  implementation of Wang et al. 2004, on the RGB image with ``data_range=1``);
- :func:`image_fidelity`: PSNR (:func:`probe.measure.fidelity.psnr`) and SSIM per image;
- :func:`kept_gap`: for pairs of images from opposite ends of an attribute, the share of the originals' gap (as a
  measurer reads it, the distances given by :func:`probe.swap.movement.movement`) that the reconstructions keep: 1 when the reconstructions differ as much as the originals
  do, 0 when the tokenizer erases the attribute. A swap cannot move more of a gap than the reconstructions keep,
  so this bounds what the swap validation can find.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from probe.measure.fidelity import psnr


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM of ``a`` against ``b`` ``[B, 3, H, W]`` in [0, 1] -> ``[B]`` (scikit-image, 7x7 window;
    images smaller than 7 pixels a side use the largest odd window that fits)."""
    from skimage.metrics import structural_similarity

    x = a.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy().astype(np.float64)
    y = b.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy().astype(np.float64)
    side = min(x.shape[1], x.shape[2])
    win = min(7, side if side % 2 else side - 1)
    return torch.tensor([structural_similarity(xi, yi, channel_axis=-1, data_range=1.0, win_size=win)
                         for xi, yi in zip(x, y)], dtype=torch.float32)


def image_fidelity(originals: torch.Tensor, reconstructions: torch.Tensor) -> pd.DataFrame:
    """One row per image: ``image``, ``psnr`` (dB), ``ssim``. ``originals, reconstructions [B, 3, H, W]``."""
    return pd.DataFrame({"image": np.arange(len(originals)), "psnr": psnr(reconstructions, originals).numpy(),
                         "ssim": ssim(reconstructions, originals).numpy()})


def kept_gap(gap_original: np.ndarray, gap_reconstruction: np.ndarray) -> dict[str, float]:
    """The share of the originals' gap the reconstructions keep, over pairs of images from opposite ends of an
    attribute.

    Args:
        gap_original: per pair, how far apart a measurer reads the two originals (``[P]``; e.g.
            ``probe.swap.movement(kind, reading[i], reading[j])["distance"]``).
        gap_reconstruction: the same for the two reconstructions (``[P]``).

    Returns:
        ``gap_original`` and ``gap_reconstruction`` (their means), ``kept`` (their ratio; NaN when the originals'
        gap is 0) and ``pairs``.

    Examples:
        >>> kept_gap(np.array([1.0, 0.5]), np.array([0.5, 0.25]))["kept"]
        0.5
    """
    g0, g1 = float(np.mean(gap_original)), float(np.mean(gap_reconstruction))
    return {"gap_original": g0, "gap_reconstruction": g1, "kept": g1 / g0 if g0 > 0 else float("nan"),
            "pairs": len(gap_original)}


__all__ = ["image_fidelity", "kept_gap", "ssim"]
