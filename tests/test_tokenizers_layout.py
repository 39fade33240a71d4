"""Every preset has the official TiTok state-dict layout (names and shapes) and parameter total.

The expected layout is written out here from the published architecture (bytedance/1d-tokenizer:
modeling/titok.py, modeling/modules/blocks.py, modeling/modules/maskgit_vqgan.py), independently
of our module code. Models are built on the meta device, so the 641 M model costs nothing.
"""
from __future__ import annotations

import pytest
import torch

from probe.tokenizers import PRESETS, TiTokConfig, build_tokenizer, list_presets
from probe.tokenizers.config import MODEL_SIZES
from probe.tokenizers.loading import infer_titok_config

# Parameter totals. The first three are published (issue 2 / the TiTok paper's models); the
# others were counted from the official code's models built from configs/infer/TiTok/*.yaml.
TOTALS_M = {
    "titok-l32": 641.05,
    "titok-b64": 204.81,
    "titok-s128": 83.67,
    "titok-bl64-vq": 390.02,
    "titok-bl128-vq": 390.18,
    "titok-sl256-vq": 330.26,
    "titok-ll32-vae": 606.88,
    "titok-bl64-vae": 389.42,
    "titok-bl128-vae": 389.58,
}

# (encoder size, decoder size, tokens, kind) of the official models
OFFICIAL = {
    "titok-l32": ("large", "large", 32, "legacy"),
    "titok-b64": ("base", "base", 64, "legacy"),
    "titok-s128": ("small", "small", 128, "legacy"),
    "titok-bl64-vq": ("base", "large", 64, "vq8k"),
    "titok-bl128-vq": ("base", "large", 128, "vq8k"),
    "titok-sl256-vq": ("small", "large", 256, "vq8k"),
    "titok-ll32-vae": ("large", "large", 32, "vae"),
    "titok-bl64-vae": ("base", "large", 64, "vae"),
    "titok-bl128-vae": ("base", "large", 128, "vae"),
}


def _vit(prefix: str, width: int, depth: int) -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {}
    for i in range(depth):
        b = f"{prefix}.transformer.{i}"
        out |= {
            f"{b}.ln_1.weight": (width,), f"{b}.ln_1.bias": (width,),
            f"{b}.attn.in_proj_weight": (3 * width, width), f"{b}.attn.in_proj_bias": (3 * width,),
            f"{b}.attn.out_proj.weight": (width, width), f"{b}.attn.out_proj.bias": (width,),
            f"{b}.ln_2.weight": (width,), f"{b}.ln_2.bias": (width,),
            f"{b}.mlp.c_fc.weight": (4 * width, width), f"{b}.mlp.c_fc.bias": (4 * width,),
            f"{b}.mlp.c_proj.weight": (width, 4 * width), f"{b}.mlp.c_proj.bias": (width,),
        }
    for ln in ("ln_pre", "ln_post"):
        out |= {f"{prefix}.{ln}.weight": (width,), f"{prefix}.{ln}.bias": (width,)}
    return out


def _maskgit_decoder() -> dict[str, tuple[int, ...]]:
    """MaskGIT-VQGAN decoder: z 256, hidden 128, channel_mult (1, 1, 2, 2, 4), 2 res blocks."""
    mult, hc = (1, 1, 2, 2, 4), 128
    out: dict[str, tuple[int, ...]] = {"pixel_decoder.conv_in.weight": (512, 256, 3, 3), "pixel_decoder.conv_in.bias": (512,)}

    def res(p: str, cin: int, cout: int) -> None:
        out.update({f"{p}.norm1.weight": (cin,), f"{p}.norm1.bias": (cin,), f"{p}.conv1.weight": (cout, cin, 3, 3),
                    f"{p}.norm2.weight": (cout,), f"{p}.norm2.bias": (cout,), f"{p}.conv2.weight": (cout, cout, 3, 3)})
        if cin != cout:  # the quirk: a [out, out] 1x1 conv, applied to the block output
            out[f"{p}.nin_shortcut.weight"] = (cout, cout, 1, 1)

    for i in range(2):
        res(f"pixel_decoder.mid.{i}", 512, 512)
    for lvl in range(5):
        cin = hc * (mult[-1] if lvl == 4 else mult[lvl + 1])
        cout = hc * mult[lvl]
        for j in range(2):
            res(f"pixel_decoder.up.{lvl}.block.{j}", cin if j == 0 else cout, cout)
        if lvl != 0:
            out[f"pixel_decoder.up.{lvl}.upsample_conv.weight"] = (cout, cout, 3, 3)
            out[f"pixel_decoder.up.{lvl}.upsample_conv.bias"] = (cout,)
    out |= {"pixel_decoder.norm_out.weight": (128,), "pixel_decoder.norm_out.bias": (128,),
            "pixel_decoder.conv_out.weight": (3, 128, 3, 3), "pixel_decoder.conv_out.bias": (3,)}
    return out


