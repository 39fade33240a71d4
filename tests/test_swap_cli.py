"""``tokenprobe swap`` end to end on a small world-32 store: files, seeds, one-line errors, thresholds in --help."""
from __future__ import annotations

import json

import pandas as pd
import pytest


def test_swap_sweep_writes_the_validated_map(store_path, tmp_path, capsys) -> None:
    from probe.cli import main

    out = tmp_path / "swap"
    rc = main(["swap", "--store", str(store_path), "--sweep", "--attributes", "lighting", "--pairs", "8", "--discovery-pairs", "8",
               "--control-pairs", "4",
               "--no-greedy", "--grids", "2", "--traverse", "26", "--traverse-images", "2", "--seed", "5",
               "--format", "csv", "--out", str(out), "--quiet", "--no-side-effects"])
    assert rc == 0
    for name in ("swaps.csv", "mappings.csv", "validated_map.csv", "validated_map.json", "causal_heatmap.csv",
                 "rank_agreement.csv", "config.json", "causal_vs_probe.png", "causal_vs_probe.svg",
                 "traversal_26_curve.csv", "traversal_26.png"):
        assert (out / name).exists(), name
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["swap"]["seed"] == 5 and cfg["swap"]["verdict"]["seed"] == 5 and "confirmed" in cfg["thresholds"]
    mappings = pd.read_csv(out / "mappings.csv")
    disc, conf = mappings[mappings["split"] == "discovery"], mappings[mappings["split"] == "confirmation"]
    assert sorted(disc["positions"].astype(int)) == list(range(32))  # selection: every position
    assert len(conf) == 1 and conf["n_pairs"].iloc[0] == 8  # confirmation: the selected one, on its own pairs
    swaps = pd.read_csv(out / "swaps.csv")
    assert set(swaps[swaps["split"] == "confirmation"]["control"]) == {"none", "same_end", "random_position",
                                                                        "all_except"}
    pairs = pd.read_csv(out / "pairs.csv")
    used = {s: set(g["recipient"]) | set(g["donor"]) for s, g in pairs.groupby("split")}
    assert used["discovery"].isdisjoint(used["confirmation"])
    vmap = json.loads((out / "validated_map.json").read_text())
    assert vmap["answers"][0]["attribute"] == "lighting"
    assert vmap["rule"] == cfg["thresholds"] and "confirmation pairs" in vmap["numbers"]
    row = pd.read_csv(out / "validated_map.csv").iloc[0]
    assert row["n_pairs"] == 8 and row["discovery_pairs"] == 8 and row["family_size"] == 1
    assert "lighting" in capsys.readouterr().out


def test_bad_attribute_is_one_line(store_path, tmp_path, capsys) -> None:
    from probe.cli import main

    rc = main(["swap", "--store", str(store_path), "--attributes", "nope", "--out", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "nope" in err[0]


def test_missing_store_is_one_line(tmp_path, capsys) -> None:
    from probe.cli import main

    rc = main(["swap", "--store", str(tmp_path / "none")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "no token store" in err[0]


def test_help_states_the_rule(capsys) -> None:
    from probe.cli import main
    from probe.swap import VerdictConfig

    with pytest.raises(SystemExit):
        main(["swap", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert " ".join(VerdictConfig().text().split()) in text  # the same text as the validated map and the report
    assert "lower bound >= 0.5" in text and "Bonferroni" in text


def test_swap_map_tests_the_maps_candidates(store_path, tmp_path, capsys) -> None:
    from probe.cli import main

    smap = tmp_path / "semantic_map.json"  # a plain ranking (what older maps hold): its top k are tested
    smap.write_text(json.dumps({"by_attribute": {"lighting": [{"position": 11, "effect": 0.5},
                                                              {"position": 26, "effect": 0.4},
                                                              {"position": 3, "effect": 0.1}]}}))
    out = tmp_path / "swap"
    rc = main(["swap", "--store", str(store_path), "--map", str(smap), "--attributes", "lighting", "--k", "2",
               "--pairs", "6", "--grids", "0", "--no-side-effects", "--out", str(out), "--quiet"])
    assert rc == 0
    mappings = pd.read_csv(out / "mappings.csv", dtype={"positions": str})
    assert set(mappings["positions"]) == {"11", "26", "11+26"}
    assert {"transfer", "ci_low", "verdict", "specificity"} <= set(mappings.columns)
    capsys.readouterr()
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"by_attribute": {"lighting": []}}))
    rc = main(["swap", "--store", str(store_path), "--map", str(empty), "--attributes", "lighting",
               "--out", str(tmp_path / "e"), "--quiet"])
    assert rc == 0 and "no candidate" in capsys.readouterr().out
