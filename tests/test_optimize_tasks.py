"""Tasks on the hand-built tokenizer: token reset, inpainting, position-restricted edits, run output
(copy-paste and the position lookup are tested in test_swap_movement.py)."""
from __future__ import annotations

import pandas as pd
import pytest
import torch
from test_optimize_toy import ToyTokenizer, quadrant_images

from probe.optimize import OptimizeConfig, StepInfo
from probe.optimize.tasks import (
    TokenReset,
    attribute_drift,
    inpaint,
    masked_images,
    paste_known,
    position_edit,
    write_run,
)


def _cfg(**kw) -> OptimizeConfig:
    base = dict(iterations=60, lr=0.05, progress=False, milestones=3)
    base.update(kw)
    return OptimizeConfig(**base)


def _scene(b: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    target = quadrant_images(torch.rand(b, 4, 3, generator=g))
    known = torch.ones(b, 1, 8, 8)
    known[:, :, :4, 4:] = 0  # the top-right quadrant (token 1) is the hole
    return target, known


def test_token_reset_restores_the_known_pixels() -> None:
    tok = ToyTokenizer(discrete=False)
    target, known = _scene()
    decoded = torch.rand(2, 3, 8, 8) * 1.4 - 0.2  # raw decoder output, out of range on purpose
    reset = TokenReset(tok, target, known, every=3)
    assert reset(StepInfo(0, torch.zeros(2, 4, 3), decoded, torch.zeros(2))) is None  # not a reset step
    new = reset(StepInfo(2, torch.zeros(2, 4, 3), decoded, torch.zeros(2)))
    comp = reset.last
    k = known.expand_as(comp).bool()
    assert torch.equal(comp[k], target[k])  # the known pixels are pasted back exactly
    assert torch.equal(comp[~k], decoded.clamp(0, 1)[~k])  # the hole keeps the decoded pixels
    # re-encoded: the known quadrants decode to the target again (this tokenizer reconstructs them exactly)
    out = tok.decode(new, clamp=False)
    torch.testing.assert_close(out[k], target[k])
    assert torch.equal(paste_known(decoded, target, known), comp)


def test_inpaint_fits_the_known_pixels_and_reset_keeps_them() -> None:
    tok = ToyTokenizer(discrete=False, blur=0.1)
    target, known = _scene()
    seed_img = masked_images(target, known)
    assert torch.equal(seed_img[:, :, :4, 4:], torch.full((2, 3, 4, 4), 0.5))
    for every in (0, 20):
        res = inpaint(tok, target, known, reset_every=every, config=_cfg())
        err = ((res.images - target).abs() * known).sum() / known.expand_as(target).sum()
        h = res.history
        assert err < 0.05
        assert h[h.step == res.steps].loss.mean() < h[h.step == 0].loss.mean()


def _brightness(images: torch.Tensor) -> torch.Tensor:
    return images.mean(dim=(1, 2, 3))


def _left_red(images: torch.Tensor) -> torch.Tensor:
    return images[:, 0, :, :4].mean(dim=(1, 2))


def test_position_edit_moves_only_its_positions_and_reports_drift() -> None:
    tok = ToyTokenizer(discrete=False)
    target, _ = _scene()
    goal = _brightness(target) + 0.1  # reachable through one quadrant
    res, drift = position_edit(tok, target, "brightness", goal, measurer=_brightness, positions=[1],
                               others={"left_red": _left_red}, config=_cfg(iterations=80))
    seed = tok.encode(target).features
    assert torch.equal(res.features[:, [0, 2, 3]], seed[:, [0, 2, 3]])
    assert _brightness(res.images).sub(goal).abs().max() < 0.02
    assert set(drift.attribute) == {"brightness", "left_red"}
    # the left half belongs to tokens 0 and 2, which were frozen: no drift there
    assert drift[drift.attribute == "left_red"].drift.max() < 1e-6
    # the unrestricted edit of all positions moves the left half too
    _, free = position_edit(tok, target, "brightness", goal, measurer=_brightness, others={"left_red": _left_red},
                            config=_cfg(iterations=80))
    assert free[free.attribute == "left_red"].drift.mean() > 0.01


def test_attribute_drift_kinds() -> None:
    a, b = torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2)

    def hue(x):
        ang = 2 * torch.pi * x.mean(dim=(1, 2, 3)) * 0.25
        return torch.stack([torch.cos(ang), torch.sin(ang)], 1)

    def probs(x):
        p = x.mean(dim=(1, 2, 3))
        return torch.stack([1 - p, p], 1)

    hue.kind = "circular"  # what a probe.measure.Measurer declares; [B, 2] defaults to class probabilities

    d = attribute_drift({"hue": hue, "cls": probs}, a, b).set_index("attribute")
    assert d.loc["hue", "drift"] == pytest.approx(0.25)
    assert d.loc["cls", "drift"] == pytest.approx(1.0)


def test_write_run(tmp_path) -> None:
    tok = ToyTokenizer(discrete=True)
    target, known = _scene()
    res = inpaint(tok, target, known, config=_cfg(iterations=10))
    out = write_run(tmp_path / "run", res, inputs=target, settings={"task": "inpaint"}, labels=["a", "b"])
    for name in ("grid.png", "grid.svg", "trajectory.png", "history.csv", "config.json", "images/0001.png"):
        assert (out / name).exists(), name
    h = pd.read_csv(out / "history.csv")
    assert len(h) == 2 * (res.steps + 1)


def test_generate_seed_choices() -> None:
    from probe.optimize import load_clip
    from probe.optimize.tasks import clip_top1, generate

    tok = ToyTokenizer(discrete=True)
    clip = load_clip("world-clip", device="cpu")
    pool = quadrant_images(tok.codes[torch.randint(0, 27, (6, 4), generator=torch.Generator().manual_seed(2))])
    prompts = ["a photo of a red square.", "a photo of a blue star."]
    cfg = _cfg(iterations=2)
    res = generate(tok, prompts, 2, clip=clip, seed_images=pool, init="top1", config=cfg)
    top = clip_top1(clip, pool, prompts)
    want = tok.decode(tok.encode(pool[top.repeat_interleave(2)]).quantized)
    assert torch.equal(res.seed_images, want)  # every sample of a prompt starts from its top-1 image
    res = generate(tok, prompts, 3, clip=clip, init="tokens", config=cfg)
    assert len(res.images) == 6 and res.history.row.nunique() == 6
    with pytest.raises(ValueError, match="needs seed_images"):
        generate(tok, prompts, 1, clip=clip, init="random", config=cfg)
