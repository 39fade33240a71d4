"""The attribute world: labels match what is rendered, and generation is seed-deterministic."""
from __future__ import annotations

import colorsys
import math

import numpy as np
import pandas as pd
import pytest
import torch

from probe.data import world
from probe.data.world import FACTORS, WorldConfig


def _hf_energy(img: torch.Tensor) -> torch.Tensor:
    """Mean squared neighbour difference per image: ``[B, 3, H, W] -> [B]``."""
    dx = img[..., :, 1:] - img[..., :, :-1]
    dy = img[..., 1:, :] - img[..., :-1, :]
    return dx.pow(2).mean(dim=(1, 2, 3)) + dy.pow(2).mean(dim=(1, 2, 3))


def _luma(img: torch.Tensor) -> torch.Tensor:
    return (0.299 * img[:, 0] + 0.587 * img[:, 1] + 0.114 * img[:, 2]).mean(dim=(1, 2))


def test_sample_shapes_ranges_and_columns() -> None:
    images, df = world.sample(40, seed=1)
    assert images.shape == (40, 3, 64, 64) and images.dtype == torch.float32
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
    assert len(df) == 40 and list(df.index) == list(range(40))
    for name, spec in FACTORS.items():
        assert name in df.columns
        if spec.kind == "continuous":
            lo, hi = spec.range
            assert df[name].between(lo, hi).all(), name
            if spec.role != "nuisance":
                bins = df[f"{name}_bin"]
                assert bins.between(0, WorldConfig().n_bins - 1).all()
                # bins are ordered like the values
                order = df.sort_values(name)[f"{name}_bin"].to_numpy()
                assert (np.diff(order) >= 0).all(), name
        else:
            assert set(df[name]) <= set(spec.levels)
    assert world.sample(5, resolution=32)[0].shape == (5, 3, 32, 32)


def test_determinism_and_chunking() -> None:
    a, da = world.sample(24, seed=7)
    b, db = world.sample(24, seed=7)
    assert torch.equal(a, b)
    pd.testing.assert_frame_equal(da, db)
    c, dc = world.sample_range(9, 24, seed=7)
    assert torch.equal(c, a[9:])
    pd.testing.assert_frame_equal(dc, da.iloc[9:])
    # a small chunk_size, or any set of indices, renders bitwise the same pixels
    d, _ = world.sample(24, seed=7, config=WorldConfig(chunk_size=5))
    assert torch.equal(d, a)
    idx = [20, 3, 4, 11]
    e, _ = world.render(world.factors_at(idx, seed=7))
    assert torch.equal(e, a[idx])
    other, _ = world.sample(24, seed=8)
    assert not torch.equal(other, a)


def test_factors_are_spread_and_independent() -> None:
    df = world.sample_factors(0, 4000, seed=0)
    counts = df["shape"].value_counts()
    assert set(counts.index) == set(world.SHAPES) and counts.min() > 850
    cont = [n for n, s in FACTORS.items() if s.kind == "continuous"]
    corr = df[cont].corr().to_numpy() - np.eye(len(cont))
    assert np.abs(corr).max() < 0.06


def test_lighting_raises_mean_luminance() -> None:
    df = world.sample_factors(0, 12, seed=2)
    lumas = []
    for gain in np.linspace(0.25, 1.0, 5):
        edited = df.assign(lighting=gain)
        lumas.append(_luma(world.render(edited)[0]))
    lumas = torch.stack(lumas)  # [levels, B]
    assert (lumas[1:] > lumas[:-1]).all()
    # and in a random sample the label explains the luminance
    images, df = world.sample(400, seed=3)
    r = np.corrcoef(df["lighting"], _luma(images).numpy())[0, 1]
    assert r > 0.6


def test_background_blur_leaves_object_pixels_unchanged() -> None:
    df = world.sample_factors(0, 16, seed=4).assign(global_blur=0.0)
    crisp, mask = world.render(df.assign(bg_blur=0.0))
    blurry, mask2 = world.render(df.assign(bg_blur=0.08))
    assert torch.equal(mask, mask2)
    obj = (mask == 1.0).expand_as(crisp)
    assert obj.any()
    assert torch.equal(crisp[obj], blurry[obj])
    bg = (mask == 0.0).expand_as(crisp)
    assert not torch.equal(crisp[bg], blurry[bg])
    # the background loses high-frequency energy
    assert (_hf_energy(blurry * bg) < _hf_energy(crisp * bg)).all()


def test_global_blur_lowers_high_frequency_energy() -> None:
    df = world.sample_factors(0, 16, seed=5)
    energies = [_hf_energy(world.render(df.assign(global_blur=s))[0])
                for s in (0.0, 0.01, 0.025, 0.05)]
    for lo, hi in zip(energies[1:], energies[:-1]):
        assert (lo < hi).all()


