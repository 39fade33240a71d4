"""Named TiTok presets: the nine published ImageNet tokenizers and two tiny random-weight configs.

Sizes follow the official configs (configs/infer/TiTok/*.yaml of bytedance/1d-tokenizer):
small / base / large ViTs are 512 / 768 / 1024 wide, 8 / 12 / 24 deep, 8 / 12 / 16 heads.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from probe.tokenizers.config import MODEL_SIZES, PixelDecoderConfig, TiTokConfig


@dataclass(frozen=True)
class Preset:
    """A named configuration and, where published, the Hugging Face hub id of its weights."""

    name: str
    config: TiTokConfig
    hub_id: str | None = None
    description: str = ""


def _vit(enc: str, dec: str) -> dict[str, int]:
    ew, ed, eh = MODEL_SIZES[enc]
    dw, dd, dh = MODEL_SIZES[dec]
    return dict(enc_width=ew, enc_depth=ed, enc_heads=eh, dec_width=dw, dec_depth=dd, dec_heads=dh)


def _legacy(enc: str, dec: str, n: int) -> TiTokConfig:
    """Two-stage legacy model: 4096 L2-normalized codes of dim 12, MaskGIT-VQGAN pixel decoder."""
    return TiTokConfig(**_vit(enc, dec), num_latent_tokens=n, token_size=12, codebook_size=4096,
                       use_l2_norm=True, quantize_mode="vq", is_legacy=True, finetune_decoder=True)


def _vq8k(enc: str, dec: str, n: int) -> TiTokConfig:
    """Single-stage VQ model: 8192 codes of dim 64, no L2 norm, pixel head."""
    return TiTokConfig(**_vit(enc, dec), num_latent_tokens=n, token_size=64, codebook_size=8192,
                       use_l2_norm=False, quantize_mode="vq", is_legacy=False, finetune_decoder=False)


def _vae(enc: str, dec: str, n: int) -> TiTokConfig:
    """Single-stage VAE model: 16 channels per token, decoded from the posterior mean."""
    return TiTokConfig(**_vit(enc, dec), num_latent_tokens=n, token_size=16, codebook_size=0,
                       use_l2_norm=False, quantize_mode="vae", is_legacy=False, finetune_decoder=False)


_HUB = "yucornetto/tokenizer_titok_{}_imagenet"

_TINY = TiTokConfig(
    image_size=64, enc_patch_size=8, dec_patch_size=8,
    enc_width=64, enc_depth=2, enc_heads=4, dec_width=64, dec_depth=2, dec_heads=4,
    num_latent_tokens=32, token_size=16, codebook_size=256, use_l2_norm=True,
    quantize_mode="vq", is_legacy=False, finetune_decoder=False,
)

# A small two-stage model: exercises the legacy reshape, the MaskGIT head and pixel decoder
# (including a channel change, hence nin_shortcut) at 64x64 on CPU.
_TINY_LEGACY = TiTokConfig(
    image_size=64, enc_patch_size=16, dec_patch_size=16,
    enc_width=64, enc_depth=2, enc_heads=4, dec_width=64, dec_depth=2, dec_heads=4,
    num_latent_tokens=16, token_size=12, codebook_size=256, use_l2_norm=True,
    quantize_mode="vq", is_legacy=True, finetune_decoder=True,
    pixel=PixelDecoderConfig(codebook_size=64, z_channels=32, hidden_channels=32,
                             channel_mult=(1, 1, 2, 2, 2), num_res_blocks=1),
)

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset("titok-l32", _legacy("large", "large", 32), _HUB.format("l32"), "TiTok-L-32, two-stage, 4096 codes"),
        Preset("titok-b64", _legacy("base", "base", 64), _HUB.format("b64"), "TiTok-B-64, two-stage, 4096 codes"),
        Preset("titok-s128", _legacy("small", "small", 128), _HUB.format("s128"), "TiTok-S-128, two-stage, 4096 codes"),
        Preset("titok-bl64-vq", _vq8k("base", "large", 64), _HUB.format("bl64_vq8k"), "TiTok-BL-64, single-stage VQ, 8192 codes"),
        Preset("titok-bl128-vq", _vq8k("base", "large", 128), _HUB.format("bl128_vq8k"), "TiTok-BL-128, single-stage VQ, 8192 codes"),
        Preset("titok-sl256-vq", _vq8k("small", "large", 256), _HUB.format("sl256_vq8k"), "TiTok-SL-256, single-stage VQ, 8192 codes"),
        Preset("titok-ll32-vae", _vae("large", "large", 32), _HUB.format("ll32_vae_c16"), "TiTok-LL-32, VAE, 16 channels"),
        Preset("titok-bl64-vae", _vae("base", "large", 64), _HUB.format("bl64_vae_c16"), "TiTok-BL-64, VAE, 16 channels"),
        Preset("titok-bl128-vae", _vae("base", "large", 128), _HUB.format("bl128_vae_c16"), "TiTok-BL-128, VAE, 16 channels"),
        Preset("titok-tiny", _TINY, None, "tiny random-weight single-stage VQ (64 px, 32 tokens) for tests and examples"),
        Preset("titok-tiny-legacy", _TINY_LEGACY, None, "tiny random-weight two-stage model (64 px, 16 tokens) for tests"),
    ]
}


def list_presets() -> list[str]:
    """Names of all presets."""
    return list(PRESETS)


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (a fresh copy of its config), or a KeyError listing the names."""
    if name not in PRESETS:
        raise KeyError(f"unknown TiTok preset {name!r}; presets: {', '.join(PRESETS)}")
    p = PRESETS[name]
    return replace(p, config=TiTokConfig.from_dict(p.config.to_dict()))
