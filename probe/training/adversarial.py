"""An adversarial patch loss for the world tokenizer (the sharp-edge term of TiTok's and VQGAN's recipes).

Pixel losses (L1, L2, gradient, object-weighted) let an under-fitted decoder draw the mean of the shapes it
cannot yet tell apart: a soft round blob. A patch discriminator that sees real and reconstructed images
penalises exactly that softness. This is the usual recipe, small enough for a CPU:

- :class:`PatchDiscriminator`: a PatchGAN (Isola et al. 2017) of strided 4x4 convs with LeakyReLU, one logit
  per overlapping patch (receptive field 26 px, about an object and its surroundings on
  32x32 images). Hand-written: a few lines; no maintained package ships one without pulling a framework.
- hinge losses (``probe.training.losses.discriminator_hinge_loss``, ``generator_hinge_loss``), as in VQGAN
  and TiTok.
"""
from __future__ import annotations

import torch
from torch import nn


class PatchDiscriminator(nn.Module):
    """``images [B,3,H,W]`` in [0, 1] -> patch logits ``[B,1,H/4,W/4]`` (real > 0 > fake after training).

    Args:
        channels: channels of the first conv; doubled at the second.
    """

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        c = channels
        self.net = nn.Sequential(
            nn.Conv2d(3, c, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1),
            nn.GroupNorm(8 if (2 * c) % 8 == 0 else 1, 2 * c),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * c, 2 * c, 3, padding=1),
            nn.GroupNorm(8 if (2 * c) % 8 == 0 else 1, 2 * c),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * c, 1, 3, padding=1),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images * 2.0 - 1.0)


__all__ = ["PatchDiscriminator"]
