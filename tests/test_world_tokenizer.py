"""The embedded world tokenizer: shipped weights reconstruct the world, training lowers the loss, twin API."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from probe.measure.fidelity import psnr
from probe.tokenizers.world import WorldTokenizer, WorldTokenizerConfig
from probe.tokenizers.base import Encoded

ZOO = Path(__file__).resolve().parents[1] / "probe" / "zoo"
# Floors sit ~3-4 dB under what the shipped weights score on this very set (35.5 and 38.6 dB; 36.2 and 39.6 dB
# on analyses/world_tokenizer/README.md's 2000 images)
PSNR_FLOOR = {"world-32": 32.0, "world-32-continuous": 35.0}


def _load_shipped(name: str) -> torch.nn.Module:
    """Through the public entry point when it can load zoo names, else straight from the zoo files."""
    if not (ZOO / f"{name}.json").exists():
        pytest.skip(f"{name} is not shipped in {ZOO}")
    from probe import zoo

    return zoo.load(name)


def _world_set(cfg: dict, n: int = 48, seed: int = 424_242) -> torch.Tensor:
    from probe.data import world
    from probe.data.world_cache import world_config

    images, _ = world.sample(n, seed=seed, resolution=cfg["resolution"], config=world_config(cfg.get("world_overrides", {})))
    return images


@pytest.mark.parametrize("name", ["world-32", "world-32-continuous"])
def test_shipped_tokenizer_reconstructs_held_out_world(name: str) -> None:
    cfg = json.loads((ZOO / f"{name}.json").read_text()) if (ZOO / f"{name}.json").exists() else None
    model = _load_shipped(name)
    assert isinstance(model, WorldTokenizer)
    assert cfg["kind"] == "tokenizer" and cfg["architecture"] == "world"
    images = _world_set(cfg)  # a seed never used in training
    with torch.no_grad():
        enc = model.encode(images)
        recon = model.decode(enc.quantized)
    assert recon.shape == images.shape
    value = float(psnr(recon, images).mean())
    assert value > PSNR_FLOOR[name], f"{name}: held-out PSNR {value:.2f} dB under floor {PSNR_FLOOR[name]}"
    # a model that ignores its input would score far lower on mismatched tokens
    with torch.no_grad():
        shuffled = model.decode(enc.quantized.roll(1, 0))
    assert float(psnr(shuffled, images).mean()) < value - 5.0


def test_probe_load_tokenizer_by_name() -> None:
    """world-32 ships with the package: loading it by name must work (a failure here is a failure, not a skip)."""
    import probe

    model = probe.load_tokenizer("world-32")
    assert isinstance(model, WorldTokenizer) and model.num_tokens == 32 and model.is_discrete
    assert not probe.load_tokenizer("world-32-continuous").is_discrete


def test_shipped_vq_indices_round_trip() -> None:
    model = _load_shipped("world-32")
    images = _world_set(json.loads((ZOO / "world-32.json").read_text()), n=8)
    with torch.no_grad():
        enc = model.encode(images)
        assert enc.indices.dtype == torch.int64 and enc.indices.shape == (8, model.num_tokens)
        assert int(enc.indices.max()) < model.codebook_size
        torch.testing.assert_close(model.codebook[enc.indices], enc.quantized)
        torch.testing.assert_close(model.decode_indices(enc.indices), model.decode(enc.quantized))
        torch.testing.assert_close(model.decode(model.quantize(enc.features)[0]), model.decode(enc.quantized))
    cb = model.codebook
    torch.testing.assert_close(cb.norm(dim=-1), torch.ones(cb.shape[0]))


def _tiny(quantize: bool = True) -> WorldTokenizerConfig:
    return WorldTokenizerConfig(image_size=16, patch_size=4, width=32, enc_depth=1, dec_depth=1, heads=2,
                                num_tokens=8, token_dim=6, codebook_size=16, quantize=quantize,
                                stem_channels=8, head_channels=8, refine_channels=8)


def test_continuous_twin_same_api() -> None:
    torch.manual_seed(0)
    model = WorldTokenizer(_tiny(quantize=False)).eval()
    x = torch.rand(3, 3, 16, 16)
    enc = model.encode(x)
    assert enc.indices is None
    assert enc.features.shape == enc.quantized.shape == (3, 8, 6)
    torch.testing.assert_close(enc.features, enc.quantized)
    out = model.decode(model.quantize(enc.features)[0])
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    torch.testing.assert_close(out, model.decode(enc.quantized))
    assert model.codebook.shape == (0, 6) and model.codebook_size == 0
    with pytest.raises(ValueError, match="no codebook"):
        model.decode_indices(torch.zeros(3, 8, dtype=torch.long))


def test_straight_through_gradient_reaches_features() -> None:
    torch.manual_seed(0)
    model = WorldTokenizer(_tiny()).eval()
    feats = model.encode(torch.rand(2, 3, 16, 16)).features.detach().requires_grad_(True)
    model.decode(model.quantize(feats)[0]).sum().backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0


def test_config_round_trip_and_bad_field() -> None:
    model = WorldTokenizer(_tiny())
    clone = WorldTokenizer.from_config(json.loads(json.dumps(model.config_dict())))
    assert clone.config == model.config
    with pytest.raises(ValueError, match="unknown field"):
        WorldTokenizer.from_config({"num_tokenz": 4})
    with pytest.raises(ValueError, match=r"images \[B, 3, 16, 16\]"):
        model.encode(torch.rand(1, 3, 32, 32))


def test_few_training_steps_reduce_loss(tmp_path: Path) -> None:
    from probe.training.tokenizer import TrainConfig, load_trained, train

    cfg = TrainConfig(model={**_tiny().__dict__}, resolution=16, n_train=128, n_eval=16, batch_size=16,
                      steps=40, warmup_steps=5, lr=3e-3, restart_every=10, eval_every=20, log_every=1,
                      cache_dir=str(tmp_path / "cache"))
    train(cfg, tmp_path / "run", resume=False, progress_bar=False)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert len(losses) == 40
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.7 * first, f"loss went {first:.4f} -> {last:.4f}"
    record = json.loads((tmp_path / "run" / "model.json").read_text())
    assert record["kind"] == "tokenizer" and record["architecture"] == "world"
    assert record["training"]["steps"] == 40
    model = load_trained(tmp_path / "run")
    assert model.num_tokens == 8
    # resuming a finished run does no more steps and keeps the weights
    again = train(cfg, tmp_path / "run", resume=True, progress_bar=False)
    for (k, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)


def test_nested_keep_masks_are_prefixes() -> None:
    from probe.training.tokenizer import nested_keep

    gen = torch.Generator().manual_seed(0)
    assert nested_keep(8, 5, 0.0, gen) is None
    keep = nested_keep(2000, 6, 0.5, gen)
    assert keep.shape == (2000, 6) and keep.dtype == torch.bool
    lengths = keep.sum(1)
    # every row is a prefix: ones, then zeros
    assert torch.equal(keep, torch.arange(6)[None, :] < lengths[:, None])
    assert lengths.min() >= 1
    cut = lengths < 6
    # half the rows are cut; a cut row keeps 1..6 tokens uniformly (length 6 also "cut" with prob 1/6)
    assert 0.35 < cut.float().mean() < 0.50


def test_decoder_keep_mask() -> None:
    torch.manual_seed(0)
    model = WorldTokenizer(_tiny()).eval()
    q = model.encode(torch.rand(3, 3, 16, 16)).quantized
    full = model.decode(q)
    torch.testing.assert_close(model.decode(q, keep=torch.ones(3, 8, dtype=torch.bool)), full)
    # a dropped token is invisible: changing it changes nothing
    keep = torch.ones(3, 8, dtype=torch.bool)
    keep[:, 5:] = False
    q2 = q.clone()
    q2[:, 6] = -q2[:, 6]
    torch.testing.assert_close(model.decode(q2, keep=keep), model.decode(q, keep=keep))
    assert not torch.allclose(model.decode(q2), full)
    with pytest.raises(ValueError, match="keep must be"):
        model.decode(q, keep=torch.ones(3, 7, dtype=torch.bool))


def test_ada_average_shares_unchanged_positions() -> None:
    from probe.training.losses import ada_average

    torch.manual_seed(0)
    z1 = torch.nn.functional.normalize(torch.randn(2, 6, 4), dim=-1)
    z2 = z1 + 0.01 * torch.randn(2, 6, 4)
    z2[0, 3] = -z1[0, 3]  # pair 0 changes at position 3 only
    z2[1, 1] = -z1[1, 1]  # pair 1 changes at 1 and, less, at 4
    z2[1, 4] = torch.nn.functional.normalize(z1[1, 4] + torch.randn(4), dim=-1)
    out = ada_average(torch.cat([z1, z2]))
    a1, a2 = out[:2], out[2:]
    torch.testing.assert_close(a1[0, 3], z1[0, 3])
    torch.testing.assert_close(a2[0, 3], z2[0, 3])
    for p in (0, 1, 2, 4, 5):  # shared: both images get the same (normalised mean) token
        torch.testing.assert_close(a1[0, p], a2[0, p])
    # top-1: only the most changed position stays apart
    top1 = ada_average(torch.cat([z1, z2]), topk=1)
    assert not torch.allclose(top1[1, 1], top1[3, 1])
    torch.testing.assert_close(top1[1, 4], top1[3, 4])


def test_swap_pairs_paste_only_the_most_changed_positions() -> None:
    from probe.training.losses import ada_average

    torch.manual_seed(1)
    z1 = torch.nn.functional.normalize(torch.randn(2, 5, 4), dim=-1)
    z2 = z1 + 0.01 * torch.randn(2, 5, 4)
    z2[0, 2] = -z1[0, 2]  # pair 0 changes most at 2, pair 1 at 4
    z2[1, 4] = -z1[1, 4]
    out = ada_average(torch.cat([z1, z2]), topk=1, mode="swap")
    torch.testing.assert_close(out[:2], z1)  # the first images are untouched
    expected = z1.clone()  # the partners are the first images with one token pasted from the partner
    expected[0, 2], expected[1, 4] = z2[0, 2], z2[1, 4]
    torch.testing.assert_close(out[2:], expected)
    # exchange: each image keeps its own most changed token and takes all others from its partner
    ex = ada_average(torch.cat([z1, z2]), topk=1, mode="exchange")
    torch.testing.assert_close(ex[2:], expected)
    first = z2.clone()
    first[0, 2], first[1, 4] = z1[0, 2], z1[1, 4]
    torch.testing.assert_close(ex[:2], first)


def test_render_partners_skip_pinned_columns() -> None:
    from probe.data.world_cache import render_partners, render_world

    world = {"stripe_periods": [4.0, 4.0], "stripe_angle_range": [0.5, 0.5], "stripe_phase_range": [0.0, 0.0]}
    images, factors = render_world(300, seed=4, resolution=16, world=world, cache_dir=None)
    partners, changed = render_partners(factors, seed=4, resolution=16, world=world, cache_dir=None)
    assert not any(c.startswith("stripe_") for c in changed)
    assert {"lighting", "bg_blur", "global_blur", "shape"} <= set(changed)
    # every pair differs (a pinned column would have made identical pairs)
    differ = (partners.int() - images.int()).abs().flatten(1).amax(1) > 0
    assert differ.float().mean() > 0.9


def test_render_partners_change_one_factor(tmp_path: Path) -> None:
    from probe.data.world_cache import PAIR_FACTORS, render_partners, render_world

    images, factors = render_world(400, seed=3, resolution=16, world={}, cache_dir=None)
    partners, changed = render_partners(factors, seed=3, resolution=16, world={}, cache_dir=tmp_path)
    assert partners.shape == images.shape and partners.dtype == torch.uint8
    assert set(changed) <= set(PAIR_FACTORS) and len(set(changed)) >= 10
    # a lighting partner is the same picture under another global gain: the ratio of means is far from 1
    # for most, and a shape partner keeps the background (corners) exactly
    light = [i for i, c in enumerate(changed) if c == "lighting"]
    ratio = partners[light].float().mean((1, 2, 3)) / images[light].float().mean((1, 2, 3))
    assert ((ratio - 1).abs() > 0.05).float().mean() > 0.7
    shape = [i for i, c in enumerate(changed) if c == "shape"]
    torch.testing.assert_close(partners[shape][..., :2, :2], images[shape][..., :2, :2])
    # cached: the second call reads the file and returns the same
    again, changed2 = render_partners(factors, seed=3, resolution=16, world={}, cache_dir=tmp_path)
    assert torch.equal(again, partners) and changed2 == changed


@pytest.mark.parametrize("pairs", ["ada", "swap", "exchange", "hoyer"])
def test_pair_training_runs_and_reduces_loss(tmp_path: Path, pairs: str) -> None:
    from probe.training.tokenizer import TrainConfig, train

    cfg = TrainConfig(model={**_tiny().__dict__}, resolution=16, n_train=128, n_eval=16, batch_size=16,
                      steps=40, warmup_steps=5, lr=3e-3, restart_every=10, eval_every=20, log_every=1,
                      pairs=pairs, pair_weight=0.001, nested_dropout=0.25, cache_dir=str(tmp_path / "cache"))
    train(cfg, tmp_path / "run", resume=False, progress_bar=False)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert len(losses) == 40 and all("pair" in r for r in log if "loss" in r)
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5
    with pytest.raises(ValueError, match="pairs must be"):
        train(TrainConfig(**{**cfg.__dict__, "pairs": "bogus"}), tmp_path / "bad", resume=False, progress_bar=False)


def position_effects(model: torch.nn.Module, world_overrides: dict, factor: str, *, n: int = 1200,
                     seed: int = 777_001, k: int = 150, positions: list[int] | None = None) -> dict[int, float]:
    """Per position (every one, or ``positions``): the engine's transfer of ``factor`` (measured on decoded
    pixels by its default measurer) when that one token is pasted from donors into recipients drawn from the
    factor's opposite quartiles (:func:`probe.swap.sweep`, ``k`` pairs): the protocol of
    analyses/world_tokenizer/localization.py and of the zoo's declared_semantics, on a fresh held-out set."""
    from probe import worlds
    from probe.data.world_cache import world_config
    from probe.measure import measurer_for
    from probe.swap import SwapConfig, SwapData, sweep

    world = worlds.get("attribute")
    wcfg = world_config(world_overrides)
    images, df, masks = world.sample(n, seed=seed, resolution=model.image_size, config=wcfg, return_masks=True)
    data = SwapData.from_images(model, images, df, kinds=world.factors, circular=world.circular(), masks=masks)
    sets = [[p] for p in (range(model.num_tokens) if positions is None else positions)]
    res = sweep(model, data, {factor: measurer_for(factor, world=world)}, sets,
                config=SwapConfig(pairs=k, controls=("none",)), progress=False)
    return {int(p): float(t) for p, t in zip(res.summary["positions"], res.summary["transfer"])}


