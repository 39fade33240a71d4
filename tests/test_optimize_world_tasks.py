"""The optimization tasks do their job on the embedded default (world-32, world-clip, world-oracle).

The world-oracle is the judge: a different model from the CLIP that is optimized, trained on labels.
Each test asserts a direction with a margin that any reasonably trained set of shipped models meets
(and that an optimizer doing nothing, or random tokens, would not), not today's numbers.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from probe.optimize import OptimizeConfig


@pytest.fixture(scope="module")
def models():
    from probe import zoo
    from probe.optimize import load_clip

    torch.manual_seed(0)
    return zoo.load("world-32", device="cpu"), load_clip("world-clip", device="cpu"), zoo.load("world-oracle", device="cpu")


def _hue_distance(vec: torch.Tensor, hue: float) -> np.ndarray:
    """Circular distance (fraction of a turn) of unit vectors ``[B, 2]`` to ``hue``."""
    h = np.mod(np.arctan2(vec[:, 1].numpy(), vec[:, 0].numpy()) / (2 * np.pi), 1.0)
    d = np.abs(h - hue)
    return np.minimum(d, 1 - d)


def test_generation_raises_the_oracle_probability_of_the_prompt_over_its_seed(models) -> None:
    from probe.data.world import sample
    from probe.optimize.tasks import GENERATE_DEFAULTS, generate
    from probe.worlds.attribute import OraclePromptScore

    tok, clip, oracle = models
    prompts = ["a photo of a red star.", "a photo of a blue circle.", "a photo of a green triangle.",
               "a photo of a yellow square."]
    seeds, _ = sample(16, seed=9_000_001, resolution=32)
    cfg = OptimizeConfig(**{**GENERATE_DEFAULTS.to_dict(), "iterations": 40, "progress": False})
    res = generate(tok, prompts, 2, clip=clip, seed_images=seeds, init="random", config=cfg)
    rows = [p for p in prompts for _ in range(2)]
    score = OraclePromptScore(oracle, rows)
    before, after = score(res.seed_images), score(res.images)
    assert float(after.mean() - before.mean()) > 0.15
    assert (after > before).float().mean() >= 0.75


def test_an_edit_towards_blue_moves_the_object_hue_towards_blue(models) -> None:
    """Towards blue on average, and by a clear step on at least half of the images (a local optimizer
    may not carry a yellow object half-way round the hue circle; it must not go the other way on average)."""
    from probe.data.world import sample
    from probe.measure import get_measurer
    from probe.optimize.tasks import edit

    tok, clip, oracle = models
    images, f = sample(6, seed=9_000_002, resolution=32)
    prompts = [f"a photo of a blue {s}." for s in f["shape"]]  # the image's own shape: only the colour asks to move
    res = edit(tok, images, prompts, clip=clip, n_views=4, pad=3,
               config=OptimizeConfig(iterations=40, lr=0.1, ema_decay=0.9, progress=False))
    hue = get_measurer("oracle:obj_hue", oracle=oracle)
    blue = 4 / 6  # COLOUR_NAMES.index("blue") / 6
    with torch.no_grad():
        d0, d1 = _hue_distance(hue(res.seed_images), blue), _hue_distance(hue(res.images), blue)
    assert float((d0 - d1).mean()) > 0.05
    assert (d0 - d1 > 0.05).mean() >= 0.5


def test_inpainting_beats_decoding_the_masked_image_on_the_hole(models) -> None:
    """A background hole (the corner away from the object: what is hidden can be inferred from what is
    not) is filled better by optimizing the tokens for the known pixels than by decoding the masked image."""
    from probe.data.world import sample
    from probe.optimize.tasks import box_known, inpaint, masked_images

    tok, _, _ = models
    images, f = sample(4, seed=9_000_003, resolution=32)
    side = 0.34
    x0 = np.where(f.obj_x > 0.5, 0.02, 0.98 - side)
    y0 = np.where(f.obj_y > 0.5, 0.02, 0.98 - side)
    known = box_known(32, torch.tensor(np.stack([x0, y0, x0 + side, y0 + side], 1), dtype=torch.float32))
    hole = 1 - known
    with torch.no_grad():
        masked = tok.decode(tok.encode(masked_images(images, known)).quantized)
    res = inpaint(tok, images, known, reset_every=20, config=OptimizeConfig(iterations=60, lr=0.05, progress=False))

    def hole_mse(x: torch.Tensor) -> torch.Tensor:  # [B]
        return ((x - images).pow(2) * hole).flatten(1).sum(1) / hole.expand_as(images).flatten(1).sum(1)

    gain_db = 10 * torch.log10(hole_mse(masked) / hole_mse(res.images))
    assert (gain_db > 0).all()
    assert float(gain_db.mean()) > 3.0


def test_a_position_edit_keeps_other_tokens_and_moves_its_attribute(models) -> None:
    from probe import zoo
    from probe.data.world import sample
    from probe.measure import get_measurer, oracle_measurers
    from probe.optimize.tasks import position_edit
    from probe.swap import top_positions

    tok, _, oracle = models
    images, _ = sample(2, seed=9_000_004, resolution=32)
    positions = top_positions(zoo.config("world-32")["declared_semantics"], "lighting", 1)
    lighting = get_measurer("oracle:lighting", oracle=oracle)
    with torch.no_grad():
        before = lighting(tok.decode(tok.encode(images).quantized))
    target = torch.where(before < 0.6, 0.9, 0.35)  # the far end of the range
    others = {k: v for k, v in oracle_measurers(oracle).items() if k != "lighting"}
    res, drift = position_edit(tok, images, "lighting", target, measurer=lighting, positions=positions, others=others)
    seed_idx = tok.encode(images).indices
    keep = [p for p in range(tok.num_tokens) if p not in positions]
    assert torch.equal(res.indices[:, keep], seed_idx[:, keep])  # every other token, bitwise
    light = drift[drift.attribute == "lighting"].sort_values("row")
    gap0 = (torch.tensor(light.before.to_numpy()) - target).abs()
    gap1 = (torch.tensor(light.after.to_numpy()) - target).abs()
    assert (gap1 < 0.67 * gap0).all()  # closes at least a third of the gap on every image
