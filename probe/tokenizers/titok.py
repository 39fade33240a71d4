"""TiTok: a ViT that compresses an image into N 1D tokens, and a ViT decoder back to pixels.

Our implementation of the published architecture (Yu et al. 2024, "An Image is Worth 32 Tokens"),
with state-dict names identical to the official checkpoints so they load with strict checking:

- encoder: ``[cls, G*G patch tokens, N latent tokens]`` -> ViT -> the N latent outputs ->
  ``ln_post`` -> 1x1 ``conv_out`` to C channels (2C for the VAE variants);
- quantizer: VQ (legacy: 4096 L2-normalized codes of dim 12; single-stage: 8192 codes of dim 64)
  or the VAE posterior mean;
- decoder: ``[cls, G*G mask tokens, N token embeddings]`` -> ViT -> the G*G outputs -> head.
  Legacy two-stage head: logits over the 1024 MaskGIT-VQGAN codes, softmax mixture of those
  codes, MaskGIT-VQGAN pixel decoder. Single-stage head: pixels per patch + a 3x3 conv.

Images are ``[B, 3, H, W]`` in [0, 1], without normalization.

Speed: the default is exact float32 (on CPU through fused oneDNN kernels, see
:mod:`probe.tokenizers.blocks`). Opt-in fast paths, :meth:`TiTok.configure_inference`:
``precision="bf16"`` runs encoder and decoder under bfloat16 autocast (CPU and CUDA; the VQ
distances stay float32) and ``compile=True`` runs them through ``torch.compile``. Both change the
numbers slightly (a few percent of tokens can flip); ``analyses/bench_tokenizers.py --paths``
reports the agreement. ``load_tokenizer(..., precision=, compile=)`` sets them at load. On CPU,
bf16 autocast pays only from a few images per batch up (autocast re-casts every weight on each
call); ``compile`` costs minutes of compilation per new input shape there.
"""
from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from probe.errors import check_images
from probe.tokenizers.blocks import PatchesToImage, SelfAttention, Transformer, conv2d_fused, linear_fused, use_fused
from probe.tokenizers.config import TiTokConfig
from probe.tokenizers.maskgit import PixelDecoder, PixelQuantizer
from probe.tokenizers.quantizers import VectorQuantizer, gaussian_mean
from probe.tokenizers.base import Encoded


def _init_vit_weights(module: nn.Module) -> None:
    """The reference initialisation of the ViT parts: truncated normal (std 0.02) for linear and
    conv weights, zero biases, unit LayerNorms; packed attention projections keep Xavier."""
    if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
        nn.init.trunc_normal_(module.weight, mean=0.0, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, SelfAttention):
        module.reset_parameters()


class TiTokEncoder(nn.Module):
    """Pixels ``[B, 3, H, W]`` + latent tokens ``[N, W]`` -> pre-quantization features ``[B, N, C_out]``."""

    def __init__(self, cfg: TiTokConfig) -> None:
        super().__init__()
        w, g, n = cfg.enc_width, cfg.enc_grid, cfg.num_latent_tokens
        self.is_legacy = cfg.is_legacy
        self.num_latent_tokens = n
        self.patch_embed = nn.Conv2d(3, w, kernel_size=cfg.enc_patch_size, stride=cfg.enc_patch_size)
        scale = w ** -0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(1, w))
        self.positional_embedding = nn.Parameter(scale * torch.randn(g * g + 1, w))
        self.latent_token_positional_embedding = nn.Parameter(scale * torch.randn(n, w))
        self.ln_pre = nn.LayerNorm(w)
        self.transformer = Transformer(w, cfg.enc_depth, cfg.enc_heads, cfg.mlp_ratio)
        self.ln_post = nn.LayerNorm(w)
        self.conv_out = nn.Conv2d(w, cfg.enc_out_channels, kernel_size=1)

    def forward(self, pixels: torch.Tensor, latent_tokens: torch.Tensor) -> torch.Tensor:
        """``pixels [B, 3, H, W]``, learned ``latent_tokens [N, W]`` -> token features ``[B, N, C]`` (``[B, N, 2C]``
        for the VAE variants: mean and log-variance)."""
        b = pixels.shape[0]
        x = self.patch_embed(pixels).flatten(2).transpose(1, 2)  # [B, G*G, W]
        cls = self.class_embedding.expand(b, -1, -1).to(x.dtype)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        lat = (latent_tokens + self.latent_token_positional_embedding).to(x.dtype).expand(b, -1, -1)
        x = self.ln_pre(torch.cat([x, lat], dim=1))
        # only the N latent outputs are used: the last block computes those rows alone
        lat = self.ln_post(self.transformer(x, rows=slice(-self.num_latent_tokens, None)))  # [B, N, W]
        return self.project_latents(lat)

    def project_latents(self, lat: torch.Tensor) -> torch.Tensor:
        """``ln_post`` outputs ``[B, N, W]`` -> features ``[B, N, C_out]`` through the 1x1 ``conv_out``.

        Legacy quirk: the reference reinterprets the ``[B, N, W]`` memory as ``[B, W, N, 1]``
        (reshape, no permute) before the conv, so output token n mixes channels taken from
        across all N latent slots. Reproduced exactly; the official weights depend on it.
        """
        b, n, w = lat.shape
        weight = self.conv_out.weight.view(self.conv_out.out_channels, w)
        if self.is_legacy:
            lat = lat.reshape(b, w, n).transpose(1, 2)  # the reference's [B, W, N] view, per token
        return F.linear(lat, weight, self.conv_out.bias)


