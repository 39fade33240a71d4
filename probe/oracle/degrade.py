"""Random degradations that mimic a tokenizer's reconstruction errors.

Decoded images are slightly blurred, slightly noisy and slightly off in colour. Training on
world images passed through :func:`degrade` makes a model read such images the way it reads
clean ones (labels stay those of the clean image).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from probe.data.filters import gaussian_blur


@dataclass(frozen=True)
class DegradeConfig:
    """Strengths of each degradation (each applied to a random subset of the batch).

    Blur sigmas are in pixels of the image as given (the models see 32x32).
    """

    p_blur: float = 0.5  # fraction of images blurred
    max_blur_px: float = 0.7  # Gaussian sigma up to this (well below the world's global_blur range)
    p_noise: float = 0.5
    max_noise: float = 0.04  # additive Gaussian noise std up to this
    p_colour: float = 0.5
    max_gain: float = 0.06  # per-channel gain in 1 +- this
    max_offset: float = 0.03  # per-channel offset in +- this
    p_down: float = 0.2  # fraction down- then up-sampled by 2x (lost fine detail)


def degrade(images: torch.Tensor, generator: torch.Generator | None = None,
            config: DegradeConfig | None = None) -> torch.Tensor:
    """Randomly degraded copy of ``images [B, 3, H, W]`` in [0, 1] (result clamped to [0, 1])."""
    c = config or DegradeConfig()
    b = images.shape[0]
    dev = images.device

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator).to(dev)

    out = images
    if c.p_down > 0:
        pick = rand(b) < c.p_down
        if pick.any():
            h, w = out.shape[-2:]
            small = F.interpolate(out[pick], scale_factor=0.5, mode="bilinear", antialias=True)
            out = out.clone()
            out[pick] = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    if c.p_blur > 0:
        sigma = rand(b) * c.max_blur_px * (rand(b) < c.p_blur)
        if (sigma > 0.05).any():
            out = torch.where((sigma > 0.05)[:, None, None, None], gaussian_blur(out, sigma), out)
    if c.p_colour > 0:
        on = (rand(b, 1, 1, 1) < c.p_colour).float()
        gain = 1.0 + on * (rand(b, 3, 1, 1) * 2 - 1) * c.max_gain
        offset = on * (rand(b, 3, 1, 1) * 2 - 1) * c.max_offset
        out = out * gain + offset
    if c.p_noise > 0:
        std = rand(b, 1, 1, 1) * c.max_noise * (rand(b, 1, 1, 1) < c.p_noise)
        noise = torch.randn(out.shape, generator=generator).to(dev)
        out = out + std * noise
    return out.clamp(0.0, 1.0)
