"""The swap engine on a tokenizer whose semantics are known by construction (tests/_swap_toy.py):
position 3 sets brightness, 7 hue, 5 contrast; 9 (and every other position) is ignored; position 11 is a
planted copy of the brightness label that the decoder never reads."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from _swap_toy import BRIGHT, CIRCULAR, CONTRAST, HUE, IGNORED, MEASURERS, PLANTED, ToyStore, ToyTokenizer

from probe.swap import SwapConfig, SwapData, VerdictConfig, patch, sweep, validate
from probe.swap.engine import Shard, canonical_order, merge_shards
from probe.tokenizers.base import paste_tokens

FAST = SwapConfig(pairs=48, verdict=VerdictConfig(n_boot=300))


@pytest.fixture(scope="module")
def toy():
    store = ToyStore()
    tok = ToyTokenizer()
    return tok, store, SwapData.from_store(store, tok, circular=CIRCULAR)


@pytest.fixture(scope="module")
def swept(toy):
    tok, _, data = toy
    return sweep(tok, data, MEASURERS, config=FAST, progress=False)


def test_sweep_confirms_the_built_in_mappings_and_rejects_the_rest(swept) -> None:
    s = swept.summary.set_index(["attribute", "positions"])
    truth = {"brightness": BRIGHT, "hue": HUE, "contrast": CONTRAST}
    for attr, pos in truth.items():
        row = s.loc[(attr, str(pos))]
        assert row["verdict"] == "confirmed" and row["specificity"] == "specific", (attr, row.to_dict())
        assert row["transfer"] == pytest.approx(1.0, abs=1e-4)
        assert row["ci_low"] >= 0.99 and row["ci_low_adj"] >= 0.99
        assert row["random_position"] < 0.05 and row["gated_by"] == "random_position,same_end,all_except"
        # the other positions cannot move it
        others = s.loc[attr].drop(index=str(pos))
        assert (others["verdict"] == "rejected").all(), others[others["verdict"] != "rejected"]
        assert others["transfer"].abs().max() < 1e-4
    # the ignored position and the planted copy move nothing at all
    for attr in truth:
        for pos in (IGNORED, PLANTED):
            assert s.loc[(attr, str(pos)), "transfer"] == pytest.approx(0.0, abs=1e-6)


def test_controls_behave(swept) -> None:
    s = swept.summary.set_index(["attribute", "positions"])
    row = s.loc[("hue", str(HUE))]
    assert row["all_except"] == pytest.approx(0.0, abs=1e-4)  # everything but 7 leaves hue alone
    assert row["random_position"] == pytest.approx(0.0, abs=1e-4)
    # hue is not moved toward the other arc by a paste from the recipient's own arc
    assert abs(row["same_end"]) < 0.3
    # a deterministic decoder: no self-swap (it could not fail), no donor "ceiling" (1 by construction)
    assert not {"self", "donor_recon"} & set(swept.table["control"])
    assert swept.table.attrs["visibility"]["hue"]["status"] == "testable"


def test_self_swap_is_asserted_no_op() -> None:
    q = torch.randn(5, 12, 4)
    assert torch.equal(paste_tokens(q, q, [1, 3]), q)
    donor = torch.randn(5, 12, 4)
    moved = paste_tokens(q, donor, [1, 3])
    assert torch.equal(moved[:, [1, 3]], donor[:, [1, 3]]) and torch.equal(moved[:, [0, 2]], q[:, [0, 2]])
    assert not torch.equal(paste_tokens(q, donor, 1), q)


def test_indices_give_the_same_table_as_vectors(toy) -> None:
    tok, store, _ = toy
    rec, don = store.tokens[:32], store.tokens[32:64]
    ids = patch(tok, torch.as_tensor(rec), torch.as_tensor(don), [[BRIGHT], [HUE, IGNORED]], list(MEASURERS.values()),
                controls=("none", "random_position", "all_except"), progress=False)
    vec = patch(tok, tok.codebook[torch.as_tensor(rec)], tok.codebook[torch.as_tensor(don)], [[BRIGHT], [HUE, IGNORED]],
                list(MEASURERS.values()), controls=("none", "random_position", "all_except"), progress=False)
    pd.testing.assert_frame_equal(ids, vec)


def test_swap_back_is_reversible_through_pixels(toy) -> None:
    tok, store, _ = toy
    rec, don = torch.as_tensor(store.tokens[:24]), torch.as_tensor(store.tokens[24:48])
    t = patch(tok, rec, don, [[BRIGHT]], list(MEASURERS.values()), controls=("none", "swap_back"), progress=False)
    back = t[t["control"] == "swap_back"]
    assert back["moved_abs"].max() < 1e-5
    assert t[t["control"] == "none"]["moved_abs"].max() > 0.1  # the swap itself did move something


def test_same_seed_same_table_and_seed_matters(toy) -> None:
    tok, _, data = toy
    a = sweep(tok, data, MEASURERS, [[BRIGHT], [IGNORED]], config=FAST, progress=False)
    b = sweep(tok, data, MEASURERS, [[BRIGHT], [IGNORED]], config=FAST, progress=False)
    pd.testing.assert_frame_equal(a.table, b.table)
    pd.testing.assert_frame_equal(a.summary, b.summary)
    c = sweep(tok, data, MEASURERS, [[BRIGHT], [IGNORED]], config=SwapConfig(pairs=48, seed=1), progress=False)
    assert not a.pairs[["recipient", "donor"]].equals(c.pairs[["recipient", "donor"]])


def test_two_shards_merge_into_the_one_process_table(toy) -> None:
    tok, _, data = toy
    sets = [[BRIGHT], [HUE, CONTRAST]]
    one = sweep(tok, data, MEASURERS, sets, config=FAST, progress=False)
    parts = [sweep(tok, data, MEASURERS, sets, config=FAST, progress=False, shard=Shard(r, 2, exchange=False)).table
             for r in range(2)]
    assert all(len(p) < len(one.table) for p in parts)
    pd.testing.assert_frame_equal(merge_shards(parts), canonical_order(one.table))


def test_entangled_mapping_is_named(toy) -> None:
    _, store, _ = toy
    tok = ToyTokenizer(entangled=True)
    data = SwapData.from_store(store, tok, circular=CIRCULAR)
    res = sweep(tok, data, MEASURERS, [[CONTRAST]], attributes=["contrast"], config=FAST, progress=False)
    row = res.summary.iloc[0]
    assert row["verdict"] == "confirmed" and row["specificity"] == "entangled"
    assert "brightness" in row["entangled_with"].split(",") and "hue" not in row["entangled_with"]


def test_validated_map_finds_the_planted_disagreement(toy, swept) -> None:
    from probe.probes import run_probes

    tok, store, data = toy
    probes = run_probes(store.tokens, store.attributes.drop(columns=["index", "ref"]), probes=("mi", "ami"),
                        permutations=20, progress=False)
    vmap = validate(tok, data, MEASURERS, probes.semantic_map, config=FAST, progress=False, sweep_result=swept)
    assert vmap.answer("brightness") == [BRIGHT]
    assert vmap.answer("hue") == [HUE]
    dis = vmap.disagreements.set_index("attribute")
    assert "brightness" in dis.index  # the probes rank the never-decoded copy first
    assert dis.loc["brightness", "probe_top"] == PLANTED and dis.loc["brightness", "causal_top"] == BRIGHT
    assert dis.loc["brightness", "probe_top_transfer"] == pytest.approx(0.0, abs=1e-6)
    assert "hue" not in dis.index
    ans = vmap.answers.set_index("attribute")
    assert ans.loc["brightness", "probe_rank"] > 1 and ans.loc["hue", "probe_rank"] == 1


def test_greedy_finds_the_smallest_set_when_no_single_position_suffices() -> None:
    store = ToyStore(split=True)
    tok = ToyTokenizer(bright_positions=(BRIGHT, 8))
    data = SwapData.from_store(store, tok, circular=CIRCULAR)
    cfg = SwapConfig(pairs=48, greedy_pairs=32, pool=4, verdict=FAST.verdict)
    vmap = validate(tok, data, {"brightness": MEASURERS["brightness"]}, None, config=cfg, progress=False)
    single = vmap.sweep.summary.set_index("positions")
    assert 0.3 < single.loc[str(BRIGHT), "transfer"] < 0.7  # about half: the mean of two levels
    assert single.loc[str(BRIGHT), "verdict"] != "confirmed"
    ans = vmap.answers.set_index("attribute").loc["brightness"]
    assert ans["source"] == "greedy" and ans["positions"] == f"{BRIGHT}+8"
    assert ans["verdict"] == "confirmed" and ans["transfer"] == pytest.approx(1.0, abs=1e-3)
    curve = vmap.curves
    assert list(curve["set_size"]) == [1, 2] and bool(curve["reached"].iloc[-1])


def test_sweep_reuses_its_own_swaps_as_the_random_position_control(toy) -> None:
    tok, store, _ = toy
    rec, don = torch.as_tensor(store.tokens[:16]), torch.as_tensor(store.tokens[16:32])
    meas = list(MEASURERS.values())
    tok.decoded = 0
    full = patch(tok, rec, don, list(range(12)), meas, controls=("none", "random_position"), progress=False)
    assert tok.decoded == 16 * (2 + 12)  # the references and one decode per position: no extra decodes
    # the same rows as decoding the random swaps outright (a partial sweep cannot reuse)
    part = patch(tok, rec, don, [[BRIGHT], [HUE]], meas, controls=("random_position",), progress=False)
    got = full[(full["control"] == "random_position") & full["positions"].isin([str(BRIGHT), str(HUE)])]
    pd.testing.assert_frame_equal(got.reset_index(drop=True), part.reset_index(drop=True), check_dtype=False)


def test_a_model_shared_by_measurers_runs_once_per_batch(toy) -> None:
    tok, store, _ = toy

    class Counter(torch.nn.Module):
        calls = 0

        def forward(self, x):
            Counter.calls += 1
            return {"mean": x.mean((1, 2, 3)), "red": x[:, 0].mean((1, 2))}

    model = Counter()

    class Source:  # one model, several readings (probe.measure.base.SharedSource)
        reads = ("mean", "red")

        def __call__(self, images, *, masks=None):
            return model(images)

    source = Source()

    class Read:
        kind = "continuous"

        def __init__(self, key):
            self.name, self.key, self.source = key, key, source

        def read(self, readings):
            return readings[self.key]

        def __call__(self, images, *, masks=None):
            return self.read(self.source(images))

    rec, don = torch.as_tensor(store.tokens[:10]), torch.as_tensor(store.tokens[10:20])
    t = patch(tok, rec, don, [[BRIGHT]], [Read("mean"), Read("red")], batch=64, progress=False)
    assert Counter.calls == 3  # recipients, donors, swaps: one forward each for both measurers
    ref = patch(tok, rec, don, [[BRIGHT]], [MEASURERS["brightness"]], progress=False)
    assert np.allclose(t[t["measurer"] == "mean"]["swapped"], ref["swapped"])


def test_an_attribute_without_measurer_is_untested_never_confirmed(toy, swept) -> None:
    tok, store, data = toy
    ranking = pd.DataFrame({"attribute": ["brightness"] * 2 + ["null_factor"] * 2, "position": [3, 11, 9, 2],
                            "effect": [0.5, 0.4, 0.01, 0.0]})
    vmap = validate(tok, data, MEASURERS, ranking, config=FAST, progress=False, sweep_result=swept, greedy=False)
    row = vmap.answers.set_index("attribute").loc["null_factor"]
    assert row["verdict"] == "untested" and vmap.answer("null_factor") == []


def test_reconstruction_ceiling_is_measured_against_the_originals(toy) -> None:
    """Originals whose brightness gap the decoder reproduces at half its size: the visibility test says the
    reconstructions keep 0.5 of it; at a twentieth the attribute is not reconstructed, never confirmed."""
    tok, _, data = toy

    def stretched(k: float):
        def originals(rows):
            with torch.no_grad():
                img = tok.decode(data.quantized[torch.as_tensor(np.array(rows))])
            return 0.5 + k * (img - 0.5)
        return originals

    half = SwapData(data.quantized, data.attributes, data.kinds, data.circular, originals=stretched(2.0))
    res = sweep(tok, half, {"brightness": MEASURERS["brightness"]}, [[BRIGHT]], config=FAST, progress=False)
    assert res.table.attrs["visibility"]["brightness"]["kept"] == pytest.approx(0.5, abs=0.02)
    assert res.summary["verdict"].iloc[0] == "confirmed"
    lost = SwapData(data.quantized, data.attributes, data.kinds, data.circular, originals=stretched(20.0))
    res = sweep(tok, lost, {"brightness": MEASURERS["brightness"]}, [[BRIGHT]], config=FAST, progress=False)
    assert res.summary["verdict"].iloc[0] == "not reconstructed"


def test_a_stochastic_decoder_gets_a_self_swap_that_can_fail(toy) -> None:
    tok, _, data = toy

    class Noisy(ToyTokenizer):
        stochastic = True

        def decode(self, quantized, *, clamp=True):
            img = super().decode(quantized, clamp=False)
            return img + 0.4 * torch.randn(len(img), 1, 1, 1)  # a level shift as large as the brightness gap

    res = sweep(Noisy(), data, {"brightness": MEASURERS["brightness"]}, [[BRIGHT]], config=FAST, progress=False)
    row = res.summary.iloc[0]
    assert "self" in set(res.table["control"]) and "self" in row["gated_by"]
    assert row["self"] > 0.2 and row["verdict"] != "confirmed"


def test_costly_controls_on_a_subset_of_pairs(toy) -> None:
    tok, _, data = toy
    cfg = SwapConfig(pairs=48, control_pairs=12, verdict=VerdictConfig(n_boot=200))
    res = sweep(tok, data, {"brightness": MEASURERS["brightness"]}, config=cfg, progress=False)
    t = res.table
    per_control = t[t["positions"] == str(BRIGHT)].groupby("control")["pair"].nunique()
    assert per_control["none"] == 48 and per_control["random_position"] == 48  # read from the sweep itself
    assert per_control["same_end"] == 12 and per_control["all_except"] == 12
    # decodes: references and one per (pair, position), plus the two costly controls on 12 pairs
    assert res.table.attrs["decoded"] == 48 * (2 + 12) + 12 * (2 + 1 + 2 * 12)
    row = res.summary.set_index("positions").loc[str(BRIGHT)]
    assert row["verdict"] == "confirmed" and np.isfinite(row["same_end"]) and np.isfinite(row["random_position"])


def test_candidates_first_then_a_sweep_where_none_is_confirmed(toy) -> None:
    tok, _, data = toy
    ranking = pd.DataFrame({"attribute": ["brightness", "brightness", "hue"], "position": [PLANTED, BRIGHT, HUE],
                            "effect": [0.6, 0.5, 0.4]})
    vmap = validate(tok, data, MEASURERS, ranking, attributes=["brightness", "hue"], config=FAST,
                         progress=False, k=1, greedy=False)
    tested = vmap.sweep.summary.groupby("attribute")["positions"].nunique()
    assert tested["hue"] == 1  # its candidate was confirmed: nothing else decoded
    assert tested["brightness"] == 12  # the planted copy was not: every position swept
    assert vmap.answer("brightness") == [BRIGHT] and vmap.answer("hue") == [HUE]
    assert vmap.answer("brightness", accept=()) == []
