"""Pixel measurers of the world's attributes, for swaps measured on decoded images.

Each measurer maps images ``[B, 3, H, W]`` in [0, 1] and the known object masks ``[B, 1, H, W]`` (of the
image being measured) to one value per image ``[B]`` (hue: a unit vector ``[B, 2]``). They read pixels
only, never the tokens, so they judge any decoder the same way:

- lighting: mean luminance (Rec. 601 weights) of the whole image;
- bg_blur: Laplacian energy of background pixels (mask dilated by one pixel and the image border excluded)
  divided by their variance, so stripe contrast and lighting do not count as sharpness (high = crisp);
- global_blur: gradient energy of the whole image divided by its variance (high = sharp);
- obj_hue: chroma-weighted circular mean hue of object pixels, as a unit vector.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def luminance(img: torch.Tensor) -> torch.Tensor:
    """``[B,3,H,W]`` -> ``[B,H,W]`` (Rec. 601 luma)."""
    return 0.299 * img[:, 0] + 0.587 * img[:, 1] + 0.114 * img[:, 2]


def measure_lighting(img: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean luminance. -> ``[B]``."""
    return luminance(img).flatten(1).mean(1)


def measure_bg_sharpness(img: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Laplacian energy / variance over background pixels (object dilated by 1 px excluded). -> ``[B]``."""
    y = luminance(img)[:, None]
    lap = F.conv2d(F.pad(y, (1, 1, 1, 1), mode="replicate"),
                   torch.tensor([[[[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]]], dtype=y.dtype))
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


def measure_sharpness(img: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Gradient energy / variance of the whole image (luminance). -> ``[B]``."""
    y = luminance(img)
    gx = y[:, :, 1:] - y[:, :, :-1]
    gy = y[:, 1:, :] - y[:, :-1, :]
    energy = gx.pow(2).flatten(1).mean(1) + gy.pow(2).flatten(1).mean(1)
    return energy / (y.flatten(1).var(1) + 1e-4)


def hue_vector(img: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Chroma-weighted circular mean hue of object pixels (mask > 0.9) as a unit vector ``[B, 2]``."""
    mx, _ = img.max(1)
    mn, _ = img.min(1)
    r, g, b = img[:, 0], img[:, 1], img[:, 2]
    # hue angle via the standard hexagon-to-plane projection (alpha, beta): atan2 gives the hue circle
    alpha = r - 0.5 * (g + b)
    beta = (3 ** 0.5) / 2 * (g - b)
    w = (mask[:, 0] > 0.9).float() * (mx - mn)
    v = torch.stack([(alpha * w).flatten(1).sum(1), (beta * w).flatten(1).sum(1)], dim=1)
    return F.normalize(v, dim=1)


MEASURERS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "lighting": measure_lighting, "bg_blur": measure_bg_sharpness,
    "global_blur": measure_sharpness, "obj_hue": hue_vector}
"""World factor -> its pixel measurer."""


def moved_fraction(m_low: torch.Tensor, m_high: torch.Tensor, m_swap: torch.Tensor) -> float:
    """How far a swap moved the low group toward the high group, as a fraction of their gap.

    ``(mean(swap) - mean(low)) / (mean(high) - mean(low))`` on group means ``[B]`` or ``[B, D]``; vectors (hue)
    are projected on ``high - low``. 0 = no effect, 1 = the whole gap.
    """
    lo, hi, sw = m_low.double().mean(0), m_high.double().mean(0), m_swap.double().mean(0)
    gap = (hi - lo).reshape(-1)
    move = (sw - lo).reshape(-1)
    return float((move @ gap) / (gap @ gap).clamp_min(1e-12))
