"""The one PSNR (probe.measure.fidelity): known answers, regions, clamping, the floor of an exact copy."""
from __future__ import annotations

import math

import pytest
import torch

from probe.measure.fidelity import psnr, psnr_from_mse


def test_psnr_known_answers_per_image() -> None:
    b = torch.full((3, 3, 4, 4), 0.5)
    a = b.clone()
    a[0] += 0.1  # MSE 0.01: 20 dB
    a[1, :, :2] += 0.2  # half the pixels off by 0.2: MSE 0.02
    out = psnr(a, b)
    assert out.shape == (3,)
    assert out[0].item() == pytest.approx(20.0, abs=1e-4)
    assert out[1].item() == pytest.approx(10 * math.log10(1 / 0.02), abs=1e-4)
    assert out[2].item() == pytest.approx(100.0)  # an exact copy: the 1e-10 floor, not inf
    assert psnr_from_mse(torch.tensor([1.0, 0.1, 0.0])).tolist() == pytest.approx([0.0, 10.0, 100.0])


def test_psnr_clamps_both_images_to_the_unit_range() -> None:
    b = torch.zeros(1, 3, 2, 2)
    assert psnr(b + 5.0, b).item() == pytest.approx(0.0, abs=1e-6)  # clamped to 1: MSE 1
    assert psnr(b - 3.0, b).item() == pytest.approx(100.0)  # clamped to 0: no error


def test_psnr_over_a_region_counts_only_its_pixels() -> None:
    b = torch.zeros(2, 3, 4, 4)
    a = b.clone()
    a[..., :2, :] = 0.5  # error only in the top half
    top = torch.zeros(2, 1, 4, 4)
    top[..., :2, :] = 1
    assert psnr(a, b, top).tolist() == pytest.approx([10 * math.log10(4)] * 2, abs=1e-4)  # MSE 0.25
    assert psnr(a, b, 1 - top).tolist() == pytest.approx([100.0, 100.0])  # nothing wrong outside
    torch.testing.assert_close(psnr(a, b, torch.ones(2, 1, 4, 4)), psnr(a, b))  # the whole image as region
    assert psnr(a, b, torch.zeros(2, 1, 4, 4)).isfinite().all()  # an empty region: no NaN