DECLARED = [(name, factor) for name in ("world-32", "world-32-continuous") if (ZOO / f"{name}.json").exists()
            for factor in json.loads((ZOO / f"{name}.json").read_text()).get("declared_semantics", {})
            if not factor.startswith("_")]


def test_declared_semantics_are_well_formed() -> None:
    """Each shipped world tokenizer declares its single-position factors: positions in range, a floor in (0, 1]."""
    declared = {name: json.loads((ZOO / f"{name}.json").read_text())["declared_semantics"]
                for name in ("world-32", "world-32-continuous") if (ZOO / f"{name}.json").exists()}
    assert declared, "no shipped world tokenizer"
    for name, sem in declared.items():
        n = json.loads((ZOO / f"{name}.json").read_text())["config"]["num_tokens"]
        factors = {k: v for k, v in sem.items() if not k.startswith("_")}
        assert factors, name
        for factor, d in factors.items():
            assert d["positions"] and all(0 <= p < n for p in d["positions"]), (name, factor)
            assert 0.0 < d["floor"] <= 1.0, (name, factor)


@pytest.mark.parametrize(("name", "factor"), DECLARED)
def test_declared_positions_move_their_factor_and_random_positions_do_not(name: str, factor: str) -> None:
    """Consistency of a shipped model with its own zoo entry, not with today's positions: pasting the token at
    each declared position from donors at one end of the factor into recipients at the other transfers at least
    the declared floor of the gap (the engine's protocol, on a fresh held-out set), while randomly drawn other
    positions transfer, on average, less than half the floor."""
    from probe import zoo

    model = _load_shipped(name)
    declared = zoo.config(name)["declared_semantics"][factor]
    floor, positions = float(declared["floor"]), [int(p) for p in declared["positions"]]
    rng = torch.Generator().manual_seed(0)
    others = [p for p in range(model.num_tokens) if p not in positions]
    drawn = [others[int(i)] for i in torch.randperm(len(others), generator=rng)[:6]]
    effects = position_effects(model, zoo.config(name).get("world_overrides", {}), factor,
                               positions=positions + drawn)
    for p in positions:
        assert effects[p] >= floor, f"{name} {factor}: declared position {p} moves {effects[p]:.2f} < floor {floor}"
    mean_drawn = sum(effects[p] for p in drawn) / len(drawn)
    assert mean_drawn < floor / 2, f"{name} {factor}: random positions {drawn} move {mean_drawn:.2f} on average"


