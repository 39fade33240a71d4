"""Graded corruptions (ImageNet-C style) that turn any image set into labelled partitions.

Every corruption takes images ``[B, 3, H, W]`` in [0, 1] and a severity per image in
``[0, MAX_SEVERITY]`` (0 = untouched, fractional values interpolate the table linearly), and is
monotone in severity. Parameters at severities 1..5 follow ImageNet-C (Hendrycks & Dietterich,
2019) except where noted; lengths are given at 224 px and scaled to the actual image side, so a
severity looks alike at any resolution.

========== ===================================== ==============================================
kind       parameter at severity 0, 1..5         direction
========== ===================================== ==============================================
blur       sigma (px @224) 0, 1, 2, 3, 4, 6      higher = blurrier (Gaussian blur)
brightness HSV value shift 0, .1, .2, .3, .4, .5 higher = brighter (the paper's "lighting")
contrast   factor 1, .4, .3, .2, .1, .05         higher = flatter (less contrast)
noise      Gaussian std 0, .08, .12, .18, .26, .38  higher = noisier (seeded)
jpeg       quality 100*, 25, 18, 15, 10, 7       higher = stronger artefacts (*0 = not encoded)
saturation factor 1, .8, .6, .4, .2, 0           higher = greyer. ImageNet-C's "saturate" is not
                                                 monotone (it desaturates then oversaturates);
                                                 ours only desaturates, so the label is ordered.
========== ===================================== ==============================================
"""
from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from probe.data.filters import gaussian_blur

MAX_SEVERITY = 5
_REF_SIDE = 224.0  # ImageNet-C lengths are defined at 224 px


def _luma(images: torch.Tensor) -> torch.Tensor:
    """Rec. 601 luma ``[B, 1, H, W]``."""
    w = images.new_tensor([0.299, 0.587, 0.114])[None, :, None, None]
    return (images * w).sum(dim=1, keepdim=True)


