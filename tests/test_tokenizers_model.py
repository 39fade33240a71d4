"""Behaviour of the TiTok model on small random-weight configs: the Tokenizer interface, the
straight-through gradient, the legacy reshape and the MaskGIT nin_shortcut quirk."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

import probe
from probe.tokenizers import PRESETS, TiTok, TiTokConfig, build_tokenizer
from probe.tokenizers.maskgit import ResnetBlock
from probe.tokenizers.base import Encoded, Tokenizer

VAE_TINY = replace(PRESETS["titok-tiny"].config, quantize_mode="vae", codebook_size=0, use_l2_norm=False)
VQ_TINY_NO_L2 = replace(PRESETS["titok-tiny"].config, use_l2_norm=False)


def _images(n: int = 2, size: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module", params=["titok-tiny", "titok-tiny-legacy"])
def vq_model(request: pytest.FixtureRequest) -> TiTok:
    torch.manual_seed(0)
    return probe.load_tokenizer(request.param, random_init=True, device="cpu")


def test_encode_shapes_and_interface(vq_model: TiTok) -> None:
    assert isinstance(vq_model, Tokenizer)
    x = _images()
    enc = vq_model.encode(x)
    assert isinstance(enc, Encoded)
    n, c = vq_model.num_tokens, vq_model.token_dim
    assert enc.indices.shape == (2, n) and enc.indices.dtype == torch.int64
    assert enc.features.shape == (2, n, c) and enc.quantized.shape == (2, n, c)
    assert int(enc.indices.min()) >= 0 and int(enc.indices.max()) < vq_model.codebook_size
    book = vq_model.codebook
    assert book.shape == (vq_model.codebook_size, c)
    # legacy-style L2 quantizer: unit-norm codes, and quantized == the chosen (normalized) codes
    torch.testing.assert_close(book.norm(dim=-1), torch.ones(book.shape[0]))
    torch.testing.assert_close(enc.quantized, book[enc.indices])
    # the chosen code is the nearest (cosine) to the normalized feature
    sims = F.normalize(enc.features, dim=-1) @ book.t()
    assert torch.equal(sims.argmax(-1), enc.indices)
    out = vq_model.decode_indices(enc.indices)
    assert out.shape == (2, 3, vq_model.image_size, vq_model.image_size)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_decode_indices_equals_decoding_quantized_and_features(vq_model: TiTok) -> None:
    x = _images()
    enc = vq_model.encode(x)
    a = vq_model.decode_indices(enc.indices)
    with torch.no_grad():
        b = vq_model.decode(vq_model.codebook[enc.indices])
        c = vq_model.decode(vq_model.quantize(enc.features)[0])
        d = vq_model.decode(enc.quantized)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    # the straight-through sum z + (q - z) rounds q at float precision: equal up to ~1e-5
    torch.testing.assert_close(a, c, rtol=0, atol=1e-4)
    torch.testing.assert_close(a, d, rtol=0, atol=1e-4)
    # encoding is deterministic and batch-independent
    single = vq_model.encode(x[1:])
    assert torch.equal(single.indices[0], enc.indices[1])


def test_encode_rejects_wrong_size(vq_model: TiTok) -> None:
    with pytest.raises(ValueError, match=r"\[B, 3, 64, 64\]"):
        vq_model.encode(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="indices must lie in"):
        vq_model.decode_indices(torch.full((1, vq_model.num_tokens), vq_model.codebook_size))


def test_straight_through_gradient_reaches_features() -> None:
    model = build_tokenizer(VQ_TINY_NO_L2, seed=1)
    enc = model.encode(_images(seed=3))
    feats = enc.features.clone().requires_grad_(True)
    target = _images(seed=4)
    F.mse_loss(model.decode(model.quantize(feats)[0]), target).backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0
    # straight-through: the gradient w.r.t. the features is the gradient w.r.t. the codes
    q = enc.quantized.clone().requires_grad_(True)
    F.mse_loss(model.decode(q), target).backward()
    torch.testing.assert_close(feats.grad, q.grad)


def test_straight_through_gradient_with_l2_norm(vq_model: TiTok) -> None:
    feats = vq_model.encode(_images()).features.clone().requires_grad_(True)
    vq_model.decode(vq_model.quantize(feats)[0]).square().mean().backward()
    assert feats.grad is not None and torch.isfinite(feats.grad).all() and feats.grad.abs().sum() > 0


def test_encode_with_grad_reaches_images() -> None:
    model = build_tokenizer("titok-tiny", seed=0)
    x = _images().requires_grad_(True)
    enc = model.encode(x, grad=True)
    enc.features.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_vae_variant_is_continuous() -> None:
    model = build_tokenizer(VAE_TINY, seed=0)
    assert model.encoder.conv_out.out_channels == 2 * VAE_TINY.token_size  # mean and log-variance
    assert model.codebook_size == 0 and model.codebook.shape == (0, VAE_TINY.token_size)
    x = _images()
    enc = model.encode(x)
    assert enc.indices is None
    assert torch.equal(enc.features, enc.quantized)
    # features are the posterior mean: the first C channels of conv_out
    captured: dict[str, torch.Tensor] = {}
    model.encoder.ln_post.register_forward_hook(lambda m, i, o: captured.__setitem__("lat", o.detach()))
    again = model.encode(x)
    with torch.no_grad():
        w = model.encoder.conv_out.weight.flatten(1)
        moments = captured["lat"] @ w.t() + model.encoder.conv_out.bias
    torch.testing.assert_close(enc.features, moments[..., : VAE_TINY.token_size])
    # the mean, not a sample: encoding twice gives the same tokens, and quantize is the identity
    assert torch.equal(again.features, enc.features)
    q, idx = model.quantize(enc.features)
    assert idx is None and torch.equal(q, enc.features)
    # decode of the mean: an image per row, each row from its own tokens only, differentiable in the tokens
    out = model.decode(enc.quantized)
    assert out.shape == x.shape and float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    torch.testing.assert_close(model.decode(enc.quantized[1:]), out[1:])
    q = enc.quantized.clone().requires_grad_(True)
    model.decode(q, clamp=False)[0].sum().backward()
    assert float(q.grad[0].abs().sum()) > 0.0 and float(q.grad[1:].abs().sum()) == 0.0
    with pytest.raises(TypeError, match="continuous"):
        model.decode_indices(torch.zeros(1, model.num_tokens, dtype=torch.long))


def _legacy_reference(lat: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The reference's legacy projection, literally: view [B, N, W] as [B, W, N, 1], 1x1 conv."""
    b, n, w = lat.shape
    return F.conv2d(lat.reshape(b, w, n, 1), weight, bias).reshape(b, -1, n).transpose(1, 2)