def test_training_from_init_weights(tmp_path: Path) -> None:
    from probe.training.tokenizer import TrainConfig, train

    base = dict(model={**_tiny().__dict__}, resolution=16, n_train=128, n_eval=16, batch_size=16, warmup_steps=5,
                lr=3e-3, restart_every=10, eval_every=20, log_every=1, vq_warmup=0.25, cache_dir=str(tmp_path / "c"))
    train(TrainConfig(**base, steps=60), tmp_path / "first", resume=False, progress_bar=False)
    train(TrainConfig(**base, steps=3, init=str(tmp_path / "first")), tmp_path / "second", resume=False,
          progress_bar=False)

    def losses(run: str) -> list[float]:
        lines = (tmp_path / run / "log.jsonl").read_text().splitlines()
        return [json.loads(x)["loss"] for x in lines if '"loss"' in x]

    first, second = losses("first"), losses("second")
    # the second run starts where the first ended (with its codebook: the VQ loss terms are on at step 1)
    assert second[0] < 0.6 * first[0]
    assert abs(second[0] - sum(first[-5:]) / 5) < 0.5 * first[0]
    assert json.loads((tmp_path / "second" / "log.jsonl").read_text().splitlines()[0])["codebook"] > 0
    with pytest.raises(FileNotFoundError, match="TrainConfig.init"):
        train(TrainConfig(**base, steps=1, init="no-such-model"), tmp_path / "bad", resume=False, progress_bar=False)


