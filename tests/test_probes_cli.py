"""``tokenprobe probe`` on a real TokenStore: writes its tables, map, config and figures."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from probe.cli import main
from probe.probes.synthetic import planted_tokens
from probe.store import ChunkRows, TokenStore, make_header, open_for_writing


def _make_store(path: Path) -> None:
    data = planted_tokens(600, 6, 64, dim=4, planted={"shape": ("categorical", 3, 2)}, null={"light": ("continuous", 4)},
                          seed=0)
    header = make_header(identity={"tokenizer": {"id": "synthetic"}}, attributes={"shape": "string", "light": "float64"},
                         num_images=600, chunk_size=256, num_tokens=6, token_dim=4, codebook_size=64)
    w = open_for_writing(path, header)
    for c in range(w.num_chunks):
        idx = np.array(list(w.chunk_range(c)))
        w.write_chunk(c, ChunkRows(index=idx, refs=list(data.attributes["ref"].iloc[idx]),
                                   attributes={k: list(data.attributes[k].iloc[idx]) for k in ("shape", "light")},
                                   tokens=data.tokens[idx], features=data.features[idx]))
    w.write_codebook(data.codebook)


def test_cli_writes_everything(tmp_path: Path, capsys) -> None:
    store = tmp_path / "store"
    _make_store(store)
    assert TokenStore.open(store).tokens.shape == (600, 6)
    rc = main(["probe", "--store", str(store), "--permutations", "30", "--seed", "3", "--umap-top", "0", "--quiet",
               "--probes", "mi,ami,eta2_features,linear_r2,disentanglement"])  # fewer heatmaps: faster
    assert rc == 0
    out = store / "probes"
    table = pd.read_csv(out / "probes.csv")
    pd.testing.assert_frame_equal(table, pd.read_parquet(out / "probes.parquet"), check_dtype=False)
    assert set(table.attribute.str.split("=").str[0]) == {"shape", "light"}
    smap = json.loads((out / "semantic_map.json").read_text())
    assert smap["by_attribute"]["shape"][0]["position"] == 2
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["seed"] == 3 and cfg["permutations"] == 30 and cfg["store"] == str(store)
    assert cfg["attributes"]["light"]["kind"] == "continuous"
    assert len(pd.read_csv(out / "disentanglement.csv")) > 0
    assert len(pd.read_csv(out / "usage.csv")) == 6
    assert set(table.probe) == {"mi", "ami", "eta2_features", "linear_r2"}
    figs = {p.name for p in (out / "figures").iterdir()}
    stems = ("summary", "codebook_usage", "heatmap_mi", "heatmap_ami", "heatmap_eta2_features", "heatmap_linear_r2")
    assert figs == {f"{s}.{ext}" for s in stems for ext in ("png", "svg")}
    assert "shape" in capsys.readouterr().out


def test_cli_attribute_subset_out_dir_and_missing_store(tmp_path: Path) -> None:
    store = tmp_path / "store"
    _make_store(store)
    out = tmp_path / "elsewhere"
    assert main(["probe", "--store", str(store), "--attributes", "light", "--permutations", "10", "--out", str(out),
                 "--no-figures", "--quiet"]) == 0
    assert set(pd.read_csv(out / "probes.csv").attribute) == {"light"}
    assert not (out / "figures").exists()
    assert main(["probe", "--store", str(tmp_path / "nope"), "--quiet"]) == 2
