"""The attribute oracle: degradations, scoring, the shipped model, the trainer."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from probe import zoo
from probe.data.world import sample
from probe.oracle import (
    OracleConfig,
    WorldOracle,
    circular_error,
    degrade,
    evaluate_oracle,
    score_predictions,
)
from probe.oracle.train import OracleTrainConfig, train_oracle

HELDOUT_SEED = 515151  # neither the training (0) nor the evaluation seed of the shipped run


@pytest.fixture(scope="module")
def oracle():
    return zoo.load("world-oracle", device="cpu")


@pytest.fixture(scope="module")
def heldout():
    return sample(500, seed=HELDOUT_SEED, resolution=32)


def test_circular_error_known_values():
    np.testing.assert_allclose(circular_error([0.95, 0.2, 0.0], [0.05, 0.7, 0.0]), [0.1, 0.5, 0.0], atol=1e-12)


def test_perfect_predictions_score_one():
    _, df = sample(50, seed=1, resolution=8)
    res = score_predictions(df, df, WorldOracle())
    assert np.allclose(res["score"], 1.0)
    assert np.allclose(res["mae"].dropna(), 0.0)
    mean_guess = df.assign(lighting=df["lighting"].mean(), shape="circle")
    res = score_predictions(mean_guess, df, WorldOracle()).set_index("factor")
    assert abs(res.loc["lighting", "score"]) < 1e-9  # R^2 of the mean predictor is 0
    assert res.loc["shape", "score"] == pytest.approx((df["shape"] == "circle").mean())


def test_degrade_is_seeded_bounded_and_blurs():
    images, _ = sample(16, seed=2, resolution=32)
    a = degrade(images, torch.Generator().manual_seed(0))
    b = degrade(images, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == images.shape
    assert a.min() >= 0 and a.max() <= 1 and not torch.equal(a, images)
    from probe.oracle.degrade import DegradeConfig

    only_blur = DegradeConfig(p_blur=1.0, max_blur_px=2.0, p_noise=0, p_colour=0, p_down=0)
    checker = ((torch.arange(32)[:, None] + torch.arange(32)[None]) % 2).float().expand(4, 3, 32, 32)
    blurred = degrade(checker, torch.Generator().manual_seed(1), only_blur)
    assert blurred.var() < 0.5 * checker.var()


def test_zoo_oracle_floors(oracle, heldout):
    images, factors = heldout
    res = evaluate_oracle(oracle, images, factors).set_index("factor")
    assert res.loc["shape", "score"] >= 0.90
    assert res.loc["obj_hue", "colour_accuracy"] >= 0.85
    assert res.loc["lighting", "score"] >= 0.90
    for name in ("obj_x", "obj_y", "obj_scale"):
        assert res.loc[name, "score"] >= 0.80, name


def test_zoo_oracle_on_degraded_dark_and_large_images(oracle, heldout):
    images, factors = heldout
    deg = degrade(images, torch.Generator().manual_seed(3))
    res = evaluate_oracle(oracle, deg, factors).set_index("factor")
    assert res.loc["shape", "score"] >= 0.85
    dark = (factors["lighting"] < 0.45).to_numpy()
    pred = oracle.predict(images[torch.from_numpy(dark.copy())])
    assert (pred["shape"].to_numpy() == factors["shape"].to_numpy()[dark]).mean() >= 0.85
    big, f64 = sample(200, seed=HELDOUT_SEED + 1, resolution=64)  # resized to 32 inside
    assert (oracle.predict(big)["shape"].to_numpy() == f64["shape"].to_numpy()).mean() >= 0.85


def test_oracle_outputs_are_differentiable(oracle):
    images, _ = sample(4, seed=9, resolution=32)
    x = images.clone().requires_grad_(True)
    out = oracle(x)
    assert set(OracleConfig().ranges) <= set(out) and out["obj_hue"].shape == (4,)
    (out["lighting"].sum() + out["shape_logits"][:, 0].sum()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    df = oracle.predict(images)
    assert list(df.columns[:2]) == ["shape", "shape_confidence"] and len(df) == 4


def test_train_oracle_reduces_loss(tmp_path):
    cfg = OracleTrainConfig(steps=25, batch_size=64, lr=3e-3, warmup_steps=2, eval_size=40, eval_every=0,
                            model=OracleConfig(widths=(8, 16), hidden=32).to_dict())
    torch.manual_seed(0)
    _model, hist, evals = train_oracle(cfg, tmp_path, progress_bar=False)
    first, last = hist["loss"].iloc[:5].mean(), hist["loss"].iloc[-5:].mean()
    assert last < 0.8 * first, (first, last)
    assert (tmp_path / "model.safetensors").exists() and "shape" in set(evals["factor"])


@pytest.mark.skipif("world-32" not in zoo.available(), reason="embedded tokenizer world-32 not shipped")
def test_zoo_oracle_reads_world32_reconstructions(oracle):
    import probe
    from probe.oracle.train import reconstruct, tokenizer_world

    tok = probe.load_tokenizer("world-32", device="cpu").eval()
    # images of the world the tokenizer was trained on (a sub-world of the oracle's, see its zoo entry)
    images, factors = sample(300, seed=HELDOUT_SEED, resolution=32, config=tokenizer_world("world-32"))
    res = evaluate_oracle(oracle, reconstruct(tok, images), factors).set_index("factor")
    # on 2000 reconstructions by the shipped world-32 (analyses/world_oracle/README.md): lighting R^2 0.990,
    # obj_hue 0.989, bg_hue 0.986, bg_blur 0.861
    assert res.loc["lighting", "score"] >= 0.90
    assert res.loc["obj_hue", "score"] >= 0.85
    assert res.loc["bg_hue", "score"] >= 0.90
    assert res.loc["bg_blur", "score"] >= 0.6  # world-32 reconstructs the stripes, so their blur is readable


def test_tokenizer_world_reads_the_shipped_overrides():
    from probe.oracle.train import tokenizer_world

    assert tokenizer_world(None) is None and tokenizer_world("no-such-model") is None
    if "world-32" not in zoo.available():
        pytest.skip("world-32 not shipped")
    overrides = zoo.config("world-32").get("world_overrides") or {}
    cfg = tokenizer_world("world-32")
    if not overrides:
        assert cfg is None
    else:  # the oracle then reconstructs images of that world, with the default world's factors
        for key, value in overrides.items():
            assert getattr(cfg, key) == (tuple(value) if isinstance(value, list) else value), key