def test_vq_from_continuous_twin_with_kmeans_codebook(tmp_path: Path) -> None:
    from dataclasses import replace

    from probe.data import world
    from probe.training.tokenizer import TrainConfig, load_trained, train

    base = dict(resolution=16, n_train=128, n_eval=16, batch_size=16, warmup_steps=5, restart_every=0,
                eval_every=20, log_every=1, kmeans_images=128, cache_dir=str(tmp_path / "c"))
    train(TrainConfig(**base, model={**_tiny(quantize=False).__dict__}, steps=40, lr=3e-3), tmp_path / "twin",
          resume=False, progress_bar=False)
    twin = load_trained(tmp_path / "twin")
    vq_model = {**replace(_tiny(), codebook_size=32).__dict__}  # another codebook size than the twin's record
    train(TrainConfig(**base, model=vq_model, steps=1, lr=1e-9, init=str(tmp_path / "twin"), init_kmeans=True),
          tmp_path / "vq", resume=False, progress_bar=False)
    vq = load_trained(tmp_path / "vq")
    x, _ = world.sample(64, seed=5, resolution=16)
    with torch.no_grad():
        feats = twin.encode_features(x).reshape(-1, 6)
        torch.testing.assert_close(vq.encode_features(x).reshape(-1, 6), feats, atol=1e-4, rtol=0)  # same encoder
        fit = (feats @ vq.codebook.T).max(dim=1).values.mean()  # held-out features vs their nearest code
        rand = (feats @ torch.nn.functional.normalize(torch.randn(32, 6), dim=-1).T).max(dim=1).values.mean()
    assert vq.codebook.shape == (32, 6)
    assert fit > 0.9 and fit > rand + 0.05
    with pytest.raises(ValueError, match="init_kmeans"):
        train(TrainConfig(**base, model=vq_model, steps=1, init_kmeans=True), tmp_path / "bad", resume=False,
              progress_bar=False)


