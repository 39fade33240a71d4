"""Quantizers of the TiTok family: nearest-code VQ (optionally on L2-normalized vectors) and the
diagonal Gaussian posterior of the VAE variants (decoded deterministically from its mean)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class VectorQuantizer(nn.Module):
    """Nearest-neighbour VQ with a straight-through estimator.

    With ``use_l2_norm`` both features and codes are L2-normalized before the distance and the
    lookup (the legacy TiTok models); the codes then lie on the unit sphere.
    Key: ``embedding.weight [K, C]``.
    """

    def __init__(self, codebook_size: int, token_size: int, use_l2_norm: bool) -> None:
        super().__init__()
        self.use_l2_norm = use_l2_norm
        self.embedding = nn.Embedding(codebook_size, token_size)
        nn.init.uniform_(self.embedding.weight, -1.0 / codebook_size, 1.0 / codebook_size)

    @property
    def codebook(self) -> torch.Tensor:
        """``[K, C]`` codes as used for lookup (normalized when ``use_l2_norm``)."""
        w = self.embedding.weight
        return F.normalize(w, dim=-1) if self.use_l2_norm else w

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """``indices [...]`` -> codes ``[..., C]``."""
        return F.embedding(indices, self.codebook)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``z [B, N, C]`` -> (quantized ``[B, N, C]`` with straight-through gradient to ``z``,
        indices ``[B, N]`` int64). Distances are computed in float32 (also under autocast), as in
        the reference."""
        with torch.autocast(device_type=z.device.type, enabled=False):
            return self._nearest(z)

    def _nearest(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``z [B, N, C]`` -> (nearest codes ``[B, N, C]`` float32 with a straight-through gradient, indices ``[B, N]``)."""
        zf = z.float()
        if self.use_l2_norm:
            zf = F.normalize(zf, dim=-1)
        codes = self.codebook.float()
        # squared distance up to the per-row constant |z|^2, which does not change the argmin
        # but is kept so near-ties resolve as in the reference.
        d = zf.pow(2).sum(-1, keepdim=True) + codes.pow(2).sum(-1) - 2.0 * zf @ codes.t()  # [B, N, K]
        indices = d.argmin(dim=-1)
        zq = F.embedding(indices, codes)
        zq = zf + (zq - zf).detach()
        return zq.to(z.dtype), indices


def gaussian_mean(moments: torch.Tensor) -> torch.Tensor:
    """``moments [B, N, 2C]`` (mean, then log-variance) -> mean ``[B, N, C]``."""
    return moments[..., : moments.shape[-1] // 2]


def gaussian_sample(moments: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A sample of the posterior (log-variance clamped to [-30, 20] as in the reference)."""
    mean, logvar = moments.float().chunk(2, dim=-1)
    std = torch.exp(0.5 * logvar.clamp(-30.0, 20.0))
    noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + std * noise
