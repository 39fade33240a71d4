"""The verdict's parts: visibility (null labels are untestable), movement along the labels' direction,
discovery / confirmation pairs on disjoint images, the rule with its gates."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from probe.swap.split import split_pairs
from probe.swap.verdict import GATES, VerdictConfig, best_verdict, decide, judge
from probe.swap.visibility import along, kept_gap, label_directions, pair_directions, visibility


def _world(m: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A label and a reading that sees it (reading = label + noise)."""
    rng = np.random.default_rng(seed)
    label = rng.random(m)
    return label, label + rng.normal(0, 0.2, m)


def _ends(x: np.ndarray) -> np.ndarray:
    return np.where(x >= np.median(x), "high", "low")


def test_true_labels_are_testable_and_null_labels_are_not() -> None:
    label, reading = _world()
    assert visibility(reading, _ends(label), reading).testable
    visible = []
    for seed in range(40):  # permuted labels and coin flips: about alpha = 1% pass by chance
        rng = np.random.default_rng(100 + seed)
        visible.append(visibility(reading, _ends(rng.permutation(label)), n_perm=500, seed=seed).testable)
        visible.append(visibility(reading, rng.choice(["0", "1"], len(label)), n_perm=500, seed=seed).testable)
    assert sum(visible) <= 3  # P(Binomial(80, 0.01) > 3) < 0.01


def test_a_tokenizer_that_loses_the_gap_is_not_reconstructed() -> None:
    label, original = _world()
    ends = _ends(label)
    rng = np.random.default_rng(1)
    faint = 0.05 * original + rng.normal(0, 0.01, len(label))  # the gap survives, at 5%
    v = visibility(faint, ends, original)
    assert v.status == "not reconstructed" and v.kept == pytest.approx(0.05, abs=0.01)
    black = rng.normal(0, 0.01, len(label))  # nothing survives: the originals still show it
    assert visibility(black, ends, original).status == "not reconstructed"
    assert visibility(original, ends, original).kept == pytest.approx(1.0)
    # the originals do not show it either: the measurer does not see the attribute at all
    assert visibility(black, ends, rng.normal(0, 1, len(label))).status == "not visible"


def test_vector_readings_and_several_categories() -> None:
    rng = np.random.default_rng(2)
    cats = rng.choice(["a", "b", "c"], 300)
    centre = {"a": [1.0, 0.0, 0.0], "b": [0.0, 1.0, 0.0], "c": [0.0, 0.0, 1.0]}
    probs = np.array([centre[c] for c in cats]) * 0.6 + rng.dirichlet([1, 1, 1], 300) * 0.4
    assert visibility(probs, cats).testable
    assert not visibility(probs, rng.permutation(cats), seed=1).testable
    d = label_directions(probs, cats)
    assert np.allclose(np.linalg.norm(d[("a", "b")]), 1) and np.allclose(d[("a", "b")], -d[("b", "a")])
    assert d[("a", "b")][1] > 0 > d[("a", "b")][0]
    # hue as a unit vector: two opposite arcs
    ang = np.where(rng.random(200) < 0.5, 0.0, np.pi) + rng.normal(0, 0.3, 200)
    arcs = np.where(np.cos(ang) > 0, "arc0", "arc1")
    assert visibility(np.stack([np.cos(ang), np.sin(ang)], 1), arcs).testable


def test_movement_is_signed_along_the_label_direction() -> None:
    r, d = np.array([0.0, 1.0]), np.array([1.0, 0.0])
    s = np.array([0.7, 1.2])  # pair 0 moves 0.7 of the way; pair 1 moves the wrong way
    u = pair_directions({("low", "high"): np.array([1.0]), ("high", "low"): np.array([-1.0])},
                        ["low", "high"], ["high", "low"])
    moved, gap = along(r, d, s, u)
    assert moved == pytest.approx([0.7, -0.2]) and gap == pytest.approx([1.0, 1.0])
    # a pair whose images differ across the label direction has no gap along it, whatever it moves
    moved, gap = along(np.array([[0.0, 0.0]]), np.array([[0.0, 1.0]]), np.array([[0.0, 1.0]]), np.array([1.0, 0.0]))
    assert moved == pytest.approx([0.0]) and gap == pytest.approx([0.0])


def test_kept_gap_projects_on_the_originals_direction() -> None:
    ends = np.array(["low", "low", "high", "high"])
    orig = np.array([0.0, 0.0, 1.0, 1.0])
    assert kept_gap(np.array([0.0, 0.0, -1.0, -1.0]), orig, ends) == pytest.approx(-1.0)  # reversed: not kept
    assert kept_gap(orig * 0.3, orig, ends) == pytest.approx(0.3)


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x": rng.normal(size=600), "shape": rng.choice(["circle", "square", "star"], 600)})


def _used(f: pd.DataFrame) -> set[int]:
    return set(f["recipient"]) | set(f["donor"]) | set(f["same_end_donor"])


