"""Transformer building blocks with the parameter names of the official TiTok checkpoints.

The official blocks wrap ``nn.MultiheadAttention`` (keys ``attn.in_proj_weight``,
``attn.in_proj_bias``, ``attn.out_proj.*``). We keep those names but compute attention with
``torch.nn.functional.scaled_dot_product_attention`` on ``[B, heads, L, head_dim]`` directly,
which is the same math without the sequence-first transposes; the packed ``in_proj_weight`` is
the fused QKV projection (one matmul for q, k and v).

Two code paths compute the same function:

- the plain path (any device, autograd, autocast, ``torch.compile``): ATen ops;
- the fused CPU path, taken automatically for float32 inference on CPU (no autograd, no autocast,
  not compiling): oneDNN linear and convolution kernels with the bias, GELU and residual add fused
  into the matmul/convolution (one pass over memory instead of three), channels-last activations
  in the MaskGIT pixel decoder. It agrees with the plain path to float32 rounding (~1e-6).

``fused_kernels(False)`` selects the plain path everywhere (tests compare the two).
"""
from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

_FUSED_ENABLED = True


@contextlib.contextmanager
def fused_kernels(enabled: bool) -> Iterator[None]:
    """Enable or disable the fused CPU inference path within the block (default: enabled)."""
    global _FUSED_ENABLED
    old, _FUSED_ENABLED = _FUSED_ENABLED, enabled
    try:
        yield
    finally:
        _FUSED_ENABLED = old


def _have_mkldnn_ops() -> bool:
    try:
        return (torch.backends.mkldnn.is_available()
                and hasattr(torch.ops.mkldnn, "_linear_pointwise")
                and hasattr(torch.ops.mkldnn, "_convolution_pointwise"))
    except (AttributeError, RuntimeError):
        return False


_MKLDNN = _have_mkldnn_ops()


def use_fused(x: torch.Tensor) -> bool:
    """Whether ``x`` goes through the fused CPU path: float32 on CPU, no autograd, no autocast,
    not being traced by ``torch.compile`` (which fuses by itself)."""
    return (_FUSED_ENABLED and _MKLDNN and x.device.type == "cpu" and x.dtype == torch.float32
            and not torch.is_grad_enabled() and not torch.is_autocast_enabled("cpu")
            and not torch.compiler.is_compiling())


def linear_fused(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, act: str = "none",
                 residual: torch.Tensor | None = None) -> torch.Tensor:
    """``act(x @ weight.T + bias) [+ residual]`` in one oneDNN call; ``x [M, K]``, ``residual [M, N]``.
    ``act`` is "none", "gelu" (exact, erf) or "tanh"; a residual needs ``act="none"``."""
    if residual is not None:
        return torch.ops.mkldnn._linear_pointwise.binary(x, residual, weight, bias, "add")
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, act, [], "none" if act == "gelu" else "")


