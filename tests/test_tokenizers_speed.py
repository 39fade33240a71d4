"""The fast TiTok paths compute what the plain path computes.

- the fused CPU inference path (oneDNN kernels, channels-last pixel decoder, last block on the
  used rows only) against the plain ATen path (``fused_kernels(False)``) and against an inline
  reference block built on ``nn.MultiheadAttention``, as the official code is;
- the cached channels-last weights follow ``load_state_dict``; the state dict is untouched;
- the opt-in bf16 path agrees with fp32 on most tokens; gradients still flow where asked for.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import probe
from probe.tokenizers import TiTok, build_tokenizer
from probe.tokenizers.blocks import ResidualAttentionBlock, Transformer, fused_kernels, use_fused
from probe.tokenizers.config import PixelDecoderConfig
from probe.tokenizers.maskgit import PixelDecoder


def _images(n: int = 4, size: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module", params=["titok-tiny", "titok-tiny-legacy"])
def model(request: pytest.FixtureRequest) -> TiTok:
    return probe.load_tokenizer(request.param, random_init=True, device="cpu", seed=3)


def _randomize(module: nn.Module, seed: int) -> None:
    """Non-trivial values everywhere (the default init zeroes biases, hiding bias bugs)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.5 / max(1, p.shape[-1]) ** 0.5) + 0.01 * torch.randn(p.shape, generator=g))


def _reference_block(block: ResidualAttentionBlock, x: torch.Tensor) -> torch.Tensor:
    """The official block's computation, on ``nn.MultiheadAttention`` (sequence-first) with the
    block's weights, written out independently of our modules."""
    w = x.shape[-1]
    mha = nn.MultiheadAttention(w, block.attn.heads)
    mha.load_state_dict({"in_proj_weight": block.attn.in_proj_weight, "in_proj_bias": block.attn.in_proj_bias,
                         "out_proj.weight": block.attn.out_proj.weight, "out_proj.bias": block.attn.out_proj.bias})
    mha.eval()
    h = F.layer_norm(x, (w,), block.ln_1.weight, block.ln_1.bias).transpose(0, 1)  # [L, B, W]
    x = x + mha(h, h, h, need_weights=False)[0].transpose(0, 1)
    h = F.layer_norm(x, (w,), block.ln_2.weight, block.ln_2.bias)
    h = F.gelu(F.linear(h, block.mlp.c_fc.weight, block.mlp.c_fc.bias))
    return x + F.linear(h, block.mlp.c_proj.weight, block.mlp.c_proj.bias)


@pytest.mark.parametrize("fused", [True, False])
def test_block_matches_multihead_attention_reference(fused: bool) -> None:
    torch.manual_seed(0)
    block = ResidualAttentionBlock(32, 4).eval()
    _randomize(block, 1)
    x = torch.randn(3, 11, 32)
    with torch.no_grad():
        want = _reference_block(block, x)
        with fused_kernels(fused):
            assert use_fused(x) == (fused and torch.backends.mkldnn.is_available())
            got = block(x)
            rows = block(x, rows=slice(-4, None))  # the last-block shortcut: those rows only
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(rows, want[:, -4:], atol=1e-5, rtol=1e-5)


def test_transformer_rows_are_the_full_outputs_rows() -> None:
    torch.manual_seed(0)
    tr = Transformer(32, 3, 4).eval()
    _randomize(tr, 2)
    x = torch.randn(2, 9, 32)
    with torch.no_grad():
        full = tr(x)
        torch.testing.assert_close(tr(x, rows=slice(1, 5)), full[:, 1:5], atol=1e-5, rtol=1e-5)
    # with autograd (plain path) the same
    torch.testing.assert_close(tr(x, rows=slice(-3, None)).detach(), full[:, -3:], atol=1e-5, rtol=1e-5)


