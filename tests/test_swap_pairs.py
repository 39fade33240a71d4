"""Pairs come from opposite ends of their attribute, stratified and seeded."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from probe.swap.pairs import PairConfig, sample_pairs


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x": rng.normal(size=1000), "hue": rng.random(1000),
                         "shape": rng.choice(["circle", "square", "star"], 1000)})


def test_continuous_pairs_span_the_two_quartiles(frame) -> None:
    p = sample_pairs(frame, "x", "continuous", PairConfig(n=200, seed=3))
    lo, hi = frame["x"].quantile([0.25, 0.75])
    assert len(p) == 200
    assert (p["recipient_end"] != p["donor_end"]).all()
    assert (p["recipient_end"] == "low").sum() == 100  # both directions, equally
    low_rec = p[p["recipient_end"] == "low"]
    assert (low_rec["recipient_value"] <= lo).all() and (low_rec["donor_value"] >= hi).all()
    high_rec = p[p["recipient_end"] == "high"]
    assert (high_rec["recipient_value"] >= hi).all() and (high_rec["donor_value"] <= lo).all()
    # the same-end donor is another row of the recipient's end
    same = frame["x"].to_numpy()[p["same_end_donor"].to_numpy()]
    assert (p["same_end_donor"] != p["recipient"]).all()
    assert ((same <= lo) == (p["recipient_end"] == "low")).all()


def test_circular_pairs_are_half_a_turn_apart(frame) -> None:
    p = sample_pairs(frame, "hue", "continuous", PairConfig(n=100, quantile=0.2), circular=True)
    d = np.abs(((p["donor_value"] - p["recipient_value"]) % 1.0) - 0.5)  # 0 = exactly opposite
    assert d.max() <= 0.2 + 1e-9


def test_categorical_pairs_are_stratified_over_ordered_category_pairs(frame) -> None:
    p = sample_pairs(frame, "shape", "categorical", PairConfig(n=120))
    counts = p.groupby(["recipient_end", "donor_end"]).size()
    assert len(counts) == 6 and (counts == 20).all()
    assert (p["recipient_value"] == p["recipient_end"]).all() and (p["donor_value"] == p["donor_end"]).all()
    assert (frame["shape"].to_numpy()[p["same_end_donor"]] == p["recipient_value"].to_numpy()).all()


def test_seeded(frame) -> None:
    a = sample_pairs(frame, "x", "continuous", PairConfig(n=64, seed=1))
    b = sample_pairs(frame, "x", "continuous", PairConfig(n=64, seed=1))
    c = sample_pairs(frame, "x", "continuous", PairConfig(n=64, seed=2))
    pd.testing.assert_frame_equal(a, b)
    assert not a["recipient"].equals(c["recipient"])


def test_one_end_is_an_error(frame) -> None:
    with pytest.raises(ValueError, match="'const'"):
        sample_pairs(frame.assign(const="a"), "const", "categorical")
