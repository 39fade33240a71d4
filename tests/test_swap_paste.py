"""The single-token paste of probe.swap: known answers (the measurers are tested in test_measure.py)."""
from __future__ import annotations

import pandas as pd
import torch

from probe.swap import moved_fraction


def test_moved_fraction_known_values() -> None:
    lo, hi = torch.zeros(4), torch.full((4,), 2.0)
    assert moved_fraction(lo, hi, torch.full((4,), 1.0)) == 0.5
    assert moved_fraction(lo, hi, lo) == 0.0
    assert abs(moved_fraction(lo, hi, hi) - 1.0) < 1e-12
    # vectors: only the component along the gap counts
    lo2, hi2 = torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]])
    assert abs(moved_fraction(lo2, hi2, torch.tensor([[0.25, 5.0]])) - 0.25) < 1e-12


def test_end_groups_known_bins() -> None:
    from probe.swap import end_groups

    df = pd.DataFrame({"lighting_bin": [0, 3, 1, 0, 3, 2], "obj_hue_bin": [0, 2, 3, 0, 1, 2]})
    lo, hi = end_groups("lighting", df, 4)
    assert lo.tolist() == [0, 3] and hi.tolist() == [1, 4]
    lo, hi = end_groups("obj_hue", df, 4)  # circular: the opposite bin, not the last
    assert lo.tolist() == [0, 3] and hi.tolist() == [1, 5]


def test_paste_replaces_one_position_on_a_copy() -> None:
    from probe.swap import paste_tokens

    low, high = torch.zeros(2, 4, 3), torch.ones(2, 4, 3)
    out = paste_tokens(low, high, 2)
    assert torch.equal(out[:, 2], high[:, 2]) and torch.equal(out[:, [0, 1, 3]], low[:, [0, 1, 3]])
    assert torch.equal(low, torch.zeros(2, 4, 3))  # the input is untouched


def test_position_eta_squared_matches_the_closed_form() -> None:
    """localization's eta-squared (now from probe.probes.stats) equals between-group over total sum of squares,
    summed over the feature dims, per position; a planted position gets the top value."""
    import numpy as np

    from probe.swap.localization import position_eta_squared

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
