"""`tokenprobe run`: stages, done markers and reuse, skipped stages, the run config and its errors (plumbing
with a random-weight tokenizer; the shipped model's semantics are checked in the demo's and tokenizer's tests)."""
import dataclasses
import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from probe.pipeline import (
    RunConfig,
    RunConfigError,
    default_config_path,
    load_run_config,
    preflight,
    run_pipeline,
    stage_hashes,
)
from probe.report import RunPaths

ROOT = Path(__file__).resolve().parents[1]


def small_config(out: Path, **probes) -> RunConfig:
    """Tokenize + probes only (the swap and optimize stages have their own test below)."""
    cfg = RunConfig.from_dict({
        "name": "small", "out": str(out), "tokenizer": "titok-tiny", "random_init": True,
        "data": {"images": 128, "batch_size": 64},
        "probes": {"permutations": 20, "figures": True, **probes},
        "swap": {"enabled": False}, "optimize": {"enabled": False},
    })
    return cfg


def test_embedded_default_is_the_documented_defaults_and_analyses_copy_is_identical():
    shipped = default_config_path()
    assert shipped.read_text() == (ROOT / "analyses" / "demo.yaml").read_text()
    # the YAML spells out every default of RunConfig (one source of truth, two readable copies), except the
    # world attributes it validates by swaps (the default, None, is every measurable attribute)
    demo = load_run_config(shipped)
    assert demo.swap.attributes == ["lighting", "bg_blur", "global_blur", "obj_hue", "bg_hue", "shape"]
    assert dataclasses.replace(demo, swap=dataclasses.replace(demo.swap, attributes=None)) == RunConfig()
    assert set(yaml.safe_load(shipped.read_text())) == {f.name for f in dataclasses.fields(RunConfig)}


def test_run_writes_stages_reuses_them_and_redoes_what_changed(tmp_path):
    cfg = small_config(tmp_path / "run")
    res = run_pipeline(cfg, log=lambda s: None)
    status = {s.stage: s.status for s in res.stages}
    assert status["tokenize"] == "ran" and status["probes"] == "ran" and status["report"] == "ran"
    paths = RunPaths(cfg.out)
    for p in (paths.probe_table, paths.semantic_map, paths.summary, paths.probe_heatmap("ami"), paths.report,
              paths.run_yaml, paths.config):
        assert p.exists(), p
    summary = pd.read_csv(paths.summary, keep_default_na=False)
    assert {"shape", "lighting", "null_factor"} <= set(summary["attribute"])
    assert not any(a.endswith("_bin") for a in summary["attribute"])  # world factors, not their bins
    hashes = stage_hashes(cfg)
    for stage in ("tokenize", "probes"):
        assert json.loads(paths.done_marker(stage).read_text())["config_hash"] == hashes[stage]
    tokens = res.stage("tokenize")

    again = run_pipeline(cfg, log=lambda s: None)
    assert again.stage("tokenize").status == "reused" and again.stage("probes").status == "reused"
    assert again.stage("tokenize").seconds == tokens.seconds  # the recorded time of the run that made it

    # another probe setting: refused before any work (the probes' results would be replaced), naming the key and
    # the flag; with overwrite the probes are redone, the store is reused; the hash of every later stage moves
    changed = dataclasses.replace(cfg, probes=dataclasses.replace(cfg.probes, permutations=10))
    h2 = stage_hashes(changed)
    assert h2["tokenize"] == hashes["tokenize"] and h2["probes"] != hashes["probes"] and h2["swap"] != hashes["swap"]
    before = paths.probe_table.read_bytes()
    with pytest.raises(RunConfigError, match=r"\(probes; settings changed: probes.permutations\).*--overwrite"):
        run_pipeline(changed, log=lambda s: None)
    assert paths.probe_table.read_bytes() == before and yaml.safe_load(paths.run_yaml.read_text())["probes"][
        "permutations"] == 20  # nothing touched
    third = run_pipeline(changed, overwrite=True, log=lambda s: None)
    assert third.stage("tokenize").status == "reused" and third.stage("probes").status == "ran"

    # a deleted output makes its stage run again
    paths.summary.unlink()
    assert run_pipeline(changed, log=lambda s: None).stage("probes").status == "ran"


def test_a_stage_with_nothing_to_do_is_skipped_with_a_note_the_report_shows(tmp_path):
    # swap on an attribute nothing measures: skipped, said in the report, tried again next time
    cfg = small_config(tmp_path / "run")
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, attributes=["null_factor"]),
                              swap=dataclasses.replace(cfg.swap, enabled=True))
    res = run_pipeline(cfg, log=lambda s: None)
    html = res.report.read_text()
    assert res.stage("swap").status == "skipped" and "no attribute of this run has a measurer" in res.stage("swap").note
    assert "swap validation did not run" in html
    assert "Probe map (unvalidated)" in html and "Validated semantic map" not in html
    assert not RunPaths(cfg.out).done_marker("swap").exists()  # a skipped stage is tried again next time
    again = run_pipeline(small_config(tmp_path / "run"), overwrite=True, log=lambda s: None)
    assert "swap.enabled: false" in again.stage("swap").note


