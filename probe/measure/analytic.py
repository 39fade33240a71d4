"""Analytic measurers: closed-form pixel statistics, no model.

General image statistics (any images):

- ``luminance``: mean Rec. 601 luma;
- ``contrast``: RMS contrast, the standard deviation of the luma;
- ``colourfulness``: Hasler & Suesstrunk (2003), ``sqrt(sd_rg^2 + sd_yb^2) + 0.3 sqrt(mean_rg^2 + mean_yb^2)``
  with ``rg = R - G``, ``yb = (R + G) / 2 - B`` (on [0, 1] values);
- ``hue`` (circular): chroma-weighted circular mean hue as a unit vector ``[B, 2]`` (angle ``2 pi h``: red 0,
  green 1/3, blue 2/3 of the circle), over the object's pixels when masks are given;
- ``laplacian_variance``: variance of the Laplacian of the luma (Pech-Pacheco et al. 2000; high = sharp);
- ``hf_energy``: the fraction of the luma's spectral power (weighted mean removed, Hann-windowed) above ``0.25``
  cycles per pixel (high = sharp; independent of brightness and contrast).

The world's attributes, read from pixels as the swap analyses have always read them (their numbers are
fixed: shipped-model tests and figures depend on them):

- ``lighting``: mean luminance of the whole image;
- ``bg_blur``: Laplacian energy of background pixels (object mask dilated by one pixel and the image border
  excluded) over their variance, so stripe contrast and lighting do not count (a sharpness: high = crisp,
  i.e. it falls as ``bg_blur`` rises); needs masks;
- ``global_blur``: gradient energy of the whole image over its variance (a sharpness: high = sharp);
- ``obj_hue`` (circular): ``hue`` over the object's pixels (mask > 0.9); needs masks.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from probe.measure.base import FunctionMeasurer, Measurer


def luminance(img: torch.Tensor) -> torch.Tensor:
    """``[B,3,H,W]`` -> ``[B,H,W]`` (Rec. 601 luma)."""
    return 0.299 * img[:, 0] + 0.587 * img[:, 1] + 0.114 * img[:, 2]


def mean_luminance(img: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
    """Mean luminance of the whole image. -> ``[B]``."""
    return luminance(img).flatten(1).mean(1)


def rms_contrast(img: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
    """Standard deviation of the luma. -> ``[B]``."""
    return luminance(img).flatten(1).std(1, correction=0)


def colourfulness(img: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
    """Hasler & Suesstrunk's colourfulness (0 for grey images). -> ``[B]``."""
    r, g, b = img[:, 0].flatten(1), img[:, 1].flatten(1), img[:, 2].flatten(1)
    rg, yb = r - g, 0.5 * (r + g) - b
    sd = (rg.var(1, correction=0) + yb.var(1, correction=0)).sqrt()
    mean = (rg.mean(1).square() + yb.mean(1).square()).sqrt()
    return sd + 0.3 * mean


