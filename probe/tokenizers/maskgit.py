"""The MaskGIT-VQGAN pixel decoder (second stage of the legacy TiTok models).

Parameter names follow the official checkpoints (``pixel_decoder.conv_in``, ``.mid.<i>``,
``.up.<level>.block.<i>``, ``.up.<level>.upsample_conv``, ``.norm_out``, ``.conv_out``;
``pixel_quantize.embedding.weight``). The official "same"-padded convolutions all have stride 1
and odd kernels, which is plain symmetric padding ``k // 2``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from probe.tokenizers.config import PixelDecoderConfig


def _conv(cin: int, cout: int, k: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias)


class ResnetBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, plus a residual.

    Quirk kept for the official weights: where the channel count changes, the 1x1
    ``nin_shortcut`` ([out, out]) is applied to the block's *output*, and that replaces the
    residual: ``h + nin_shortcut(h)``, not ``h + nin_shortcut(x)``.
    """

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.cin, self.cout = cin, cout
        self.norm1 = nn.GroupNorm(32, cin, eps=1e-6)
        self.conv1 = _conv(cin, cout, 3, bias=False)
        self.norm2 = nn.GroupNorm(32, cout, eps=1e-6)
        self.conv2 = _conv(cout, cout, 3, bias=False)
        if cin != cout:
            self.nin_shortcut = _conv(cout, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, cin, H, W]`` -> ``[B, cout, H, W]``."""
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        residual = self.nin_shortcut(h) if self.cin != self.cout else x
        return h + residual


class UpBlock(nn.Module):
    """One resolution level: residual blocks, then (above level 0) 2x nearest upsampling + 3x3 conv."""

    def __init__(self, cin: int, cout: int, num_res_blocks: int, upsample: bool) -> None:
        super().__init__()
        self.block = nn.ModuleList(
            [ResnetBlock(cin if i == 0 else cout, cout) for i in range(num_res_blocks)]
        )
        self.upsample = upsample
        if upsample:
            self.upsample_conv = _conv(cout, cout, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.block:
            x = blk(x)
        if self.upsample:
            x = self.upsample_conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return x


class PixelDecoder(nn.Module):
    """MaskGIT-VQGAN decoder: code features ``[B, z, h, w]`` -> pixels ``[B, 3, h*f, w*f]``.

    ``up`` is indexed by level (``up.0`` is the finest, without upsampling; ``up.<L-1>`` the
    coarsest) and runs from the coarsest level to the finest.
    """

    def __init__(self, cfg: PixelDecoderConfig) -> None:
        super().__init__()
        mult, hc = cfg.channel_mult, cfg.hidden_channels
        levels = len(mult)
        top = hc * mult[-1]
        self.conv_in = _conv(cfg.z_channels, top, 3)
        self.mid = nn.ModuleList([ResnetBlock(top, top) for _ in range(cfg.num_res_blocks)])
        up = []
        for i in range(levels):
            cin = hc * (mult[-1] if i == levels - 1 else mult[i + 1])
            up.append(UpBlock(cin, hc * mult[i], cfg.num_res_blocks, upsample=i != 0))
        self.up = nn.ModuleList(up)
        self.norm_out = nn.GroupNorm(32, hc * mult[0], eps=1e-6)
        self.conv_out = _conv(hc * mult[0], cfg.num_channels, 3)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(z)
        for blk in self.mid:
            x = blk(x)
        for blk in reversed(self.up):
            x = blk(x)
        return self.conv_out(F.silu(self.norm_out(x)))


class PixelQuantizer(nn.Module):
    """Holds the MaskGIT-VQGAN codebook (``embedding.weight [K, z]``); the legacy TiTok decoder
    mixes these codes with softmax weights instead of picking one."""

    def __init__(self, codebook_size: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(codebook_size, dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / codebook_size, 1.0 / codebook_size)

    def mix(self, logits: torch.Tensor) -> torch.Tensor:
        """``logits [B, K, h, w]`` -> softmax-weighted code mixture ``[B, z, h, w]``."""
        return torch.einsum("bkhw,kd->bdhw", logits.softmax(dim=1), self.embedding.weight)
