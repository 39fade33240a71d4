"""The measurer interface: images in, one value (or class probabilities, or a unit vector) per image out."""
from __future__ import annotations

from collections.abc import Callable

import torch

KINDS = ("continuous", "categorical", "circular")


class Measurer:
    """Measures one attribute on images ``[B, 3, H, W]`` in [0, 1].

    Attributes:
        name: what is measured (e.g. ``"lighting"``, ``"shape"``).
        kind: ``"continuous"`` -> ``[B]``; ``"categorical"`` -> class probabilities ``[B, K]`` (rows sum to 1,
            class names in :attr:`classes`); ``"circular"`` -> unit vectors ``[B, 2]`` (angle = the value, e.g.
            hue as ``2 pi h``).
        classes: the K class names of a categorical measurer (``None`` otherwise).

    ``__call__(images, *, masks=None)`` takes optional object masks ``[B, 1, H, W]`` (used where a measurer needs
    them: object hue, background sharpness; others ignore them). Measurers are differentiable where their
    computation is (callers that only read values wrap them in ``torch.no_grad()``); the result is on the
    images' device.
    """

    name: str = ""
    kind: str = "continuous"
    classes: list[str] | None = None

    def __call__(self, images: torch.Tensor, *, masks: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        extra = f", classes={self.classes}" if self.classes else ""
        return f"{type(self).__name__}(name={self.name!r}, kind={self.kind!r}{extra})"


def check_images(images: torch.Tensor, who: str) -> None:
    """One clear error for anything that is not ``[B, 3, H, W]``."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"{who}: expected images [B, 3, H, W] in [0, 1], got shape {tuple(images.shape)}")


class FunctionMeasurer(Measurer):
    """A measurer from a function ``fn(images [B,3,H,W], masks [B,1,H,W] | None) -> [B] | [B, 2]``."""

    def __init__(self, name: str, kind: str, fn: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
                 doc: str = "") -> None:
        if kind not in KINDS:
            raise ValueError(f"measurer {name!r}: kind must be one of {KINDS}, got {kind!r}")
        self.name, self.kind, self.fn = name, kind, fn
        self.__doc__ = doc or fn.__doc__

    def __call__(self, images: torch.Tensor, *, masks: torch.Tensor | None = None) -> torch.Tensor:
        check_images(images, f"measurer {self.name!r}")
        return self.fn(images, masks)
