"""Several measurers on one batch, each shared model run once: the one way callers measure with many measurers.

A measurer whose ``source`` is set (a :class:`probe.measure.base.SharedSource`, e.g. the world oracle's
:class:`probe.measure.oracle.OracleReadings`) reads its value from that source's readings: :func:`measure_all`
groups measurers by source, calls each source once on the batch and hands every measurer its
:meth:`~probe.measure.base.Measurer.read`. Measurers without a source are called as usual. Wrappers that rename a
measurer (an object with ``inner``) are looked through.

Gradients flow when the caller allows them (no ``torch.no_grad()`` here): attribution patching differentiates
the same calls the swap engine makes without gradients.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def innermost(measurer: Any) -> Any:
    """The measurer a renaming wrapper stands for (``wrapper.inner``, recursively); the measurer itself otherwise."""
    while hasattr(measurer, "inner"):
        measurer = measurer.inner
    return measurer


def sources_of(measurers: Sequence[Any]) -> dict[int, Any]:
    """``id(source) -> source`` of the shared sources the measurers read (in order of first use)."""
    out: dict[int, Any] = {}
    for m in measurers:
        src = getattr(innermost(m), "source", None)
        if src is not None:
            out.setdefault(id(src), src)
    return out


def measure_all(measurers: Sequence[Any], images: torch.Tensor, masks: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Every measurer on ``images [B, 3, H, W]`` -> one tensor each (``[B]``, ``[B, 2]`` or ``[B, K]``), each shared
    source called once."""
    readings = {key: src(images, masks=masks) for key, src in sources_of(measurers).items()}
    out = []
    for m in measurers:
        inner = innermost(m)
        src = getattr(inner, "source", None)
        out.append(inner.read(readings[id(src)]) if src is not None else m(images, masks=masks))
    return out


def is_differentiable(measurer: Any) -> bool:
    """Whether a measurer (or the one a wrapper stands for) declares ``differentiable = True``."""
    return bool(getattr(measurer, "differentiable", False) or getattr(innermost(measurer), "differentiable", False))
