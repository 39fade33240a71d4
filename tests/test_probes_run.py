"""run_probes end to end: planted signals found, null attributes not, table / map / heatmap shapes."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pandas as pd
import pytest

from probe.probes import (
    ALL_POSITIONS,
    ALL_PROBES,
    TABLE_COLUMNS,
    ProbeConfig,
    run_probes,
)
from probe.probes.synthetic import planted_tokens
from probe.viz.heatmap import heatmap_frame

PLANTED = {"shape": ("categorical", 4, 2), "size": ("continuous", 4, 5)}
NULL = {"noise_cat": ("categorical", 3), "noise_cont": ("continuous", 4)}


@pytest.fixture(scope="module")
def results() -> list[tuple[object, object]]:
    out = []
    for seed in range(3):
        data = planted_tokens(2000, 8, 256, planted=PLANTED, null=NULL, noise=0.7, seed=seed)
        res = run_probes(data.tokens, data.attributes, features=data.features, codebook=data.codebook,
                         seed=seed, progress=False)
        out.append((data, res))
    return out


def test_planted_position_ranks_first_with_small_q(results) -> None:
    for data, res in results:
        for attr, pos in data.truth.items():
            if pos is None:
                continue
            ranked = res.semantic_map.by_attribute[attr]
            assert ranked[0]["position"] == pos
            assert ranked[0]["q_value"] < 0.01
            assert res.semantic_map.dominant(pos) == attr
            for probe in ("mi", "cramers_v", "eta2_features"):  # random codebook: no linear codebook signal
                h = res.heatmap(probe)
                assert h[attr].idxmax() == pos, (probe, attr)
        assert res.table.query("probe == 'spearman_max' and attribute == 'size'").set_index("position").value.idxmax() == 5


def test_null_attributes_yield_no_discovery(results) -> None:
    for data, res in results:
        t = res.table
        # per-cell probes; ami_max is one family-wise test per attribute, where a null attribute reaches
        # p < 0.05 at the nominal 5% rate (test_ami_max_is_the_family_wise_test_over_positions)
        null_rows = t[t["attribute"].str.split("=").str[0].isin(list(NULL)) & (t["probe"] != "ami_max")]
        assert null_rows["p_value"].notna().any()
        hits = null_rows[null_rows["q_value"] < 0.05]
        assert hits.empty, hits.to_string()
        # the map marks cells family-wise over positions: a planted attribute only at its planted position, a
        # null attribute exactly when its any-position test fires (at the nominal rate, as ami_max above)
        smap, fw = res.semantic_map, t[t["probe"] == "ami_max"].set_index("attribute")["p_value"]
        for attr, pos in data.truth.items():
            marked = smap.candidates(attr, k=8)
            assert marked == ([pos] if pos is not None else marked)
            assert bool(marked) == (fw[attr] < smap.alpha), (attr, fw[attr])
        untouched = [p for p in range(8) if p not in (2, 5)]
        assert all(smap.dominant(p) in (None, *NULL) for p in untouched)


def test_table_shape_and_heatmap(results) -> None:
    _, res = results[0]
    t = res.table
    assert list(t.columns) == TABLE_COLUMNS
    assert not t.duplicated(["position", "attribute", "probe"]).any()
    h = heatmap_frame(t, "ami")
    assert h.shape == (8, 4) and list(h.index) == list(range(8))
    assert set(h.columns) == {"shape", "size", "noise_cat", "noise_cont"}
    assert (t.loc[t.probe == "linear_acc_all", "position"] == ALL_POSITIONS).all()
    parts = t.loc[t.probe == "var_logratio", "attribute"].unique()
    assert set(parts) == {f"shape=shape{i}" for i in range(4)} | {f"noise_cat=noise_cat{i}" for i in range(3)}
    assert set(t.loc[t.probe == "linear_r2", "attribute"]) == {"size", "noise_cont"}
    for probe in ("mi", "ami", "eta2_features", "cramers_v"):
        q = t.loc[t.probe == probe, "q_value"]
        assert q.notna().all() and (q >= t.loc[t.probe == probe, "p_value"] - 1e-15).all()
    d = json.loads(res.semantic_map.to_json())
    assert set(d["by_attribute"]) == {"shape", "size", "noise_cat", "noise_cont"}
    assert len(d["by_attribute"]["shape"]) == 8 and len(d["by_position"]) == 8
    assert res.attributes["size"]["kind"] == "continuous" and res.attributes["shape"]["kind"] == "categorical"


def test_reproducible_with_seed_and_duck_typed_store() -> None:
    data = planted_tokens(600, 4, 64, planted={"a": ("categorical", 2, 1)}, null={}, seed=3)

    # anything with .tokens / .attributes (/ .features / .codebook / .header) is a store
    fake_store = SimpleNamespace(tokens=data.tokens, attributes=data.attributes, features=data.features,
                                 codebook=data.codebook, header={"attributes": {"a": "string"}})
    cfg = ProbeConfig(permutations=50, seed=7)
    r1 = run_probes(fake_store, progress=False, config=cfg)
    r2 = run_probes(data.tokens, data.attributes, features=data.features, codebook=data.codebook,
                    progress=False, config=cfg)
    pd.testing.assert_frame_equal(r1.table, r2.table)
    assert r1.semantic_map.top_positions("a", 1) == [1]


def test_missing_values_and_subset_and_errors() -> None:
    data = planted_tokens(800, 4, 64, planted={"a": ("categorical", 3, 0)}, null={"b": ("continuous", 4)}, seed=1)
    attrs = data.attributes.copy()
    attrs.loc[::5, "a"] = None
    attrs["const"] = 1
    attrs["ident"] = [f"id{i}" for i in range(800)]
    res = run_probes(data.tokens, attrs, features=data.features, permutations=40, progress=False)
    assert res.table.loc[res.table.attribute == "a", "n"].max() == 640
    assert res.semantic_map.top_positions("a", 1) == [0]
    assert set(res.skipped) == {"const", "ident"}
    assert "eta2_codebook" not in set(res.table.probe)  # no codebook given
    sub = run_probes(data.tokens, attrs, attributes_subset=["b"], permutations=10, progress=False)
    assert set(sub.table.attribute) == {"b"}
    with pytest.raises(ValueError, match="rows"):
        run_probes(data.tokens[:10], attrs, progress=False)
    with pytest.raises(ValueError, match="not found"):
        run_probes(data.tokens, attrs, attributes_subset=["nope"], progress=False)
    with pytest.raises(ValueError, match="features"):
        run_probes(data.tokens, attrs, features=data.features[:, :2], progress=False)
    with pytest.raises(ValueError, match="unknown probe"):
        run_probes(data.tokens, attrs, probes=("mi", "bogus"), progress=False)


def test_ami_max_is_the_family_wise_test_over_positions(results) -> None:
    """Planted attributes: the max over positions beats every permuted max (p = 1 / (P + 1)); null attributes:
    the observed max is the max of the ``ami`` rows and is not significant at the family-wise level."""
    for data, res in results:
        t = res.table
        fw = t[t["probe"] == "ami_max"].set_index("attribute")
        assert (fw["position"] == -1).all() and set(fw.index) == set(data.truth)
        n_perm = res.config["permutations"]
        for attr, pos in data.truth.items():
            cells = t[(t["probe"] == "ami") & (t["attribute"] == attr)]
            assert fw.loc[attr, "value"] == pytest.approx(cells["value"].max(), abs=1e-9)
            if pos is not None:
                assert fw.loc[attr, "p_value"] == pytest.approx(1 / (n_perm + 1))
            else:
                assert fw.loc[attr, "p_value"] > 0.01


def test_every_probe_is_served_by_a_registered_unit() -> None:
    from probe.probes.units import UNITS

    served = set().union(*(u.serves for u in UNITS))
    assert served == set(ALL_PROBES)  # a probe without a unit would silently write no rows
    assert len({u.name for u in UNITS}) == len(UNITS)
    # asking for one probe writes that probe's rows only, though its unit serves others too
    data = planted_tokens(300, 3, 32, planted={"a": ("categorical", 2, 1)}, null={}, seed=2)
    for probe in ("ami", "linear_acc_ids"):
        res = run_probes(data.tokens, data.attributes, features=data.features, permutations=5, probes=(probe,),
                         progress=False)
        assert set(res.table.probe) == {probe} and res.disentanglement.empty


def test_a_continuous_tokenizers_store_runs_the_feature_probes() -> None:
    """No ids (-1 everywhere, as a continuous tokenizer's store holds) but features: the feature probes run,
    rank by eta^2 of the features, find the planted position and leave the null attribute uncarried;
    an id probe alone is refused, and negative ids beside real ones stay an error."""
    import numpy as np

    from probe.probes import run_probes

    data = planted_tokens(1500, 8, 64, planted={"a": ("categorical", 3, 5)}, null={"z": ("categorical", 3)},
                          seed=1)
    no_ids = np.full_like(data.tokens, -1)
    res = run_probes(no_ids, data.attributes, features=data.features, permutations=50, progress=False)
    assert set(res.table["probe"]) <= {"eta2_features", "var_logratio", "spearman_max", "linear_r2",
                                       "linear_acc_features", "linear_acc_all"}
    assert res.semantic_map.rank_by == "eta2_features" and res.config["has_ids"] is False
    assert res.semantic_map.carried("a") and res.semantic_map.candidates("a", 1) == [5]
    assert not res.semantic_map.carried("z")
    assert res.usage is None
    with pytest.raises(ValueError, match="no token ids"):
        run_probes(no_ids, data.attributes, features=data.features, probes=("ami",), progress=False)
    mixed = data.tokens.copy()
    mixed[0, 0] = -1
    with pytest.raises(ValueError, match="negative id"):
        run_probes(mixed, data.attributes, features=data.features, progress=False)