class TiTokDecoder(nn.Module):
    """Token features ``[B, N, C]`` -> legacy: MaskGIT-VQGAN logits ``[B, 1024, G, G]``;
    single-stage: pixels ``[B, 3, H, W]``."""

    def __init__(self, cfg: TiTokConfig) -> None:
        super().__init__()
        w, g, n, p = cfg.dec_width, cfg.dec_grid, cfg.num_latent_tokens, cfg.dec_patch_size
        self.grid = g
        self.decoder_embed = nn.Linear(cfg.token_size, w)
        scale = w ** -0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(1, w))
        self.positional_embedding = nn.Parameter(scale * torch.randn(g * g + 1, w))
        self.mask_token = nn.Parameter(scale * torch.randn(1, 1, w))
        self.latent_token_positional_embedding = nn.Parameter(scale * torch.randn(n, w))
        self.ln_pre = nn.LayerNorm(w)
        self.transformer = Transformer(w, cfg.dec_depth, cfg.dec_heads, cfg.mlp_ratio)
        self.ln_post = nn.LayerNorm(w)
        if cfg.is_legacy:
            self.ffn = nn.Sequential(
                nn.Conv2d(w, 2 * w, 1), nn.Tanh(), nn.Conv2d(2 * w, cfg.pixel.codebook_size, 1)
            )
            self.conv_out: nn.Module = nn.Identity()
        else:
            self.ffn = nn.Sequential(nn.Conv2d(w, p * p * 3, 1), PatchesToImage(p))
            self.conv_out = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Quantized tokens ``z [B, N, C]`` -> the pixel stage's input: MaskGIT-VQGAN logits ``[B, K', G, G]``
        (legacy models), else images ``[B, 3, H, W]``."""
        b, n, _ = z.shape
        x = self.decoder_embed(z) + self.latent_token_positional_embedding[:n]
        g2 = self.grid * self.grid
        masks = torch.cat(
            [self.class_embedding.unsqueeze(0), self.mask_token.expand(1, g2, -1)], dim=1
        ) + self.positional_embedding  # [1, 1+G*G, W]
        x = torch.cat([masks.to(x.dtype).expand(b, -1, -1), x], dim=1)
        # only the G*G mask-token outputs are used (cls and token slots dropped): the last block
        # computes those rows alone
        x = self.ln_post(self.transformer(self.ln_pre(x), rows=slice(1, 1 + g2)))  # [B, G*G, W]
        if use_fused(x):
            return self._head_fused(x)
        x = x.transpose(1, 2).reshape(b, -1, self.grid, self.grid)
        return self.conv_out(self.ffn(x))

    def _head_fused(self, x: torch.Tensor) -> torch.Tensor:
        """The head on rows ``[B, G*G, W]``: its 1x1 convs are per-row linears; the output is
        channels-last (legacy logits ``[B, 1024, G, G]``, or pixels ``[B, 3, H, W]``)."""
        b, g2, w = x.shape
        g = self.grid
        x = x.reshape(b * g2, w)
        first = self.ffn[0]
        if isinstance(self.conv_out, nn.Identity):  # legacy: conv, tanh, conv -> logits
            last = self.ffn[2]
            h = linear_fused(x, first.weight.view(first.out_channels, w), first.bias, act="tanh")
            h = linear_fused(h, last.weight.view(last.out_channels, -1), last.bias)
            return h.view(b, g, g, -1).permute(0, 3, 1, 2)
        h = linear_fused(x, first.weight.view(first.out_channels, w), first.bias)  # [B*G*G, p*p*3]
        img = self.ffn[1].from_rows(h.view(b, g2, -1), g, g)
        conv = self.conv_out
        wcl = conv.weight.contiguous(memory_format=torch.channels_last)  # 3x3x3x3: no caching needed
        return conv2d_fused(img, wcl, conv.bias, conv.padding[0]).contiguous()


def _release(enc: Encoded) -> Encoded:
    """Copy inference-mode outputs into normal tensors (cheap: ``[B, N, C]``), so callers can use
    them freely with autograd (e.g. next to ``codebook``) without the inference-tensor error."""
    idx = None if enc.indices is None else enc.indices.clone()
    feats = enc.features.clone()
    quant = feats if enc.quantized is enc.features else enc.quantized.clone()
    return Encoded(indices=idx, features=feats, quantized=quant)


class TiTok(nn.Module):
    """A TiTok tokenizer implementing :class:`probe.tokenizers.base.Tokenizer`.

    Build with ``TiTok(TiTokConfig(...))``, ``TiTok.from_config(dict)`` or a preset through
    :func:`probe.tokenizers.build_tokenizer`. ``encode`` and ``decode_indices`` run under
    ``torch.inference_mode`` (``encode(..., grad=True)`` keeps the graph to the images) and
    return ordinary tensors; ``quantize`` and ``decode`` keep gradients.

    The VQ submodule is registered under the name ``quantize`` (state-dict keys
    ``quantize.embedding.weight``, as in the official checkpoints) while ``quantize`` as an
    attribute is the interface method; the module itself is :attr:`vector_quantizer`.
    """

    architecture = "titok"

    def __init__(self, config: TiTokConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = TiTokEncoder(config)
        self.decoder = TiTokDecoder(config)
        scale = config.enc_width ** -0.5
        self.latent_tokens = nn.Parameter(scale * torch.randn(config.num_latent_tokens, config.enc_width))
        self.apply(_init_vit_weights)
        if config.quantize_mode == "vq":
            # put straight into _modules as "quantize" (the official key; add_module refuses a name the
            # class already has); the class method of that name wins attribute lookup, so
            # self.quantize(...) is the interface method and the module is self.vector_quantizer
            self._modules["quantize"] = VectorQuantizer(config.codebook_size, config.token_size, config.use_l2_norm)
        if config.finetune_decoder:
            self.pixel_quantize = PixelQuantizer(config.pixel.codebook_size, config.pixel.z_channels)
            self.pixel_decoder = PixelDecoder(config.pixel)
        self.precision = "fp32"
        self.compiled = False
        self._compiled: dict[str, Any] = {}  # torch.compile'd parts, kept across calls (a dict: not submodules, not state)
        self.eval()

    # ---- fast paths ---------------------------------------------------------------------------
    PRECISIONS = ("fp32", "bf16")

    def configure_inference(self, *, precision: str = "fp32", compile: bool = False) -> "TiTok":
        """Choose the compute path of encode / decode (returns self).

        ``precision``: "fp32" (default, exact) or "bf16" (bfloat16 autocast on the model's device;
        the VQ nearest-code search stays float32). ``compile``: run the encoder and decoder
        through ``torch.compile`` (compiled lazily on first use, again per new input shape).
        Weights and state dict are unchanged either way.
        """
        if precision not in self.PRECISIONS:
            raise ValueError(f"TiTok.configure_inference: precision must be one of {self.PRECISIONS}, got {precision!r}")
        self.precision = precision
        self.compiled = bool(compile)
        return self

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.precision == "bf16":
            return torch.autocast(device_type=self.latent_tokens.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _part(self, name: str) -> Any:
        """``self.encoder`` / ``self.decoder`` / the pixel stage, compiled when asked for."""
        if not self.compiled:
            return self._pixel_stage if name == "pixel" else getattr(self, name)
        if name not in self._compiled:
            fn = self._pixel_stage if name == "pixel" else getattr(self, name)
            self._compiled[name] = torch.compile(fn)
        return self._compiled[name]

    def _pixel_stage(self, logits: torch.Tensor) -> torch.Tensor:
        """``logits [B, K', G, G]`` -> images ``[B, 3, H, W]`` through the MaskGIT codebook mixture and pixel decoder."""
        return self.pixel_decoder(self.pixel_quantize.mix(logits))

    # ---- construction / serialisation ---------------------------------------------------------
    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "TiTok":
        """Build (random weights) from :meth:`config_dict` output or an official config dict."""
        if "model" in config and isinstance(config["model"], dict) and "vq_model" in config["model"]:
            return cls(TiTokConfig.from_official(config))
        return cls(TiTokConfig.from_dict(config))

    def config_dict(self) -> dict[str, Any]:
        return self.config.to_dict()

    # ---- the Tokenizer interface --------------------------------------------------------------
    @property
    def vector_quantizer(self) -> VectorQuantizer | None:
        """The VQ module (state-dict prefix ``quantize.``); None for the VAE variants."""
        return self._modules.get("quantize")  # type: ignore[return-value]

    @property
    def num_tokens(self) -> int:
        return self.config.num_latent_tokens

    @property
    def codebook_size(self) -> int:
        """K (0 for the continuous VAE variants)."""
        return self.config.codebook_size if self.vector_quantizer is not None else 0

    @property
    def token_dim(self) -> int:
        return self.config.token_size

    @property
    def image_size(self) -> int:
        return self.config.image_size

    @property
    def is_discrete(self) -> bool:
        return self.vector_quantizer is not None

    @property
    def codebook(self) -> torch.Tensor:
        """``[K, C]`` codes as used for lookup (L2-normalized for the legacy models); ``[0, C]``
        for the VAE variants, which have no codebook."""
        vq = self.vector_quantizer
        if vq is None:
            return self.latent_tokens.new_zeros(0, self.config.token_size)
        return vq.codebook

    def _check_images(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, 3, S, S]`` checked, on the model's device and dtype."""
        check_images(images, "TiTok.encode", self.config.image_size)
        p = self.latent_tokens
        return images.to(device=p.device, dtype=p.dtype)

    def _check_tokens(self, t: torch.Tensor, what: str, last: int | None) -> None:
        """Refuse anything but ``[B, N, last]`` (``[B, N]`` ids when ``last`` is None), naming ``what``."""
        n = self.config.num_latent_tokens
        ok = t.ndim == (3 if last is not None else 2) and t.shape[1] == n and (last is None or t.shape[2] == last)
        if not ok:
            want = f"[B, {n}, {last}]" if last is not None else f"[B, {n}]"
            raise ValueError(f"TiTok.{what}: expected {want}, got {tuple(t.shape)}")

    def encode(self, images: torch.Tensor, *, grad: bool = False) -> Encoded:
        """``images [B, 3, H, W]`` in [0, 1] -> :class:`Encoded`.

        ``indices [B, N]`` int64 (None for VAE), ``features [B, N, C]`` the encoder outputs before
        quantization (for VAE: the posterior mean), ``quantized [B, N, C]`` the codes the decoder
        sees (L2-normalized for the legacy models).
        """
        if grad:
            with torch.enable_grad():
                return self._encode(images)
        with torch.inference_mode():
            enc = self._encode(images)
        return _release(enc)

    def _encode(self, images: torch.Tensor) -> Encoded:
        """``images [B, 3, S, S]`` -> :class:`Encoded` (``indices [B, N]``, ``features`` / ``quantized [B, N, C]``)."""
        x = self._check_images(images)
        with self._autocast():
            z = self._part("encoder")(x, self.latent_tokens)  # [B, N, C] or [B, N, 2C]
        if self.vector_quantizer is None:
            mean = gaussian_mean(z).float()
            return Encoded(indices=None, features=mean, quantized=mean)
        zq, idx = self.vector_quantizer(z)
        return Encoded(indices=idx, features=z.float(), quantized=zq.float())

    def quantize(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``features [B, N, C]`` -> (quantized ``[B, N, C]`` with a straight-through gradient,
        indices ``[B, N]``); the VAE variants return the features unchanged and None."""
        self._check_tokens(features, "quantize", self.config.token_size)
        vq = self.vector_quantizer
        if vq is None:
            return features, None
        return vq(features.to(self.latent_tokens.device))

    def decode(self, quantized: torch.Tensor, *, clamp: bool = True) -> torch.Tensor:
        """The one decode: features the decoder consumes ``[B, N, C]`` (no quantization) ->
        images ``[B, 3, H, W]``, clamped to [0, 1] unless ``clamp=False`` (the raw output, as the
        reference leaves clamping to the caller). Differentiable."""
        self._check_tokens(quantized, "decode", self.config.token_size)
        p = self.latent_tokens
        with self._autocast():
            out = self._part("decoder")(quantized.to(device=p.device, dtype=p.dtype))
            if self.config.finetune_decoder:
                out = self._part("pixel")(out)
        out = out.to(p.dtype)
        return out.clamp(0.0, 1.0) if clamp else out

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """``indices [B, N]`` -> images ``[B, 3, H, W]`` in [0, 1]: ``decode(codebook[indices])``
        (under inference mode)."""
        vq = self.vector_quantizer
        if vq is None:
            raise TypeError("TiTok.decode_indices: this is a continuous (VAE) tokenizer; use decode(features)")
        self._check_tokens(indices, "decode_indices", None)
        k = self.config.codebook_size
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= k):
            raise ValueError(f"TiTok.decode_indices: indices must lie in [0, {k}), got [{int(indices.min())}, {int(indices.max())}]")
        with torch.inference_mode():
            out = self.decode(vq.lookup(indices.to(self.latent_tokens.device).long()))
        return out.clone()  # a normal tensor again (see _release)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Reconstruction with gradients: ``images`` -> encode -> quantize (straight-through) -> decode."""
        x = self._check_images(images)
        z = self.encoder(x, self.latent_tokens)
        zq = gaussian_mean(z) if self.vector_quantizer is None else self.vector_quantizer(z)[0]
        return self.decode(zq)
