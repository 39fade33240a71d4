"""Configuration of the TiTok family: one dataclass, with readers for the official config layouts.

The official TiTok code (bytedance/1d-tokenizer) names transformer sizes ("small", "base",
"large") and keeps its settings under ``model.vq_model`` plus ``dataset.preprocessing.crop_size``.
:meth:`TiTokConfig.from_official` reads that layout (the hub ``config.json`` and the YAML files);
:meth:`TiTokConfig.to_dict` / :meth:`TiTokConfig.from_dict` are our own flat layout.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from probe.errors import check_fields

# Transformer sizes of the official configs: name -> (width, depth, heads).
MODEL_SIZES: dict[str, tuple[int, int, int]] = {
    "small": (512, 8, 8),
    "base": (768, 12, 12),
    "large": (1024, 24, 16),
}


@dataclass
class PixelDecoderConfig:
    """The MaskGIT-VQGAN pixel decoder used by the legacy two-stage models.

    Defaults are the official MaskGIT-VQGAN (f16, 256 px): 1024 codes of dim 256, 128 hidden
    channels, channel multipliers (1, 1, 2, 2, 4), two residual blocks per level.
    """

    codebook_size: int = 1024  # MaskGIT-VQGAN codes; the legacy decoder head predicts logits over these
    z_channels: int = 256  # dimension of each MaskGIT-VQGAN code
    hidden_channels: int = 128
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4)  # one entry per resolution level
    num_res_blocks: int = 2
    num_channels: int = 3  # RGB out

    def __post_init__(self) -> None:
        self.channel_mult = tuple(int(m) for m in self.channel_mult)
        for m in self.channel_mult:
            if (self.hidden_channels * m) % 32:
                raise ValueError(
                    f"PixelDecoderConfig: hidden_channels*channel_mult = {self.hidden_channels * m} "
                    "must be a multiple of 32 (GroupNorm with 32 groups)"
                )

    @property
    def upsample_factor(self) -> int:
        """Spatial factor from the code grid to pixels (2 per level above the first)."""
        return 2 ** (len(self.channel_mult) - 1)


@dataclass
class TiTokConfig:
    """Every setting of a TiTok tokenizer, with the defaults of TiTok-L-32.

    Attributes:
        image_size: input / output resolution (square).
        enc_patch_size, dec_patch_size: ViT patch sizes of encoder and decoder.
        enc_width, enc_depth, enc_heads: encoder ViT size (large = 1024 / 24 / 16).
        dec_width, dec_depth, dec_heads: decoder ViT size.
        mlp_ratio: hidden width of the transformer MLP relative to its width.
        num_latent_tokens: N, the number of 1D tokens.
        token_size: C, the dimension of each token (for "vae": of the mean; the encoder emits 2C).
        codebook_size: K, VQ codes ("vq" only).
        use_l2_norm: compare and look up L2-normalized features and codes (the legacy models).
        quantize_mode: "vq" (discrete) or "vae" (continuous; decode from the posterior mean).
        is_legacy: the legacy models' reshape of encoder outputs without permute and the
            two-stage head; False for the single-stage models (pixel head, proper permute).
        finetune_decoder: two-stage: the decoder predicts logits over the MaskGIT-VQGAN codebook
            that the pixel decoder turns into pixels. Needs quantize_mode "vq".
        pixel: the MaskGIT-VQGAN pixel decoder (two-stage models only).
    """

    image_size: int = 256
    enc_patch_size: int = 16
    dec_patch_size: int = 16
    enc_width: int = 1024
    enc_depth: int = 24
    enc_heads: int = 16
    dec_width: int = 1024
    dec_depth: int = 24
    dec_heads: int = 16
    mlp_ratio: float = 4.0
    num_latent_tokens: int = 32
    token_size: int = 12
    codebook_size: int = 4096
    use_l2_norm: bool = True
    quantize_mode: str = "vq"
    is_legacy: bool = True
    finetune_decoder: bool = True
    pixel: PixelDecoderConfig = field(default_factory=PixelDecoderConfig)

    def __post_init__(self) -> None:
        if isinstance(self.pixel, dict):
            self.pixel = PixelDecoderConfig(**self.pixel)
        if self.quantize_mode not in ("vq", "vae"):
            raise ValueError(f"TiTokConfig.quantize_mode: {self.quantize_mode!r} is not one of 'vq', 'vae'")
        if self.finetune_decoder and self.quantize_mode != "vq":
            raise ValueError("TiTokConfig: finetune_decoder (two-stage) needs quantize_mode 'vq'")
        if self.finetune_decoder and not self.is_legacy:
            raise ValueError("TiTokConfig: finetune_decoder (two-stage head) needs is_legacy=True")
        for name, patch in (("enc_patch_size", self.enc_patch_size), ("dec_patch_size", self.dec_patch_size)):
            if self.image_size % patch:
                raise ValueError(f"TiTokConfig.{name}: {patch} does not divide image_size {self.image_size}")
        for prefix in ("enc", "dec"):
            width, heads = getattr(self, f"{prefix}_width"), getattr(self, f"{prefix}_heads")
            if width % heads:
                raise ValueError(f"TiTokConfig.{prefix}_heads: {heads} does not divide {prefix}_width {width}")
        if self.finetune_decoder:
            grid = self.image_size // self.dec_patch_size
            if grid * self.pixel.upsample_factor != self.image_size:
                raise ValueError(
                    f"TiTokConfig: decoder grid {grid} x pixel upsampling {self.pixel.upsample_factor} "
                    f"!= image_size {self.image_size}"
                )

    @property
    def enc_grid(self) -> int:
        return self.image_size // self.enc_patch_size

    @property
    def dec_grid(self) -> int:
        return self.image_size // self.dec_patch_size

    @property
    def enc_out_channels(self) -> int:
        """Channels of the encoder's ``conv_out``: C, or 2C (mean and log-variance) for "vae"."""
        return self.token_size * (2 if self.quantize_mode == "vae" else 1)

    # ---- our flat layout -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pixel"]["channel_mult"] = list(self.pixel.channel_mult)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TiTokConfig":
        """Build from our flat layout; unknown keys are an error that names them."""
        check_fields(cls, d, "TiTokConfig")
        d = dict(d)
        if isinstance(d.get("pixel"), dict):
            check_fields(PixelDecoderConfig, d["pixel"], "TiTokConfig.pixel")
            d["pixel"] = PixelDecoderConfig(**d["pixel"])
        return cls(**d)

    # ---- the official layout -----------------------------------------------------------------
    @classmethod
    def from_official(cls, conf: dict[str, Any]) -> "TiTokConfig":
        """Read the official layout (``{"model": {"vq_model": {...}}, "dataset": {...}}``).

        Missing ``finetune_decoder``, ``is_legacy`` and ``quantize_mode`` default to True, True
        and "vq", as in the official code (the hub configs of the first models omit them).
        """
        try:
            vq = conf["model"]["vq_model"]
        except (KeyError, TypeError):
            raise ValueError("official TiTok config: missing section 'model.vq_model'") from None

        def size(key: str) -> tuple[int, int, int]:
            name = vq.get(key)
            if name not in MODEL_SIZES:
                raise ValueError(f"official TiTok config: model.vq_model.{key} = {name!r}, expected one of {sorted(MODEL_SIZES)}")
            return MODEL_SIZES[name]

        for key in ("num_latent_tokens", "token_size"):
            if key not in vq:
                raise ValueError(f"official TiTok config: missing model.vq_model.{key}")
        ew, ed, eh = size("vit_enc_model_size")
        dw, dd, dh = size("vit_dec_model_size")
        mode = vq.get("quantize_mode", "vq")
        crop = ((conf.get("dataset") or {}).get("preprocessing") or {}).get("crop_size", 256)
        return cls(
            image_size=int(crop),
            enc_patch_size=int(vq.get("vit_enc_patch_size", 16)),
            dec_patch_size=int(vq.get("vit_dec_patch_size", 16)),
            enc_width=ew, enc_depth=ed, enc_heads=eh,
            dec_width=dw, dec_depth=dd, dec_heads=dh,
            num_latent_tokens=int(vq["num_latent_tokens"]),
            token_size=int(vq["token_size"]),
            codebook_size=int(vq.get("codebook_size", 0 if mode == "vae" else 4096)),
            use_l2_norm=bool(vq.get("use_l2_norm", False)),
            quantize_mode=mode,
            is_legacy=bool(vq.get("is_legacy", True)),
            finetune_decoder=bool(vq.get("finetune_decoder", True)),
        )


def model_size(width: int, depth: int, heads: int) -> str | None:
    """The official size name of a (width, depth, heads) triple, or None."""
    for name, triple in MODEL_SIZES.items():
        if triple == (width, depth, heads):
            return name
    return None
