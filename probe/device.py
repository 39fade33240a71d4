"""Device choice: cuda, then mps, then cpu, unless forced."""
from __future__ import annotations

import torch

from probe.errors import TokenprobeError


class DeviceError(TokenprobeError, RuntimeError):
    """A device that was asked for but is not there."""


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """Return the device to run on.

    ``None`` or ``"auto"`` picks cuda, then mps, then cpu. Anything else is passed to
    :class:`torch.device`; asking for an unavailable backend raises a clear error.
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {str(device)!r} was requested but CUDA is not available here; use --device cpu "
                          "(device: cpu in a run config) or leave it out to pick the device automatically")
    if dev.type == "mps" and not (
        getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    ):
        raise DeviceError(f"device {str(device)!r} was requested but MPS is not available here; use --device cpu "
                          "(device: cpu in a run config) or leave it out to pick the device automatically")
    return dev
