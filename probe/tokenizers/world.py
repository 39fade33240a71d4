"""The embedded ``world`` tokenizer: a tiny TiTok-style 1D tokenizer trained on the attribute world.

Shape of the model (defaults in :class:`WorldTokenizerConfig`):

    image [B,3,H,W] -> conv stem (3x3 conv, then patchify conv, stride = patch) -> P patch tokens
    [P patches ; N learned latent tokens] -> ViT encoder -> N latents -> linear to C dims -> L2-normalize
        -> features [B,N,C] -> nearest L2-normalized code (cosine) -> quantized [B,N,C]
    [P' learned mask tokens ; N projected quantized tokens] -> ViT decoder -> P' patch outputs
        -> linear to (p'*p'*hc) -> pixel shuffle -> [B,hc,H,W] -> small conv refiner -> RGB
    (p' = dec_patch_size, P' = (H / p')^2; by default the decoder's patches are the encoder's)

The continuous twin (``quantize=False``) is the same network with the code lookup removed:
``quantized == features`` and ``indices is None``.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from probe.errors import check_fields, check_images
from probe.tokenizers.base import Encoded


@dataclass
class WorldTokenizerConfig:
    """Architecture of a :class:`WorldTokenizer`. Every field has the default of the shipped model family.

    Attributes:
        image_size: input/output side in pixels (square images).
        patch_size: side of one encoder patch; ``(image_size / patch_size) ** 2`` patch tokens.
        dec_patch_size: side of one decoder patch (TiTok's ``vit_dec_patch_size``); 0 means ``patch_size``. A finer
            decoder grid (more patch queries, fewer pixels each) draws sharper outlines; 8 -> 4 at 32x32 costs
            ~1.5x per training step.
        width: transformer width of encoder and decoder.
        enc_depth: encoder transformer layers.
        dec_depth: decoder transformer layers.
        heads: attention heads.
        mlp_ratio: hidden size of the transformer MLP relative to ``width``.
        num_tokens: N, the number of 1D latent tokens.
        token_dim: C, dimension of a token (the L2-normalized code space).
        codebook_size: K, number of codes (ignored when ``quantize`` is False, but kept for the record).
        quantize: False gives the continuous twin (no code lookup).
        stem_channels: channels of the full-resolution 3x3 conv before patchifying.
        head_channels: channels per pixel after the pixel-shuffle head, fed to the conv refiner.
        refine_channels: hidden channels of the conv refiner (0 disables it: a plain linear patch head).
        pos_init_std: init std of the position embeddings and learned tokens. TiTok's 0.02 leaves the
            attention blind to position for hundreds of steps at this scale (reconstructions stay flat colour);
            ~1 lets latents read where things are from the first steps.
        stem: "patch" (one 3x3 conv, then a patchify conv) or "conv" (a pyramid of stride-2 convs).
        head: "shuffle" (linear to pixels per patch, pixel shuffle, conv refiner) or "conv" (a pyramid of
            nearest-upsample + 3x3 conv stages from the patch grid to full resolution).
    """

    image_size: int = 32
    patch_size: int = 4
    dec_patch_size: int = 0
    width: int = 128
    enc_depth: int = 4
    dec_depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    num_tokens: int = 32
    token_dim: int = 12
    codebook_size: int = 1024
    quantize: bool = True
    stem_channels: int = 32
    head_channels: int = 16
    refine_channels: int = 32
    stem: str = "patch"
    head: str = "shuffle"
    pos_init_std: float = 0.02

    def __post_init__(self) -> None:
        if self.stem not in ("patch", "conv") or self.head not in ("shuffle", "conv"):
            raise ValueError(f"WorldTokenizerConfig: stem must be 'patch' or 'conv' (got {self.stem!r}), "
                             f"head 'shuffle' or 'conv' (got {self.head!r})")
        if self.dec_patch_size < 0:
            raise ValueError(f"WorldTokenizerConfig: dec_patch_size must be >= 0 (0: same as patch_size), "
                             f"got {self.dec_patch_size}")
        if self.stem == "conv" and self.patch_size & (self.patch_size - 1):
            raise ValueError(f"WorldTokenizerConfig: the conv stem needs a power-of-two patch_size, got {self.patch_size}")
        if self.head == "conv" and self.dec_patch & (self.dec_patch - 1):
            raise ValueError(f"WorldTokenizerConfig: the conv head needs a power-of-two decoder patch, got {self.dec_patch}")
        for name in ("patch_size", "dec_patch_size"):
            if getattr(self, name) and self.image_size % getattr(self, name):
                raise ValueError(f"WorldTokenizerConfig: image_size={self.image_size} is not a multiple of "
                                 f"{name}={getattr(self, name)}")
        if self.width % self.heads:
            raise ValueError(f"WorldTokenizerConfig: width={self.width} is not a multiple of heads={self.heads}")
        for name in ("num_tokens", "token_dim", "codebook_size", "width", "enc_depth", "dec_depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"WorldTokenizerConfig: field {name!r} must be >= 1, got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, cfg: dict[str, Any]) -> "WorldTokenizerConfig":
        check_fields(cls, cfg, "WorldTokenizerConfig")
        return cls(**cfg)

    @property
    def grid(self) -> int:
        """Side of the encoder's patch grid."""
        return self.image_size // self.patch_size

    @property
    def dec_patch(self) -> int:
        """The decoder's patch side (``dec_patch_size``, or ``patch_size`` when that is 0)."""
        return self.dec_patch_size or self.patch_size

    @property
    def dec_grid(self) -> int:
        """Side of the decoder's patch grid."""
        return self.image_size // self.dec_patch


def _transformer(width: int, depth: int, heads: int, mlp_ratio: float) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(
        d_model=width,
        nhead=heads,
        dim_feedforward=int(width * mlp_ratio),
        dropout=0.0,
        activation="gelu",
        batch_first=True,
        norm_first=True,  # pre-LN trains stably at the high learning rates we use
    )
    return nn.TransformerEncoder(layer, num_layers=depth, enable_nested_tensor=False)


def _conv_pyramid_down(c0: int, width: int, patch: int) -> nn.Sequential:
    """3x3 conv to ``c0`` channels, then log2(patch) stride-2 4x4 convs growing to ``width``: [B,3,H,W] -> [B,width,H/p,W/p]."""
    n = int(math.log2(patch))
    chans = [c0] + [int(round(c0 + (width - c0) * (i + 1) / n)) for i in range(n)]
    layers: list[nn.Module] = [nn.Conv2d(3, c0, 3, padding=1), nn.GELU()]
    for i in range(n):
        layers += [nn.Conv2d(chans[i], chans[i + 1], 4, stride=2, padding=1)]
        if i < n - 1:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


def _conv_pyramid_up(width: int, c_out: int, patch: int) -> nn.Sequential:
    """log2(patch) stages of nearest x2 upsampling + 3x3 conv + GELU, shrinking ``width`` to ``c_out`` channels."""
    n = int(math.log2(patch))
    chans = [width] + [int(round(width + (c_out - width) * (i + 1) / n)) for i in range(n)]
    layers: list[nn.Module] = []
    for i in range(n):
        layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(chans[i], chans[i + 1], 3, padding=1), nn.GELU()]
    return nn.Sequential(*layers)


