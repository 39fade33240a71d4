"""The loop against an independent re-implementation of the authors' update rules (token-opt,
``tto/test_time_opt.py`` and ``tto/ema.py``), option by option, step by step.

``reference_loop`` below is written from the published algorithm, not from tokenprobe's loop:

- the optimized tensor is the encoder output (or, with ``optimize_post_quantization_tokens``, its
  quantization, decoded without quantizing again); Adam (lr, default betas) on the summed loss;
- token noise ``token_noise * 0.5 (1 + cos(pi min(1, 1.5 i / (num_iter - 1))))`` times a standard
  normal draw is added in place to the optimized tensor before each forward pass;
- the regularizer ``reg_weight * mean((z - z_0)^2)`` (``reg_type="seed"``) or ``mean(z^2)``
  (``"zero"``) per row;
- after the optimizer step, a token reset callback may overwrite the tensor (Adam's state goes on);
- an EMA "shadow" initialised to the starting tensor is updated after every step with the decay of
  diffusers-style ``get_decay``: ``s = k - 1`` for the k-th update, 0 when ``s <= 0``, else the warmup
  ``(1 + s) / (10 + s)`` capped at ``decay`` and floored at ``min_decay`` (= ``decay`` in the loop),
  as ``shadow -= (1 - decay) (shadow - z)``; the result decodes the shadow, clamped to [0, 1].

Noise draws are aligned: both sides draw each row's noise from a generator seeded ``seed + row``
(the reference uses torch's global generator; tokenprobe's per-row generators are a documented
difference in how the draws are made, not in the update rule).
"""
from __future__ import annotations

import math

import pytest
import torch
from test_optimize_toy import ToyTokenizer, quadrant_images

from probe.optimize import Lambda, OptimizeConfig, optimize
from probe.optimize.loop import ema_decay_at
from probe.tokenizers.world import WorldTokenizer, WorldTokenizerConfig


def reference_decay(k: int, decay: float, min_decay: float) -> float:
    s = max(0, k - 1)
    if s <= 0:
        return 0.0
    return max(min((1 + s) / (10 + s), decay), min_decay)


def reference_loop(tok, objective, seed_features, *, num_iter, lr=0.1, ema_decay=0.0, token_noise=None,
                   reg_weight=None, reg_type=None, post_quant=False, reset=None, noise_seed=0):
    """-> (final clamped images, tokens after each step (before any reset), losses per step [num_iter, B], final shadow)."""
    b = seed_features.shape[0]
    gens = [torch.Generator().manual_seed(noise_seed + r) for r in range(b)]

    def to_opt_space(features):
        return tok.quantize(features)[0].detach() if post_quant else features

    def dec(t):
        return tok.decode(t if post_quant else tok.quantize(t)[0], clamp=False)

    z = to_opt_space(seed_features.detach().clone().float()).clone().requires_grad_(True)
    adam = torch.optim.Adam([z], lr=lr)
    shadow = z.detach().clone()
    z0 = z.detach().clone()
    trace, losses = [], []
    for i in range(num_iter):
        if token_noise is not None:
            t = min(1.0, max(0.0, 1.5 * i / (num_iter - 1)))
            draw = torch.stack([torch.randn(z.shape[1:], generator=g) for g in gens])
            with torch.no_grad():
                z.add_(token_noise * 0.5 * (1 + math.cos(math.pi * t)) * draw)
        img = dec(z)
        loss = objective(img)
        reg = 0
        if reg_weight is not None:
            ref = z0 if reg_type == "seed" else torch.zeros_like(z0)
            reg = reg_weight * ((z - ref) ** 2).mean(dim=(1, 2))
        torch.sum(loss + reg).backward()
        adam.step()
        adam.zero_grad()
        trace.append(z.detach().clone())
        losses.append(loss.detach().clone())
        if reset is not None:
            new = reset(i, img.detach())
            if new is not None:
                with torch.no_grad():
                    z.copy_(to_opt_space(new))
        d = reference_decay(i + 1, ema_decay, ema_decay)
        shadow.sub_((1 - d) * (shadow - z.detach()))
    with torch.no_grad():
        return dec(shadow).clamp(0, 1), trace, torch.stack(losses), shadow


# ---------------------------------------------------------------------------------------- setups
def _toy():
    tok = ToyTokenizer(discrete=True, blur=0.15)
    g = torch.Generator().manual_seed(0)
    seed = torch.rand(3, 4, 3, generator=g)
    target = quadrant_images(torch.rand(3, 4, 3, generator=g))
    return tok, seed, target


def _tiny_world():
    torch.manual_seed(0)
    cfg = WorldTokenizerConfig(image_size=16, patch_size=4, dec_patch_size=4, width=32, enc_depth=1, dec_depth=1,
                               heads=2, num_tokens=6, token_dim=4, codebook_size=16)
    tok = WorldTokenizer(cfg).eval()
    for p in tok.parameters():
        p.requires_grad_(False)
    g = torch.Generator().manual_seed(1)
    images = torch.rand(3, 3, 16, 16, generator=g)
    with torch.no_grad():
        seed = tok.encode(images).features
        target = tok.decode(tok.quantize(torch.randn(3, 6, 4, generator=g))[0])
    return tok, seed, target


