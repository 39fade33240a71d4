"""Measurers of corruption strength on any image (spec ``"corruption:<name>"``), the default readers of the
corruption partitions' severities (:data:`probe.data.corruptions.CORRUPTIONS` names one per kind).

- ``blur_effect``: scikit-image's no-reference blur estimate (``skimage.measure.blur_effect``, Crete et al.
  2007) on the luminance: 0 sharp, towards 1 blurrier;
- ``noise_sigma``: scikit-image's wavelet estimate of the Gaussian noise standard deviation
  (``skimage.restoration.estimate_sigma``, Donoho & Johnstone 1994), averaged over the colour channels;
- ``blockiness``: how much larger the mean luminance step across the 8-pixel JPEG block grid is than the mean
  step inside the blocks (0: no blocking, larger: blockier). Written here: scikit-image has no blockiness
  estimator; this is the boundary-versus-interior difference of Wang, Sheikh & Bovik (2002) reduced to its
  core (a difference, not their ratio: on smooth images the interior steps are near 0 and a ratio is not
  monotone in JPEG quality).

Each is ``continuous`` ``[B]``, computed per image on the CPU (not differentiable).
"""
from __future__ import annotations

import numpy as np
import torch

from probe.measure.base import FunctionMeasurer, Measurer

#: luminance weights (ITU-R BT.601, scikit-image's rgb2gray uses BT.709; either reads blur and blocks alike)
_LUMA = torch.tensor([0.299, 0.587, 0.114])


def _gray(images: torch.Tensor) -> np.ndarray:
    """``[B, H, W]`` float64 luminance of ``images [B, 3, H, W]`` in [0, 1]."""
    x = images.detach().float().clamp(0, 1).cpu()
    return torch.einsum("bchw,c->bhw", x, _LUMA).numpy().astype(np.float64)


def blur_effect(images: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
    """scikit-image's blur effect per image ``[B]`` (0 sharp .. 1 blurry)."""
    from skimage.measure import blur_effect as _blur_effect

    return torch.tensor([_blur_effect(g) for g in _gray(images)], dtype=torch.float32, device=images.device)


def noise_sigma(images: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
    """scikit-image's estimate of the Gaussian noise standard deviation per image ``[B]`` (in [0, 1] units)."""
    from skimage.restoration import estimate_sigma

    x = images.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy().astype(np.float64)
    return torch.tensor([estimate_sigma(im, channel_axis=-1, average_sigmas=True) for im in x],
                        dtype=torch.float32, device=images.device)


def blockiness(images: torch.Tensor, masks: torch.Tensor | None = None, block: int = 8) -> torch.Tensor:
    """Mean absolute luminance step across block boundaries minus the mean step inside blocks, per image ``[B]``."""
    y = torch.from_numpy(_gray(images))
    out = []
    for steps in (y.diff(dim=2).abs(), y.diff(dim=1).abs().transpose(1, 2)):  # across columns, then rows
        at = torch.arange(steps.shape[2]) % block == block - 1  # the step from pixel 8k+7 to 8k+8
        out.append(steps[:, :, at].mean((1, 2)) - steps[:, :, ~at].mean((1, 2)))
    return ((out[0] + out[1]) / 2).float().to(images.device)


_CORRUPTION = {"blur_effect": blur_effect, "noise_sigma": noise_sigma, "blockiness": blockiness}
CORRUPTION_NAMES = tuple(_CORRUPTION)
"""Names accepted by :func:`corruption_measurer` (and by the spec ``"corruption:<name>"``)."""


def corruption_measurer(name: str) -> Measurer:
    """The corruption-strength measurer ``name`` (one of :data:`CORRUPTION_NAMES`)."""
    if name not in _CORRUPTION:
        raise KeyError(f"no corruption measurer {name!r}; known: {', '.join(CORRUPTION_NAMES)}")
    fn = _CORRUPTION[name]
    # numpy / scikit-image on the CPU: no gradient (attribution patching must not be offered them)
    return FunctionMeasurer(name, "continuous", fn, doc=fn.__doc__ or "", differentiable=False)


__all__ = ["CORRUPTION_NAMES", "blockiness", "blur_effect", "corruption_measurer", "noise_sigma"]
