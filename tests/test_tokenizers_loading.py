"""Saving and loading tokenizers: round trips in every supported form, clear errors."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import probe
from probe.tokenizers import (
    PRESETS,
    WeightsUnavailableError,
    build_tokenizer,
    get_architecture,
    load_tokenizer,
    load_zoo_tokenizer,
    save_tokenizer,
)
from probe.tokenizers.titok import TiTok

# official-like head size (64 per head), so a bare .bin can be read from key shapes alone
LEGACY_64 = replace(PRESETS["titok-tiny-legacy"].config, enc_heads=1, dec_heads=1)


def _images(seed: int = 0) -> torch.Tensor:
    return torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


def _outputs(model: TiTok, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    enc = model.encode(x)
    return enc.indices, enc.features, model.decode_indices(enc.indices)


def _assert_same(a: TiTok, b: TiTok, x: torch.Tensor) -> None:
    assert type(a) is type(b) and a.config == b.config
    for u, v in zip(_outputs(a, x), _outputs(b, x)):
        assert torch.equal(u, v)


@pytest.fixture(scope="module", params=["titok-tiny", "titok-tiny-legacy"])
def model(request: pytest.FixtureRequest) -> TiTok:
    return build_tokenizer(request.param, seed=7)


def test_folder_round_trip(model: TiTok, tmp_path: Path) -> None:
    folder = save_tokenizer(model, tmp_path / "tok")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["architecture"] == "titok"
    loaded = load_tokenizer(folder, device="cpu")
    _assert_same(model, loaded, _images())
    # a str path works the same
    _assert_same(model, load_tokenizer(str(folder), device="cpu"), _images(1))


def test_bare_safetensors_file_describes_itself(model: TiTok, tmp_path: Path) -> None:
    folder = save_tokenizer(model, tmp_path / "tok")
    lone = tmp_path / "elsewhere" / "weights.safetensors"
    lone.parent.mkdir()
    (folder / "model.safetensors").rename(lone)  # no config.json beside it: metadata carries it
    _assert_same(model, load_tokenizer(lone, device="cpu"), _images())


def test_bin_state_dict_with_preset(model: TiTok, tmp_path: Path) -> None:
    path = tmp_path / "raw.bin"
    torch.save(model.state_dict(), path)
    name = "titok-tiny" if not model.config.finetune_decoder else "titok-tiny-legacy"
    _assert_same(model, load_tokenizer(path, preset=name, device="cpu"), _images())


def test_hub_style_folder_with_bin_weights(tmp_path: Path) -> None:
    model = build_tokenizer("titok-tiny-legacy", seed=2)
    folder = save_tokenizer(model, tmp_path / "tok")
    (folder / "model.safetensors").unlink()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    _assert_same(model, load_tokenizer(folder, device="cpu"), _images())


def test_bin_architecture_inferred_from_key_shapes(tmp_path: Path) -> None:
    model = build_tokenizer(LEGACY_64, seed=3)
    path = tmp_path / "raw.bin"
    torch.save(model.state_dict(), path)
    _assert_same(model, load_tokenizer(path, device="cpu"), _images())


def test_bin_loads_only_tensors(tmp_path: Path) -> None:
    path = tmp_path / "evil.bin"
    torch.save({"latent_tokens": torch.zeros(1), "payload": object()}, path)
    with pytest.raises(ValueError, match="evil.bin"):
        load_tokenizer(path, preset="titok-tiny", device="cpu")


def test_mismatched_keys_are_named(tmp_path: Path) -> None:
    state = build_tokenizer("titok-tiny").state_dict()
    state.pop("decoder.mask_token")
    state["encoder.extra.weight"] = torch.zeros(3)
    state["quantize.embedding.weight"] = torch.zeros(99, 16)
    path = tmp_path / "bad.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    with pytest.raises(ValueError) as err:
        load_tokenizer(path, preset="titok-tiny", device="cpu")
    msg = str(err.value)
    assert "bad.safetensors" in msg
    assert "missing keys (1): decoder.mask_token" in msg
    assert "unexpected keys (1): encoder.extra.weight" in msg
    assert "quantize.embedding.weight (file (99, 16) vs model (256, 16))" in msg


def test_wrong_preset_for_file_is_a_shape_error(tmp_path: Path) -> None:
    path = tmp_path / "tiny.bin"
    torch.save(build_tokenizer("titok-tiny").state_dict(), path)
    with pytest.raises(ValueError, match="missing keys .*pixel_decoder"):
        load_tokenizer(path, preset="titok-tiny-legacy", device="cpu")


def test_offline_hub_id_gives_one_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError) as err:
        load_tokenizer("tokenprobe-tests/no-such-tokenizer", device="cpu")
    msg = str(err.value)
    assert "tokenprobe-tests/no-such-tokenizer" in msg and "HF_HUB_OFFLINE" in msg
    assert "local" in msg and "folder" in msg


def test_preset_without_weights_and_unknown_spec() -> None:
    with pytest.raises(ValueError, match="random_init=True"):
        load_tokenizer("titok-tiny")
    with pytest.raises(ValueError, match="titok-l32"):  # lists the presets
        load_tokenizer("no_such_thing_here")


def test_folder_without_weights_or_config(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_tokenizer(tmp_path, device="cpu")
    (tmp_path / "config.json").write_text(json.dumps({"architecture": "titok", "config": PRESETS["titok-tiny"].config.to_dict()}))
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_tokenizer(tmp_path, device="cpu")
    # with random_init the config alone is enough
    assert load_tokenizer(tmp_path, random_init=True, device="cpu").config == PRESETS["titok-tiny"].config


def test_official_config_json_in_folder(tmp_path: Path) -> None:
    """An official-layout config.json (as on the hub) is read; sizes come from the named size."""
    hub = {"model": {"vq_model": {"codebook_size": 4096, "token_size": 12, "use_l2_norm": True,
                                  "vit_enc_model_size": "small", "vit_dec_model_size": "small",
                                  "vit_enc_patch_size": 16, "vit_dec_patch_size": 16, "num_latent_tokens": 128}},
           "dataset": {"preprocessing": {"crop_size": 256}}}
    (tmp_path / "config.json").write_text(json.dumps(hub))
    with torch.device("meta"):
        m = load_tokenizer(tmp_path, random_init=True, device="meta")
    assert m.config == PRESETS["titok-s128"].config


def test_zoo_loader_and_registry(tmp_path: Path) -> None:
    model = build_tokenizer("titok-tiny", seed=5)
    folder = save_tokenizer(model, tmp_path / "zoo")
    cfg = {"kind": "tokenizer", **json.loads((folder / "config.json").read_text())}
    loaded = load_zoo_tokenizer(cfg, folder / "model.safetensors", device="cpu")
    _assert_same(model, loaded, _images())
    with pytest.raises(ValueError, match="architecture"):
        load_zoo_tokenizer({"kind": "tokenizer", "config": {}}, folder / "model.safetensors")
    assert get_architecture("titok") is TiTok
    with pytest.raises(KeyError, match="world"):
        get_architecture("nope")


def test_probe_level_entry_point() -> None:
    m = probe.load_tokenizer("titok-tiny", random_init=True, device="cpu")
    assert m.num_tokens == 32 and m.image_size == 64 and not m.training
