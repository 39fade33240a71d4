"""Per-position contribution maps on a planted decoder: position 0 paints the left half, position 1 the right
half (brightness), position 2 is ignored; the "object" is the left half."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from probe.swap.spatial import spatial_maps

S = 8


class HalfPainter(nn.Module):
    """Three tokens of 2 dims, 4 codes; image = left half at level of token 0's dim 0, right half token 1's."""

    num_tokens, codebook_size, token_dim, image_size, is_discrete = 3, 4, 2, S, True

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("codes", torch.tensor([[0.1, 0.0], [0.4, 1.0], [0.7, 0.0], [0.9, 1.0]]))

    @property
    def codebook(self) -> torch.Tensor:
        return self.codes

    def decode(self, q: torch.Tensor, *, clamp: bool = True) -> torch.Tensor:
        img = torch.zeros(len(q), 3, S, S)
        img[:, :, :, : S // 2] = q[:, 0, 0][:, None, None, None]
        img[:, :, :, S // 2 :] = q[:, 1, 0][:, None, None, None]
        return img.clamp(0, 1) if clamp else img


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(0)
    tokens = torch.as_tensor(rng.integers(0, 4, size=(40, 3)))
    masks = torch.zeros(40, 1, S, S)
    masks[..., : S // 2] = 1.0
    return HalfPainter(), tokens, masks


def test_each_position_lights_up_where_it_paints(setup) -> None:
    tok, tokens, masks = setup
    for replace in ("donor", "random"):
        maps = spatial_maps(tok, tokens, masks=masks, replace=replace, n=40, seed=1)
        assert maps.abs_change.shape == (3, S, S) and maps.luminance.shape == (3, S, S)
        a = maps.abs_change
        assert a[0, :, : S // 2].min() > 0.05 and a[0, :, S // 2 :].max() == 0
        assert a[1, :, S // 2 :].min() > 0.05 and a[1, :, : S // 2].max() == 0
        assert a[2].max() == 0  # the ignored position changes nothing
        t = maps.table.set_index("position")
        assert t.loc[0, "object_share"] == pytest.approx(1.0) and t.loc[1, "object_share"] == pytest.approx(0.0)
        assert t.loc[0, "object_ratio"] == pytest.approx(2.0) and t.loc[0, "object_area"] == pytest.approx(0.5)
        assert np.isnan(t.loc[2, "object_share"]) and t.loc[2, "mean_abs"] == 0


def test_donors_are_other_images_and_signs_are_kept(setup) -> None:
    tok, _, masks = setup
    tokens = torch.tensor([[0, 0, 0], [3, 0, 0]])  # left halves 0.1 and 0.9
    maps = spatial_maps(tok, tokens, replace="donor", n=2)
    # a derangement of two images swaps them: both change by 0.8, one up and one down
    assert float(maps.abs_change[0, 0, 0]) == pytest.approx(0.8)
    assert float(maps.luminance[0, 0, 0]) == pytest.approx(0.0, abs=1e-6)
    # a brightening replacement has a positive signed luminance map
    up = spatial_maps(tok, torch.tensor([[0, 0, 0], [0, 0, 0]]), replace="random", n=2, seed=3)
    assert float(up.luminance[0].min()) >= 0 and float(up.abs_change[0].max()) >= 0


def test_random_codes_need_a_codebook(setup) -> None:
    tok, tokens, _ = setup
    with pytest.raises(ValueError, match="replace must be"):
        spatial_maps(tok, tokens, replace="noise")
    continuous = HalfPainter()
    continuous.codes = torch.zeros(0, 2)
    vectors = tok.codebook[tokens]
    with pytest.raises(ValueError, match="continuous"):
        spatial_maps(continuous, vectors, replace="random")
    assert spatial_maps(continuous, vectors, replace="donor", n=8).abs_change[0].max() > 0


def test_figure_draws_one_panel_per_position(setup, tmp_path) -> None:
    from probe.viz.save import save_figure
    from probe.viz.spatial import spatial_maps_figure

    tok, tokens, masks = setup
    maps = spatial_maps(tok, tokens, masks=masks, n=10)
    fig = spatial_maps_figure(maps.abs_change, table=maps.table, cols=2, image=tok.decode(tok.codebook[tokens[:1]])[0])
    shown = [ax for ax in fig.axes if ax.get_visible() and ax.images and ax.get_label() != "<colorbar>"]
    assert len(shown) == 3 + 1  # three positions and the example image
    assert "obj x2.0" in shown[1].get_title()
    paths = save_figure(spatial_maps_figure(maps.luminance, signed=True), tmp_path / "lum")
    assert all(p.stat().st_size > 0 for p in paths)