def _blur(images: torch.Tensor, p: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
    """``images [B, 3, H, W]`` in [0, 1], per-image parameter ``p [B]`` and seeds ``[B]`` -> ``[B, 3, H, W]``: Gaussian blur, sigma ``p`` at the reference side."""
    side = min(images.shape[-2:])
    return gaussian_blur(images, p * side / _REF_SIDE)


def _brightness(images: torch.Tensor, p: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
    """``images [B, 3, H, W]`` in [0, 1], per-image parameter ``p [B]`` and seeds ``[B]`` -> ``[B, 3, H, W]``: HSV value raised by ``p``."""
    # adding c to HSV value at fixed hue and saturation scales RGB by (V + c) / V (clipped at 1);
    # black pixels (V = 0, no hue) become grey c
    v = images.amax(dim=1, keepdim=True)
    c = p[:, None, None, None].to(images.dtype)
    scale = (v + c).clamp(max=1.0) / v.clamp_min(1e-6)
    out = torch.where(v > 1e-6, images * scale, c.clamp(max=1.0).expand_as(images))
    return out.clamp(0.0, 1.0)


def _contrast(images: torch.Tensor, p: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
    """``images [B, 3, H, W]`` in [0, 1], per-image parameter ``p [B]`` and seeds ``[B]`` -> ``[B, 3, H, W]``: deviations from the channel mean scaled by ``p``."""
    mean = images.mean(dim=(2, 3), keepdim=True)  # per channel, as ImageNet-C
    return ((images - mean) * p[:, None, None, None].to(images.dtype) + mean).clamp(0.0, 1.0)


def _noise(images: torch.Tensor, p: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
    """``images [B, 3, H, W]`` in [0, 1], per-image parameter ``p [B]`` and seeds ``[B]`` -> ``[B, 3, H, W]``: Gaussian noise of sd ``p``, seeded per image."""
    out = images.clone()
    for i in range(images.shape[0]):  # one generator per image: noise depends on its seed only
        if float(p[i]) > 0:
            g = torch.Generator().manual_seed(int(seeds[i]))
            z = torch.randn(images.shape[1:], generator=g, dtype=images.dtype)
            out[i] = (images[i] + float(p[i]) * z).clamp(0.0, 1.0)
    return out


def _jpeg(images: torch.Tensor, p: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
    """``images [B, 3, H, W]`` in [0, 1], per-image parameter ``p [B]`` and seeds ``[B]`` -> ``[B, 3, H, W]``: a JPEG round trip at quality ``p``."""
    out = images.clone()
    for i in range(images.shape[0]):  # PIL's libjpeg: the encoder ImageNet-C used too
        q = round(float(p[i]))
        if q < 100:
            u8 = (images[i].clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
            buf = io.BytesIO()
            Image.fromarray(u8, mode="RGB").save(buf, format="JPEG", quality=max(1, q))
            back = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
            out[i] = torch.from_numpy(back.copy()).permute(2, 0, 1).to(images.dtype) / 255.0
    return out


def _saturation(images: torch.Tensor, p: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
    """``images [B, 3, H, W]`` in [0, 1], per-image parameter ``p [B]`` and seeds ``[B]`` -> ``[B, 3, H, W]``: deviations from the luma scaled by ``p``."""
    gray = _luma(images)
    return (gray + (images - gray) * p[:, None, None, None].to(images.dtype)).clamp(0.0, 1.0)


@dataclass(frozen=True)
class CorruptionSpec:
    """One corruption: its parameter at severities 0..MAX_SEVERITY and the function applying it.

    ``fn(images [B,3,H,W], params [B], seeds [B]) -> images [B,3,H,W]``; ``measurer`` reads the strength back
    from an image (the default measurer of the severity attribute, e.g. for swaps).
    """

    table: tuple[float, ...]
    fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    parameter: str
    stochastic: bool = False
    measurer: str = ""  # the measurer spec (probe.measure) that reads this corruption's strength on any image


CORRUPTIONS: dict[str, CorruptionSpec] = {
    "blur": CorruptionSpec((0.0, 1.0, 2.0, 3.0, 4.0, 6.0), _blur, "sigma in px at 224",
                           measurer="corruption:blur_effect"),
    "brightness": CorruptionSpec((0.0, 0.1, 0.2, 0.3, 0.4, 0.5), _brightness, "HSV value shift",
                                 measurer="analytic:luminance"),
    "contrast": CorruptionSpec((1.0, 0.4, 0.3, 0.2, 0.1, 0.05), _contrast, "contrast factor",
                               measurer="analytic:contrast"),
    "noise": CorruptionSpec((0.0, 0.08, 0.12, 0.18, 0.26, 0.38), _noise, "noise std", True,
                            measurer="corruption:noise_sigma"),
    "jpeg": CorruptionSpec((100.0, 25.0, 18.0, 15.0, 10.0, 7.0), _jpeg, "JPEG quality",
                           measurer="corruption:blockiness"),
    "saturation": CorruptionSpec((1.0, 0.8, 0.6, 0.4, 0.2, 0.0), _saturation, "saturation factor",
                                 measurer="analytic:colourfulness"),
}
"""name -> :class:`CorruptionSpec`; the severity of each is an attribute named after it."""


def corruption_parameter(kind: str, severity: float | Sequence[float] | torch.Tensor) -> torch.Tensor:
    """The physical parameter of ``kind`` at ``severity`` (linear in between table entries)."""
    spec = _spec(kind)
    s = torch.as_tensor(severity, dtype=torch.float64).reshape(-1)
    if (s < 0).any() or (s > MAX_SEVERITY).any():
        raise ValueError(f"corruption {kind!r}: severity must lie in [0, {MAX_SEVERITY}], "
                         f"got {s.tolist()}")
    return torch.as_tensor(np.interp(s.numpy(), np.arange(len(spec.table)), spec.table))


def corrupt(images: torch.Tensor, kind: str, severity: float | Sequence[float] | torch.Tensor,
            *, seed: int | Sequence[int] | torch.Tensor = 0) -> torch.Tensor:
    """Apply corruption ``kind`` to ``images [B, 3, H, W]`` at ``severity`` (scalar or ``[B]``).

    ``seed`` (scalar or ``[B]``) fixes the random parts (noise), per image. Returns a new tensor
    ``[B, 3, H, W]`` in [0, 1]; severity 0 returns the images unchanged.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"corrupt: images must be [B, 3, H, W], got {tuple(images.shape)}")
    b = images.shape[0]
    params = corruption_parameter(kind, severity)
    params = params.expand(b) if params.numel() == 1 else params
    seeds = torch.as_tensor(seed, dtype=torch.int64).reshape(-1)
    seeds = seeds.expand(b) if seeds.numel() == 1 else seeds
    if params.numel() != b or seeds.numel() != b:
        raise ValueError(f"corrupt: got {b} images but {params.numel()} severities / "
                         f"{seeds.numel()} seeds")
    out = _spec(kind).fn(images, params.to(torch.float32), seeds)
    untouched = torch.as_tensor(severity, dtype=torch.float64).reshape(-1) == 0
    if untouched.any():  # severity 0 is exactly the input (no float round-off)
        keep = untouched.expand(b) if untouched.numel() == 1 else untouched
        out[keep] = images[keep]
    return out


def _spec(kind: str) -> CorruptionSpec:
    if kind not in CORRUPTIONS:
        raise KeyError(f"unknown corruption {kind!r}; choose from {sorted(CORRUPTIONS)}")
    return CORRUPTIONS[kind]


__all__ = ["CORRUPTIONS", "MAX_SEVERITY", "CorruptionSpec", "corrupt", "corruption_parameter"]