def test_fused_path_matches_plain_path(model: TiTok) -> None:
    x = _images()
    enc = model.encode(x)
    with torch.inference_mode():
        img = model.decode_indices(enc.indices)
        raw = model.decode(enc.quantized, clamp=False)
    with fused_kernels(False):
        enc0 = model.encode(x)
        with torch.inference_mode():
            img0 = model.decode_indices(enc0.indices)
            raw0 = model.decode(enc0.quantized, clamp=False)
    assert torch.equal(enc.indices, enc0.indices)
    torch.testing.assert_close(enc.features, enc0.features, atol=1e-5, rtol=1e-5)
    assert (img - img0).abs().max() <= 1e-4
    assert (raw - raw0).abs().max() <= 1e-4
    assert img.is_contiguous() and raw.is_contiguous()
    # the gradient path (plain) gives the same decode
    out = model.decode(enc.quantized.clone().requires_grad_(True), clamp=False)
    assert (out.detach() - raw0).abs().max() <= 1e-4


def test_pixel_decoder_channels_last_matches_plain() -> None:
    torch.manual_seed(0)
    cfg = PixelDecoderConfig(codebook_size=16, z_channels=32, hidden_channels=32, channel_mult=(1, 2, 2), num_res_blocks=2)
    dec = PixelDecoder(cfg).eval()
    _randomize(dec, 4)
    z = torch.randn(2, 32, 4, 4)
    with torch.no_grad():
        got = dec(z)
        with fused_kernels(False):
            want = dec(z)
    assert got.shape == (2, 3, 16, 16)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_cached_weights_follow_load_state_dict() -> None:
    a = build_tokenizer("titok-tiny-legacy", seed=0)
    b = build_tokenizer("titok-tiny-legacy", seed=1)
    idx = a.encode(_images(2)).indices
    before = a.decode_indices(idx)  # fills the channels-last weight cache of a
    a.load_state_dict(b.state_dict())
    after = a.decode_indices(idx)
    assert not torch.allclose(before, after)
    assert (after - b.decode_indices(idx)).abs().max() <= 1e-5


def test_state_dict_untouched_by_fast_paths(model: TiTok) -> None:
    keys = list(build_tokenizer(model.config).state_dict())
    model.encode(_images(1))
    model.decode_indices(torch.zeros(1, model.num_tokens, dtype=torch.long))
    model.configure_inference(precision="bf16", compile=True)  # compiled lazily: nothing built here
    try:
        assert list(model.state_dict()) == keys
        assert all(not k.startswith("_") for k in keys)
    finally:
        model.configure_inference()


def test_bf16_agrees_with_fp32_on_tokens(model: TiTok) -> None:
    x = _images(16, seed=5)
    enc = model.encode(x)
    model.configure_inference(precision="bf16")
    try:
        enc16 = model.encode(x)
        img16 = model.decode_indices(enc.indices)
    finally:
        model.configure_inference()
    assert enc16.features.dtype == torch.float32 and img16.dtype == torch.float32
    assert (enc16.indices == enc.indices).float().mean() >= 0.98
    assert (enc16.features - enc.features).abs().max() < 0.05
    assert not torch.equal(enc16.features, enc.features)  # it did run in bf16


def test_grad_paths_still_differentiable(model: TiTok) -> None:
    x = _images(2).requires_grad_(True)
    enc = model.encode(x, grad=True)
    enc.features.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    q = model.encode(_images(2)).quantized.requires_grad_(True)
    model.decode(q, clamp=False).square().mean().backward()
    assert q.grad is not None and q.grad.abs().sum() > 0


def test_configure_inference_checks_precision(model: TiTok) -> None:
    with pytest.raises(ValueError, match="precision"):
        model.configure_inference(precision="fp8")
    assert model.configure_inference() is model and model.precision == "fp32"


def test_load_tokenizer_sets_the_inference_path() -> None:
    tok = probe.load_tokenizer("titok-tiny", random_init=True, device="cpu", precision="bf16")
    assert tok.precision == "bf16"
    assert probe.load_tokenizer("titok-tiny", random_init=True, device="cpu").precision == "fp32"
    with pytest.raises(ValueError, match="precision"):
        probe.load_tokenizer("titok-tiny", random_init=True, device="cpu", precision="int8")