def test_object_loss_counts_only_the_object_and_its_rim() -> None:
    from probe.measure.fidelity import object_weight
    from probe.training.losses import object_loss

    masks = torch.zeros(1, 1, 8, 8)
    masks[..., 3:5, 3:5] = 1.0  # a 2x2 object
    w = object_weight(masks)
    assert torch.equal(w[0, 0] > 0, torch.nn.functional.pad(torch.ones(4, 4), (2, 2, 2, 2)) > 0)  # dilated to 4x4
    images = torch.zeros(1, 3, 8, 8)
    far = images.clone()
    far[..., 0, 0] = 1.0  # an error outside the dilated object: not counted
    assert float(object_loss(far, images, masks)) == 0.0
    near = images.clone()
    near[..., 2:6, 2:6] = 0.5  # error 0.5 on every counted pixel: L1 + L2 = 0.5 + 0.25
    assert float(object_loss(near, images, masks)) == pytest.approx(0.75, rel=1e-5)


def test_render_world_masks_are_the_worlds_and_cached_apart(tmp_path: Path) -> None:
    from probe.data import world
    from probe.data.world_cache import render_partners, render_world

    images, factors, masks = render_world(40, seed=5, resolution=16, world={}, cache_dir=tmp_path, masks=True)
    _, _, ref_masks = world.sample(40, seed=5, resolution=16, return_masks=True)
    assert masks.dtype == torch.uint8 and masks.shape == (40, 1, 16, 16)
    assert (masks.float() / 255 - ref_masks).abs().max() <= 0.5 / 255 + 1e-6
    # the plain call reads its own cache entry and gives the same images
    plain, _ = render_world(40, seed=5, resolution=16, world={}, cache_dir=tmp_path)
    assert torch.equal(plain, images)
    _, changed, pmasks = render_partners(factors, seed=5, resolution=16, world={}, cache_dir=tmp_path, masks=True)
    moved = [i for i, c in enumerate(changed) if c in ("obj_x", "obj_y", "obj_scale")]
    kept = [i for i, c in enumerate(changed) if c in ("lighting", "bg_hue", "global_blur")]
    assert moved and kept
    assert torch.equal(pmasks[kept], masks[kept])  # the object did not move
    assert all(not torch.equal(pmasks[i], masks[i]) for i in moved)


