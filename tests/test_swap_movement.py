"""The one comparison of readings (probe.swap.movement), the one top-k of a map (probe.swap.maps), copy-paste on
images (probe.swap.edit): known answers (the measurers are tested in test_measure.py)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from probe.swap import copy_paste, movement, top_positions


def test_movement_is_signed_along_the_recipient_to_donor_direction() -> None:
    m = movement("continuous", [0.0, 0.0, 1.0], [0.5, -0.2, 1.0], toward=[1.0, 1.0, 1.0])
    assert m["transfer"][:2].tolist() == [0.5, -0.2]  # the wrong way counts negative
    assert np.isnan(m["transfer"][2])  # no gap: no transfer
    assert m["distance"].tolist() == pytest.approx([0.5, 0.2, 0.0])
    assert m["nearer_donor"][:2].tolist() == [False, False] and bool(movement("continuous", [0.0], [0.9], [1.0])
                                                                       ["nearer_donor"][0])
    # vectors: only the component along the gap counts; the unsigned length counts everything
    v = movement("continuous", [[0.0, 0.0]], [[0.25, 5.0]], toward=[[1.0, 0.0]])
    assert v["transfer"][0] == pytest.approx(0.25) and v["moved_abs"][0] == pytest.approx(np.hypot(0.25, 5.0))


def test_movement_counts_from_start_and_reads_kinds() -> None:
    # originals as references: the gap is theirs, movement counts from the recipient's decode
    m = movement("continuous", [0.0], [0.6], toward=[2.0], start=[0.2])
    assert m["gap"][0] == 2.0 and m["moved"][0] == pytest.approx(0.4) and m["transfer"][0] == pytest.approx(0.2)
    # circular unit vectors: a quarter turn; the scalar is the angle in turns
    quarter = movement("circular", [[1.0, 0.0]], [[0.0, 1.0]])
    assert quarter["distance"][0] == pytest.approx(0.25) and quarter["after"][0] == pytest.approx(0.25)
    # the hue that moved from red (0) half way to green (1/3 turn) along the chord
    red, green = [[1.0, 0.0]], [[np.cos(2 * np.pi / 3), np.sin(2 * np.pi / 3)]]
    assert movement("circular", red, green, toward=green)["transfer"][0] == pytest.approx(1.0)
    # class probabilities: total variation; the donor's class probability as the table's scalar
    c = movement("categorical", [[0.9, 0.1]], [[0.2, 0.8]], toward=[[0.0, 1.0]])
    assert c["distance"][0] == pytest.approx(0.7) and c["after"][0] == pytest.approx(0.8)
    assert bool(c["nearer_donor"][0]) and c["transfer"][0] == pytest.approx(0.7 / 0.9)
    # tensors read like arrays
    assert movement("continuous", torch.zeros(3), torch.ones(3))["distance"].tolist() == [1.0, 1.0, 1.0]


def test_top_positions_reads_every_kind_of_map(tmp_path) -> None:
    from probe.optimize.tasks import load_position_map
    from probe.probes.semantic_map import SemanticMap

    def cell(pos, rank, sig):
        return {"position": pos, "rank": rank, "effect": 0.5 / rank, "q_value": 0.001 if sig else 0.5,
                "q_at_bound": False, "fw_p_value": 0.001 if sig else 0.5, "significant": sig}

    smap = SemanticMap.from_dict({"rank_by": "ami", "alpha": 0.05, "permutations": 100,
                                  "by_attribute": {"lighting": [cell(3, 1, True), cell(0, 2, False)],
                                                   "shape": [cell(1, 1, False)]}})
    assert top_positions(smap, "lighting", 2) == [3]  # the map's candidates: significant cells only
    with pytest.raises(ValueError, match="no significant position"):
        top_positions(smap, "shape", 1)
    assert top_positions(smap, "shape", 1, empty_ok=True) == []

    class Validated:
        def candidates(self, attribute, k):
            return [7, 2][:k]

    assert top_positions(Validated(), "lighting", 1) == [7]
    path = tmp_path / "map.json"
    smap.to_json(path)
    assert top_positions(load_position_map(path), "lighting", 1) == [3]
    path.write_text(json.dumps({"lighting": [2, 1]}))
    assert top_positions(load_position_map(path), "lighting", 1) == [2]
    with pytest.raises(KeyError, match="shape"):
        top_positions(load_position_map(path), "shape", 1)
    # a zoo record's swap-validated declared_semantics
    record = {"kind": "tokenizer", "declared_semantics": {"_source": "x", "lighting": {"positions": [26], "floor": 0.4}}}
    path.write_text(json.dumps(record))
    assert top_positions(load_position_map(path), "lighting", 1) == [26]
    assert top_positions(record["declared_semantics"], "lighting", 1) == [26]
    # a probe table: ranked by its rank_by probe, every position
    import pandas as pd

    table = pd.DataFrame({"attribute": ["a"] * 3 + ["b"], "position": [0, 1, 2, 0], "probe": ["ami"] * 4,
                          "value": [0.1, 0.7, 0.3, 0.2]})
    assert top_positions(table, "a", 2) == [1, 2]


def test_copy_paste_moves_exactly_the_given_positions() -> None:
    from test_optimize_toy import ToyTokenizer, quadrant_images

    tok = ToyTokenizer(discrete=True)
    t = quadrant_images(tok.codes[torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7]])])
    s = quadrant_images(tok.codes[torch.tensor([[20, 21, 22, 23]])])
    out = copy_paste(tok, t, s, [1, 3])
    assert tok.quantize(out["quantized"])[1].tolist() == [[0, 21, 2, 23], [4, 21, 6, 23]]
    with pytest.raises(ValueError, match="positions"):
        copy_paste(tok, t, s, [4])


def test_position_eta_squared_matches_the_closed_form() -> None:
    """The localization analysis' eta-squared (from probe.probes.stats) equals between-group over total sum of
    squares, summed over the feature dims, per position; a planted position gets the top value."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analyses" / "world_tokenizer"))
    from localization import position_eta_squared

    gen = torch.Generator().manual_seed(0)
    labels = np.repeat([2, 5, 9], 20)  # any values: groups are the distinct ones
    feats = torch.randn(60, 4, 3, generator=gen)
    feats[:, 1, 0] += torch.as_tensor(labels, dtype=torch.float32)  # position 1 carries the label
    perm = np.random.default_rng(0).permutation(labels)
    got = position_eta_squared(feats, np.stack([labels, perm]))
    assert got.shape == (4, 2) and int(got[:, 0].argmax()) == 1

    def direct(lab: np.ndarray) -> np.ndarray:
        x = feats.double().numpy()
        mu = x.mean(0)
        between = sum((lab == g).sum() * ((x[lab == g].mean(0) - mu) ** 2).sum(-1) for g in np.unique(lab))
        return between / ((x - mu) ** 2).sum(axis=(0, 2))

    np.testing.assert_allclose(got[:, 0], direct(labels), rtol=1e-5)
    np.testing.assert_allclose(got[:, 1], direct(perm), rtol=1e-5)
