"""The optimization loop on a hand-built tokenizer: gradients, clamping, frozen positions, EMA, noise,
seeding and batch independence."""
from __future__ import annotations

import math

import pytest
import torch
from test_optimize_toy import ToyTokenizer, quadrant_images

from probe.optimize import (
    Lambda,
    MaskedReconstruction,
    Objective,
    OptimizeConfig,
    noise_scale,
    optimize,
    random_views,
)


def _cfg(**kw) -> OptimizeConfig:
    base = dict(iterations=40, lr=0.05, progress=False, milestones=3, heldout_every=5)
    base.update(kw)
    return OptimizeConfig(**base)


def _targets(b: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 4, 3, generator=g), torch.rand(b, 4, 3, generator=g)


class ViewsMSE(Objective):
    """MSE between random views of the images and the same views of a target (consumes the generators)."""

    name = "views_mse"

    def __init__(self, target: torch.Tensor) -> None:
        self.target = target

    def loss(self, images, *, generators=None):
        both = torch.cat([images, self.target], dim=1)  # the same crop for image and target
        v = random_views(both, 2, 6, generators=generators, pad=1)
        return (v[:, :, :3] - v[:, :, 3:]).pow(2).mean(dim=(0, 2, 3, 4))


def test_loss_falls_and_gradient_passes_the_quantizer() -> None:
    tok = ToyTokenizer(discrete=True)
    seed_cols, target_cols = _targets()
    target_cols = tok.codes[torch.randint(0, 27, (2, 4), generator=torch.Generator().manual_seed(1))]
    target = quadrant_images(target_cols)
    # straight through: the features get a gradient although the forward value is a code
    z = seed_cols.clone().requires_grad_(True)
    q, _ = tok.quantize(z)
    MaskedReconstruction(target, torch.ones(2, 1, 8, 8))(tok.decode(q, clamp=False)).sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    res = optimize(tok, MaskedReconstruction(target, torch.ones(2, 1, 8, 8)), seed_cols, config=_cfg(iterations=60))
    h = res.history
    first = h[h.step == 0].loss.mean()
    last = h[h.step == res.steps].loss.mean()
    assert last < 0.1 * first
    assert torch.equal(res.indices, tok.quantize(target_cols)[1])  # the codes were found
    assert h[h.step == res.steps].changed.sum() > 0


def test_decode_is_not_clamped_inside_the_loop() -> None:
    tok = ToyTokenizer(discrete=False)
    seen = []

    def push_up(images: torch.Tensor) -> torch.Tensor:
        seen.append(float(images.detach().max()))
        return (images - 1.5).pow(2).flatten(1).mean(1)

    seed, _ = _targets(1)
    res = optimize(tok, Lambda(push_up), seed * 0.5, config=_cfg(iterations=60, lr=0.1))
    # a clamped decode would give no gradient past 1 and the raw images would stay <= 1
    assert max(seen) > 1.3
    assert float(res.images.max()) <= 1.0  # the result itself is clamped for display


def test_frozen_positions_stay_bitwise_equal() -> None:
    tok = ToyTokenizer(discrete=False)
    seed, target_cols = _targets(2)
    frozen = torch.tensor([[True, False, True, False], [False, False, False, True]])

    def reset(info):
        return info.features + 0.01 if info.step % 7 == 6 else None

    res = optimize(tok, MaskedReconstruction(quadrant_images(target_cols), torch.ones(2, 1, 8, 8)), seed,
                   config=_cfg(noise=0.3, ema_decay=0.9, reg_weight=0.1), frozen=frozen, reset=reset)
    assert torch.equal(res.features[frozen], seed[frozen])
    assert (res.features[~frozen] != seed[~frozen]).all()
    # one [N] mask for every row
    res = optimize(tok, MaskedReconstruction(quadrant_images(target_cols), torch.ones(2, 1, 8, 8)), seed,
                   config=_cfg(noise=0.3), frozen=torch.tensor([False, True, False, False]))
    assert torch.equal(res.features[:, 1], seed[:, 1])


def test_noise_schedule_formula() -> None:
    n = 601
    assert noise_scale(0, n, 2.0) == pytest.approx(2.0)
    assert noise_scale(200, n, 2.0) == pytest.approx(2.0 * 0.5 * (1 + math.cos(math.pi * 0.5)))  # t = 0.5
    assert noise_scale(100, n, 2.0) == pytest.approx(2.0 * 0.5 * (1 + math.cos(math.pi * 0.25)))
    assert noise_scale(400, n, 2.0) == pytest.approx(0.0, abs=1e-12)  # t reaches 1 at two thirds
    assert noise_scale(600, n, 2.0) == pytest.approx(0.0, abs=1e-12)