def hue_vector(img: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
    """Chroma-weighted circular mean hue as a unit vector ``[B, 2]``, over pixels with mask > 0.9 when
    ``masks [B,1,H,W]`` are given (all pixels otherwise)."""
    mx, _ = img.max(1)
    mn, _ = img.min(1)
    r, g, b = img[:, 0], img[:, 1], img[:, 2]
    # hue angle via the standard hexagon-to-plane projection (alpha, beta): atan2 gives the hue circle
    alpha = r - 0.5 * (g + b)
    beta = (3 ** 0.5) / 2 * (g - b)
    w = mx - mn
    if masks is not None:
        w = (masks[:, 0] > 0.9).float() * w
    v = torch.stack([(alpha * w).flatten(1).sum(1), (beta * w).flatten(1).sum(1)], dim=1)
    return F.normalize(v, dim=1)


def _laplacian(y: torch.Tensor, pad: bool) -> torch.Tensor:
    """4-neighbour Laplacian of ``y [B,1,H,W]`` (replicate-padded to keep the size, or valid)."""
    k = torch.tensor([[[[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]]], dtype=y.dtype, device=y.device)
    return F.conv2d(F.pad(y, (1, 1, 1, 1), mode="replicate") if pad else y, k)


def laplacian_variance(img: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
    """Variance of the (valid) Laplacian of the luma. -> ``[B]``."""
    return _laplacian(luminance(img)[:, None], pad=False).flatten(1).var(1, correction=0)


def hf_energy(img: torch.Tensor, masks: torch.Tensor | None = None, cutoff: float = 0.25) -> torch.Tensor:
    """Fraction of the (Hann-windowed, mean-removed) luma's spectral power above ``cutoff`` cycles per pixel.
    -> ``[B]``."""
    y = luminance(img)
    # Hann window: the FFT treats the image as periodic, and the jump between opposite borders would count
    # as high frequency
    win = (torch.hann_window(y.shape[1], periodic=False, dtype=y.dtype, device=y.device)[:, None]
           * torch.hann_window(y.shape[2], periodic=False, dtype=y.dtype, device=y.device)[None, :])
    y = (y - (y * win).sum(dim=(1, 2), keepdim=True) / win.sum()) * win
    power = torch.fft.fft2(y).abs().square()
    fy = torch.fft.fftfreq(y.shape[1], device=y.device)
    fx = torch.fft.fftfreq(y.shape[2], device=y.device)
    radius = (fy[:, None].square() + fx[None, :].square()).sqrt()
    high = (power * (radius > cutoff)).flatten(1).sum(1)
    return high / power.flatten(1).sum(1).clamp_min(1e-12)


def _need_masks(masks: torch.Tensor | None, name: str) -> torch.Tensor:
    if masks is None:
        raise ValueError(f"measurer {name!r} needs the object masks [B, 1, H, W] (masks=...); for an image-wide "
                         "reading use 'analytic:hue' or 'analytic:laplacian_variance'")
    return masks


def bg_sharpness(img: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
    """Laplacian energy / variance over background pixels (object dilated by 1 px excluded). -> ``[B]``."""
    mask = _need_masks(masks, "bg_blur")
    y = luminance(img)[:, None]
    lap = _laplacian(y, pad=True)
    bg = 1.0 - F.max_pool2d((mask > 0.05).float(), 3, stride=1, padding=1)
    # keep away from the image border too (replicate padding fakes flat borders)
    bg[..., :1, :] = 0
    bg[..., -1:, :] = 0
    bg[..., :, :1] = 0
    bg[..., :, -1:] = 0
    n = bg.flatten(1).sum(1).clamp_min(1)
    mean = (y * bg).flatten(1).sum(1) / n
    var = (((y - mean[:, None, None, None]) ** 2) * bg).flatten(1).sum(1) / n
    energy = ((lap ** 2) * bg).flatten(1).sum(1) / n
    return energy / (var + 1e-4)


def gradient_sharpness(img: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
    """Gradient energy / variance of the whole image (luminance). -> ``[B]``."""
    y = luminance(img)
    gx = y[:, :, 1:] - y[:, :, :-1]
    gy = y[:, 1:, :] - y[:, :-1, :]
    energy = gx.pow(2).flatten(1).mean(1) + gy.pow(2).flatten(1).mean(1)
    return energy / (y.flatten(1).var(1) + 1e-4)


def object_hue(img: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
    """:func:`hue_vector` over the object's pixels (masks required). -> ``[B, 2]``."""
    return hue_vector(img, _need_masks(masks, "obj_hue"))


_ANALYTIC = {
    "luminance": ("continuous", mean_luminance),
    "contrast": ("continuous", rms_contrast),
    "colourfulness": ("continuous", colourfulness),
    "hue": ("circular", hue_vector),
    "laplacian_variance": ("continuous", laplacian_variance),
    "hf_energy": ("continuous", hf_energy),
    # the world's attributes
    "lighting": ("continuous", mean_luminance),
    "bg_blur": ("continuous", bg_sharpness),
    "global_blur": ("continuous", gradient_sharpness),
    "obj_hue": ("circular", object_hue),
}
ANALYTIC_NAMES = tuple(_ANALYTIC)
"""Names accepted by :func:`analytic` (and by the spec ``"analytic:<name>"``)."""


def analytic(name: str) -> Measurer:
    """The analytic measurer ``name`` (one of :data:`ANALYTIC_NAMES`)."""
    if name not in _ANALYTIC:
        raise KeyError(f"no analytic measurer {name!r}; known: {', '.join(ANALYTIC_NAMES)}")
    kind, fn = _ANALYTIC[name]
    return FunctionMeasurer(name, kind, fn)
