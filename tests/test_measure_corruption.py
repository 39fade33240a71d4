"""Measurers follow the attributes: every corruption partition declares the measurer of its strength, which reads
the applied severity back (planted signals) and reads nothing on clean images; manifests can name a measurer per
attribute. Reconstruction quality: SSIM / PSNR and the share of an attribute's gap the reconstructions keep, with
random weights as the null."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from probe.data.corruptions import CORRUPTIONS, corrupt
from probe.data.manifest import ManifestError, declared_measurers, load_manifest, manifest_from_dict
from probe.measure import get_measurer
from probe.measure.reconstruction import image_fidelity, ssim


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    from skimage import data
    from skimage.transform import resize

    photos = [resize(getattr(data, name)(), (64, 64), anti_aliasing=True) for name in ("astronaut", "coffee", "chelsea")]
    return torch.tensor(np.stack(photos), dtype=torch.float32).permute(0, 3, 1, 2).contiguous()


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_each_corruptions_measurer_reads_its_severity_in_order(images, kind) -> None:
    m = get_measurer(CORRUPTIONS[kind].measurer)
    with torch.no_grad():
        reads = [m(corrupt(images, kind, s, seed=0)).mean().item() for s in range(6)]
    # the measurer rises (or, for contrast and saturation, falls) with every step of severity
    sign = -1 if kind in ("contrast", "saturation") else 1
    steps = np.diff(reads) * sign
    assert (steps > 0).all(), (kind, reads)


def test_noise_measurer_recovers_the_planted_standard_deviation_and_reads_zero_blocks_on_clean_images(images):
    sigma = get_measurer("corruption:noise_sigma")
    for s, std in ((1, 0.08), (3, 0.18)):
        assert sigma(corrupt(images, "noise", s, seed=0)).mean().item() == pytest.approx(std, rel=0.25)
    assert sigma(images).max().item() < 0.02  # clean photos: (almost) no noise
    assert get_measurer("corruption:blockiness")(images).abs().max().item() < 0.01  # never JPEG-encoded


def test_manifests_declare_measurers_and_a_bad_spec_is_named(tmp_path) -> None:
    photos = load_manifest("photos-corruptions")
    declared = photos.measurers
    assert set(declared) == {"blur", "brightness", "contrast", "noise", "jpeg", "saturation"}
    assert declared["noise"] == "corruption:noise_sigma" and declared["brightness"] == "analytic:luminance"
    assert declared_measurers(photos.to_dict()) == declared  # what a store header holds reads back the same
    m = manifest_from_dict({"name": "w", "source": {"type": "world"}, "size": 4,
                            "attributes": [{"name": "lighting", "kind": "continuous", "measurer": "analytic:luminance"}]})
    assert m.measurers == {"lighting": "analytic:luminance"}
    with pytest.raises(ManifestError, match=r"attributes\[0\].measurer"):
        manifest_from_dict({"name": "w", "source": {"type": "world"}, "size": 4,
                            "attributes": [{"name": "lighting", "kind": "continuous", "measurer": "luminance"}]})
    assert declared_measurers({"not": "a manifest"}) == {}


def test_ssim_and_psnr_of_identical_and_degraded_images(images) -> None:
    noisy = corrupt(images, "noise", 3, seed=0)
    fid = image_fidelity(images, images)
    assert (fid["ssim"] > 0.9999).all() and (fid["psnr"] >= 99).all()
    worse = image_fidelity(images, noisy)
    assert (worse["ssim"] < 0.9).all() and (worse["psnr"] < 20).all()
    assert (ssim(images, corrupt(images, "noise", 1, seed=0)) > ssim(images, noisy)).all()


def test_random_weights_keep_nothing_of_a_gap_and_the_identity_keeps_all() -> None:
    """The share of the gap kept (probe.swap.visibility.kept_gap, the one definition): a random-weight
    tokenizer's reconstructions keep (almost) nothing of the lighting gap; the originals themselves keep all."""
    from probe import load_tokenizer
    from probe.data.world import sample
    from probe.measure import measurer_for
    from probe.swap.visibility import kept_gap, mean_gap
    from probe.tokenizers.base import decode_batched, encode_batched

    tok = load_tokenizer("titok-tiny", random_init=True, device="cpu")
    imgs, factors = sample(64, seed=0, resolution=int(tok.image_size))
    recon = decode_batched(tok, encode_batched(tok, imgs).quantized)
    light = measurer_for("lighting")
    order = np.argsort(factors["lighting"].to_numpy())
    rows = np.concatenate([order[:16], order[-16:]])
    ends = np.repeat(["low", "high"], 16)
    with torch.no_grad():
        before, after = light(imgs).numpy()[rows], light(recon).numpy()[rows]
    assert mean_gap(before, ends) > 0.1
    assert kept_gap(before, before, ends) == pytest.approx(1.0)
    assert abs(kept_gap(after, before, ends)) < 0.05
