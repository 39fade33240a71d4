"""Reconstruction fidelity: PSNR (the project's one definition) and the shape fidelity of a world tokenizer.

:func:`psnr` is the per-image PSNR of images in [0, 1], over the whole image or over a region;
:func:`psnr_from_mse` turns a pooled mean squared error into dB. Every PSNR the project reports (training
logs, the pipeline's inpainting table, the analyses) comes from these two.

Shape fidelity: does the object keep its outline through encode -> decode? On a held-out set of the model's own world (default seed 31337, the world-oracle's held-out seed; never used
for tokenizer training), :func:`shape_fidelity` gives

- ``psnr``: mean per-image PSNR (dB) of the reconstructions;
- ``object_psnr``: PSNR over the object's pixels only (mask dilated by one pixel), pooled over the set;
- ``shape_acc_recon``: the oracle's shape accuracy on the reconstructions (chance 0.25), and ``shape_acc_clean``
  on the originals, so the oracle's own ceiling is in the same table; ``shape_acc_recon_<shape>`` per true shape;
- ``shape_acc_synth``: analysis by synthesis, without the oracle. Every factor of a held-out image is known, so
  the image is rendered again once per shape with all other factors equal; the reconstruction is classified as
  the shape whose rendering is nearest in mean squared error (:func:`probe.data.world.nearest_shape`; 1.0 on
  clean images, ``shape_acc_synth_clean``). It matters for a tokenizer trained with the oracle's perceptual
  loss, whose oracle scores are biased upwards. (A linear probe of shape is no such check: it reads 0.45 even
  from the raw pixels, since shape is not a linear function of pixels when the object moves.)
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from probe.tokenizers.base import Tokenizer, decode_batched, encode_batched

if TYPE_CHECKING:
    from probe.oracle.model import WorldOracle


def psnr_from_mse(mse: torch.Tensor) -> torch.Tensor:
    """PSNR in dB, peak 1, of mean squared errors ``mse`` (any shape, same shape out):
    ``10 log10(1 / mse)``, the MSE floored at 1e-10 (an exact copy reads 100 dB, not inf)."""
    return 10 * torch.log10(1 / mse.clamp_min(1e-10))


def psnr(a: torch.Tensor, b: torch.Tensor, region: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image PSNR in dB (peak 1) of ``a`` against ``b``, ``[B, 3, H, W]``, both clamped to [0, 1] and
    compared in float32 -> ``[B]``. With ``region [B, 1, H, W]`` (weights in [0, 1], e.g. a hole mask) the mean
    squared error is taken over the region's pixels only (an empty region counts as one pixel, no NaN).

    Written here rather than taken from ``skimage.metrics.peak_signal_noise_ratio``: that one reads one numpy
    image at a time and has no region."""
    se = (a.float().clamp(0, 1) - b.float().clamp(0, 1)) ** 2
    if region is None:
        mse = se.flatten(1).mean(1)
    else:
        w = region.expand_as(se).float()
        mse = (se * w).sum((1, 2, 3)) / w.sum((1, 2, 3)).clamp_min(1)
    return psnr_from_mse(mse)


def object_weight(masks: torch.Tensor) -> torch.Tensor:
    """Object masks ``[B,1,H,W]`` in [0, 1] -> the object region dilated by one pixel (3x3 max), ``[B,1,H,W]``."""
    return F.max_pool2d(masks, kernel_size=3, stride=1, padding=1)


def object_squared_error(rec: torch.Tensor, images: torch.Tensor, masks: torch.Tensor) -> tuple[float, float]:
    """Summed squared error over the dilated object pixels (:func:`object_weight`) and their weight summed over
    channels, ``(sse, count)``: their ratio, pooled over batches, is the object-region MSE. ``rec, images
    [B,3,H,W]`` (``rec`` clamped to [0, 1] here), ``masks [B,1,H,W]`` in [0, 1]."""
    w = object_weight(masks)
    return float(((rec.clamp(0, 1) - images).pow(2) * w).sum()), float(w.sum()) * images.shape[1]


@torch.no_grad()
def shape_fidelity(model: Tokenizer, world: dict[str, Any], oracle: WorldOracle, *, n: int = 2000,
                   seed: int = 31337) -> dict[str, float]:
    """One row of the table for ``model`` on ``n`` held-out images of its world ``world`` (overrides)."""
    from probe.data import world as world_mod

    wcfg = world_mod.WorldConfig.from_dict(world)
    images, df, masks = world_mod.sample(n, seed=seed, resolution=model.image_size, config=wcfg, return_masks=True)
    recon = decode_batched(model, encode_batched(model, images).quantized)  # VQ and continuous models alike
    sse, count = object_squared_error(recon, images, masks)
    true = df["shape"].to_numpy()
    renderings = world_mod.shape_renderings(df, images.shape[-1], wcfg)  # both readings below compare with these
    pred_recon = oracle.predict(recon)["shape"].to_numpy()
    pred_clean = oracle.predict(images)["shape"].to_numpy()
    row = {"n_images": n, "seed": seed, "psnr": float(psnr(recon, images).mean()),
           "object_psnr": float(psnr_from_mse(torch.tensor(sse / count))),
           "shape_acc_clean": float((pred_clean == true).mean()),
           "shape_acc_recon": float((pred_recon == true).mean()),
           "shape_acc_synth": float((world_mod.nearest_shape(recon, df, wcfg, renderings=renderings) == true).mean()),
           "shape_acc_synth_clean": float((world_mod.nearest_shape(images, df, wcfg, renderings=renderings)
                                           == true).mean())}
    for s in wcfg.shapes:
        sel = true == s
        row[f"shape_acc_recon_{s}"] = float((pred_recon[sel] == s).mean())
    return row
