"""The main job end to end (plumbing with a random-weight tokenizer; the shipped model is
checked for semantics in the tokenizer's own tests)."""
import json

import pandas as pd
import pytest

from probe.cli import main
from probe.demo import DemoConfig, run_demo

TABLES = ("probes.csv", "semantic_map.json", "semantic_map.csv", "summary.csv", "disentanglement.csv", "usage.csv")


def test_demo_writes_tables_map_and_figures_and_the_probe_command_agrees(tmp_path):
    cfg = DemoConfig(out=tmp_path / "demo", tokenizer="titok-tiny", random_init=True, images=192,
                     permutations=30, batch_size=64)
    res = run_demo(cfg)
    assert len(res.store) == 192
    for key in ("table_csv", "semantic_map", "summary", "heatmap", "summary_page", "config"):
        assert res.paths[key].exists(), key
    # the files the README lists
    for rel in ("probes/probes.csv", "probes/probes.parquet", "probes/semantic_map.json", "probes/summary.csv",
                "figures/heatmap_ami.png", "figures/heatmap_ami.svg", "figures/summary.png", "figures/summary.svg",
                "config.json"):
        assert (cfg.out / rel).exists(), rel
    summary = pd.read_csv(res.paths["summary"])
    assert {"shape", "lighting", "bg_blur", "global_blur", "null_factor"} <= set(summary["attribute"])
    smap = json.loads(res.paths["semantic_map"].read_text())
    assert len(smap["by_position"]) == 32
    # the summary's answer per attribute is the map's: some cell significant <=> significant
    for r in summary.itertuples():
        assert any(c["significant"] for c in smap["by_attribute"][r.attribute]) == r.significant
    # `tokenprobe probe` on the demo's store writes the same tables
    attrs = ",".join(summary["attribute"])
    assert main(["probe", "--store", str(cfg.out / "store"), "--attributes", attrs, "--permutations", "30",
                 "--seed", "0", "--out", str(tmp_path / "cmd"), "--no-figures", "--quiet"]) == 0
    for name in TABLES:
        assert (tmp_path / "cmd" / name).read_bytes() == (cfg.out / "probes" / name).read_bytes(), name
    # a second run resumes the finished store instead of re-encoding
    res2 = run_demo(cfg)
    assert (res2.store.tokens == res.store.tokens).all()


def test_demo_on_the_shipped_tokenizer_reports_its_own_tables_top_positions(tmp_path):
    """Consistency, not today's weights: each reported top position is the one the demo's own table ranks
    first, the rendered global factors are carried, and the never-rendered null_factor is not."""
    res = run_demo(DemoConfig(out=tmp_path / "demo", images=1024, permutations=100, figures=False))
    summary = res.summary.set_index("attribute")
    table = pd.read_csv(res.paths["table_csv"])
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
