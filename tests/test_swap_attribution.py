"""Attribution patching against the real swaps it estimates.

On the planted toy tokenizer (tests/_swap_toy.py) brightness and contrast are linear functions of the tokens
read by linear measurers, so the first-order estimate must equal the real single-position swap exactly;
positions the decoder ignores (9, the planted copy at 11, ...) must get exactly 0. On a randomly initialised
world tokenizer (a real transformer decoder, nothing learnt) the estimate must match small real pastes to first
order. A measurer without gradients is refused, never estimated as zero.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from _swap_toy import BRIGHT, CIRCULAR, CONTRAST, HUE, MEASURERS, ToyStore, ToyTokenizer

from probe.errors import TokenprobeError
from probe.measure.base import FunctionMeasurer
from probe.swap import SwapConfig, SwapData, patch, sweep
from probe.swap.attribution import (
    AttributionConfig,
    NotDifferentiableError,
    agreement,
    attribute,
    attribution_heatmap,
    attribution_summary,
    attribution_sweep,
)
from probe.swap.validated import causal_heatmap


def _declared(name: str) -> FunctionMeasurer:
    """The toy's measurer as a measurer that declares itself differentiable."""
    inner = MEASURERS[name]
    kind = "circular" if name in CIRCULAR else "continuous"
    return FunctionMeasurer(name, kind, lambda img, masks, f=inner: f(img))


MEAS = {a: _declared(a) for a in MEASURERS}


@pytest.fixture(scope="module")
def toy():
    store = ToyStore(m=240, seed=3)
    tok = ToyTokenizer()
    return tok, SwapData.from_store(store, tok, circular=CIRCULAR)


def test_linear_decoder_estimate_equals_the_real_swap(toy) -> None:
    tok, data = toy
    q = data.quantized
    rec, don = q[:40], q[40:80]
    meas = [MEAS["brightness"], MEAS["contrast"]]
    est = attribute(tok, rec, don, meas)
    real = patch(tok, rec, don, [[p] for p in range(q.shape[1])], meas, progress=False)
    key = ["pair", "positions", "measurer"]
    both = est.merge(real, on=key, suffixes=("_est", "_real"))
    assert len(both) == len(est) == 40 * 12 * 2
    np.testing.assert_allclose(both["moved_est"], both["moved_real"], atol=1e-5)
    np.testing.assert_allclose(both["gap_est"], both["gap_real"], atol=1e-6)
    # the carrying positions move their attribute; every other one moves nothing, exactly
    by = est.groupby(["measurer", "position"])["moved"].apply(lambda v: v.abs().max()).unstack()
    assert by.loc["brightness", BRIGHT] > 0.1 and by.loc["contrast", CONTRAST] > 0.1
    assert by.loc["brightness"].drop(BRIGHT).max() < 1e-6  # the hue offsets cancel up to float rounding
    assert by.loc["contrast"].drop(CONTRAST).max() < 1e-6


def test_heatmap_has_the_causal_heatmaps_layout_and_values(toy) -> None:
    tok, data = toy
    cfg = SwapConfig(pairs=32, controls=("none",))
    swept = sweep(tok, data, MEAS, config=cfg, progress=False, split="discovery")  # a ranking selects: discovery
    causal = causal_heatmap(swept.summary)
    est = attribution_sweep(tok, data, MEAS, swap_config=cfg)
    assert list(est.heatmap.index) == list(causal.index) == list(range(12))
    assert sorted(est.heatmap.columns) == sorted(causal.columns)
    # pair for pair the same pairs as the real sweep
    pd.testing.assert_frame_equal(est.pairs, swept.pairs)
    for attr in ("brightness", "contrast"):  # linear: equal cell by cell
        np.testing.assert_allclose(est.heatmap[attr], causal[attr], atol=1e-5)
    ag = agreement(est.heatmap, causal).set_index("attribute")
    # hue is an angle (non-linear): the magnitude is off but the carrying position still ranks first
    assert ag.loc["hue", "swap_best"] == HUE and ag.loc["hue", "attribution_best"] == HUE
    assert ag["top_hit"].all()
    assert ag.loc["brightness", "swap_best"] == BRIGHT and ag.loc["brightness", "swap_best_rank"] == 1


def test_no_gap_means_no_estimate_and_a_reading_without_tokens_means_zero(toy) -> None:
    tok, data = toy
    q = data.quantized
    # donors that are the recipients themselves: no gap, so no transfer (NaN), not a zero transfer
    est = attribute(tok, q[:8], q[:8], [MEAS["brightness"]])
    assert est["transfer"].isna().all() and (est["moved"] == 0).all()
    assert attribution_summary(est)["transfer"].isna().all()
    # a measurer that reads nothing the decoder makes from the tokens: estimated 0 everywhere
    corner = FunctionMeasurer("const", "continuous", lambda img, masks: img[:, 0, 0, 0] * 0 + 0.5)
    est = attribute(tok, q[:8], q[8:16], [MEAS["brightness"], corner])
    assert (est[est["measurer"] == "const"]["moved"] == 0).all()


