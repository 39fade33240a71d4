"""How well a tokenizer reconstructs images, and how much of an attribute survives the reconstruction.

- :func:`ssim`: per-image structural similarity (scikit-image's ``structural_similarity``, the reference
  implementation of Wang et al. 2004, on the RGB image with ``data_range=1``);
- :func:`image_fidelity`: PSNR (:func:`probe.measure.fidelity.psnr`) and SSIM per image;

How much of an attribute survives the round trip (the share of the originals' gap the reconstructions keep) has
one definition, the swap verdict's: :func:`probe.swap.visibility.kept_gap` (the reconstructions' end gap along
the originals' direction, signed: noise in the reconstructions cannot read as kept). The pipeline's
reconstruction stage reports it per attribute.
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


__all__ = ["image_fidelity", "ssim"]