def official_layout(enc: str, dec: str, n: int, kind: str) -> dict[str, tuple[int, ...]]:
    ew, ed, _ = MODEL_SIZES[enc]
    dw, dd, _ = MODEL_SIZES[dec]
    c = {"legacy": 12, "vq8k": 64, "vae": 16}[kind]
    enc_c = 2 * c if kind == "vae" else c
    g2 = 16 * 16  # 256 px, patch 16
    out: dict[str, tuple[int, ...]] = {"latent_tokens": (n, ew)}
    out |= {
        "encoder.patch_embed.weight": (ew, 3, 16, 16), "encoder.patch_embed.bias": (ew,),
        "encoder.class_embedding": (1, ew), "encoder.positional_embedding": (g2 + 1, ew),
        "encoder.latent_token_positional_embedding": (n, ew),
        "encoder.conv_out.weight": (enc_c, ew, 1, 1), "encoder.conv_out.bias": (enc_c,),
    }
    out |= _vit("encoder", ew, ed)
    out |= {
        "decoder.decoder_embed.weight": (dw, c), "decoder.decoder_embed.bias": (dw,),
        "decoder.class_embedding": (1, dw), "decoder.positional_embedding": (g2 + 1, dw),
        "decoder.mask_token": (1, 1, dw), "decoder.latent_token_positional_embedding": (n, dw),
    }
    out |= _vit("decoder", dw, dd)
    if kind == "legacy":
        out |= {"decoder.ffn.0.weight": (2 * dw, dw, 1, 1), "decoder.ffn.0.bias": (2 * dw,),
                "decoder.ffn.2.weight": (1024, 2 * dw, 1, 1), "decoder.ffn.2.bias": (1024,),
                "quantize.embedding.weight": (4096, 12), "pixel_quantize.embedding.weight": (1024, 256)}
        out |= _maskgit_decoder()
    else:
        out |= {"decoder.ffn.0.weight": (16 * 16 * 3, dw, 1, 1), "decoder.ffn.0.bias": (16 * 16 * 3,),
                "decoder.conv_out.weight": (3, 3, 3, 3), "decoder.conv_out.bias": (3,)}
        if kind == "vq8k":
            out["quantize.embedding.weight"] = (8192, 64)
    return out


def _meta(name: str) -> torch.nn.Module:
    with torch.device("meta"):
        return build_tokenizer(name, device=None)


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_preset_state_dict_matches_official_layout(name: str) -> None:
    model = _meta(name)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    want = official_layout(*OFFICIAL[name])
    assert sorted(set(want) - set(got)) == []
    assert sorted(set(got) - set(want)) == []
    assert {k: v for k, v in got.items() if v != want[k]} == {}
    total = sum(p.numel() for p in model.parameters())
    assert round(total / 1e6, 2) == TOTALS_M[name]


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_config_inferred_from_official_weights_equals_preset(name: str) -> None:
    state = _meta(name).state_dict()
    assert infer_titok_config(state) == PRESETS[name].config


def test_presets_listed_with_hub_ids() -> None:
    names = list_presets()
    for n in [*OFFICIAL, "titok-tiny", "titok-tiny-legacy"]:
        assert n in names
    assert PRESETS["titok-l32"].hub_id == "yucornetto/tokenizer_titok_l32_imagenet"
    assert PRESETS["titok-sl256-vq"].hub_id == "yucornetto/tokenizer_titok_sl256_vq8k_imagenet"
    assert PRESETS["titok-bl64-vae"].hub_id == "yucornetto/tokenizer_titok_bl64_vae_c16_imagenet"
    assert PRESETS["titok-tiny"].hub_id is None


def test_hub_config_defaults_to_legacy_two_stage_vq() -> None:
    # the L-32 hub config.json has no finetune_decoder / is_legacy / quantize_mode
    hub = {
        "experiment": {"tokenizer_checkpoint": "tokenizer_titok_l32.bin"},
        "model": {"vq_model": {"codebook_size": 4096, "token_size": 12, "use_l2_norm": True,
                               "commitment_cost": 0.25, "vit_enc_model_size": "large",
                               "vit_dec_model_size": "large", "vit_enc_patch_size": 16,
                               "vit_dec_patch_size": 16, "num_latent_tokens": 32}},
        "dataset": {"preprocessing": {"crop_size": 256}},
    }
    cfg = TiTokConfig.from_official(hub)
    assert (cfg.finetune_decoder, cfg.is_legacy, cfg.quantize_mode) == (True, True, "vq")
    assert cfg == PRESETS["titok-l32"].config


def test_bad_config_fields_are_named() -> None:
    with pytest.raises(ValueError, match="num_tokens"):
        TiTokConfig.from_dict({"num_tokens": 8})
    with pytest.raises(ValueError, match="vit_enc_model_size"):
        TiTokConfig.from_official({"model": {"vq_model": {"vit_enc_model_size": "huge", "num_latent_tokens": 8, "token_size": 4}}})
    with pytest.raises(ValueError, match="quantize_mode"):
        TiTokConfig(quantize_mode="fsq")