@pytest.mark.parametrize("col, kind", [("x", "continuous"), ("shape", "categorical")])
def test_discovery_and_confirmation_share_no_image(frame, col: str, kind: str) -> None:
    p = split_pairs(frame, col, kind, discovery=48, confirmation=32, seed=3)
    d, c = p[p["split"] == "discovery"], p[p["split"] == "confirmation"]
    assert len(d) == 48 and len(c) == 32
    assert _used(d).isdisjoint(_used(c))
    assert (p["recipient_end"] != p["donor_end"]).all()
    if kind == "continuous":
        assert (c["recipient_end"] == "low").sum() == 16  # both directions, equally
        lo, hi = frame["x"].quantile([0.25, 0.75])
        assert ((c["recipient_value"] <= lo) == (c["recipient_end"] == "low")).all()
        assert ((c["donor_value"] >= hi) == (c["donor_end"] == "high")).all()
    else:
        assert c.groupby(["recipient_end", "donor_end"]).size().between(5, 6).all() and len(
            c.groupby(["recipient_end", "donor_end"])) == 6


def test_confirmation_images_do_not_depend_on_the_sizes_asked_for(frame) -> None:
    a = split_pairs(frame, "x", "continuous", discovery=16, confirmation=64, seed=1)
    b = split_pairs(frame, "x", "continuous", discovery=64, confirmation=64, seed=1)
    pd.testing.assert_frame_equal(a[a["split"] == "confirmation"].reset_index(drop=True),
                                  b[b["split"] == "confirmation"].reset_index(drop=True))
    other = split_pairs(frame, "x", "continuous", discovery=16, confirmation=64, seed=2)
    assert not other[other["split"] == "confirmation"]["recipient"].equals(
        a[a["split"] == "confirmation"]["recipient"].reset_index(drop=True))


def test_split_refuses_ends_too_small_to_share(frame) -> None:
    tiny = pd.DataFrame({"shape": ["circle", "square", "square", "circle", "star"]})
    with pytest.raises(ValueError, match="'shape'.*at least two images"):
        split_pairs(tiny, "shape", "categorical", discovery=2, confirmation=2)


def test_the_rule_reads_the_bound_and_every_control_that_ran() -> None:
    rule = VerdictConfig()
    assert decide(0.7, 0.55, {}, rule)["verdict"] == "confirmed"
    assert decide(0.7, 0.45, {}, rule)["verdict"] == "weak"
    assert decide(0.7, 0.10, {}, rule)["verdict"] == "rejected"
    assert decide(0.7, float("nan"), {}, rule)["verdict"] == "rejected"
    # a same-end donor that moves it as far as the opposite-end one: a paste artifact
    out = decide(0.7, 0.55, {"same_end": 0.5, "random_position": 0.0}, rule)
    assert out == {"verdict": "rejected", "gated_by": "random_position,same_end", "failed": "same_end"}
    # the rest of the positions carry it as well / the paste does not survive re-encoding: weak
    assert decide(0.7, 0.55, {"all_except": 0.5}, rule)["verdict"] == "weak"
    assert decide(0.7, 0.55, {"swap_back": 0.6}, rule)["verdict"] == "weak"
    # a stochastic decoder that moves it as far by itself
    assert decide(0.7, 0.55, {"self": 0.5}, rule)["verdict"] == "rejected"
    # margins are inclusive, controls not in the rule are ignored
    assert decide(0.75, 0.55, {"random_position": 0.5, "donor_recon": 1.0}, rule)["verdict"] == "confirmed"
    for status in ("not visible", "not reconstructed"):
        assert decide(1.0, 0.9, {}, rule, status=status)["verdict"] == status
    text = rule.text()
    for token in ("0.5", "0.15", "0.25", "Bonferroni", "confirmation pairs", "not visible", "not reconstructed"):
        assert token in text
    assert set(GATES) == {"random_position", "same_end", "self", "all_except", "swap_back"}


def test_judge_adjusts_for_the_family_and_names_the_gates() -> None:
    rng = np.random.default_rng(4)
    gap = rng.uniform(0.5, 1.0, 32)
    tested = {"3": (0.68 * gap + rng.normal(0, 0.3, 32), gap), "5": (0.05 * gap + rng.normal(0, 0.1, 32), gap)}
    ctrl = {"3": {"random_position": (0.02 * gap, gap), "same_end": (np.zeros(32), gap)}}
    one = judge(tested, ctrl, family_size=2)
    many = judge(tested, ctrl, family_size=2000)
    assert list(one["verdict"]) == ["confirmed", "rejected"]
    assert (many["ci_low_adj"] < one["ci_low_adj"]).all()
    assert many["verdict"].iloc[0] != "confirmed"  # the same data, tested among 2000 mappings
    assert one["gated_by"].iloc[0] == "random_position,same_end"
    assert one["random_position"].iloc[0] == pytest.approx(0.02)  # control movement over the tested gap
    assert (one["ci_low"] <= one["transfer"]).all() and (one["ci_low_adj"] <= one["ci_low"]).all()
    assert one.attrs["rule"] == VerdictConfig().text()
    assert set(judge(tested, ctrl, status="not visible")["verdict"]) == {"not visible"}
    assert best_verdict(["rejected", "weak", "not visible"]) == "weak"
