"""The semantic map: ranking, candidates, family-wise significance, q-values at the bound, JSON round trip,
and ProbeResult.save writing every table and figure."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from probe.probes import SemanticMap, run_probes
from probe.probes.semantic_map import build_semantic_map
from probe.probes.significance import maxt_pvalues
from probe.probes.synthetic import planted_tokens


def _table(values: dict[str, list[float]], q: dict[str, list[float]]) -> pd.DataFrame:
    rows = [{"position": pos, "attribute": a, "probe": "ami", "value": v, "null_mean": 0.0, "null_sd": np.nan,
             "p_value": q[a][pos], "q_value": q[a][pos], "n": 100}
            for a, vals in values.items() for pos, v in enumerate(vals)]
    rows += [{"position": pos, "attribute": a, "probe": "mi", "value": 2 * v, "null_mean": 0.0, "null_sd": np.nan,
              "p_value": np.nan, "q_value": np.nan, "n": 100} for a, vals in values.items() for pos, v in enumerate(vals)]
    return pd.DataFrame(rows)


def test_candidates_follow_the_planted_ranking_and_q_values_stop_at_the_bound() -> None:
    table = _table({"a": [0.10, 0.50, 0.30, 0.00, 0.20], "z": [0.01, 0.00, 0.02, 0.00, 0.01]},
                   {"a": [1e-300, 1e-12, 0.004, 0.9, 0.02], "z": [0.5, 0.9, 0.3, 0.9, 0.6]})
    # family-wise p per position (as maxt_pvalues gives): a carried at 1, 2, 4, 0; z carried nowhere
    fw = {"a": (np.array([0.01, 0.005, 0.005, 1.0, 0.005]), 0.005), "z": (np.array([0.6, 1.0, 0.3, 1.0, 0.6]), 0.3)}
    smap = build_semantic_map(table, ["a", "z"], permutations=199, family_wise=fw)
    assert smap.candidates("a", 3) == [1, 2, 4]  # by effect, best first
    assert smap.candidates("a", 10) == [1, 2, 4, 0]  # position 3 is not significant
    assert smap.top_positions("a", 5) == [1, 2, 4, 0, 3]
    assert smap.candidates("z") == [] and smap.top_positions("z", 1) == [2]
    assert smap.carried("a") and not smap.carried("z")
    f = smap.to_frame().set_index(["attribute", "position"])
    assert list(f.loc["a", "rank"].sort_index()) == [4, 1, 2, 5, 3]
    assert f.loc[("a", 1), "mi"] == pytest.approx(1.0)  # every probe's value rides along
    # q below 1 / (P + 1) = 0.005 is reported as the bound, not as the extrapolated value
    assert list(f.loc["a", "q_at_bound"].sort_index()) == [True, True, True, False, False]
    assert (f.loc["a", "q_value"].sort_index().iloc[:3] == 1 / 200).all()
    assert f.loc[("a", 4), "q_value"] == 0.02
    cells = {c["position"]: c for c in json.loads(smap.to_json())["by_attribute"]["a"]}
    assert cells[0]["q_value"] == "< 1/200" and cells[4]["q_value"] == 0.02
    with pytest.raises(KeyError, match="not in the semantic map"):
        smap.candidates("nope")


def test_maxt_pvalues_known_answer() -> None:
    # 2 rows, 4 permutations: the permuted maxima are 3, 5, 2, 4
    stat = np.array([[4.5, 1.0, 5.0, 2.0, 0.0], [1.0, 3.0, 0.0, 1.0, 4.0]])
    p, p_any, mx = maxt_pvalues(stat)
    np.testing.assert_allclose(mx, [4.5, 3.0, 5.0, 2.0, 4.0])
    np.testing.assert_allclose(p, [2 / 5, 5 / 5])  # 4.5 is beaten by one permuted max (5); 1.0 by all four
    assert p_any == pytest.approx(2 / 5)


@pytest.fixture(scope="module")
def probed():
    data = planted_tokens(1200, 6, 64, planted={"a": ("categorical", 3, 4), "b": ("continuous", 4, 1)},
                          null={"z": ("categorical", 3), "w": ("continuous", 4)}, seed=2)
    return data, run_probes(data.tokens, data.attributes, features=data.features, codebook=data.codebook,
                            permutations=60, progress=False)


def test_json_round_trip(probed, tmp_path: Path) -> None:
    _, res = probed
    smap = res.semantic_map
    back = SemanticMap.from_json(smap.to_json())
    pd.testing.assert_frame_equal(back.to_frame(), smap.to_frame())
    assert (back.rank_by, back.alpha, back.permutations, back.attributes) == (
        smap.rank_by, smap.alpha, smap.permutations, smap.attributes)
    pd.testing.assert_frame_equal(back.summary(), smap.summary())
    path = tmp_path / "semantic_map.json"
    smap.to_json(path)
    pd.testing.assert_frame_equal(SemanticMap.from_json(path).to_frame(), smap.to_frame())
    assert back.by_position == smap.by_position


def test_significance_agrees_everywhere(probed) -> None:
    """A cell is significant only if its attribute is carried family-wise (ami_max), and every carried
    attribute has one: semantic_map.json, the summary and the ami_max rows say the same."""
    data, res = probed
    smap = res.semantic_map
    d = json.loads(smap.to_json())
    fw = res.table[res.table["probe"] == "ami_max"].set_index("attribute")["p_value"]
    summary = res.summary.set_index("attribute")
    for attr, pos in data.truth.items():
        any_cell = any(c["significant"] for c in d["by_attribute"][attr])
        assert any_cell == bool(summary.loc[attr, "significant"]) == d["attributes"][attr]["carried"]
        assert any_cell == (fw[attr] < smap.alpha)
        assert summary.loc[attr, "any_position_p"] == pytest.approx(fw[attr])
        if pos is not None:
            assert smap.candidates(attr, 1) == [pos]
        else:  # the null attributes of this seed are not carried: no cell of theirs may be marked
            assert not any_cell and smap.candidates(attr) == []
    # the top cell's family-wise p is the any-position p (the max over positions against the permuted maxima)
    top = smap.to_frame().query("rank == 1").set_index("attribute")
    np.testing.assert_allclose(top["fw_p_value"], fw[top.index])


def test_save_writes_every_table_and_figure(probed, tmp_path: Path) -> None:
    _, res = probed
    paths = res.save(tmp_path / "probes")
    tables = {"probes.csv", "probes.parquet", "semantic_map.json", "semantic_map.csv", "summary.csv",
              "disentanglement.csv", "usage.csv", "config.json"}
    assert tables <= {p.name for p in (tmp_path / "probes").iterdir()}
    figures = {p.name for p in (tmp_path / "probes" / "figures").iterdir()}
    assert {"heatmap_ami.png", "heatmap_ami.svg", "summary.png", "summary.svg", "codebook_usage.png"} <= figures
    assert paths["heatmap"].name == "heatmap_ami.png" and paths["summary_page"].name == "summary.png"
    assert all(p.exists() for p in paths.values())
    summary = pd.read_csv(paths["summary"], keep_default_na=False, na_values=[""])
    pd.testing.assert_frame_equal(summary, res.summary, check_dtype=False)
    res.save(tmp_path / "tables_only", figures=False)
    assert not (tmp_path / "tables_only" / "figures").exists()
