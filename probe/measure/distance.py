"""How far apart two readings of one measurer are, per image, in the measurer's own units."""
from __future__ import annotations

import torch


def reading_distance(before: torch.Tensor, after: torch.Tensor, kind: str | None = None) -> torch.Tensor:
    """Per-image distance ``[B]`` between two readings of one measurer.

    ``|after - before|`` for scalars ``[B]``; the angle between unit vectors ``[B, 2]`` over 2 pi (in turns, 0 to
    0.5) when ``kind == "circular"``; total variation (0 to 1) for class probabilities ``[B, K]``.

    Examples:
        >>> reading_distance(torch.tensor([0.2]), torch.tensor([0.5]))
        tensor([0.3000])
        >>> reading_distance(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]), "circular")
        tensor([0.2500])
    """
    a, b = before.float(), after.float()
    if a.ndim == 1:
        return (b - a).abs()
    if kind == "circular":
        diff = torch.atan2(b[:, 1], b[:, 0]) - torch.atan2(a[:, 1], a[:, 0])
        return (torch.remainder(diff + torch.pi, 2 * torch.pi) - torch.pi).abs() / (2 * torch.pi)
    return 0.5 * (b - a).abs().sum(1)


__all__ = ["reading_distance"]
