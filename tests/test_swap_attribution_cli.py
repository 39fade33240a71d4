"""``tokenprobe swap`` attribution first (the default with differentiable measurers) and its spatial maps, on a
small world-32 store."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd


def test_default_is_attribution_first_with_spatial_maps(store_path, tmp_path) -> None:
    from probe.cli import main

    out = tmp_path / "swap"
    rc = main(["swap", "--store", str(store_path), "--attributes", "lighting", "--pairs", "8", "--control-pairs", "4",
               "--no-greedy", "--grids", "0", "--k", "2", "--spatial", "6", "--format", "csv", "--out", str(out),
               "--quiet", "--no-side-effects"])
    assert rc == 0
    vmap = json.loads((out / "validated_map.json").read_text())
    assert vmap["mode"] == "attribution"
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["swap"]["mode"] == "auto" and cfg["swap"]["first_k"] == 2
    heat = pd.read_csv(out / "attribution_heatmap.csv")
    assert list(heat["position"]) == list(range(32)) and "lighting" in heat.columns
    # real swaps at the estimate's top 2 (and up to the greedy pool when neither is confirmed)
    mappings = pd.read_csv(out / "mappings.csv")
    tested = mappings[mappings["split"] == "discovery"]  # discovery: where attribution sends the real swaps
    top2 = [int(p) for p in heat.set_index("position")["lighting"].sort_values(ascending=False).index[:2]]
    assert set(top2) <= set(tested["positions"].astype(int)) and 2 <= len(tested) <= 8
    # the confirmed mapping is one of the tested ones, measured on the confirmation pairs
    conf = mappings[mappings["split"] == "confirmation"]
    assert len(conf) >= 1 and set(conf["positions"].astype(str)) <= set(tested["positions"].astype(str))
    assert (out / "attribution_vs_causal.png").exists()
    spatial = pd.read_csv(out / "spatial_maps.csv")
    assert list(spatial["position"]) == list(range(32)) and spatial["object_ratio"].notna().any()
    arrays = np.load(out / "spatial_maps.npz")
    assert arrays["abs_change"].shape == (32, 32, 32) and arrays["luminance"].shape == (32, 32, 32)
    assert (out / "spatial_abs.png").exists() and (out / "spatial_luminance.svg").exists()