def test_noise_and_ema_follow_the_formulas() -> None:
    """With a zero gradient Adam does not move; the features are the seed plus the scheduled noise,
    drawn from the row's generator, and the result is their EMA, which starts at the tokens after the
    first step (decay 0 at the first update, as in the reference): the seed never enters it."""
    tok = ToyTokenizer(discrete=False)
    seed, _ = _targets(2)
    cfg = _cfg(iterations=12, noise=0.2, ema_decay=0.8, seed=5)
    trace = []
    res = optimize(tok, Lambda(lambda x: x.sum(dim=(1, 2, 3)) * 0.0), seed, config=cfg,
                   reset=lambda info: trace.append(info.features.clone()))
    gens = [torch.Generator().manual_seed(5 + b) for b in range(2)]
    z, ema = seed.clone(), None
    for i in range(cfg.iterations):
        z = z + noise_scale(i, cfg.iterations, cfg.noise) * torch.stack([torch.randn(4, 3, generator=g) for g in gens])
        torch.testing.assert_close(trace[i], z)
        ema = z.clone() if ema is None else 0.8 * ema + 0.2 * z
    torch.testing.assert_close(res.features, ema)
    seed_started = seed.clone()
    for t in trace:
        seed_started = 0.8 * seed_started + 0.2 * t
    assert not torch.allclose(res.features, seed_started, atol=1e-4)


def test_same_seed_same_result_and_other_seed_differs() -> None:
    tok = ToyTokenizer(discrete=True, blur=0.1)
    seed, target_cols = _targets(2)
    obj = ViewsMSE(quadrant_images(target_cols))
    cfg = _cfg(noise=0.2, ema_decay=0.5)
    a = optimize(tok, obj, seed, config=cfg)
    b = optimize(tok, obj, seed, config=cfg)
    assert torch.equal(a.features, b.features)
    assert a.history.equals(b.history)
    c = optimize(tok, obj, seed, config=_cfg(noise=0.2, ema_decay=0.5, seed=1))
    assert not torch.equal(a.features, c.features)


def test_a_batch_equals_its_rows_run_one_by_one() -> None:
    tok = ToyTokenizer(discrete=False, blur=0.1)
    seed, target_cols = _targets(3)
    target = quadrant_images(target_cols)
    cfg = _cfg(noise=0.2, ema_decay=0.5, seed=3)
    batch = optimize(tok, ViewsMSE(target), seed, config=cfg)
    for r in range(3):
        one = optimize(tok, ViewsMSE(target[r:r + 1]), seed[r:r + 1], config=cfg, seeds=[3 + r])
        torch.testing.assert_close(one.features[0], batch.features[r], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(torch.tensor(one.history.loss.to_numpy()),
                                   torch.tensor(batch.history[batch.history.row == r].loss.to_numpy()),
                                   rtol=1e-5, atol=1e-7)


def test_history_layout() -> None:
    tok = ToyTokenizer(discrete=True)
    seed, _ = _targets(2)
    res = optimize(tok, Lambda(lambda x: x.sum(dim=(1, 2, 3)) * 0.0), seed, config=_cfg(iterations=7))
    assert res.steps == 7 and res.row_steps.tolist() == [7, 7]
    h = res.history
    assert list(h.columns) == ["step", "row", "loss", "objective", "reg", "heldout", "changed", "noise"]
    assert len(h) == 2 * (res.steps + 1)
    assert [s for s, _ in res.milestones][-1] == res.steps - 1


def test_stopping_rule_stops_each_row_on_its_heldout_score() -> None:
    """Row 0's held-out score stops improving at once, row 1's keeps improving: row 0 stops after
    ``patience`` evaluations and keeps the tokens it had then; row 1 runs to the end, unaffected."""
    tok = ToyTokenizer(discrete=False)
    seed, target_cols = _targets(2)
    obj = MaskedReconstruction(quadrant_images(target_cols), torch.ones(2, 1, 8, 8))
    calls = []

    def score(images):  # row 0: constant; row 1: rises with every evaluation
        calls.append(1)
        return torch.tensor([0.0, float(len(calls))])

    from probe.optimize import HeldOut

    cfg = _cfg(iterations=40, heldout_every=2, early_stop_patience=3, early_stop_min_delta=0.0)
    res = optimize(tok, obj, seed, config=cfg, heldout=HeldOut(score))
    # row 0: best at step 0's evaluation, 3 evaluations (steps 2, 4, 6) without improvement -> stops after step 6
    assert res.row_steps.tolist() == [7, 40]
    free = optimize(tok, obj, seed, config=_cfg(iterations=40))
    torch.testing.assert_close(res.features[1], free.features[1])  # the other row is unaffected
    seven = optimize(tok, obj, seed, config=_cfg(iterations=7))
    torch.testing.assert_close(res.features[0], seven.features[0])  # the stopped row kept its step-7 tokens
    h = res.history
    assert h[(h.row == 0) & (h.step >= 7) & (h.step < 40)].loss.isna().all()
    assert h[(h.row == 1) & (h.step < 40)].loss.notna().all()
    with pytest.raises(ValueError, match="held-out"):
        optimize(tok, obj, seed, config=_cfg(early_stop_patience=2))