def test_object_weighted_training_logs_object_loss_and_psnr(tmp_path: Path) -> None:
    from probe.training.tokenizer import TrainConfig, compute_losses, train

    cfg = TrainConfig(model={**_tiny().__dict__}, resolution=16, n_train=128, n_eval=16, batch_size=16,
                      steps=30, warmup_steps=5, lr=3e-3, eval_every=10, log_every=1, w_object=2.0,
                      pairs="ada", pair_topk=1, cache_dir=str(tmp_path / "cache"))
    train(cfg, tmp_path / "run", resume=False, progress_bar=False)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    objs = [r["object"] for r in log if "object" in r]
    assert len(objs) == 30 and sum(objs[-5:]) < 0.8 * sum(objs[:5])
    assert len([r for r in log if "eval_object_psnr" in r]) >= 3
    # evaluate's object PSNR is the pooled squared error over the dilated object pixels
    from probe.data import world
    from probe.measure.fidelity import object_weight
    from probe.training.tokenizer import evaluate, load_trained

    model = load_trained(tmp_path / "run")
    images, _, masks = world.sample(20, seed=9, resolution=16, return_masks=True)
    u8 = (images * 255).round().to(torch.uint8)
    m8 = (masks * 255).round().to(torch.uint8)
    with torch.no_grad():
        x = u8.float() / 255
        rec = model.decode(model.encode(x).quantized)
    w = object_weight(m8.float() / 255)
    want = -10 * torch.log10(((rec - x) ** 2 * w).sum() / (w.sum() * 3))
    assert evaluate(model, u8, masks=m8)["object_psnr"] == pytest.approx(float(want), abs=1e-3)
    with pytest.raises(ValueError, match="needs the object masks"):
        compute_losses(WorldTokenizer(_tiny()), torch.rand(2, 3, 16, 16), cfg)


def test_oracle_perceptual_distance_orders_degradations_and_stays_frozen() -> None:
    from probe.data import world
    from probe.training.perceptual import OraclePerceptual

    if not (ZOO / "world-oracle.json").exists():
        pytest.skip("world-oracle is not shipped")
    dist = OraclePerceptual.from_zoo("world-oracle")
    images, _ = world.sample(32, seed=77, resolution=32)
    blur1 = torch.nn.functional.avg_pool2d(images, 3, 1, 1, count_include_pad=False)
    blur2 = torch.nn.functional.avg_pool2d(blur1, 3, 1, 1, count_include_pad=False)
    d0, d1, d2 = (float(dist(x, images)) for x in (images, blur1, blur2))
    d_other = float(dist(images.roll(1, 0), images))  # other images altogether
    assert d0 == pytest.approx(0.0, abs=1e-6) and 0 < d1 < d2 < d_other
    dist.train()
    assert not dist.oracle.training  # frozen batch-norm statistics
    rec = blur1.clone().requires_grad_(True)
    dist(rec, images).backward()
    assert rec.grad is not None and float(rec.grad.abs().sum()) > 0
    assert all(p.grad is None for p in dist.oracle.parameters())
    with pytest.raises(ValueError, match="not a world-oracle"):
        OraclePerceptual.from_zoo("world-32")
    from probe.training.tokenizer import TrainConfig, compute_losses

    with pytest.raises(ValueError, match="needs the perceptual network"):
        compute_losses(WorldTokenizer(_tiny()), torch.rand(2, 3, 16, 16), TrainConfig(w_perceptual=1.0))


def test_init_from_a_smaller_codebook_keeps_its_codes() -> None:
    from dataclasses import replace

    from probe.training.tokenizer import _grow_codebook

    small = WorldTokenizer(_tiny())
    big = WorldTokenizer(replace(_tiny(), codebook_size=64))
    weights = _grow_codebook(small.state_dict(), big)
    big.load_state_dict(weights)
    assert big.codes.shape == (64, 6)
    torch.testing.assert_close(big.codes[:16], small.codes)
    # the loaded codes decode as before: same indices, same images
    x = torch.rand(4, 3, 16, 16)
    idx = small.encode(x).indices
    torch.testing.assert_close(big.decode_indices(idx), small.decode_indices(idx))
    # same size: untouched
    assert torch.equal(_grow_codebook(small.state_dict(), small)["codes"], small.codes)


def test_shipped_world32_keeps_the_shape() -> None:
    """Reconstructions are read as the right shape by analysis by synthesis (``probe.data.world.nearest_shape``:
    re-render every shape with the image's other factors, nearest wins; chance 0.25, clean images 1.0). A
    world-32 that draws every object as a blob reads ~0.46 on this set; the shipped one, fine-tuned from its
    continuous twin with a k-means codebook, 0.93 (0.90 on analyses/world_tokenizer/README.md's 2000 images)."""
    from probe.data import world
    from probe.data.world_cache import world_config

    model = _load_shipped("world-32")
    wcfg = world_config(json.loads((ZOO / "world-32.json").read_text()).get("world_overrides", {}))
    images, df = world.sample(300, seed=515_151, resolution=model.image_size, config=wcfg)
    with torch.no_grad():
        recon = model.decode(model.encode(images).quantized)
    accuracy = float((world.nearest_shape(recon, df, wcfg) == df["shape"].to_numpy()).mean())
    assert accuracy >= 0.85, f"shape read from world-32's reconstructions: {accuracy:.2f}"


