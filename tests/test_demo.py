"""The main job end to end (plumbing with a random-weight tokenizer; the shipped model is
checked for semantics in the tokenizer's own tests). The demo is the pipeline on the embedded default: these
tests run its tokenize and probe stages (swap and optimize have their own tests in test_pipeline.py)."""
import json

import pandas as pd
import pytest

from probe.cli import main
from probe.pipeline import default_config_path, load_run_config, run_pipeline
from probe.report import RunPaths

TABLES = ("probes.csv", "semantic_map.json", "semantic_map.csv", "summary.csv", "disentanglement.csv", "usage.csv")


def demo(out, *settings: str):
    """The demo's run config (the embedded default) with ``settings``, run into ``out``."""
    cfg = load_run_config(default_config_path(), list(settings), out=str(out))
    return run_pipeline(cfg, log=lambda s: None)


SMALL = ("tokenizer=titok-tiny", "random_init=true", "data.images=192", "probes.permutations=30",
         "data.batch_size=64", "swap.enabled=false", "optimize.enabled=false")


def test_demo_writes_tables_map_and_figures_and_the_probe_command_agrees(tmp_path):
    out = tmp_path / "demo"
    res = demo(out, *SMALL)
    paths = RunPaths(out)
    assert len(res.store) == 192
    # the files the README lists
    for rel in ("probes/probes.csv", "probes/probes.parquet", "probes/semantic_map.json", "probes/summary.csv",
                "figures/heatmap_ami.png", "figures/heatmap_ami.svg", "figures/summary.png", "figures/summary.svg",
                "config.json", "report.html"):
        assert (out / rel).exists(), rel
    summary = pd.read_csv(paths.summary)
    assert {"shape", "lighting", "bg_blur", "global_blur", "null_factor"} <= set(summary["attribute"])
    smap = json.loads(paths.semantic_map.read_text())
    assert len(smap["by_position"]) == 32
    # the summary's answer per attribute is the map's: some cell significant <=> significant
    for r in summary.itertuples():
        assert any(c["significant"] for c in smap["by_attribute"][r.attribute]) == r.significant
    # `tokenprobe probe` on the demo's store writes the same tables
    attrs = ",".join(summary["attribute"])
    assert main(["probe", "--store", str(out / "store"), "--attributes", attrs, "--permutations", "30",
                 "--seed", "0", "--out", str(tmp_path / "cmd"), "--no-figures", "--quiet"]) == 0
    for name in TABLES:
        assert (tmp_path / "cmd" / name).read_bytes() == (out / "probes" / name).read_bytes(), name
    # a second run resumes the finished store instead of re-encoding
    res2 = demo(out, *SMALL)
    assert (res2.store.tokens == res.store.tokens).all()
    assert res2.stage("tokenize").status == "reused" and res2.stage("probes").status == "reused"


def test_demo_on_the_shipped_tokenizer_reports_its_own_tables_top_positions(tmp_path):
    """Consistency, not today's weights: each reported top position is the one the demo's own table ranks
    first, the rendered global factors are carried, and the never-rendered null_factor is not."""
    res = demo(tmp_path / "demo", "data.images=1024", "probes.permutations=100", "probes.figures=false",
               "swap.enabled=false", "optimize.enabled=false")
    summary = res.probes.summary.set_index("attribute")
    table = pd.read_csv(res.paths.probe_table)
    ami = table[(table["probe"] == summary["rank_by"].iloc[0]) & (table["position"] >= 0)]
    for attr, row in summary.iterrows():
        cells = ami[ami["attribute"] == attr].set_index("position")["value"]
        assert row["top_position"] == cells.idxmax(), attr
        assert row["effect"] == cells.max()
    for attr in ("lighting", "obj_hue", "bg_hue"):
        assert summary.loc[attr, "significant"], attr
        assert summary.loc[attr, "any_position_p"] == pytest.approx(1 / 101)  # beats every permuted maximum
    assert not summary.loc["null_factor", "significant"]
    assert res.probes.semantic_map.candidates("null_factor") == []


def test_demo_command_runs_the_pipeline_and_prints_the_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--tokenizer", "titok-tiny", "--random-init", "--images", "128",
                 "--permutations", "10", "--no-figures", "--no-swap", "--no-optimize"]) == 0
    printed = capsys.readouterr().out
    assert f"report:     {(out / 'report.html').resolve()}" in printed
    assert "Probe map (unvalidated" in printed and "swap.enabled: false" in printed
    run_yaml = load_run_config(out / "run.yaml")
    assert (run_yaml.data.images, run_yaml.probes.permutations, run_yaml.tokenizer) == (128, 10, "titok-tiny")
