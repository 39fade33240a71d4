"""The MaskGIT-VQGAN pixel decoder (second stage of the legacy TiTok models).

Parameter names follow the official checkpoints (``pixel_decoder.conv_in``, ``.mid.<i>``,
``.up.<level>.block.<i>``, ``.up.<level>.upsample_conv``, ``.norm_out``, ``.conv_out``;
``pixel_quantize.embedding.weight``). The official "same"-padded convolutions all have stride 1
and odd kernels, which is plain symmetric padding ``k // 2``.

For float32 inference on CPU the decoder runs channels-last with oneDNN convolutions that add the
residual in the same pass (:func:`probe.tokenizers.blocks.use_fused`); the convolution weights
are converted to channels-last once and cached (rebuilt when a parameter changes).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from probe.tokenizers.blocks import conv2d_fused, use_fused
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

    def forward_fused(self, x: torch.Tensor, w: dict[str, torch.Tensor]) -> torch.Tensor:
        """The fused CPU path of :meth:`forward`; ``x`` channels-last, ``w`` channels-last weights."""
        h = conv2d_fused(F.silu(self.norm1(x), inplace=True), w["conv1"], None, 1)
        h = F.silu(self.norm2(h), inplace=True)
        if self.cin != self.cout:
            h = conv2d_fused(h, w["conv2"], None, 1)
            return conv2d_fused(h, w["nin_shortcut"], None, 0, residual=h)
        return conv2d_fused(h, w["conv2"], None, 1, residual=x)


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
        """``x [B, C_in, h, w]`` -> ``[B, C_out, h, w]`` (``[B, C_out, 2h, 2w]`` with ``upsample``)."""
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

        self._cl_weights: tuple[tuple, dict[str, torch.Tensor]] | None = None  # (key, weights): not state

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z [B, z, h, w]`` -> pixels ``[B, 3, h*f, w*f]``."""
        if use_fused(z):
            return self._forward_fused(z)
        x = self.conv_in(z)
        for blk in self.mid:
            x = blk(x)
        for blk in reversed(self.up):
            x = blk(x)
        return self.conv_out(F.silu(self.norm_out(x)))

    def channels_last_weights(self) -> dict[str, torch.Tensor]:
        """Every convolution weight in channels-last memory, keyed by module name; converted once
        and reused while no parameter changes (the key tracks each weight's identity and version)."""
        convs = [(n, m) for n, m in self.named_modules() if isinstance(m, nn.Conv2d)]
        key = tuple((id(m.weight), m.weight._version, m.weight.device, m.weight.dtype) for _, m in convs)
        if self._cl_weights is None or self._cl_weights[0] != key:
            with torch.inference_mode(False), torch.no_grad():
                ws = {n: m.weight.detach().contiguous(memory_format=torch.channels_last) for n, m in convs}
            self._cl_weights = (key, ws)
        return self._cl_weights[1]

    def _forward_fused(self, z: torch.Tensor) -> torch.Tensor:
        w = self.channels_last_weights()

        def sub(prefix: str) -> dict[str, torch.Tensor]:
            return {k[len(prefix):]: v for k, v in w.items() if k.startswith(prefix)}

        x = conv2d_fused(z.contiguous(memory_format=torch.channels_last), w["conv_in"], self.conv_in.bias, 1)
        for i, blk in enumerate(self.mid):
            x = blk.forward_fused(x, sub(f"mid.{i}."))
        for lvl in reversed(range(len(self.up))):
            up = self.up[lvl]
            for j, blk in enumerate(up.block):
                x = blk.forward_fused(x, sub(f"up.{lvl}.block.{j}."))
            if up.upsample:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
                x = conv2d_fused(x, w[f"up.{lvl}.upsample_conv"], up.upsample_conv.bias, 1)
        x = conv2d_fused(F.silu(self.norm_out(x), inplace=True), w["conv_out"], self.conv_out.bias, 1)
        return x.contiguous()


class PixelQuantizer(nn.Module):
    """Holds the MaskGIT-VQGAN codebook (``embedding.weight [K, z]``); the legacy TiTok decoder
    mixes these codes with softmax weights instead of picking one."""

    def __init__(self, codebook_size: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(codebook_size, dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / codebook_size, 1.0 / codebook_size)

    def mix(self, logits: torch.Tensor) -> torch.Tensor:
        """``logits [B, K, h, w]`` -> softmax-weighted code mixture ``[B, z, h, w]``.

        The fused path works on the channels-last rows ``[B, h, w, K]`` (a view of the decoder's
        channels-last logits) and returns a channels-last mixture, with no transposes."""
        if use_fused(logits):
            rows = logits.permute(0, 2, 3, 1)  # [B, h, w, K]
            return (rows.softmax(dim=-1) @ self.embedding.weight).permute(0, 3, 1, 2)
        return torch.einsum("bkhw,kd->bdhw", logits.softmax(dim=1), self.embedding.weight)