SETUPS = {"toy": _toy, "tiny-world": _tiny_world}

OPTIONS = {
    "plain": dict(),
    "ema": dict(ema_decay=0.9),
    "noise": dict(noise=0.3),
    "reg-seed": dict(reg_weight=0.5, reg_target="seed"),
    "reg-zero": dict(reg_weight=0.5, reg_target="zero"),
    "post-quantization": dict(post_quantization=True),
    "reset": dict(),  # with a token reset callback every 3 steps
    "all": dict(ema_decay=0.8, noise=0.2, reg_weight=0.3, reg_target="seed", post_quantization=True),
}


def _reference_kwargs(cfg: OptimizeConfig) -> dict:
    return dict(num_iter=cfg.iterations, lr=cfg.lr, ema_decay=cfg.ema_decay,
                token_noise=cfg.noise if cfg.noise > 0 else None,
                reg_weight=cfg.reg_weight if cfg.reg_weight > 0 else None,
                reg_type=cfg.reg_target if cfg.reg_weight > 0 else None,
                post_quant=cfg.post_quantization, noise_seed=cfg.seed)


@pytest.mark.parametrize("setup", sorted(SETUPS))
@pytest.mark.parametrize("option", list(OPTIONS))
def test_loop_equals_the_reference_step_by_step(setup: str, option: str) -> None:
    tok, seed, target = SETUPS[setup]()

    def mse(x):
        return (x - target).pow(2).flatten(1).mean(1)

    cfg = OptimizeConfig(iterations=12, lr=0.1, seed=4, progress=False, **OPTIONS[option])
    with_reset = option in ("reset", "all")

    def encode_composite(images):  # the reset's re-encoding: left half of the target pasted in
        comp = images.clamp(0, 1).clone()
        comp[..., : comp.shape[-1] // 2] = target[..., : comp.shape[-1] // 2]
        return tok.encode(comp).features.float()

    ours_trace = []

    def our_reset(info):
        ours_trace.append(info.features.clone())
        return encode_composite(info.images) if with_reset and info.step % 3 == 2 else None

    def ref_reset(i, img):
        return encode_composite(img) if with_reset and i % 3 == 2 else None

    ours = optimize(tok, Lambda(mse), seed, config=cfg, reset=our_reset)
    images, trace, losses, shadow = reference_loop(tok, mse, seed, reset=ref_reset, **_reference_kwargs(cfg))
    tol = dict(rtol=1e-5, atol=1e-6)
    for i in range(cfg.iterations):  # the tokens after every step
        torch.testing.assert_close(ours_trace[i], trace[i], **tol, msg=f"tokens differ after step {i}")
    h = ours.history
    got = torch.tensor(h[h.step < cfg.iterations].objective.to_numpy()).view(cfg.iterations, -1)
    torch.testing.assert_close(got, losses.float(), **tol)
    torch.testing.assert_close(ours.features, shadow, **tol)
    torch.testing.assert_close(ours.images, images, **tol)
    if tok.is_discrete:
        assert torch.equal(ours.indices, tok.quantize(shadow)[1])


def test_the_ema_decay_schedule_is_the_references() -> None:
    for d in (0.0, 0.5, 0.9, 0.99):
        for k in range(1, 40):
            assert ema_decay_at(k, d) == pytest.approx(reference_decay(k, d, d))


def test_the_ema_option_changes_the_result_where_the_old_rule_would_not_match() -> None:
    """The check has teeth: an EMA that starts at the seed (the rule before the reference's was
    adopted) differs from the reference on the same run."""
    tok, seed, target = _toy()

    def mse(x):
        return (x - target).pow(2).flatten(1).mean(1)

    cfg = OptimizeConfig(iterations=10, lr=0.1, ema_decay=0.9, progress=False)
    trace = []
    ours = optimize(tok, Lambda(mse), seed, config=cfg, reset=lambda info: trace.append(info.features.clone()))
    seeded = seed.clone().float()
    for t in trace:
        seeded = 0.9 * seeded + 0.1 * t
    assert (ours.features - seeded).abs().max() > 1e-3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="autocast applies on CUDA only")
def test_amp_follows_the_reference_on_cuda() -> None:
    """float16 autocast with a GradScaler (the reference's enable_amp) stays close to the fp32 run."""
    tok, seed, target = _tiny_world()
    tok, seed, target = tok.cuda(), seed.cuda(), target.cuda()

    def mse(x):
        return (x.float() - target).pow(2).flatten(1).mean(1)

    base = optimize(tok, Lambda(mse), seed, config=OptimizeConfig(iterations=12, progress=False))
    for dtype in ("float16", "bfloat16"):
        amp = optimize(tok, Lambda(mse), seed, config=OptimizeConfig(iterations=12, progress=False, amp=True,
                                                                      amp_dtype=dtype))
        assert (amp.images - base.images).abs().mean() < 0.05
