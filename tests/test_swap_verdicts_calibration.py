"""The verdict holds its error rates on planted tokenizers whose true transfers are known.

Small instances of the calibration benchmark (``analyses/bench_verdicts.py``), fixed seeds, rates asserted
within binomial bounds: a change that breaks the verdict's calibration fails here.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from probe.swap.calibration import Case, rates, simulate
from probe.swap.engine import patch
from probe.tokenizers import planted


def _max_failures(reps: int, rate: float, p: float = 0.01) -> int:
    """The largest count of a Binomial(reps, rate) that is not below its ``1 - p`` quantile."""
    return int(stats.binom.ppf(1 - p, reps, rate))


def test_planted_decoder_moves_exactly_its_weights() -> None:
    spec = planted.scenario("single", noise=0.0)
    tok = planted.PlantedTokenizer(spec)
    tokens, labels = planted.sample(spec, 400, seed=0)
    lo, hi = np.flatnonzero(labels["a"] < 0.25)[:50], np.flatnonzero(labels["a"] > 0.75)[:50]
    q = tok.codebook[torch.as_tensor(tokens)]
    t = patch(tok, q[lo], q[hi], [[0], [1], [9], [0, 1]], [planted.measurers(spec)["a"]], progress=False)
    got = t.groupby("positions").apply(lambda g: g["moved"].sum() / g["gap"].sum(), include_groups=False)
    assert got.to_dict() == pytest.approx({"0": 0.7, "1": 0.1, "9": 0.0, "0+1": 0.8}, abs=1e-6)
    assert planted.truth(spec, "a", [0, 1]) == pytest.approx(0.8) and planted.truth(spec, "coin", 0) == 0
    # the noise is a function of the tokens: the same tokens decode the same way, a paste redraws it
    noisy = planted.PlantedTokenizer(planted.scenario("single", noise=0.3))
    assert torch.equal(noisy.decode(q[:8]), noisy.decode(q[:8]))
    stoch = planted.PlantedTokenizer(planted.scenario("single", noise=0.3, stochastic=True))
    assert not torch.equal(stoch.decode(q[:8]), stoch.decode(q[:8]))
    with pytest.raises(ValueError, match="sum to"):
        planted.PlantedSpec((planted.PlantedAttribute("a", {0: 0.5}),))


def test_null_labels_are_never_confirmed() -> None:
    """Permuted labels and coin flips, read with a measurer of a real attribute whose position carries 0.7:
    projected on each pair's own gap, position 0 moves 0.7 of it (the last test below)."""
    reps = 15
    res = [simulate(Case("single", label, pairs=16), reps, methods=("t",)) for label in ("coin", "shuffled")]
    for r in res:
        rr = rates(r)
        assert rr["false_confirmation"] * reps <= _max_failures(reps, 0.05)
        assert rr["untestable"] >= 1 - _max_failures(reps, 0.01) / reps


def test_true_position_is_found_and_sub_threshold_ones_are_not_confirmed() -> None:
    reps = 20
    r = rates(simulate(Case("single", "a", pairs=64, noise=0.3), reps, methods=("t",)))
    assert r["untestable"] == 0
    assert r["power"] * reps >= reps - _max_failures(reps, 0.1)  # target: 90% at 64 pairs
    assert r["false_confirmation"] * reps <= _max_failures(reps, 0.05)
    assert r["coverage_t"] >= 0.85  # 80 intervals; the rate itself is measured by the benchmark


def test_redundant_positions_are_confirmed_only_together() -> None:
    """Two positions moving 0.4 each (and a third 0.2): neither alone reaches 0.5; the greedy set does."""
    reps = 12
    res = simulate(Case("redundant", "a", pairs=48, noise=0.3), reps, methods=("t",))
    r = rates(res)
    assert r["false_confirmation"] * reps <= _max_failures(reps, 0.05)
    assert r["power_any"] >= 0.75
    confirmed = res.loc[res["verdict"] == "confirmed", "positions"].str.split("+").map(set)
    assert confirmed.map(lambda s: {"0", "1"} <= s).all()  # the greedy set (0+1, or 0+1+2), never one alone


def test_entangled_side_effect_is_not_a_mapping_of_the_other_attribute() -> None:
    """Position 0 carries ``a`` and ``b``'s reading also reads it: on ``b``'s pairs it moves nothing on average."""
    reps = 10
    res = simulate(Case("entangled", "b", pairs=32), reps, methods=("t",))
    assert not ((res["positions"].str.split("+").map(lambda p: p == ["0"])) & (res["verdict"] == "confirmed")).any()
    assert rates(res)["false_confirmation"] * reps <= _max_failures(reps, 0.05)


def test_a_tokenizer_that_keeps_five_percent_is_not_reconstructed() -> None:
    res = simulate(Case("lost", "a", pairs=32), 4, methods=("t",))
    assert (res["verdict"] == "not reconstructed").all()
    assert res["kept"].between(0.02, 0.08).all()


def test_projection_on_each_pairs_own_gap_confirms_coin_flips_the_label_direction_does_not() -> None:
    """Why movement is measured along the labels' direction: coin-flip pairs differ in the reading anyway, so
    projected on each pair's own gap position 0 'transfers' its 0.7 share; along the (chance) direction of
    the coin's ends it moves about nothing."""
    from probe.swap.visibility import along, label_directions, pair_directions

    spec = planted.scenario("single", noise=0.1)
    tok = planted.PlantedTokenizer(spec)
    tokens, labels = planted.sample(spec, 600, seed=1)
    q = tok.codebook[torch.as_tensor(tokens)]
    coin = labels["coin"].to_numpy()
    rec, don = np.flatnonzero(coin == "0")[:200], np.flatnonzero(coin == "1")[:200]
    meas = planted.measurers(spec)["coin"]
    t = patch(tok, q[rec], q[don], [[0]], [meas], progress=False)
    assert t["moved"].sum() / t["gap"].sum() == pytest.approx(0.7, abs=0.05)
    read = meas(tok.decode(q)).double().numpy()
    u = pair_directions(label_directions(read, coin), ["0"] * len(rec), ["1"] * len(rec))
    moved, gap = along(t["recipient"].to_numpy(), t["donor"].to_numpy(), t["swapped"].to_numpy(), u)
    assert abs(moved.mean()) < 0.05 and abs(gap.mean()) < 0.1  # no gap along the labels: nothing to transfer