def test_finer_decoder_grid_and_its_init_from_a_coarse_model() -> None:
    """``dec_patch_size`` < ``patch_size``: more decoder patch queries, same tokens. Initialised from a coarse
    model, the encoder and codebook are the coarse model's (same indices), each fine query starts at its coarse
    parent's query (up to small noise) and only the pixel head is new."""
    from dataclasses import replace

    from probe.training.tokenizer import _refine_decoder_grid

    coarse = WorldTokenizer(replace(_tiny(), patch_size=8)).eval()  # 2x2 decoder queries of 8x8 pixels
    fine = WorldTokenizer(replace(_tiny(), patch_size=8, dec_patch_size=4)).eval()  # 4x4 queries of 4x4 pixels
    assert fine.config.dec_grid == 4 and fine.mask_tokens.shape == (16, fine.config.width)
    fresh_head = fine.to_pixels.weight.detach().clone()
    fine.load_state_dict(_refine_decoder_grid(coarse.state_dict(), fine, torch.Generator().manual_seed(0)))
    x = torch.rand(3, 3, 16, 16)
    assert torch.equal(fine.encode(x).indices, coarse.encode(x).indices)
    assert fine.decode(fine.encode(x).quantized).shape == x.shape
    q_fine, q_coarse = fine.mask_tokens.detach().reshape(4, 4, -1), coarse.mask_tokens.detach().reshape(2, 2, -1)
    for i in range(4):
        for j in range(4):
            parent, other = q_coarse[i // 2, j // 2], q_coarse[1 - i // 2, 1 - j // 2]
            assert (q_fine[i, j] - parent).norm() < 0.5 * (q_fine[i, j] - other).norm()
    assert not torch.equal(q_fine[0, 0], q_fine[0, 1])  # siblings can be told apart
    assert torch.equal(fine.to_pixels.weight, fresh_head)
    # a grid that does not nest, and a bad config, are refused by name
    odd = WorldTokenizer(replace(_tiny(), image_size=24, patch_size=8))  # 3x3 queries from 2x2: no
    with pytest.raises(ValueError, match="cannot be refined"):
        _refine_decoder_grid(WorldTokenizer(replace(_tiny(), image_size=24, patch_size=12)).state_dict(), odd,
                             torch.Generator())
    with pytest.raises(ValueError, match="dec_patch_size=5"):
        WorldTokenizerConfig.from_dict({**_tiny().__dict__, "dec_patch_size": 5})


def test_hinge_losses_known_values() -> None:
    from probe.training.losses import discriminator_hinge_loss, generator_hinge_loss

    ones = torch.ones(2, 1, 4, 4)
    assert float(discriminator_hinge_loss(2 * ones, -2 * ones)) == 0.0  # both beyond the margin
    assert float(discriminator_hinge_loss(0 * ones, 0 * ones)) == 2.0
    assert float(discriminator_hinge_loss(-ones, ones)) == 4.0
    assert float(generator_hinge_loss(torch.tensor([1.0, 3.0]))) == -2.0


def test_patch_discriminator_learns_sharp_from_blurred() -> None:
    """Planted signal: world images against the same images blurred; a short training separates them on
    held-out images (every patch logit is a vote)."""
    import torch.nn.functional as F

    from probe.data import world
    from probe.training.adversarial import PatchDiscriminator
    from probe.training.losses import discriminator_hinge_loss

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)

    torch.manual_seed(0)
    train_x, _ = world.sample(96, seed=11, resolution=16)
    test_x, _ = world.sample(48, seed=12, resolution=16)
    disc = PatchDiscriminator(16)
    assert disc(test_x).shape == (48, 1, 4, 4)
    opt = torch.optim.Adam(disc.parameters(), lr=2e-3, betas=(0.5, 0.9))
    losses = []
    for step in range(60):
        batch = train_x[(step * 32) % 96:][:32]
        loss = discriminator_hinge_loss(disc(batch), disc(blur(batch)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    with torch.no_grad():
        real, fake = disc(test_x).mean((1, 2, 3)), disc(blur(test_x)).mean((1, 2, 3))
    assert float((real > fake).float().mean()) >= 0.9
    assert sum(losses[-5:]) < 0.8 * sum(losses[:5])


def test_adversarial_training_logs_both_losses_and_resumes(tmp_path: Path) -> None:
    from probe.training.tokenizer import TrainConfig, load_checkpoint, train

    base = dict(model={**_tiny().__dict__}, resolution=16, n_train=128, n_eval=16, batch_size=16, warmup_steps=5,
                lr=3e-3, eval_every=10, log_every=1, w_adversarial=0.1, adv_start_step=4, disc_channels=8,
                cache_dir=str(tmp_path / "cache"))
    train(TrainConfig(**base, steps=12), tmp_path / "run", resume=False, progress_bar=False)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    steps = [r for r in log if "disc" in r]
    assert len(steps) == 12
    # the tokenizer sees the adversarial term only from adv_start_step on; the discriminator learns throughout
    assert all(r["adversarial"] == 0.0 for r in steps[:4]) and all(r["adversarial"] != 0.0 for r in steps[4:])
    ck = load_checkpoint(tmp_path / "run" / "last.pt")
    assert "disc" in ck and "disc_optimizer" in ck
    # resuming restores the discriminator, so a longer budget continues it instead of starting it over
    train(TrainConfig(**base, steps=12), tmp_path / "run", resume=True, progress_bar=False)
    again = load_checkpoint(tmp_path / "run" / "last.pt")
    for k, v in ck["disc"].items():
        torch.testing.assert_close(again["disc"][k], v, msg=k)


def test_shape_swap_reads_a_planted_shape_token() -> None:
    """analyses/world_tokenizer/shape_swap.py on a planted model: token 0 holds the whole image (so it carries
    the shape), token 1 nothing. Pasting token 0 must give the donor's shape every time, token 1 never."""
    import sys
    from types import SimpleNamespace

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analyses" / "world_tokenizer"))
    from shape_swap import shape_swap

    class Planted(torch.nn.Module):
        config = SimpleNamespace(image_size=16)
        image_size = 16
        num_tokens = 2

        def encode(self, x: torch.Tensor) -> Encoded:
            q = torch.stack([x.flatten(1), torch.zeros_like(x.flatten(1))], 1)  # [B, 2, 3*16*16]
            return Encoded(indices=None, features=q, quantized=q)

        def decode(self, q: torch.Tensor, *, clamp: bool = True) -> torch.Tensor:
            return q[:, 0].reshape(-1, 3, 16, 16)

    table = shape_swap(Planted(), {}, n=40, seed=3).set_index("position")["fraction"]
    assert table[-1] == 1.0 and table[-2] == 0.0  # ceiling: the donor itself; floor: the recipient itself
    assert table[0] == 1.0 and table[1] == 0.0


def test_shape_in_tokens_kmeans_quantizes_a_continuous_model_and_probe_reads_a_planted_shape() -> None:
    """analyses/world_tokenizer/shape_in_tokens.py: the k-means copy of a continuous model keeps its encoder and
    decoder, and its codes sit on the features (decoding the codes ~ decoding the features); a VQ model is
    refused. The MLP probe reads the shape perfectly from planted tokens that hold it, and at chance (0.25) from
    tokens that hold nothing."""
    import sys
    from types import SimpleNamespace

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analyses" / "world_tokenizer"))
    from shape_in_tokens import kmeans_quantized, shape_probe

    from probe.data import world

    torch.manual_seed(0)
    twin = WorldTokenizer(_tiny(quantize=False)).eval()
    vq = kmeans_quantized(twin, {}, 64, n_images=256, seed=3)
    assert vq.is_discrete and vq.codebook.shape == (64, 6)
    x, _ = world.sample(32, seed=4, resolution=16)
    with torch.no_grad():
        torch.testing.assert_close(vq.encode_features(x), twin.encode_features(x))
        err_codes = (vq.decode(vq.encode(x).quantized) - twin.decode(twin.encode(x).quantized)).abs().mean()
        rand = WorldTokenizer(_tiny()).eval()
        rand.load_state_dict({**twin.state_dict(), "codes": rand.codes.detach().clone()})
        err_rand = (rand.decode(rand.encode(x).quantized) - twin.decode(twin.encode(x).quantized)).abs().mean()
    assert err_codes < 0.5 * err_rand
    with pytest.raises(ValueError, match="continuous"):
        kmeans_quantized(vq, {}, 8, n_images=16, seed=3)

    # planted tokens: token 0 is the shape's one-hot (looked up from the world's own labels) or all zeros
    images, df = world.sample(2000, seed=7, resolution=16)
    shapes = sorted(set(df["shape"]))
    onehot = {images[i].numpy().tobytes(): torch.eye(len(shapes))[shapes.index(s)] for i, s in enumerate(df["shape"])}

    class Planted(torch.nn.Module):
        config = SimpleNamespace(image_size=16)

        def __init__(self, holds_shape: bool) -> None:
            super().__init__()
            self.holds_shape = holds_shape

        def encode(self, x: torch.Tensor) -> Encoded:
            q = torch.stack([onehot[im.numpy().tobytes()] for im in x])[:, None]  # [B, 1, 4]
            q = q if self.holds_shape else torch.zeros_like(q)
            return Encoded(None, q, q)

    assert shape_probe(Planted(True), {}, n_train=1500, n_test=500, seed=7) == 1.0
    assert shape_probe(Planted(False), {}, n_train=1500, n_test=500, seed=7) < 0.4
