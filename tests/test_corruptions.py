"""Graded corruptions: identity at severity 0, monotone in severity, seeded."""
from __future__ import annotations

import pytest
import torch

from probe.data import world
from probe.data.corruptions import (
    CORRUPTIONS,
    MAX_SEVERITY,
    corrupt,
    corruption_parameter,
)

SEVERITIES = [0, 1, 2, 3, 4, 5]


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    imgs, _ = world.sample(6, seed=11, resolution=64)
    return imgs


def _hf_energy(img: torch.Tensor) -> torch.Tensor:
    dx = img[..., :, 1:] - img[..., :, :-1]
    dy = img[..., 1:, :] - img[..., :-1, :]
    return dx.pow(2).mean(dim=(1, 2, 3)) + dy.pow(2).mean(dim=(1, 2, 3))


def _sat(img: torch.Tensor) -> torch.Tensor:
    return (img.amax(dim=1) - img.amin(dim=1)).mean(dim=(1, 2))


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_severity_zero_is_identity_and_range_kept(kind: str, images: torch.Tensor) -> None:
    assert torch.equal(corrupt(images, kind, 0), images)
    out = corrupt(images, kind, MAX_SEVERITY, seed=1)
    assert out.shape == images.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    assert not torch.allclose(out, images)


def test_blur_lowers_high_frequency_energy(images: torch.Tensor) -> None:
    e = torch.stack([_hf_energy(corrupt(images, "blur", s)) for s in SEVERITIES])
    assert (e[1:] < e[:-1]).all()


def test_brightness_raises_mean(images: torch.Tensor) -> None:
    m = torch.stack([corrupt(images, "brightness", s).mean(dim=(1, 2, 3)) for s in SEVERITIES])
    assert (m[1:] > m[:-1]).all()


def test_contrast_lowers_spread(images: torch.Tensor) -> None:
    sd = torch.stack([corrupt(images, "contrast", s).std(dim=(2, 3)).mean(1) for s in SEVERITIES])
    assert (sd[1:] < sd[:-1]).all()


def test_saturation_lowers_chroma(images: torch.Tensor) -> None:
    c = torch.stack([_sat(corrupt(images, "saturation", s)) for s in SEVERITIES])
    assert (c[1:] < c[:-1]).all()
    assert float(c[-1].max()) < 1e-6  # severity 5 is grey


def test_noise_grows_and_is_seeded(images: torch.Tensor) -> None:
    err = torch.stack([(corrupt(images, "noise", s, seed=3) - images).pow(2).mean(dim=(1, 2, 3))
                       for s in SEVERITIES])
    assert (err[1:] > err[:-1]).all()
    assert torch.equal(corrupt(images, "noise", 2, seed=3), corrupt(images, "noise", 2, seed=3))
    assert not torch.equal(corrupt(images, "noise", 2, seed=3), corrupt(images, "noise", 2, seed=4))
    # per-image seeds: image k's noise depends only on its own seed
    seeds = torch.arange(len(images))
    full = corrupt(images, "noise", 3, seed=seeds)
    assert torch.equal(full[2:3], corrupt(images[2:3], "noise", 3, seed=2))


def test_jpeg_error_grows(images: torch.Tensor) -> None:
    err = torch.stack([(corrupt(images, "jpeg", s) - images).abs().mean(dim=(1, 2, 3))
                       for s in SEVERITIES])
    assert (err[1:].mean(1) > err[:-1].mean(1)).all()
    assert float(err[0].max()) == 0.0


def test_per_image_severity_and_parameters(images: torch.Tensor) -> None:
    sev = torch.tensor([0, 1, 2, 3, 4, 5], dtype=torch.float32)
    out = corrupt(images, "blur", sev)
    assert torch.equal(out[0], images[0])
    assert torch.allclose(out[3:4], corrupt(images[3:4], "blur", 3), atol=1e-6)
    assert corruption_parameter("jpeg", [0, 1, 5]).tolist() == [100.0, 25.0, 7.0]
    assert corruption_parameter("blur", 4.5).item() == pytest.approx(5.0)
    with pytest.raises(ValueError, match="severity"):
        corrupt(images, "blur", 7)
    with pytest.raises(KeyError, match="fog"):
        corrupt(images, "fog", 1)


@pytest.mark.parametrize("sigma", [0.7, 2.0, 5.0])
def test_gaussian_blur_matches_scipy_reflect(sigma: float) -> None:
    from scipy.ndimage import gaussian_filter

    from probe.data.filters import gaussian_blur

    x = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    out = gaussian_blur(x, torch.full((2,), sigma))
    ref = gaussian_filter(x.numpy(), sigma=(0, 0, sigma, sigma), mode="reflect", truncate=4.0)
    assert torch.allclose(out, torch.from_numpy(ref), atol=5e-4)


def test_gaussian_blur_takes_strided_images_and_outputs() -> None:
    """A channels-last batch, a transposed view and a strided ``out`` blur like the contiguous copy."""
    from probe.data.filters import gaussian_blur

    x = torch.rand(3, 3, 24, 24, generator=torch.Generator().manual_seed(1))
    sigma = torch.tensor([0.0, 1.0, 2.5])
    ref = gaussian_blur(x.contiguous(), sigma)
    assert torch.allclose(gaussian_blur(x.to(memory_format=torch.channels_last), sigma), ref, atol=1e-6)
    xt = x.transpose(2, 3)  # non-contiguous view
    assert torch.allclose(gaussian_blur(xt, sigma), gaussian_blur(xt.contiguous(), sigma), atol=1e-6)
    big = torch.zeros(3, 3, 24, 48)
    gaussian_blur(x, sigma, out=big[..., ::2])  # a strided slice as the destination
    assert torch.allclose(big[..., ::2], ref, atol=1e-6)
    assert float(big[..., 1::2].abs().max()) == 0.0
