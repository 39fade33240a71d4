"""How far a measurer's reading moved: the one comparison of readings in tokenprobe.

Readings are what a :class:`probe.measure.Measurer` returns, as ``[B, D]`` arrays: ``D = 1`` for a scalar,
unit vectors ``[B, 2]`` for a circular attribute (a hue), class probabilities ``[B, K]`` for a categorical one.
:func:`movement` compares a reading ``before`` an edit with the reading ``after`` it:

- always ``distance``: how far the reading moved, unsigned, in the reading's own units: ``|after - before|``
  for a scalar, the wrapped angle in turns for a circular reading, total variation for class probabilities;
- with ``toward`` (the donor's reading, whose direction the edit should move the reading in): the signed
  movement along the recipient-to-donor direction. ``gap`` is the length of ``toward - before``, ``moved``
  the projection of ``after - start`` on that direction (negative when the edit moved the reading the wrong
  way), ``transfer = moved / gap`` (0: no effect, 1: the whole gap; NaN for a gap under :data:`MIN_GAP`),
  ``moved_abs`` the length of ``after - start`` and ``nearer_donor`` whether ``after`` lies nearer ``toward``
  than ``before`` (categorical: it takes the donor's class). Vectors are projected in reading space, so every
  kind is compared alike.

``start`` is where movement is counted from (default ``before``): the swap engine measures ``before`` and
``toward`` on original images and counts movement from the recipient's reconstruction.
"""
from __future__ import annotations

import numpy as np
import torch

#: gaps shorter than this (in measurer units) give ``transfer`` NaN
MIN_GAP = 1e-9

Reading = np.ndarray | torch.Tensor


def _rows(v: Reading) -> np.ndarray:
    """A reading as float64 ``[B, D]``."""
    a = v.detach().to("cpu", torch.float64).numpy() if isinstance(v, torch.Tensor) else np.asarray(v, np.float64)
    return a.reshape(len(a), -1)


def reading_scalar(kind: str, v: Reading, ref_class: np.ndarray | None = None) -> np.ndarray:
    """A table-friendly scalar per row of a reading ``[B, D]``: the value (``D = 1``), the angle in turns
    (circular), or for class probabilities the probability of ``ref_class`` (e.g. the donor's class) or, without
    one, the most probable class index."""
    v = _rows(v)
    if v.shape[1] == 1:
        return v[:, 0]
    if kind == "circular" and v.shape[1] == 2:
        return (np.arctan2(v[:, 1], v[:, 0]) / (2 * np.pi)) % 1.0
    if ref_class is None:
        return v.argmax(1).astype(float)
    return v[np.arange(len(v)), ref_class]


def _distance(kind: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.shape[1] == 1:
        return np.abs(b[:, 0] - a[:, 0])
    if kind == "circular" and a.shape[1] == 2:
        diff = np.arctan2(b[:, 1], b[:, 0]) - np.arctan2(a[:, 1], a[:, 0])
        return np.abs(np.remainder(diff + np.pi, 2 * np.pi) - np.pi) / (2 * np.pi)
    return 0.5 * np.abs(b - a).sum(1)


def movement(kind: str, before: Reading, after: Reading, toward: Reading | None = None, *,
             start: Reading | None = None) -> dict[str, np.ndarray]:
    """How far each row's reading moved from ``before`` (or ``start``) to ``after``, and, with ``toward``, how
    far along the direction from ``before`` to ``toward`` (see the module docstring). Readings ``[B]`` or
    ``[B, D]`` (tensors or arrays).

    Returns per-row float arrays ``[B]``: ``before``, ``after`` (scalars, see :func:`reading_scalar`) and
    ``distance``; with ``toward`` also ``toward``, ``gap``, ``moved``, ``moved_abs``, ``transfer`` and
    ``nearer_donor`` (bool).

    Examples:
        >>> m = movement("continuous", [0.0, 0.0], [0.5, -0.2], toward=[1.0, 1.0])
        >>> m["transfer"].tolist()
        [0.5, -0.2]
        >>> m["distance"].round(6).tolist()
        [0.5, 0.2]
        >>> quarter = movement("circular", [[1.0, 0.0]], [[0.0, 1.0]])["distance"]
        >>> float(quarter[0])
        0.25
    """
    r, s = _rows(before), _rows(after)
    s0 = r if start is None else _rows(start)
    out: dict[str, np.ndarray] = {}
    if toward is None:
        out["before"], out["after"] = reading_scalar(kind, r), reading_scalar(kind, s)
        out["distance"] = _distance(kind, s0, s)
        return out
    d = _rows(toward)
    gap_vec = d - r
    gap = np.sqrt((gap_vec**2).sum(1))
    moved = ((s - s0) * gap_vec).sum(1) / np.maximum(gap, MIN_GAP)
    moved_abs = np.sqrt(((s - s0) ** 2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        transfer = np.where(gap > MIN_GAP, moved / np.maximum(gap, MIN_GAP), np.nan)
    if kind == "categorical" and r.shape[1] > 1:
        dc, sc, rc = d.argmax(1), s.argmax(1), r.argmax(1)
        nearer = (sc == dc) & (dc != rc)
        ref_class = dc
    else:
        nearer = ((s - d) ** 2).sum(1) < ((s - r) ** 2).sum(1)
        ref_class = None
    out["before"], out["toward"] = reading_scalar(kind, r, ref_class), reading_scalar(kind, d, ref_class)
    out["after"] = reading_scalar(kind, s, ref_class)
    out.update(gap=gap, moved=moved, moved_abs=moved_abs, transfer=transfer, nearer_donor=nearer,
               distance=_distance(kind, s0, s))
    return out
