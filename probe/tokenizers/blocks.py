"""Transformer building blocks with the parameter names of the official TiTok checkpoints.

The official blocks wrap ``nn.MultiheadAttention`` (keys ``attn.in_proj_weight``,
``attn.in_proj_bias``, ``attn.out_proj.*``). We keep those names but compute attention with
``torch.nn.functional.scaled_dot_product_attention`` on ``[B, heads, L, head_dim]`` directly,
which is the same math without the sequence-first transposes.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn


class SelfAttention(nn.Module):
    """Multi-head self-attention; parameter layout of ``nn.MultiheadAttention`` (packed q, k, v)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"SelfAttention: heads {heads} does not divide width {width}")
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * width))
        self.out_proj = nn.Linear(width, width)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # nn.MultiheadAttention's own initialisation
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, L, W]`` -> ``[B, L, W]``."""
        b, l, w = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)  # [B, L, 3W]
        qkv = qkv.view(b, l, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)  # [3, B, H, L, D]
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # [B, H, L, D]
        return self.out_proj(out.transpose(1, 2).reshape(b, l, w))


class ResidualAttentionBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))`` (exact GELU)."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = SelfAttention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(
            OrderedDict([("c_fc", nn.Linear(width, hidden)), ("gelu", nn.GELU()), ("c_proj", nn.Linear(hidden, width))])
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, L, W]`` -> ``[B, L, W]``."""
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.ModuleList):
    """A stack of :class:`ResidualAttentionBlock` (a ModuleList, so keys read ``transformer.<i>.*``)."""

    def __init__(self, width: int, depth: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__([ResidualAttentionBlock(width, heads, mlp_ratio) for _ in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for block in self:
            x = block(x)
        return x


class PatchesToImage(nn.Module):
    """``[B, p*p*3, h, w]`` with channels ordered (p1, p2, c) -> image ``[B, 3, h*p, w*p]``.

    The single-stage decoder head's layout (not ``pixel_shuffle``'s (c, p1, p2) order).
    """

    def __init__(self, patch: int, channels: int = 3) -> None:
        super().__init__()
        self.patch, self.channels = patch, channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        p, c = self.patch, self.channels
        x = x.view(b, p, p, c, h, w).permute(0, 3, 4, 1, 5, 2)  # [B, c, h, p1, w, p2]
        return x.reshape(b, c, h * p, w * p)
