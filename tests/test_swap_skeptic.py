"""The skeptical user's check: labels that carry no information are never confirmed.

World images with the true ``lighting``, the same values permuted (``lighting_shuffled``) and random 0/1
labels (``coin``), tokenized with world-32 and validated with the luminance measurer for all three. Projected
on each pair's own measured gap, both nulls were confirmed at the positions that carry luminance; measured
along the direction the labels define, behind the visibility test, they are not.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="module")
def vmap():
    import probe
    from probe.data.world import sample
    from probe.measure import get_measurer
    from probe.swap import SwapConfig, SwapData, validate

    tok = probe.load_tokenizer("world-32")
    images, factors = sample(600, seed=11, resolution=int(tok.image_size))
    rng = np.random.default_rng(0)
    lighting = factors["lighting"].to_numpy(float)
    labels = pd.DataFrame({"lighting": lighting, "lighting_shuffled": rng.permutation(lighting),
                           "coin": rng.integers(0, 2, len(lighting)).astype(str)})
    data = SwapData.from_images(tok, images, labels, kinds={"coin": "categorical"})
    luminance = get_measurer("analytic:luminance")
    cfg = SwapConfig(pairs=24, discovery_pairs=24, max_set=3, pool=4)
    return validate(tok, data, {a: luminance for a in labels.columns}, config=cfg, progress=False)


def test_true_lighting_is_confirmed(vmap) -> None:
    row = vmap.answers.set_index("attribute").loc["lighting"]
    assert row["visibility"] == "testable" and row["kept"] > 0.5
    assert row["verdict"] == "confirmed", row.to_dict()
    assert row["n_pairs"] == 24 and row["discovery_pairs"] == 24


@pytest.mark.parametrize("label", ["lighting_shuffled", "coin"])
def test_permuted_labels_and_coin_flips_are_untestable_or_rejected(vmap, label: str) -> None:
    row = vmap.answers.set_index("attribute").loc[label]
    assert row["verdict"] in ("not visible", "rejected"), row.to_dict()
    assert row["visibility"] == "not visible" and row["visible_p"] > 0.01
    # the mapping the nulls were confirmed at before: the luminance positions still move luminance a lot,
    # but along these labels' (chance) direction there is nothing to confirm
    assert not (vmap.sets[vmap.sets["attribute"] == label]["verdict"] == "confirmed").any()