class WorldTokenizer(nn.Module):
    """TiTok-style 1D tokenizer for small images; implements :class:`probe.tokenizers.base.Tokenizer`."""

    architecture = "world"  # its name in probe.tokenizers.registry

    def __init__(self, config: WorldTokenizerConfig | None = None) -> None:
        super().__init__()
        cfg = config or WorldTokenizerConfig()
        self.config = cfg
        p, w, g = cfg.patch_size, cfg.width, cfg.grid
        n_patches = g * g
        dp = cfg.dec_patch
        # --- encoder
        if cfg.stem == "conv":
            self.stem = _conv_pyramid_down(cfg.stem_channels, w, p)
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(3, cfg.stem_channels, 3, padding=1),
                nn.GELU(),
                nn.Conv2d(cfg.stem_channels, w, p, stride=p),
            )
        self.enc_patch_pos = nn.Parameter(torch.randn(n_patches, w) * cfg.pos_init_std)
        self.latent_tokens = nn.Parameter(torch.randn(cfg.num_tokens, w) * cfg.pos_init_std)
        self.enc_latent_pos = nn.Parameter(torch.randn(cfg.num_tokens, w) * cfg.pos_init_std)
        self.encoder = _transformer(w, cfg.enc_depth, cfg.heads, cfg.mlp_ratio)
        self.enc_norm = nn.LayerNorm(w)
        self.to_token = nn.Linear(w, cfg.token_dim)
        # --- quantizer: codes live on the unit sphere (looked up by cosine similarity)
        self.codes = nn.Parameter(F.normalize(torch.randn(cfg.codebook_size, cfg.token_dim), dim=-1))
        # --- decoder
        self.from_token = nn.Linear(cfg.token_dim, w)
        self.dec_latent_pos = nn.Parameter(torch.randn(cfg.num_tokens, w) * cfg.pos_init_std)
        self.mask_tokens = nn.Parameter(torch.randn(cfg.dec_grid ** 2, w) * cfg.pos_init_std)
        self.decoder = _transformer(w, cfg.dec_depth, cfg.heads, cfg.mlp_ratio)
        self.dec_norm = nn.LayerNorm(w)
        hc = cfg.head_channels
        self.up: nn.Module | None = _conv_pyramid_up(w, hc, dp) if cfg.head == "conv" else None
        self.to_pixels = nn.Linear(w, dp * dp * hc) if cfg.head == "shuffle" else nn.Identity()
        self.rgb_skip = nn.Conv2d(hc, 3, 1)
        if cfg.refine_channels > 0:
            r = cfg.refine_channels
            # a cheap full-resolution refiner on top of the patch head: sharp edges across patch borders
            self.refine: nn.Module | None = nn.Sequential(
                nn.Conv2d(hc, r, 3, padding=1),
                nn.GELU(),
                nn.Conv2d(r, r, 3, padding=1),
                nn.GELU(),
                nn.Conv2d(r, 3, 1),
            )
        else:
            self.refine = None

    # ------------------------------------------------------------------ protocol properties
    @property
    def num_tokens(self) -> int:
        return self.config.num_tokens

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size if self.config.quantize else 0

    @property
    def token_dim(self) -> int:
        return self.config.token_dim

    @property
    def image_size(self) -> int:
        return self.config.image_size

    @property
    def is_discrete(self) -> bool:
        return self.config.quantize

    @property
    def codebook(self) -> torch.Tensor:
        """``[K, C]`` L2-normalized codes (empty ``[0, C]`` for the continuous twin)."""
        if not self.config.quantize:
            return self.codes.new_zeros(0, self.config.token_dim)
        return F.normalize(self.codes, dim=-1)

    # ------------------------------------------------------------------ config round trip
    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> "WorldTokenizer":
        """Build from a plain dict (the ``config`` field of a zoo JSON)."""
        return cls(WorldTokenizerConfig.from_dict(dict(cfg)))

    def config_dict(self) -> dict[str, Any]:
        return asdict(self.config)

    # ------------------------------------------------------------------ encoder / quantizer
    def encode_features(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B,3,H,W]`` in [0,1] -> L2-normalized pre-quantization ``features [B,N,C]``."""
        check_images(images, "WorldTokenizer.encode", self.config.image_size)
        x = self.stem(images * 2.0 - 1.0)  # [B, W, g, g]
        x = x.flatten(2).transpose(1, 2) + self.enc_patch_pos  # [B, P, W]
        lat = (self.latent_tokens + self.enc_latent_pos).expand(x.shape[0], -1, -1)
        h = self.encoder(torch.cat([x, lat], dim=1))
        h = self.enc_norm(h[:, -self.config.num_tokens :])
        return F.normalize(self.to_token(h), dim=-1)

    def lookup(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest code by cosine. ``features [B,N,C]`` -> (``indices [B,N]`` int64, ``codes [B,N,C]``)."""
        codebook = self.codebook
        z = F.normalize(features, dim=-1)
        idx = (z @ codebook.t()).argmax(dim=-1)
        return idx, codebook[idx]

    def encode(self, images: torch.Tensor, *, grad: bool = False) -> Encoded:
        """``images [B,3,H,W]`` in [0,1] -> :class:`Encoded` (indices ``None`` for the continuous twin).

        Without a graph unless ``grad=True`` (training uses :meth:`encode_features` or ``forward``).
        """
        with torch.set_grad_enabled(grad):
            feats = self.encode_features(images)
            if not self.config.quantize:
                return Encoded(indices=None, features=feats, quantized=feats)
            idx, q = self.lookup(feats)
            return Encoded(indices=idx, features=feats, quantized=q)

    # ------------------------------------------------------------------ decoder
    def decode(self, quantized: torch.Tensor, *, clamp: bool = True, keep: torch.Tensor | None = None) -> torch.Tensor:
        """The one decode: ``quantized [B,N,C]`` -> images ``[B,3,H,W]``, clamped to [0, 1] unless
        ``clamp=False`` (the raw, differentiable output the losses and the optimizer see).

        ``keep [B,N]`` (bool or 0/1, optional) marks the tokens the decoder sees; a dropped token's input is
        zeroed so only its position embedding remains (nested token dropout during training; decoding a
        prefix of the tokens afterwards).
        """
        cfg = self.config
        if quantized.ndim != 3 or quantized.shape[1:] != (cfg.num_tokens, cfg.token_dim):
            raise ValueError(
                f"WorldTokenizer decoder expects tokens [B, {cfg.num_tokens}, {cfg.token_dim}], got {tuple(quantized.shape)}"
            )
        b = quantized.shape[0]
        tok = self.from_token(quantized)
        if keep is not None:
            if keep.shape != quantized.shape[:2]:
                raise ValueError(f"keep must be [B, N] = {tuple(quantized.shape[:2])}, got {tuple(keep.shape)}")
            tok = tok * keep.to(tok.dtype)[..., None]
        lat = tok + self.dec_latent_pos
        masks = self.mask_tokens.expand(b, -1, -1)
        h = self.decoder(torch.cat([masks, lat], dim=1))
        p, g, hc = cfg.dec_patch, cfg.dec_grid, cfg.head_channels
        h = self.dec_norm(h[:, : g * g])  # [B, P_dec, W]
        if self.up is not None:
            pix = self.up(h.transpose(1, 2).reshape(b, -1, g, g))  # [B, hc, H, W]
        else:
            pix = self.to_pixels(h)  # [B, P_dec, p*p*hc]
            pix = pix.view(b, g, g, hc, p, p).permute(0, 3, 1, 4, 2, 5).reshape(b, hc, g * p, g * p)
        out = self.rgb_skip(pix)
        if self.refine is not None:
            out = out + self.refine(pix)
        out = (out + 1.0) * 0.5  # the network works in [-1, 1]
        return out.clamp(0.0, 1.0) if clamp else out

    def quantize(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Straight-through quantization: ``features [B,N,C]`` -> (quantized ``[B,N,C]``, whose forward value
        is the nearest code and whose gradient flows to ``features``; ``indices [B,N]``).

        The continuous twin only L2-normalizes (the identity on encoder outputs) and returns None indices.
        """
        z = F.normalize(features, dim=-1)
        if not self.config.quantize:
            return z, None
        idx, q = self.lookup(z)
        return z + (q - z).detach(), idx

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """``indices [B,N]`` int64 -> images ``[B,3,H,W]`` in [0,1]: ``decode(codebook[indices])``."""
        if not self.config.quantize:
            raise ValueError("the continuous WorldTokenizer has no codebook; use decode(features)")
        if indices.ndim != 2 or indices.shape[1] != self.config.num_tokens:
            raise ValueError(f"expected indices [B, {self.config.num_tokens}], got {tuple(indices.shape)}")
        return self.decode(self.codebook[indices.long().to(self.codes.device)])

    def forward(self, images: torch.Tensor, *, quantize: bool = True, keep: torch.Tensor | None = None,
                mix: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Training forward pass: reconstruction (unclamped) and the VQ losses.

        ``quantize=False`` bypasses the code lookup (the trainer's continuous warm-up of a VQ model).
        ``keep [B,N]`` drops tokens at the decoder input (see :meth:`decode`). ``mix`` maps the
        encoder's ``features [B,N,C]`` to the features that are quantized and decoded (the trainer's pair
        averaging); ``features`` in the result is the encoder's own.
        Returns a dict with ``recon [B,3,H,W]``, ``features [B,N,C]``, ``indices [B,N]`` (empty when not
        quantizing), ``codebook_loss`` and ``commit_loss`` (scalars; zero when not quantizing).
        """
        z_enc = self.encode_features(images)
        z = z_enc if mix is None else mix(z_enc)
        if self.config.quantize and quantize:
            idx, q = self.lookup(z)
            codebook_loss = F.mse_loss(q, z.detach())
            commit_loss = F.mse_loss(z, q.detach())
            zq = z + (q - z).detach()
        else:
            idx = torch.empty(0, dtype=torch.long)
            codebook_loss = commit_loss = z.new_zeros(())
            zq = z
        return {
            "recon": self.decode(zq, clamp=False, keep=keep),
            "features": z_enc,
            "indices": idx,
            "codebook_loss": codebook_loss,
            "commit_loss": commit_loss,
        }

    @torch.no_grad()
    def init_codes_kmeans(self, features: torch.Tensor, *, generator: torch.Generator) -> None:
        """Set the codebook to spherical k-means centroids of encoder outputs ``features [M, C]``."""
        self.codes.data.copy_(spherical_kmeans(features, self.config.codebook_size, generator=generator))

    @torch.no_grad()
    def restart_codes(self, dead: torch.Tensor, candidates: torch.Tensor, *, generator: torch.Generator) -> int:
        """Move ``dead [K]`` (bool) codes onto randomly chosen encoder outputs ``candidates [M, C]``.

        Returns the number of restarted codes.
        """
        n = int(dead.sum())
        if n == 0 or not self.config.quantize:
            return 0
        dead = dead.to(self.codes.device)
        pick = torch.randint(0, candidates.shape[0], (n,), generator=generator)
        noise = torch.randn(n, candidates.shape[1], generator=generator) * 0.01
        self.codes.data[dead] = F.normalize(candidates[pick].to(self.codes) + noise.to(self.codes), dim=-1)
        return n


@torch.no_grad()
def spherical_kmeans(x: torch.Tensor, k: int, *, iters: int = 15, generator: torch.Generator) -> torch.Tensor:
    """``k`` unit-norm centroids of the unit vectors ``x [M, C]`` (cosine k-means; empty clusters re-seeded).

    Hand-written (a few lines) because scikit-learn's KMeans is Euclidean and we need centroids on the sphere.
    """
    x = F.normalize(x.float(), dim=-1)
    cent = x[torch.randperm(x.shape[0], generator=generator)[:k]].clone()
    if cent.shape[0] < k:  # fewer points than codes: pad with random directions
        cent = torch.cat([cent, F.normalize(torch.randn(k - cent.shape[0], x.shape[1], generator=generator), dim=-1)])
    for _ in range(iters):
        assign = (x @ cent.t()).argmax(1)
        sums = torch.zeros_like(cent).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k)
        empty = counts == 0
        cent = F.normalize(sums, dim=-1)
        if empty.any():
            cent[empty] = x[torch.randint(0, x.shape[0], (int(empty.sum()),), generator=generator)]
    return cent


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of images in [0, 1]. ``a, b [B,3,H,W]`` -> ``[B]``.

    Superseded by :func:`probe.measure.fidelity.psnr` (the one PSNR; a model module cannot import it without
    an import cycle): kept only until ``probe/training/tokenizer.py`` and ``probe/swap/localization.py`` import
    that one, then removed."""
    mse = ((a.clamp(0, 1) - b.clamp(0, 1)) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return -10.0 * torch.log10(mse)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["WorldTokenizer", "WorldTokenizerConfig", "psnr", "count_parameters", "spherical_kmeans"]
