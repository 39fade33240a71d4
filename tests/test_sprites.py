"""The sprites world (probe.data.sprites): seeded Infinite dSprites images, their factors, the analytic readers
of those factors (checked against the known factors), the manifest source with corruptions on top."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pytest.importorskip("idsprites")

from probe.data import sprites as S  # noqa: E402
from probe.worlds import sprites as W  # noqa: E402

CFG = S.SpritesConfig(resolution=32)


@pytest.fixture(scope="module")
def rendered() -> tuple[torch.Tensor, object]:
    return S.sample(300, seed=7, config=CFG)


def _circ_err(a: np.ndarray, b: np.ndarray, period: float) -> np.ndarray:
    return np.abs((a - b + period / 2) % period - period / 2)


def test_sample_is_seeded_chunk_independent_and_in_range(rendered) -> None:
    images, df = rendered
    assert images.shape == (300, 3, 32, 32) and images.dtype == torch.float32
    assert float(images.min()) >= 0 and float(images.max()) <= 1
    again, df2 = S.sample_range(100, 110, seed=7, config=CFG)
    assert torch.equal(again, images[100:110]) and df2.reset_index(drop=True).equals(df.iloc[100:110].reset_index(drop=True))
    other, _ = S.sample(10, seed=8, config=CFG)
    assert not torch.equal(other, images[:10])
    assert set(S.factor_kinds()) == set(df.columns) - {"idx"}
    for name, (kind, _) in S.FACTORS.items():
        if kind == "continuous":
            lo, hi = S.factor_range(name, CFG)
            assert lo <= df[name].min() and df[name].max() <= hi
            assert df[f"{name}_bin"].nunique() == CFG.n_bins
    assert set(df.shape_id) == set(range(CFG.n_shapes))


def test_shape_bank_is_seeded_normalised_and_restores_numpy_state() -> None:
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    bank = S.shape_bank(4, 11, 0.4, 1.5, 0.7)
    assert np.array_equal(np.random.get_state()[1], before)
    assert all(np.array_equal(a, b) for a, b in zip(bank, S.shape_bank.__wrapped__(4, 11, 0.4, 1.5, 0.7)))
    for pts in bank:
        area, centre, m = S._polygon_moments(pts)
        evals, evecs = np.linalg.eigh(m)
        assert area == pytest.approx(0.4, rel=1e-6) and np.abs(centre).max() < 1e-9
        assert abs(evecs[1, 1]) > 0.999  # the major axis (last eigenvector) is vertical
        assert math.sqrt(evals[1] / evals[0]) >= 1.5 and np.sqrt((pts ** 2).sum(0)).max() <= 0.7


def test_sprites_stay_inside_the_canvas(rendered) -> None:
    images, _ = rendered
    border = torch.cat([images[:, :, [0, -1], :].flatten(2), images[:, :, :, [0, -1]].flatten(2)], 2)
    bg = torch.tensor(CFG.background)[None, :, None]
    assert float((border - bg).abs().amax()) < 0.1  # at most a faint anti-aliased touch


def test_readers_recover_the_known_factors(rendered) -> None:
    images, df = rendered
    px, py = W.read_position(images)
    assert np.abs(px.numpy() - df.position_x.values).max() < 0.03  # < 0.5 px at 32 px
    assert np.abs(py.numpy() - df.position_y.values).max() < 0.03
    sc = W.read_scale(images, CFG).numpy()
    assert np.abs(sc - df.scale.values).max() < 0.06 and np.corrcoef(sc, df.scale.values)[0, 1] > 0.998
    hue = W.turns(W.read_color(images)).numpy()
    assert _circ_err(hue, df.color.values, 1.0).max() < 0.01
    ori = W.turns(W.read_orientation(images)).numpy()
    err = 180 * _circ_err(ori, df.orientation.values, 1.0)  # degrees
    assert err.mean() < 2.0 and np.percentile(err, 95) < 5.0
    # the null factor is never rendered: no reader tracks it
    for reading in (px, py, torch.from_numpy(sc)):
        assert abs(np.corrcoef(reading.numpy(), df.null_factor.values)[0, 1]) < 0.2


def test_readers_on_a_known_rectangle() -> None:
    """An axis-aligned 8 x 4 px rectangle drawn by hand: centroid, area and axis are known exactly."""
    img = torch.full((1, 3, 32, 32), 0.5)
    img[0, :, 10:18, 20:24] = torch.tensor([1.0, 0.0, 0.0])[:, None, None]  # rows 10-17, cols 20-23: tall
    px, py = W.read_position(img)
    assert float(px) == pytest.approx((22 / 32 - 0.25) / 0.5, abs=1e-5)
    assert float(py) == pytest.approx((14 / 32 - 0.25) / 0.5, abs=1e-5)
    assert float(W.read_scale(img, CFG)) == pytest.approx(math.sqrt(32 / 0.4) / (0.45 * 32), rel=1e-5)
    assert float(W.turns(W.read_color(img))) == pytest.approx(0.0, abs=1e-6)
    assert float(W.turns(W.read_orientation(img))) == pytest.approx(0.0, abs=1e-5)  # vertical = 0
    wide = img.transpose(2, 3)
    assert float(W.turns(W.read_orientation(wide))) == pytest.approx(0.5, abs=1e-5)  # a quarter turn


def test_readers_follow_one_factor_moved_alone() -> None:
    """Re-render the same images with one factor changed: its reader moves, the others stay."""
    df = S.factors_at(range(40), seed=3, config=CFG)
    base, _ = S.render(df, 32, CFG)
    moved = df.copy()
    moved["position_x"] = np.clip(moved.position_x + 0.2, 0.15, 0.85)
    after, _ = S.render(moved, 32, CFG)
    dx = (W.read_position(after)[0] - W.read_position(base)[0]).numpy()
    assert np.abs(dx - (moved.position_x - df.position_x).values).max() < 0.03
    assert torch.allclose(W.read_position(after)[1], W.read_position(base)[1], atol=0.03)
    assert torch.allclose(W.read_scale(after, CFG), W.read_scale(base, CFG), atol=0.05)


def test_manifest_source_with_corruptions_on_top() -> None:
    from probe.data.dataset import collate_skip_none, dataset_from_manifest
    from probe.data.manifest import load_manifest

    m = load_manifest("sprites")
    assert m.source_type == "sprites" and m.corruption_mode == "all"
    kinds = m.attribute_kinds
    assert kinds["shape_id"] == "categorical" and kinds["orientation"] == "continuous"
    assert {"blur", "brightness", "contrast"} <= set(kinds)
    ds = dataset_from_manifest(m)
    assert ds.resolution == 32 and len(ds) == m.size
    batch = collate_skip_none(ds.__getitems__(list(range(24))))
    clean, df = S.sample(24, seed=m.seed, config=S.SpritesConfig.from_dict(m.source_options["config"]))
    for k, attrs in enumerate(batch.attrs):
        assert attrs["color"] == pytest.approx(df.color[k]) and attrs["shape_id"] == df.shape_id[k]
        same = torch.allclose(batch.images[k], clean[k], atol=1e-6)
        if attrs["blur"] == attrs["brightness"] == attrs["contrast"] == 0:
            assert same
        if attrs["brightness"] > 0 or attrs["contrast"] > 0:  # (blur 1 is 0.14 px at 32 px: nearly a no-op)
            assert not same
    assert len({(a["blur"], a["brightness"], a["contrast"]) for a in batch.attrs}) > 5


def test_manifest_errors_name_the_field(tmp_path) -> None:
    import yaml

    from probe.data.manifest import ManifestError, load_manifest

    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump({"name": "s", "source": {"type": "sprites", "config": {"wobble": 1}}, "size": 4}))
    with pytest.raises(ManifestError, match=r"source\.config.*wobble"):
        load_manifest(p)
    p.write_text(yaml.safe_dump({"name": "s", "source": {"type": "sprites"}}))
    with pytest.raises(ManifestError, match="'size'"):
        load_manifest(p)


def test_missing_idsprites_is_one_clear_line(monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "idsprites", None)
    with pytest.raises(S.SpritesUnavailable, match=r"pip install 'tokenprobe\[sprites\]'"):
        S.shape_bank.__wrapped__(2, 99, 0.4, 1.5, 0.7)


def test_world_bundle_measurers_read_the_factors(rendered) -> None:
    from probe import worlds
    from probe.measure import get_measurer

    world = worlds.get("sprites")
    assert worlds.for_source("sprites") is world and world.circular() == ("color", "orientation")
    assert set(world.measurers) <= set(world.factors) and "shape_id" not in world.measurers
    images, df = rendered
    for name, spec in world.measurers.items():
        m = get_measurer(spec)  # a measurer object is accepted wherever a spec is
        out = m(images)
        if m.kind == "circular":
            assert out.shape == (len(df), 2)
            err = _circ_err(W.turns(out).numpy(), df[name].values, 1.0)
            assert np.median(err) < 0.01, name
        else:
            assert out.shape == (len(df),) and np.corrcoef(out.numpy(), df[name].values)[0, 1] > 0.99, name
    with pytest.raises(ValueError, match="expected images"):
        world.measurers["scale"](images[:, :1])


def test_salience_is_the_sprite_coverage() -> None:
    from probe.training.losses import salience

    df = S.factors_at(range(16), seed=5, config=CFG)
    images, masks = S.render(df, 32, CFG)
    sal = salience(images)
    assert sal.shape == masks.shape and float((sal - masks).abs().max()) < 1e-4
    assert float(salience(torch.full((2, 3, 8, 8), 0.3)).abs().max()) == 0.0  # a flat image has no foreground


def test_tokenizer_trains_on_manifest_images_alone(tmp_path) -> None:
    import json

    from probe.training.tokenizer import TrainConfig, load_data, train

    cfg = TrainConfig.from_dict({
        "model": {"image_size": 32, "width": 32, "enc_depth": 1, "dec_depth": 1, "heads": 2, "num_tokens": 8,
                  "codebook_size": 32},
        "manifest": "sprites", "resolution": 32, "n_train": 96, "n_eval": 16, "batch_size": 16, "steps": 30,
        "lr": 2e-3, "warmup_steps": 5, "vq_warmup": 0.3, "w_salient": 6.0, "eval_every": 10, "log_every": 5,
        "cache_dir": str(tmp_path / "cache")})
    data = load_data(cfg, torch.device("cpu"))
    assert data.train_u8.shape == (96, 3, 32, 32) and data.eval_u8.shape == (16, 3, 32, 32)
    assert data.train_masks is None and data.partner_u8 is None  # images only: no mask, no pair
    assert not torch.equal(data.train_u8[:16], data.eval_u8)  # held out: another seed
    train(cfg, tmp_path / "run", progress_bar=False)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert losses[-1] < 0.5 * losses[0] and "salient" in log[-2]
    record = json.loads((tmp_path / "run" / "model.json").read_text())
    assert record["manifest"] == "sprites" and "world" not in record
    with pytest.raises(ValueError, match="pairs, w_object and world overrides need the attribute world"):
        load_data(TrainConfig.from_dict({**json.loads((tmp_path / "run" / "config.json").read_text()),
                                         "pairs": "ada"}), torch.device("cpu"))


def test_world_masks_are_the_coverage_of_clean_manifest_images() -> None:
    import dataclasses

    from probe import worlds
    from probe.data.manifest import load_manifest

    world = worlds.get("sprites")
    m = load_manifest("sprites")
    assert world.masks(m, np.arange(3), 32) is None  # corrupted images: no exact coverage
    clean = dataclasses.replace(m, corruptions=())
    got = world.masks(clean, np.array([4, 9]), 32)
    images, _, cov = world.sample(10, seed=m.seed, resolution=32, config=S.SpritesConfig.from_dict(
        m.source_options["config"]), return_masks=True)
    assert torch.equal(got, cov[[4, 9]]) and images.shape == (10, 3, 32, 32)
