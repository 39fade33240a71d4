"""The training losses of the shipped models' recipes.

- tokenizer (``probe.training.tokenizer``): pixel terms (:func:`image_gradient_l1`, the object-weighted
  :func:`object_loss` over ``probe.measure.fidelity.object_weight``), one-factor pairs (:func:`ada_average`
  sharing, the :func:`changed_positions` penalty), the adversarial hinge losses (:func:`discriminator_hinge_loss`, :func:`generator_hinge_loss`,
  as in VQGAN and TiTok); the perceptual distance is ``probe.training.perceptual.OraclePerceptual``;
- oracle (``probe.training.oracle``): :func:`oracle_targets` and :func:`oracle_loss`;
- CLIP (``probe.training.clip``): open_clip's ``ClipLoss``, used as it is.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from probe.measure.fidelity import object_weight

if TYPE_CHECKING:
    from probe.oracle.model import WorldOracle


SHARING_MODES = ("ada", "swap", "exchange")
"""``TrainConfig.pairs`` values that share the unchanged token positions within a pair (see :func:`ada_average`)."""


def ada_average(z: torch.Tensor, topk: int = 0, mode: str = "ada") -> torch.Tensor:
    """Ada-GVAE-style sharing within pairs. ``z [B,N,C]`` = [first images; partners] -> same shape, with the
    positions whose change is below the per-pair midpoint of min and max change (``topk`` > 0: all but the
    ``topk`` most changed positions) shared. ``mode`` says how: "ada" replaces them by the pair mean; "swap" by
    the first image's features (the partner is decoded from the first image's tokens with only its most
    changed ones pasted in); "exchange" gives each image the other's (each image is decoded from its own most
    changed tokens pasted into the other image's tokens)."""
    h = z.shape[0] // 2
    z1, z2 = z[:h], z[h:]
    d = (z1 - z2).norm(dim=-1)  # [B/2, N]
    if topk > 0:
        thr = d.topk(topk, dim=1).values[:, -1:]
    else:
        thr = 0.5 * (d.max(dim=1, keepdim=True).values + d.min(dim=1, keepdim=True).values)
    shared = (d < thr)[..., None]
    if mode == "exchange":
        return torch.cat([torch.where(shared, z2, z1), torch.where(shared, z1, z2)])
    mean = z1 if mode == "swap" else F.normalize(z1 + z2, dim=-1)
    return torch.cat([torch.where(shared, mean, z1), torch.where(shared, mean, z2)])


def image_gradient_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """L1 distance of horizontal and vertical finite differences (an edge loss). ``a, b [B,3,H,W]``."""
    dx = lambda t: t[..., :, 1:] - t[..., :, :-1]
    dy = lambda t: t[..., 1:, :] - t[..., :-1, :]
    return (dx(a) - dx(b)).abs().mean() + (dy(a) - dy(b)).abs().mean()


def object_loss(rec: torch.Tensor, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """L1 + L2 reconstruction error averaged over the (dilated) object pixels only. ``rec, images [B,3,H,W]``,
    ``masks [B,1,H,W]`` in [0, 1]."""
    w = object_weight(masks)
    err = (rec - images).abs()
    return ((err + err.pow(2)) * w).sum() / (w.sum() * images.shape[1] + 1e-6)


def salience(images: torch.Tensor) -> torch.Tensor:
    """A soft foreground estimate ``[B,1,H,W]`` in [0, 1] from each image alone: a pixel's largest channel
    deviation from the image's per-channel median, over the image's largest. On an image that is a flat
    background plus objects it is the objects' coverage; no mask or label from the data's generator."""
    bg = images.flatten(2).median(dim=2).values[:, :, None, None]
    d = (images - bg).abs().amax(dim=1, keepdim=True)
    return d / d.flatten(1).amax(dim=1).clamp_min(1e-6)[:, None, None, None]


def changed_positions(z: torch.Tensor) -> torch.Tensor:
    """Mean effective number of changed positions of pairs ``z [B,N,C]`` = [first images; partners]:
    ``(sum_n d_n)^2 / sum_n d_n^2`` with ``d_n = ||z1_n - z2_n||`` (the Hoyer-style count; scale-free)."""
    h = z.shape[0] // 2
    d = (z[:h] - z[h:]).norm(dim=-1)  # [B/2, N] change per position
    return (d.sum(1) ** 2 / (d.pow(2).sum(1) + 1e-6)).mean()


def discriminator_hinge_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """``mean(relu(1 - real)) + mean(relu(1 + fake))``: zero once every real patch scores >= 1 and fake <= -1."""
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def generator_hinge_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """``-mean(fake)``: the reconstruction is pushed towards patches the discriminator scores as real."""
    return -fake_logits.mean()


def oracle_targets(model: WorldOracle, factors: pd.DataFrame) -> dict[str, torch.Tensor]:
    """Training targets in the heads' units: shape ids, hue (cos, sin), scalars in [0, 1]."""
    c = model.config
    shape = pd.Categorical(factors["shape"], categories=list(c.shapes)).codes.astype(np.int64)
    if (shape < 0).any():
        raise ValueError(f"oracle targets: shape(s) outside {c.shapes}")
    hues = np.stack([factors[h].to_numpy(np.float64) for h in c.hues], axis=1) * 2 * math.pi
    scal = np.stack([(factors[k].to_numpy(np.float64) - lo) / max(hi - lo, 1e-12)
                     for k, (lo, hi) in c.ranges.items()], axis=1)
    return {"shape": torch.from_numpy(shape),
            "hue_vec": torch.from_numpy(np.stack([np.cos(hues), np.sin(hues)], axis=-1)).float(),
            "scalars01": torch.from_numpy(scal).float()}


def oracle_loss(model: WorldOracle, images: torch.Tensor, tgt: dict[str, torch.Tensor]) -> torch.Tensor:
    """Scalar loss of ``images [B, 3, H, W]`` against :func:`oracle_targets`: cross-entropy for the shape plus,
    for every regression target, its mean squared error divided by the target's variance (so each term reads as
    ``1 - R^2`` and no factor dominates by its units)."""
    r = model.raw(images)
    loss = F.cross_entropy(r["shape_logits"], tgt["shape"])
    # (cos, sin) of a uniform angle: each component has variance 1/2; uniform [0, 1] has 1/12
    loss = loss + ((r["hue_vec"] - tgt["hue_vec"]) ** 2).mean(dim=(0, 2)).sum() / 0.5
    loss = loss + ((r["scalars01"] - tgt["scalars01"]) ** 2).mean(dim=0).sum() * 12.0
    return loss
