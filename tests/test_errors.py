"""A user's mistake gets one line, exit code 2, and nothing is lost.

Each case runs ``probe.cli.main`` in this process and asserts the one ``error: ...`` line on stderr
names the culprit (file, key or flag), that no traceback is printed, and the exit code.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import probe
from probe.cli import main
from probe.errors import TokenprobeError

TINY = ["--tokenizer", "titok-tiny", "--random-init", "--device", "cpu", "--workers", "0", "--no-progress"]


def _fails(capsys: pytest.CaptureFixture, argv: list[str], *culprits: str) -> str:
    """Run the CLI; assert exit code 2 and one ``error:`` line naming every culprit."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for c in culprits:
        assert c in lines[0], (c, lines[0])
    return lines[0]


def _yaml(folder: Path, name: str, data: dict | str) -> Path:
    p = folder / name
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return p


WORLD4 = {"name": "w", "source": {"type": "world"}, "size": 4}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small finished store (8 world images, random-weight tiny tokenizer)."""
    out = tmp_path_factory.mktemp("store") / "s"
    assert main(["tokenize", "--manifest", "world-32", "--out", str(out), "--limit", "8", *TINY]) == 0
    return out


# ----------------------------------------------------------------------------- arguments
@pytest.mark.parametrize("argv, flag, says", [
    (["probe", "--store", "S", "--permutations", "0"], "--permutations", ">= 1"),
    (["probe", "--store", "S", "--alpha", "1.5"], "--alpha", "0 < value < 1"),
    (["probe", "--store", "S", "--alpha", "0"], "--alpha", "0 < value < 1"),
    (["probe", "--store", "S", "--probes", "ami,foo"], "--probes", "unknown 'foo'"),
    (["tokenize", "--manifest", "world-32", "--tokenizer", "t", "--out", "o", "--limit", "-1"], "--limit", ">= 0"),
    (["demo", "--images", "0"], "--images", ">= 1"),
    (["demo", "--permutations", "0"], "--permutations", ">= 1"),
    (["tokenize", "--manifest", "world-32", "--tokenizer", "t", "--out", "o", "--limitt", "3"], "--limitt",
     "unrecognized"),
    (["tokenize", "--tokenizer", "t", "--out", "o"], "--manifest", "required"),
])
def test_bad_arguments_name_the_flag(capsys, argv, flag, says) -> None:
    _fails(capsys, argv, flag, says)


def test_no_option_is_taken_for_an_abbreviation(capsys) -> None:
    _fails(capsys, ["swap", "--store", "S", "--pair", "4"], "--pair")
    _fails(capsys, ["probe", "--store", "S", "--perm", "4"], "--perm")
    _fails(capsys, ["tokenize", "--manifest", "world-32", "--tokenizer", "t", "--out", "o", "--lim", "3"], "--lim")


@pytest.mark.parametrize("argv, flag", [
    (["swap", "--store", "S", "--pairs", "0"], "--pairs"),
    (["swap", "--store", "S", "--batch", "0"], "--batch"),
    (["generate", "--prompt", "", "--out", "o"], "--prompt"),
    (["edit", "world:1", "--prompt", "a", "--iterations", "0", "--out", "o"], "--iterations"),
])
def test_bad_numbers_and_empty_prompts_are_refused_when_parsed(capsys, argv, flag) -> None:
    _fails(capsys, argv, flag)


def test_a_device_that_is_not_there_is_one_line(capsys, tmp_path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    _fails(capsys, ["tokenize", "--manifest", "world-32", "--out", tmp_path / "s", "--limit", "2", "--tokenizer",
                    "titok-tiny", "--random-init", "--device", "cuda"], "'cuda'", "--device cpu")
    _fails(capsys, ["demo", "--out", tmp_path / "d", "--device", "cuda"], "device", "--device cpu")
    assert not (tmp_path / "s" / "header.json").exists() and not (tmp_path / "d").exists()


def test_ctrl_c_is_one_line_with_exit_130_and_the_resume_hint(capsys, monkeypatch) -> None:
    import probe.commands.info as info

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(info, "run", interrupted)
    assert main(["info"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["interrupted; run the same command again to resume (finished work is kept)"]


def test_swap_and_probe_keep_earlier_results_unless_overwrite(capsys, store, tmp_path) -> None:
    for cmd, folder in (("swap", tmp_path / "swap"), ("probe", tmp_path / "probes")):
        folder.mkdir()
        (folder / "config.json").write_text("{}")
        _fails(capsys, [cmd, "--store", store, "--out", folder], str(folder), "--overwrite")
        assert (folder / "config.json").read_text() == "{}"
    # the default folder: <run>/swap for a store in <run>/store, else <store>/swap
    (store / "swap").mkdir(exist_ok=True)
    (store / "swap" / "config.json").write_text("{}")
    _fails(capsys, ["swap", "--store", store], str(store / "swap"), "--overwrite")
    shutil.rmtree(store / "swap")


def test_debug_flag_and_variable_give_the_traceback(capsys, monkeypatch, tmp_path) -> None:
    bad = _yaml(tmp_path, "nosrc.yaml", {"name": "x"})
    argv = ["tokenize", "--manifest", str(bad), "--out", str(tmp_path / "o"), *TINY]
    with pytest.raises(TokenprobeError, match="field 'source' is required"):
        main([*argv, "--debug"])
    monkeypatch.setenv("TOKENPROBE_DEBUG", "1")
    with pytest.raises(TokenprobeError):
        main(argv)
    monkeypatch.delenv("TOKENPROBE_DEBUG")
    _fails(capsys, argv, "nosrc.yaml", "'source'")


# ----------------------------------------------------------------------------- manifests
@pytest.mark.parametrize("name, data, culprits", [
    ("nosrc.yaml", {"name": "x", "size": 4}, ["nosrc.yaml", "field 'source' is required"]),
    ("type.yaml", {"name": "x", "source": {"type": "wrld"}, "size": 4}, ["type.yaml", "source.type", "'wrld'"]),
    ("kind.yaml", {**WORLD4, "attributes": [{"name": "lighting", "kind": "cont"}]},
     ["kind.yaml", "attributes[0].kind", "'cont'"]),
    ("syntax.yaml", "name: x\nsource: {type: world\nsize: 4\n", ["syntax.yaml", "not valid YAML", "line 3"]),
    ("folder.yaml", {"name": "x", "source": {"type": "folder", "root": "no_such_folder"}},
     ["folder.yaml", "source.root", "no_such_folder", "does not exist"]),
    ("var.yaml", {"name": "x", "source": {"type": "folder", "root": "${TOKENPROBE_TEST_UNSET}/img"}},
     ["var.yaml", "source.root", "TOKENPROBE_TEST_UNSET", "not set"]),
    ("attr.yaml", {**WORLD4, "attributes": [{"name": "brightnes", "kind": "continuous"}]},
     ["attr.yaml", "attributes[0].name", "'brightnes'", "lighting"]),
    ("from.yaml", {**WORLD4, "attributes": [{"name": "b", "kind": "continuous", "from": "lightin"}]},
     ["from.yaml", "attributes[0].from", "'lightin'", "lighting"]),
])
def test_bad_manifests_name_file_and_key_and_leave_nothing(capsys, monkeypatch, tmp_path, name, data,
                                                            culprits) -> None:
    monkeypatch.delenv("TOKENPROBE_TEST_UNSET", raising=False)
    monkeypatch.chdir(tmp_path)
    _fails(capsys, ["tokenize", "--manifest", _yaml(tmp_path, name, data), "--out", "o", *TINY], *culprits)
    assert not (tmp_path / "o").exists()


def test_table_column_that_does_not_exist_is_refused_listing_the_columns(capsys, tmp_path) -> None:
    (tmp_path / "t.csv").write_text("path,brightness,label\na.png,0.5,x\n")
    m = _yaml(tmp_path, "table.yaml", {"name": "t", "source": {"type": "table", "path": str(tmp_path / "t.csv")},
                                       "attributes": [{"name": "brightnes", "kind": "continuous"}]})
    _fails(capsys, ["tokenize", "--manifest", m, "--out", tmp_path / "o", *TINY],
           "table.yaml", "attributes[0].name", "'brightnes'", "brightness, label")


def test_missing_manifest_lists_the_shipped_names(capsys, tmp_path) -> None:
    _fails(capsys, ["tokenize", "--manifest", tmp_path / "nope.yaml", "--out", tmp_path / "o", *TINY],
           "nope.yaml", "not found", "world-32")


# ----------------------------------------------------------------------------- stores
def test_missing_empty_and_corrupt_stores(capsys, store, tmp_path) -> None:
    import shutil

    _fails(capsys, ["probe", "--store", tmp_path / "nowhere"], "nowhere")
    (tmp_path / "empty").mkdir()
    _fails(capsys, ["probe", "--store", tmp_path / "empty"], "empty", "header.json is missing", "tokenize")
    bad = tmp_path / "bad"
    shutil.copytree(store, bad)
    chunk = next((bad / "chunks").glob("chunk-*.arrow"))
    chunk.write_bytes(chunk.read_bytes()[:200])
    _fails(capsys, ["probe", "--store", bad, "--no-figures", "--quiet"], str(chunk), "corrupt chunk", "delete")
    (bad / "header.json").write_text("{not json")
    _fails(capsys, ["probe", "--store", bad], "header.json", "corrupt", "--no-resume")


def test_unwritable_output_is_refused_before_any_work(capsys, monkeypatch, store, tmp_path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: Path(p) != ro and real(p, mode, **kw))
    called = []
    monkeypatch.setattr("probe.encode.tokenize_manifest", lambda *a, **k: called.append(1))
    _fails(capsys, ["tokenize", "--manifest", "world-32", "--out", ro / "s", *TINY], "--out", str(ro / "s"),
           "cannot write", "read-only")
    _fails(capsys, ["probe", "--store", store, "--out", ro / "p"], str(ro / "p"), "cannot write")
    _fails(capsys, ["demo", "--out", ro], str(ro), "cannot write")
    assert not called and not (ro / "s").exists()
    (tmp_path / "file").write_text("x")
    _fails(capsys, ["tokenize", "--manifest", "world-32", "--out", tmp_path / "file" / "s", *TINY],
           "is a file, not a folder")


def test_second_writer_of_a_store_is_refused(capsys, tmp_path) -> None:
    from probe.store import store_lock

    out = tmp_path / "s"
    with store_lock(out):
        _fails(capsys, ["tokenize", "--manifest", "world-32", "--out", out, "--limit", "4", *TINY],
               str(out), "another tokenprobe run", f"pid {os.getpid()}")
        assert list(out.iterdir()) == [out / ".tokenprobe.lock"]  # the other run's folder is left alone
    assert main(["tokenize", "--manifest", "world-32", "--out", str(out), "--limit", "4", *TINY]) == 0


def test_limit_0_and_all_images_skipped_exit_non_zero(capsys, tmp_path) -> None:
    _fails(capsys, ["tokenize", "--manifest", "world-32", "--out", tmp_path / "s0", "--limit", "0", *TINY],
           "nothing to tokenize", "--limit 0")
    assert not (tmp_path / "s0").exists()
    imgs = tmp_path / "imgs" / "a"
    imgs.mkdir(parents=True)
    for name in ("x.png", "y.png"):
        (imgs / name).write_bytes(b"not an image")
    m = _yaml(tmp_path, "f.yaml", {"name": "f", "source": {"type": "folder", "root": str(imgs.parent)}})
    out = tmp_path / "sf"
    _fails(capsys, ["tokenize", "--manifest", m, "--out", out, *TINY], "no image could be tokenized",
           "skipped.csv", "x.png")
    # no empty store is left behind; the reasons are
    assert not (out / "header.json").exists() and not (out / "chunks").exists()
    import pandas as pd

    skipped = pd.read_csv(out / "skipped.csv")
    assert [Path(r).name for r in skipped["ref"]] == ["x.png", "y.png"] and skipped["reason"].str.len().min() > 0
    _fails(capsys, ["probe", "--store", out], str(out))  # and the next command says there is no store, in one line


def test_skipped_images_reasons_are_kept_in_the_store_and_survive_merge(tmp_path) -> None:
    from probe.encode import tokenize_manifest
    from probe.store import TokenStore

    imgs = tmp_path / "imgs" / "a"
    imgs.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(5):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(imgs / f"ok{k}.png")
    (imgs / "ok2.png").write_bytes(b"\x89PNG broken")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(imgs / "tiny.png")
    m = _yaml(tmp_path, "f.yaml", {"name": "f", "source": {"type": "folder", "root": str(imgs.parent)}})
    tok = probe.load_tokenizer("titok-tiny", random_init=True, device="cpu")
    store = tokenize_manifest(m, tok, tmp_path / "s", device="cpu", num_workers=0, chunk_size=2, progress=False)
    table = store.skipped_images
    assert sorted(Path(r).name for r in table["ref"]) == ["ok2.png", "tiny.png"]
    assert len(store) == 4 and store.skipped == 2
    assert not set(table["index"]) & set(store.index.tolist())
    # the reasons live in the chunk files: a copy of the chunks (a merge) keeps them
    merged = TokenStore.merge([tmp_path / "s"], tmp_path / "m")
    assert merged.skipped_images.equals(table)


def test_failed_tokenize_leaves_nothing_and_the_corrected_rerun_works(capsys, monkeypatch, tmp_path) -> None:
    from probe.encode import tokenize_manifest
    from probe.store import make_header, open_for_writing

    tok = probe.load_tokenizer("titok-tiny", random_init=True, device="cpu")
    out = tmp_path / "s"
    wrong = _yaml(tmp_path, "wrong.yaml", {**WORLD4, "size": 8})
    right = _yaml(tmp_path, "right.yaml", {**WORLD4, "size": 8, "seed": 1})
    real = tok.encode
    monkeypatch.setattr(tok, "encode", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        tokenize_manifest(wrong, tok, out, device="cpu", num_workers=0, chunk_size=4, progress=False)
    assert not out.exists()
    monkeypatch.setattr(tok, "encode", real)
    # a killed first run leaves a header and no chunk: a run with another manifest replaces it
    open_for_writing(out, make_header(identity={"manifest": "other"}, attributes={}, num_images=8, chunk_size=4,
                                      num_tokens=32, token_dim=16, codebook_size=None))
    store = tokenize_manifest(right, tok, out, device="cpu", num_workers=0, chunk_size=4, progress=False)
    assert len(store) == 8 and store.manifest["seed"] == 1
    # the CLI: a manifest error after a failed attempt, then the corrected manifest
    out2 = tmp_path / "cli"
    bad = _yaml(tmp_path, "bad.yaml", {**WORLD4, "attributes": [{"name": "ligthing", "kind": "continuous"}]})
    _fails(capsys, ["tokenize", "--manifest", bad, "--out", out2, *TINY], "ligthing")
    good = _yaml(tmp_path, "good.yaml", {**WORLD4, "attributes": [{"name": "lighting", "kind": "continuous"}]})
    assert main(["tokenize", "--manifest", str(good), "--out", str(out2), *TINY]) == 0


def test_run_demo_and_tokenize_take_no_resume_and_overwrite() -> None:
    from probe.cli import build_parser

    for cmd, argv in (("tokenize", ["--manifest", "m", "--tokenizer", "t", "--out", "o"]), ("demo", []),
                      ("run", ["x.yaml"])):
        for flag in ("--no-resume", "--overwrite"):
            assert build_parser({cmd}).parse_args([cmd, *argv, flag]).no_resume


# ----------------------------------------------------------------------------- weights
def test_weight_files_and_specs_are_named(capsys, tmp_path) -> None:
    from safetensors.torch import save_file

    from probe.tokenizers import load_tokenizer

    base = ["tokenize", "--manifest", "world-32", "--out", tmp_path / "o", "--device", "cpu"]
    good = tmp_path / "good.safetensors"
    save_file({"w": torch.zeros(1000)}, str(good))
    trunc = tmp_path / "trunc.safetensors"
    trunc.write_bytes(good.read_bytes()[:-500])
    _fails(capsys, [*base, "--tokenizer", trunc], str(trunc), "truncated")
    _fails(capsys, [*base, "--tokenizer", tmp_path / "none" / "model.safetensors"], "no such file",
           "not looked up on the Hugging Face hub")

    class Evil:
        def __reduce__(self):
            return (os.getcwd, ())

    evil = tmp_path / "evil.bin"
    torch.save({"x": Evil()}, evil)
    _fails(capsys, [*base, "--tokenizer", evil], str(evil),
           "refused: this file would run code when loaded (unsafe pickle)")
    _fails(capsys, [*base, "--tokenizer", "titok-tiny"], "--tokenizer titok-tiny", "--random-init")
    with pytest.raises(ValueError, match="random_init=True") as err:
        load_tokenizer("titok-tiny")
    assert "--random-init" not in str(err.value)
    assert not (tmp_path / "o").exists()


def test_unreachable_hub_is_asked_once_and_only_the_cache_is_used(capsys, monkeypatch, tmp_path) -> None:
    import huggingface_hub

    import probe.hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    probes = []
    monkeypatch.setattr(probe.hub.socket, "create_connection", lambda *a, **k: probes.append(a) or (_ for _ in ()).throw(OSError("unreachable")))
    probe.hub.hub_reachable.cache_clear()
    asked = []
    real = huggingface_hub.hf_hub_download

    def download(*a, **k):
        asked.append(k.get("local_files_only"))
        return real(*a, **{**k, "cache_dir": str(tmp_path / "cache")})

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    try:
        _fails(capsys, ["tokenize", "--manifest", "world-32", "--out", tmp_path / "o", "--device", "cpu",
                        "--tokenizer", "tokenprobe-tests/no-such-tokenizer"],
               "tokenprobe-tests/no-such-tokenizer", "did not answer", "local folder")
        assert len(probes) == 1 and asked and all(asked)
    finally:
        probe.hub.hub_reachable.cache_clear()


# ----------------------------------------------------------------------------- shipped manifests
def test_shipped_manifests_are_package_data_with_one_source_of_truth(monkeypatch, tmp_path, capsys) -> None:
    from probe.data.manifest import SHIPPED_DIR, load_manifest, shipped_manifests

    root = Path(__file__).resolve().parents[1]
    assert SHIPPED_DIR == Path(probe.__file__).parent / "data" / "manifests"
    package = {p.name: p.read_bytes() for p in SHIPPED_DIR.glob("*.yaml")}
    top = {p.name: p.read_bytes() for p in (root / "data_manifests").glob("*.yaml")}
    assert {"world-32.yaml", "world.yaml"} <= set(package)
    for name in sorted(set(package) | set(top)):
        assert package.get(name) == top.get(name), (
            f"data_manifests/{name} differs from probe/data/manifests/{name}: the package copy is the one "
            "tokenprobe reads (and the wheel ships); edit it and copy it to data_manifests/")
    monkeypatch.chdir(tmp_path)  # by name, from anywhere
    assert load_manifest("world-32").name == "world-32"
    assert main(["info"]) == 0
    assert "shipped manifests (tokenize --manifest NAME): " + ", ".join(shipped_manifests()) in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["tokenize", "--help"])
    assert "world-32" in " ".join(capsys.readouterr().out.split())


def test_world_32_manifest_matches_the_tokenizer_and_a_mismatch_warns(tmp_path) -> None:
    import warnings

    from probe import zoo
    from probe.data.manifest import load_manifest
    from probe.encode import (
        WorldSettingsWarning,
        tokenize_manifest,
        world_settings_diff,
    )

    trained = zoo.config("world-32")["world"]
    assert world_settings_diff(load_manifest("world-32"), trained) == []
    assert load_manifest("world-32").source_options["config"]["resolution"] == trained["resolution"]
    assert set(world_settings_diff(load_manifest("world"), trained)) == set(zoo.config("world-32")["world_overrides"])
    tok = probe.load_tokenizer("world-32", device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither a world warning nor PyTorch's requires_grad one
        store = tokenize_manifest("world-32", tok, tmp_path / "a", device="cpu", limit=4, num_workers=0,
                                  progress=False)
    assert store.header["tokenizer_world"] == trained
    with pytest.warns(WorldSettingsWarning, match="stripe_periods.*world-32"):
        tokenize_manifest("world", tok, tmp_path / "b", device="cpu", limit=4, num_workers=0, progress=False)


def test_config_dicts_with_an_unknown_field_name_it_and_the_known_ones() -> None:
    from probe.data.world import WorldConfig
    from probe.errors import UnknownFieldError
    from probe.oracle.model import OracleConfig
    from probe.tokenizers.config import TiTokConfig
    from probe.tokenizers.world import WorldTokenizerConfig

    for make, where in ((WorldConfig.from_dict, "WorldConfig"), (OracleConfig.from_dict, "oracle config"),
                        (TiTokConfig.from_dict, "TiTokConfig"), (WorldTokenizerConfig.from_dict, "WorldTokenizerConfig")):
        with pytest.raises(UnknownFieldError, match=rf"{where}: unknown field\(s\) \['colour'\]; known fields: \[") as exc:
            make({"colour": 1})
        assert isinstance(exc.value, TokenprobeError) and isinstance(exc.value, ValueError)
    with pytest.raises(UnknownFieldError, match=r"TiTokConfig.pixel: unknown field\(s\) \['depth'\]"):
        TiTokConfig.from_dict({"pixel": {"depth": 2}})
    assert WorldConfig.from_dict({"n_bins": 3}).n_bins == 3  # known fields pass


def test_models_refuse_images_of_the_wrong_shape_naming_themselves() -> None:
    from probe.errors import check_images
    from probe.tokenizers.world import WorldTokenizer, WorldTokenizerConfig

    check_images(torch.zeros(2, 3, 8, 8), "x", 8)  # a good batch passes
    for bad in (torch.zeros(3, 8, 8), torch.zeros(2, 1, 8, 8), torch.zeros(2, 3, 8, 6)):
        with pytest.raises(ValueError, match=r"^x: expected images \[B, 3, 8, 8\] in \[0, 1\], got shape"):
            check_images(bad, "x", 8)
    check_images(torch.zeros(2, 3, 8, 6), "y")  # without a size any H, W will do
    tok = WorldTokenizer(WorldTokenizerConfig(image_size=16, patch_size=4, width=16, enc_depth=1, dec_depth=1,
                                              heads=2, num_tokens=4, token_dim=4, codebook_size=8))
    with pytest.raises(ValueError, match=r"WorldTokenizer.encode: expected images \[B, 3, 16, 16\]"):
        tok.encode(torch.zeros(1, 3, 32, 32))


def test_every_analysis_script_refuses_abbreviated_options() -> None:
    """Every ``argparse.ArgumentParser`` built under analyses/ passes ``allow_abbrev=False``, so ``--pair 4``
    cannot be read as ``--pairs 4`` there either."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "analyses"
    offenders, parsers = [], 0
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "ArgumentParser":
                parsers += 1
                kw = {k.arg: k.value for k in node.keywords}
                if not (isinstance(kw.get("allow_abbrev"), ast.Constant) and kw["allow_abbrev"].value is False):
                    offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert parsers >= 20 and not offenders, offenders