def test_refuses_measurers_without_gradients(toy) -> None:
    tok, data = toy
    q = data.quantized
    with pytest.raises(NotDifferentiableError, match="'brightness'") as err:
        attribute(tok, q[:4], q[4:8], [MEASURERS["brightness"]])  # undeclared
    assert isinstance(err.value, TokenprobeError)
    flat = FunctionMeasurer("shape_argmax", "continuous", lambda img, masks: img.mean((1, 2, 3)).round(),
                            differentiable=False)
    with pytest.raises(NotDifferentiableError, match="shape_argmax"):
        attribution_sweep(tok, data, {"brightness": flat}, swap_config=SwapConfig(pairs=8))

    def detached(img: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
        with torch.no_grad():
            return img.mean((1, 2, 3))

    liar = FunctionMeasurer("liar", "continuous", detached)  # declares True, carries no gradient
    with pytest.raises(NotDifferentiableError, match="'liar'.*no gradient"):
        attribute(tok, q[:4], q[4:8], [liar])


def test_random_weights_decoder_matches_small_pastes_to_first_order() -> None:
    from probe.measure import analytic
    from probe.tokenizers.world import WorldTokenizer, WorldTokenizerConfig

    torch.manual_seed(0)
    tok = WorldTokenizer(WorldTokenizerConfig(image_size=16, patch_size=4, width=32, enc_depth=1, dec_depth=1,
                                              heads=2, num_tokens=8, token_dim=6, codebook_size=16)).eval()
    rec = torch.nn.functional.normalize(torch.randn(6, 8, 6), dim=-1)
    don = rec + 0.01 * torch.randn(6, 8, 6)  # a small step: the first-order term dominates
    meas = [analytic("luminance"), analytic("hue")]
    for cfg in (AttributionConfig(clamp=False), AttributionConfig(steps=3)):
        est = attribute(tok, rec, don, meas, config=cfg)
        real = patch(tok, rec, don, [[p] for p in range(8)], meas, progress=False)
        both = est.merge(real, on=["pair", "positions", "measurer"], suffixes=("_est", "_real"))
        for name, g in both.groupby("measurer"):
            scale = g["moved_real"].abs().max()
            assert scale > 0
            assert (g["moved_est"] - g["moved_real"]).abs().max() < 0.1 * scale, (cfg, name)


def test_figure_puts_the_estimate_beside_the_real_heatmap(toy) -> None:
    from probe.viz.attribution import attribution_vs_causal_figure

    tok, data = toy
    cfg = SwapConfig(pairs=8, controls=("none",))
    causal = causal_heatmap(sweep(tok, data, MEAS, config=cfg, progress=False, split="discovery").summary)
    est = attribution_sweep(tok, data, MEAS, swap_config=cfg).heatmap
    fig = attribution_vs_causal_figure(est, causal, agreement(est, causal))
    assert len([ax for ax in fig.axes if ax.get_title()]) == 3
    assert len(attribution_vs_causal_figure(est).axes) == 2  # the estimate and its colour bar


def test_attribution_first_gives_the_exhaustive_answers(toy) -> None:
    from probe.swap import VerdictConfig, validate
    from probe.swap.attribution import attribution_first_sweep

    tok, data = toy
    cfg = SwapConfig(pairs=24, control_pairs=8, verdict=VerdictConfig(n_boot=200), pool=4, max_set=3)
    full = validate(tok, data, MEAS, None, config=cfg, progress=False)
    sw, est = attribution_first_sweep(tok, data, MEAS, config=cfg, k=2)
    first = validate(tok, data, MEAS, None, config=cfg, progress=False, sweep_result=sw)
    cols = ["attribute", "positions", "verdict", "specificity"]
    pd.testing.assert_frame_equal(first.answers[cols], full.answers[cols])
    # the tested cells are the same swaps (same pairs, same ids) as in the full sweep
    s_full = full.sweep.summary.set_index(["attribute", "positions"])
    s_first = sw.summary.set_index(["attribute", "positions"])
    np.testing.assert_allclose(s_first["transfer"], s_full.loc[s_first.index, "transfer"], atol=1e-9)
    # every attribute confirmed at its top-2: no further positions were swapped
    assert sorted(sw.summary.groupby("attribute").size()) == [2, 2, 2]
    assert est.heatmap.shape == (12, 3)


def test_attribution_first_widens_to_the_pool_where_nothing_is_confirmed() -> None:
    from probe.swap.attribution import attribution_first_sweep

    store = ToyStore(m=240, seed=4, split=True)  # brightness spread over positions 3 and 8: no single one carries it
    tok = ToyTokenizer(bright_positions=(3, 8))
    data = SwapData.from_store(store, tok, circular=CIRCULAR)
    cfg = SwapConfig(pairs=24, control_pairs=8, pool=5)
    sw, _ = attribution_first_sweep(tok, data, {"brightness": MEAS["brightness"]}, config=cfg, k=2)
    tested = sw.summary[sw.summary["attribute"] == "brightness"]
    assert len(tested) == 5 and {"3", "8"} <= set(tested["positions"])
    assert not (tested["verdict"] == "confirmed").any()
    assert sw.table["pair"].isin(sw.pairs["pair"]).all()


def test_exhaustive_map_with_the_estimate_beside_it(toy, tmp_path) -> None:
    from probe.swap import VerdictConfig, validate

    tok, data = toy
    cfg = SwapConfig(pairs=16, controls=("none", "random_position"), verdict=VerdictConfig(n_boot=100),
                     mode="exhaustive")
    vmap = validate(tok, data, MEAS, None, config=cfg, progress=False, greedy=False, estimate=True)
    assert vmap.mode == "exhaustive" and vmap.attribution is not None
    ag = vmap.attribution_agreement.set_index("attribute")
    assert ag.loc["brightness", "swap_best"] == BRIGHT and ag.loc["brightness", "top_hit"]
    paths = vmap.save(tmp_path)
    for name in ("attribution_heatmap", "attribution_agreement", "attribution_figure"):
        assert paths[name].exists(), name
    assert list(pd.read_csv(paths["attribution_heatmap"])["position"]) == list(range(12))
