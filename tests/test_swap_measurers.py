"""Pixel measurers of the swap engine: known answers on rendered and hand-made images."""
from __future__ import annotations

import math

import pandas as pd
import torch

from probe.data import world
from probe.swap.measurers import MEASURERS, hue_vector, moved_fraction


def _render_variants(column: str, values: list, seed: int = 3, **fixed: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The same 16 world images rendered with ``column`` set to each of ``values``: ``[V*16, ...]``
    (``fixed``: other columns set to one value for all)."""
    base = world.sample_factors(0, 16, seed=seed)
    for k, v in fixed.items():
        base[k] = v
    frames = []
    for v in values:
        f = base.copy()
        f[column] = v
        frames.append(f)
    return world.render(pd.concat(frames), 32)


def test_each_measurer_orders_its_own_factor() -> None:
    cases = {"lighting": ([0.3, 0.9], +1), "bg_blur": ([0.0, 0.06], -1), "global_blur": ([0.0, 0.04], -1)}
    for factor, (values, sign) in cases.items():
        img, mask = _render_variants(factor, values)
        m = MEASURERS[factor](img, mask)
        lo, hi = m[:16], m[16:]
        # per image: a higher factor value moves the measure the expected way (blur lowers sharpness)
        assert (sign * (hi - lo) > 0).all(), factor


def test_background_sharpness_ignores_the_object() -> None:
    # without global blur (which spreads object colour over the background) object pixels, dilated by one,
    # are excluded
    img, mask = _render_variants("obj_hue", [0.1, 0.6], global_blur=0.0)
    m = MEASURERS["bg_blur"](img, mask)
    torch.testing.assert_close(m[:16], m[16:], rtol=0.01, atol=1e-4)
    img2, mask2 = _render_variants("shape", ["circle", "star"], global_blur=0.0)
    assert not torch.equal(mask2[:16], mask2[16:])
    # a different object over the same stripes changes which background pixels count, but little else
    m2 = MEASURERS["bg_blur"](img2, mask2)
    assert float(((m2[:16] - m2[16:]).abs() / m2[:16]).median()) < 0.1


def test_hue_vector_known_angles() -> None:
    img = torch.zeros(3, 3, 8, 8)
    img[0, 0] = 1.0  # red: hue 0
    img[1, 1] = 1.0  # green: hue 1/3
    img[2, 2] = 1.0  # blue: hue 2/3
    v = hue_vector(img, torch.ones(3, 1, 8, 8))
    angles = torch.atan2(v[:, 1], v[:, 0]) % (2 * math.pi)
    torch.testing.assert_close(angles, torch.tensor([0.0, 2 * math.pi / 3, 4 * math.pi / 3]), atol=1e-5, rtol=0)


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
    from probe.swap import paste

    low, high = torch.zeros(2, 4, 3), torch.ones(2, 4, 3)
    out = paste(low, high, 2)
    assert torch.equal(out[:, 2], high[:, 2]) and torch.equal(out[:, [0, 1, 3]], low[:, [0, 1, 3]])
    assert torch.equal(low, torch.zeros(2, 4, 3))  # the input is untouched