def test_bad_config_keys_and_missing_requirements_are_named(tmp_path, monkeypatch):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nprobes: {permutatons: 3}\n")
    with pytest.raises(RunConfigError, match=r"bad.yaml: unknown key\(s\) probes.permutatons"):
        load_run_config(bad)
    with pytest.raises(RunConfigError, match="no such run config"):
        load_run_config(tmp_path / "nope.yaml")
    # the paper's config without its data, weights or CLIP: one error naming all three, before any work
    monkeypatch.setenv("IMAGENET_VAL", str(tmp_path / "no-imagenet"))
    monkeypatch.setenv("TOKENPROBE_TITOK_L32", str(tmp_path / "no-titok"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    cfg = load_run_config(ROOT / "analyses" / "titok-l32-imagenet.yaml", out=str(tmp_path / "t"))
    with pytest.raises(RunConfigError) as e:
        preflight(cfg)
    msg = str(e.value)
    assert "no-imagenet" in msg and "optimize.clip" in msg and "tokenizer" in msg and "no-titok" in msg
    assert not (tmp_path / "t").exists()


def test_cli_run_prints_the_report_path_and_a_failed_stage_exits_non_zero(tmp_path, capsys, monkeypatch):
    import probe.pipeline.stages as stages
    from probe.cli import main

    cfg = tmp_path / "small.yaml"
    data = small_config(tmp_path / "run", figures=False).to_dict()
    cfg.write_text(yaml.safe_dump(data))
    assert main(["run", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert f"report:     {(tmp_path / 'run' / 'report.html').resolve()}" in out
    assert main(["run", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml: no such run config file" in capsys.readouterr().err
    # an optional stage that fails: the report is written, then one line names the stage and its error file, exit 1
    def broken(ctx):
        raise RuntimeError("the engine broke")

    monkeypatch.setitem(stages.STAGE_FUNCS, "swap", broken)
    cfg.write_text(yaml.safe_dump({**data, "swap": {**data["swap"], "enabled": True}}))
    assert main(["run", str(cfg)]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: swap failed: RuntimeError: the engine broke"), err
    assert str(tmp_path / "run" / "stages" / "swap.error.txt") in err[0]
    assert "report:" in captured.out and (tmp_path / "run" / "report.html").exists()
    assert "the engine broke" in (tmp_path / "run" / "report.html").read_text()
    assert main(["run", str(cfg), "--keep-going"]) == 0  # asked to keep going


def test_config_values_are_checked_when_read(tmp_path):
    for setting, says in [("swap.pairs=eight", "swap.pairs must be an integer, got 'eight'"),
                          ("data.images=0", "data.images must be >= 1"),
                          ("optimize.prompt=''", "optimize.prompt must not be empty"),
                          ("swap.attributes=lighting", "swap.attributes must be a list of names"),
                          ("probes.figures=maybe", "probes.figures must be true or false"),
                          ("data.num_workers=-1", "data.num_workers must be >= 0")]:
        with pytest.raises(RunConfigError, match=re.escape(says)):
            load_run_config(default_config_path(), [setting])
    assert load_run_config(default_config_path(), ["data.num_workers=auto", "swap.control_pairs=null"]).data.num_workers \
        == "auto"


def test_swap_and_optimize_stages_write_what_the_report_shows(tmp_path):
    """Plumbing of the swap and optimize adapters on a random-weight tokenizer (their numbers mean nothing;
    the engines' own tests check what they measure)."""
    cfg = RunConfig.from_dict({
        "name": "engines", "out": str(tmp_path / "run"), "tokenizer": "titok-tiny", "random_init": True,
        "data": {"images": 128, "batch_size": 64, "attributes": ["lighting", "bg_blur", "null_factor"]},
        "probes": {"permutations": 10, "figures": False},
        "swap": {"pairs": 8, "control_pairs": 4, "grids": 2},
        "optimize": {"iterations": 3, "images": 2},
    })
    res = run_pipeline(cfg, log=lambda s: None)
    paths = RunPaths(cfg.out)
    assert res.stage("swap").status == "ran", res.stage("swap").note
    assert "null_factor" in res.stage("swap").note  # no measurer: said, not validated
    vmap = pd.read_csv(paths.validated_map, keep_default_na=False).set_index("attribute")
    assert set(vmap.index) <= {"lighting", "bg_blur", "null_factor"}
    assert {"lighting", "bg_blur"} <= set(vmap.index[vmap["verdict"] != "untested"])
    assert "null_factor" not in vmap.index or vmap.loc["null_factor", "verdict"] == "untested"
    # random weights decode no attribute: never confirmed, and the report says so first
    assert not (vmap["verdict"] == "confirmed").any()
    assert set(vmap.loc[["lighting", "bg_blur"], "verdict"]) <= {"not reconstructed", "not visible"}
    assert "not testable" in res.stage("swap").note
    assert res.stage("optimize").status == "ran", res.stage("optimize").note
    for task in ("generate", "inpaint"):
        assert paths.optimize_table(task).exists() and (paths.optimize_folder(task) / "grid.png").exists()
    inp = pd.read_csv(paths.optimize_table("inpaint"))
    assert len(inp) == 2 and inp["psnr_hole_result"].notna().all()
    html = res.report.read_text()
    assert "Validated semantic map" in html and "Probe map (unvalidated)" not in html
    assert html.index('id="random-weights"') < html.index('id="map"')  # the page's first line says so
    # every position was swept: the spatial maps are drawn and the report has their section
    assert (paths.swap / "spatial_abs.png").exists() and 'id="attribution"' in html
    # a second run reuses both
    again = run_pipeline(cfg, log=lambda s: None)
    assert again.stage("swap").status == "reused" and again.stage("optimize").status == "reused"


def test_set_overrides_nested_values_and_names_bad_ones(tmp_path):
    cfg = load_run_config(default_config_path(), ["data.images=512", "swap.pairs=8", "optimize.enabled=false",
                                                  "data.attributes=[lighting, shape]"], out=str(tmp_path))
    assert (cfg.data.images, cfg.swap.pairs, cfg.optimize.enabled) == (512, 8, False)
    assert cfg.data.attributes == ["lighting", "shape"] and cfg.out == str(tmp_path)
    assert cfg.probes == RunConfig().probes  # untouched sections keep the embedded default
    with pytest.raises(RunConfigError, match=r"unknown key\(s\) swap.pair\b"):
        load_run_config(default_config_path(), ["swap.pair=8"])
    with pytest.raises(RunConfigError, match="expected KEY=VALUE"):
        load_run_config(default_config_path(), ["swap.pairs"])


def test_swap_clip_measures_a_categorical_attribute_without_measurer_by_zero_shot(tmp_path):
    """With swap.clip set, a categorical attribute that nothing else measures gets CLIP zero-shot over its own
    values; on world images the shipped world CLIP reads the (renamed) shape far above chance. Without
    swap.clip it stays unmeasured, and a continuous attribute never gets one."""
    import types

    import numpy as np
    import torch

    from probe.data import world
    from probe.measure.clip import ClipMeasurer
    from probe.pipeline.stages import StageContext, _measurers_of

    df = world.sample_factors(0, 96, seed=3)
    images, _ = world.render(df)
    attrs = pd.DataFrame({"index": np.arange(96), "ref": "", "figure": df["shape"].astype(str),
                          "size_value": np.linspace(0, 1, 96)})
    store = types.SimpleNamespace(attributes=attrs, manifest={"attributes": [
        {"name": "figure", "kind": "categorical"}, {"name": "size_value", "kind": "continuous"}]})

    def ctx(swap):
        cfg = RunConfig.from_dict({"name": "z", "out": str(tmp_path / "z"), "swap": swap})
        return StageContext(cfg, RunPaths(tmp_path / "z"), store=store)

    found, without = _measurers_of(ctx({"clip": "world-clip", "clip_prompt": "a photo of a {value}."}),
                                   ["figure", "size_value"])
    assert without == ["size_value"] and isinstance(found["figure"], ClipMeasurer)
    meas = found["figure"]
    assert meas.classes == sorted(df["shape"].astype(str).unique()) and meas.kind == "categorical"
    probs = meas(torch.as_tensor(images))
    accuracy = float((np.asarray(meas.classes)[probs.argmax(1).numpy()] == df["shape"].astype(str)).mean())
    assert accuracy > 0.6, accuracy  # four shapes: chance is 0.25
    assert _measurers_of(ctx({}), ["figure"]) == ({}, ["figure"])
    with pytest.raises(RunConfigError, match="clip_prompt"):
        RunConfig.from_dict({"name": "z", "out": str(tmp_path / "z"), "swap": {"clip_prompt": "a photo"}})


def test_a_model_shipped_again_under_its_name_is_not_reused(tmp_path, monkeypatch):
    """Stage hashes hold the tokenizer's weights: re-shipping a zoo model (same name, new weights) or replacing
    a local weights file changes every stage's hash, so a run redoes them instead of reusing stale results."""
    from probe import zoo

    cfg = small_config(tmp_path / "run")
    cfg = dataclasses.replace(cfg, tokenizer="world-32", random_init=False)
    before = stage_hashes(cfg)
    fake = tmp_path / "world-32.safetensors"
    fake.write_bytes(zoo.weights_path("world-32").read_bytes()[:-1] + b"\x00")
    monkeypatch.setattr(zoo, "weights_path", lambda name: fake)
    after = stage_hashes(cfg)
    assert all(before[s] != after[s] for s in before)
    local = tmp_path / "weights.safetensors"
    local.write_bytes(b"a")
    h1 = stage_hashes(dataclasses.replace(cfg, tokenizer=str(local)))
    import os

    os.utime(local, ns=(1, 1))
    assert stage_hashes(dataclasses.replace(cfg, tokenizer=str(local)))["tokenize"] != h1["tokenize"]
