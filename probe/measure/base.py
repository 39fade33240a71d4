"""The measurer interface: images in, one value (or class probabilities, or a unit vector) per image out."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import torch

KINDS = ("continuous", "categorical", "circular")


@runtime_checkable
class SharedSource(Protocol):
    """A model that reads several attributes in one pass (e.g. the world oracle): ``source(images, masks=None)``
    returns its readings of the batch (any object the measurers that share it know how to :meth:`Measurer.read`);
    ``reads`` names the attributes it reads."""

    reads: tuple[str, ...]

    def __call__(self, images: torch.Tensor, *, masks: torch.Tensor | None = None) -> Any: ...


class Measurer:
    """Measures one attribute on images ``[B, 3, H, W]`` in [0, 1].

    Attributes:
        name: what is measured (e.g. ``"lighting"``, ``"shape"``).
        kind: ``"continuous"`` -> ``[B]``; ``"categorical"`` -> class probabilities ``[B, K]`` (rows sum to 1,
            class names in :attr:`classes`); ``"circular"`` -> unit vectors ``[B, 2]`` (angle = the value, e.g.
            hue as ``2 pi h``).
        classes: the K class names of a categorical measurer (``None`` otherwise).
        differentiable: ``True`` when the output is a differentiable function of the images through autograd
            (gradient-based methods such as attribution patching refuse measurers that do not declare it;
            the default ``False`` makes a new measurer opt in).
        source: ``None``, or a model shared by several measurers (:class:`SharedSource`): callers that measure
            with several measurers call each source once per batch (:func:`probe.measure.shared.measure_all`)
            and give every measurer its :meth:`read` of the readings.

    ``__call__(images, *, masks=None)`` takes optional object masks ``[B, 1, H, W]`` (used where a measurer needs
    them: object hue, background sharpness; others ignore them). Callers that only read values wrap them in
    ``torch.no_grad()``; the result is on the images' device.
    """

    name: str = ""
    kind: str = "continuous"
    classes: list[str] | None = None
    differentiable: bool = False
    source: SharedSource | None = None

    def read(self, readings: Any) -> torch.Tensor:
        """This measurer's value from its :attr:`source`'s readings of a batch (measurers with a source)."""
        raise NotImplementedError(f"measurer {self.name!r} has no shared source to read from")

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
    """A measurer from a function ``fn(images [B,3,H,W], masks [B,1,H,W] | None) -> [B] | [B, 2]``
    (``differentiable``: whether ``fn`` is a torch computation autograd can differentiate; default True)."""

    def __init__(self, name: str, kind: str, fn: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
                 doc: str = "", *, differentiable: bool = True) -> None:
        if kind not in KINDS:
            raise ValueError(f"measurer {name!r}: kind must be one of {KINDS}, got {kind!r}")
        self.name, self.kind, self.fn = name, kind, fn
        self.differentiable = differentiable
        self.__doc__ = doc or fn.__doc__

    def __call__(self, images: torch.Tensor, *, masks: torch.Tensor | None = None) -> torch.Tensor:
        check_images(images, f"measurer {self.name!r}")
        return self.fn(images, masks)
