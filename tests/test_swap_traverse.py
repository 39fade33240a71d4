"""Traversals on the tokenizer with known semantics: a position reaches what its decoder reads, nothing else."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from _swap_toy import BRIGHT, IGNORED, MEASURERS, ToyStore, ToyTokenizer

from probe.swap import traverse
from probe.swap.stats import off_target_matrix
from probe.swap.traverse import codes_used, response_curve


def test_traversal_of_the_brightness_position_spans_its_four_levels() -> None:
    store, tok = ToyStore(m=40), ToyTokenizer()
    tokens = torch.as_tensor(store.tokens[:5])
    table = traverse(tok, tokens, BRIGHT, MEASURERS, progress=False)
    assert len(table) == 16 * 5 * 3  # codes x images x measured attributes
    curve = response_curve(table)
    bright = curve[curve["measured"] == "brightness"].set_index("code")["mean"]
    # code k sets level (k % 4) / 3: brightness 0.22 + 0.45 * level, whatever the image
    np.testing.assert_allclose(bright.to_numpy(), 0.22 + 0.45 * (np.arange(16) % 4) / 3, atol=1e-6)
    assert curve.attrs["range"]["brightness"] == pytest.approx(0.45, abs=1e-6)
    assert curve.attrs["range"]["contrast"] == pytest.approx(0.0, abs=1e-6)  # it reaches nothing else
    flat = response_curve(traverse(tok, tokens, IGNORED, MEASURERS, codes=[0, 5, 9], progress=False))
    assert max(flat.attrs["range"].values()) == pytest.approx(0.0, abs=1e-6)
    assert set(codes_used(store.tokens, BRIGHT)) <= set(range(16))


def test_off_target_matrix_diagonal_is_the_transfer() -> None:
    from probe.swap import SwapConfig, SwapData, VerdictConfig, sweep

    store = ToyStore()
    tok = ToyTokenizer(entangled=True)
    data = SwapData.from_store(store, tok, circular=("hue",))
    res = sweep(tok, data, MEASURERS, {"brightness": [[BRIGHT]], "contrast": [[5]], "hue": [[7]]},
                    config=SwapConfig(pairs=32, verdict=VerdictConfig(n_boot=50)), progress=False)
    mat = off_target_matrix(res.table)
    assert mat.loc["contrast @ 5", "contrast"] == pytest.approx(1.0, abs=1e-4)
    assert mat.loc["contrast @ 5", "brightness"] > 0.25  # the planted side effect
    # hue's position moves brightness no more than a random paste does (which may hit 3 or 5)
    assert mat.loc["hue @ 7", "brightness"] <= 1e-4
    from probe.swap.stats import off_target

    side = off_target(res.table).set_index(["attribute", "measurer"])
    assert side.loc[("hue", "brightness"), "off_target"] == pytest.approx(0.0, abs=1e-4)
    assert side.loc[("hue", "brightness"), "off_target_random"] > 0