def test_null_factor_changes_no_pixel() -> None:
    df = world.sample_factors(0, 16, seed=6)
    a, _ = world.render(df)
    b, _ = world.render(df.assign(null_factor=np.linspace(0, 1, 16)[::-1].copy()))
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    "shape,area",
    [("circle", math.pi), ("square", 2.0), ("triangle", 3 * math.sqrt(3) / 4),
     ("star", 5 * 0.5 * math.sin(math.pi / 5))],
)
def test_mask_area_matches_shape(shape: str, area: float) -> None:
    res, r = 128, 0.25
    df = world.sample_factors(0, 4, seed=0).assign(shape=shape, obj_scale=r)
    _, mask = world.render(df, resolution=res)
    measured = mask.mean(dim=(1, 2, 3))  # fraction of the image covered
    assert torch.allclose(measured, torch.full_like(measured, area * r * r), rtol=0.03)


def test_mask_centroid_matches_position() -> None:
    res = 64
    df = world.sample_factors(0, 20, seed=9).assign(shape="circle")
    _, mask = world.render(df, resolution=res)
    coords = (torch.arange(res) + 0.5) / res
    m = mask[:, 0]
    cx = (m * coords[None, None, :]).sum(dim=(1, 2)) / m.sum(dim=(1, 2))
    cy = (m * coords[None, :, None]).sum(dim=(1, 2)) / m.sum(dim=(1, 2))
    assert torch.allclose(cx.double(), torch.tensor(df["obj_x"].to_numpy()), atol=0.5 / res)
    assert torch.allclose(cy.double(), torch.tensor(df["obj_y"].to_numpy()), atol=0.5 / res)


def test_object_hue_matches_label() -> None:
    df = world.sample_factors(0, 20, seed=10).assign(global_blur=0.0, lighting=1.0)
    images, mask = world.render(df)
    for i in range(len(df)):
        inside = mask[i, 0] == 1.0
        rgb = images[i][:, inside].mean(dim=1).tolist()
        h, _, _ = colorsys.rgb_to_hsv(*rgb)
        d = abs(h - df["obj_hue"].iloc[i])
        assert min(d, 1 - d) < 0.01


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match="scale_range"):
        WorldConfig(scale_range=(0.3, 0.1))
    with pytest.raises(ValueError, match="hexagon"):
        WorldConfig(shapes=("circle", "hexagon"))
    with pytest.raises(KeyError, match="lighting"):
        world.render(world.sample_factors(0, 2).drop(columns=["lighting"]))
    with pytest.raises(ValueError, match="stripe_phase_range"):
        WorldConfig(stripe_phase_range=(0.5, 0.2))


def test_pinned_stripes_are_a_sub_world_of_the_default() -> None:
    """Pinning the stripe nuisances fixes those columns and leaves every factor as it was; each image is the
    default world's rendering of the same factor table (so models trained on the default world apply)."""
    from probe.data.world import hash_uniform

    pinned = WorldConfig(resolution=32, stripe_periods=(4.0, 4.0), stripe_angle_range=(0.25, 0.25),
                         stripe_phase_range=(0.6, 0.6))
    images, df = world.sample(64, seed=9, config=pinned)
    _, df_default = world.sample(64, seed=9, resolution=32)
    assert np.allclose(df["stripe_period"], 0.25) and np.allclose(df["stripe_angle"], 0.25)
    assert np.allclose(df["stripe_phase"], 0.6)
    factors = [n for n, s in FACTORS.items() if s.role != "nuisance"]
    pd.testing.assert_frame_equal(df[factors], df_default[factors])
    again, _ = world.render(df, 32, WorldConfig())
    torch.testing.assert_close(again, images)
    # the default ranges keep the original draws: angle = u * pi, phase = u (stream ids 11 and 12)
    u_angle = hash_uniform(9, df_default.index.to_numpy(), 11)
    assert np.array_equal(df_default["stripe_angle"].to_numpy(), u_angle * math.pi)
    assert np.array_equal(df_default["stripe_phase"].to_numpy(), hash_uniform(9, df_default.index.to_numpy(), 12))


def test_nearest_shape_reads_world_images_and_their_shape_swaps() -> None:
    import numpy as np

    from probe.data.world import SHAPES, nearest_shape, render, sample, shape_renderings

    images, df = sample(60, seed=12, resolution=32)
    assert (nearest_shape(images, df) == df["shape"].to_numpy()).all()
    # the same images re-rendered as another shape are read as that shape, whatever the table says
    other = np.where(df["shape"].to_numpy() == "circle", "star", "circle")
    swapped, _ = render(df.assign(shape=other), resolution=32)
    assert (nearest_shape(swapped, df) == other).all()
    # the renderings made once (one per shape, in the config's order) read the same
    renderings = shape_renderings(df, 32)
    assert renderings.shape == (len(SHAPES), 60, 3, 32, 32)
    assert torch.equal(renderings[SHAPES.index("circle")], render(df.assign(shape="circle"), resolution=32)[0])
    assert (nearest_shape(swapped, df, renderings=renderings) == other).all()
    with pytest.raises(ValueError, match="3 images but 60"):
        nearest_shape(images[:3], df)