def test_legacy_reshape_without_permute() -> None:
    model = build_tokenizer("titok-tiny-legacy", seed=0)
    enc = model.encoder
    assert enc.is_legacy
    b, n, w = 2, model.num_tokens, model.config.enc_width
    lat = torch.randn(b, n, w, generator=torch.Generator().manual_seed(0))
    out = enc.project_latents(lat)
    torch.testing.assert_close(out, _legacy_reference(lat, enc.conv_out.weight, enc.conv_out.bias))
    # element-wise: token t, channel c sums weight[c, k] * flat[k * N + t] over k (flat = memory order)
    flat = lat.reshape(b, -1)
    t, c = 5, 3
    manual = sum(enc.conv_out.weight[c, k, 0, 0] * flat[:, k * n + t] for k in range(w)) + enc.conv_out.bias[c]
    torch.testing.assert_close(out[:, t, c], manual)
    # output token t is built from channels of all N encoder slots (W >= N here) ...
    jac = torch.autograd.functional.jacobian(lambda z: enc.project_latents(z)[0, 7].sum(), lat[:1])
    assert (jac[0].abs().sum(-1) > 0).all()
    # ... while without the quirk (single-stage models) token t sees only slot t
    enc.is_legacy = False
    try:
        jac = torch.autograd.functional.jacobian(lambda z: enc.project_latents(z)[0, 7].sum(), lat[:1])
        used = (jac[0].abs().sum(-1) > 0).nonzero().flatten().tolist()
        assert used == [7]
    finally:
        enc.is_legacy = True


def test_legacy_encoder_forward_uses_the_reshape() -> None:
    model = build_tokenizer("titok-tiny-legacy", seed=0)
    captured: dict[str, torch.Tensor] = {}
    model.encoder.ln_post.register_forward_hook(lambda m, i, o: captured.__setitem__("lat", o.detach()))
    enc = model.encode(_images())
    with torch.no_grad():
        ref = _legacy_reference(captured["lat"], model.encoder.conv_out.weight, model.encoder.conv_out.bias)
    torch.testing.assert_close(enc.features, ref)


def test_nin_shortcut_applies_to_block_output() -> None:
    torch.manual_seed(0)
    blk = ResnetBlock(32, 64).eval()
    assert tuple(blk.nin_shortcut.weight.shape) == (64, 64, 1, 1)  # [out, out]: it cannot take the input
    for p in blk.parameters():
        p.data.add_(0.1 * torch.randn_like(p))
    x = torch.randn(2, 32, 8, 8)
    with torch.no_grad():
        h = blk.conv1(F.silu(blk.norm1(x)))
        h = blk.conv2(F.silu(blk.norm2(h)))
        torch.testing.assert_close(blk(x), h + F.conv2d(h, blk.nin_shortcut.weight))
        # with an identity shortcut the block returns 2 * main path: no trace of the input itself
        blk.nin_shortcut.weight.copy_(torch.eye(64).view(64, 64, 1, 1))
        torch.testing.assert_close(blk(x), 2 * h)
    same = ResnetBlock(32, 32).eval()
    assert not hasattr(same, "nin_shortcut")
    with torch.no_grad():
        h = same.conv2(F.silu(same.norm2(same.conv1(F.silu(same.norm1(x[:, :32]))))))
        torch.testing.assert_close(same(x[:, :32]), h + x[:, :32])


def test_legacy_head_mixes_pixel_codebook() -> None:
    model = build_tokenizer("titok-tiny-legacy", seed=0)
    enc = model.encode(_images())
    with torch.no_grad():
        logits = model.decoder(enc.quantized)
        assert logits.shape == (2, model.config.pixel.codebook_size, model.config.dec_grid, model.config.dec_grid)
        mixed = torch.einsum("bkhw,kd->bdhw", logits.softmax(1), model.pixel_quantize.embedding.weight)
        want = model.pixel_decoder(mixed).clamp(0, 1)
    torch.testing.assert_close(model.decode_indices(enc.indices), want)


def test_seeded_random_init_is_reproducible() -> None:
    a = build_tokenizer("titok-tiny", seed=3)
    b = build_tokenizer("titok-tiny", seed=3)
    c = build_tokenizer("titok-tiny", seed=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["latent_tokens"], sc["latent_tokens"])


def test_config_dict_round_trip() -> None:
    model = build_tokenizer("titok-tiny-legacy")
    again = TiTok.from_config(model.config_dict())
    assert again.config == model.config
    assert TiTokConfig.from_dict(model.config_dict()) == PRESETS["titok-tiny-legacy"].config