def conv2d_fused(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int,
                 residual: torch.Tensor | None = None) -> torch.Tensor:
    """A stride-1 convolution (+ residual) in one oneDNN call; channels-last in and out."""
    pad, one = [padding, padding], [1, 1]
    if residual is not None:
        return torch.ops.mkldnn._convolution_pointwise.binary(
            x, residual, weight, bias, pad, one, one, 1, "add", None, None, [], None)
    return torch.ops.mkldnn._convolution_pointwise(x, weight, bias, pad, one, one, 1, "none", [], "")


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

    def attend(self, qkv: torch.Tensor, rows: slice | None = None) -> torch.Tensor:
        """Packed ``qkv [B, L, 3W]`` -> attention output ``[B, Lq, W]`` before ``out_proj``, for
        the query rows ``rows`` (all when None; keys and values always cover all L)."""
        b, l, w3 = qkv.shape
        w = w3 // 3
        qkv = qkv.view(b, l, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)  # [3, B, H, L, D]
        q = qkv[0] if rows is None else qkv[0][:, :, rows]
        out = F.scaled_dot_product_attention(q, qkv[1], qkv[2])  # [B, H, Lq, D]
        return out.transpose(1, 2).reshape(b, q.shape[2], w)  # a view where SDPA writes [B, Lq, H, D]

    def forward(self, x: torch.Tensor, rows: slice | None = None) -> torch.Tensor:
        """``x [B, L, W]`` -> ``[B, Lq, W]`` (``Lq`` = the query ``rows``, all when None)."""
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)  # [B, L, 3W]
        return self.out_proj(self.attend(qkv, rows))


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

    def forward(self, x: torch.Tensor, rows: slice | None = None) -> torch.Tensor:
        """``x [B, L, W]`` -> ``[B, Lq, W]``: the block's outputs at ``rows`` (all when None).

        Every row's output depends on the other rows only through attention keys and values, so
        a last block asked for a few rows computes the queries, MLP and residuals of those only.
        """
        if use_fused(x):
            return self._forward_fused(x, rows)
        res = x if rows is None else x[:, rows]
        x = res + self.attn(self.ln_1(x), rows)
        return x + self.mlp(self.ln_2(x))

    def _forward_fused(self, x: torch.Tensor, rows: slice | None) -> torch.Tensor:
        b, l, w = x.shape
        a, fc, proj = self.attn, self.mlp.c_fc, self.mlp.c_proj
        h = self.ln_1(x).view(b * l, w)
        qkv = linear_fused(h, a.in_proj_weight, a.in_proj_bias).view(b, l, 3 * w)
        att = a.attend(qkv, rows)  # [B, Lq, W]
        lq = att.shape[1]
        res = (x if rows is None else x[:, rows]).reshape(b * lq, w)
        x = linear_fused(att.reshape(b * lq, w), a.out_proj.weight, a.out_proj.bias, residual=res)
        h = linear_fused(self.ln_2(x), fc.weight, fc.bias, act="gelu")
        x = linear_fused(h, proj.weight, proj.bias, residual=x)
        return x.view(b, lq, w)


class Transformer(nn.ModuleList):
    """A stack of :class:`ResidualAttentionBlock` (a ModuleList, so keys read ``transformer.<i>.*``)."""

    def __init__(self, width: int, depth: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__([ResidualAttentionBlock(width, heads, mlp_ratio) for _ in range(depth)])

    def forward(self, x: torch.Tensor, rows: slice | None = None) -> torch.Tensor:  # type: ignore[override]
        """``x [B, L, W]`` -> ``[B, Lq, W]``: the outputs at ``rows`` (all when None); only the
        last block is restricted to those rows."""
        last = len(self) - 1
        for i, block in enumerate(self):
            x = block(x, rows if i == last else None)
        return x


class PatchesToImage(nn.Module):
    """``[B, p*p*3, h, w]`` with channels ordered (p1, p2, c) -> image ``[B, 3, h*p, w*p]``.

    The single-stage decoder head's layout (not ``pixel_shuffle``'s (c, p1, p2) order).
    """

    def __init__(self, patch: int, channels: int = 3) -> None:
        super().__init__()
        self.patch, self.channels = patch, channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, p*p*c, h, w]`` (one patch per grid cell) -> images ``[B, c, h*p, w*p]``."""
        b, _, h, w = x.shape
        p, c = self.patch, self.channels
        x = x.view(b, p, p, c, h, w).permute(0, 3, 4, 1, 5, 2)  # [B, c, h, p1, w, p2]
        return x.reshape(b, c, h * p, w * p)

    def from_rows(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Per-patch rows ``[B, h*w, p*p*c]`` (row-major patches) -> image ``[B, c, h*p, w*p]``
        in channels-last memory (one copy)."""
        b = x.shape[0]
        p, c = self.patch, self.channels
        x = x.view(b, h, w, p, p, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h * p, w * p, c)  # [B, H, W, c]
        return x.permute(0, 3, 1, 2)
