"""From pairs and swap tables to verdicts: an attribute's label geometry and the judging of its family.

- :func:`label_geometry`: decode every image the pairs use once, test the attribute's visibility on the
  reconstructions (against the originals when the data can make them) and give each pair the direction its
  labels define (:mod:`probe.swap.visibility`);
- (the engine measures the attribute's own reading along those directions: ``patch(..., directions=)``);
- :func:`judge_table`: the verdicts of one attribute's family from its confirmation rows
  (:func:`probe.swap.verdict.judge`), controls included.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from probe.swap.verdict import GATES, VerdictConfig, judge
from probe.swap.visibility import Visibility, label_directions, pair_directions, visibility
from probe.tokenizers.base import decode_batched


def row_ends(pairs: pd.DataFrame) -> pd.Series:
    """Each image row's end label (index: row), from the pairs that use it (recipients, donors, same-end donors)."""
    parts = [pairs[["recipient", "recipient_end"]].set_axis(["row", "end"], axis=1),
             pairs[["donor", "donor_end"]].set_axis(["row", "end"], axis=1)]
    if "same_end_donor" in pairs:
        parts.append(pairs[["same_end_donor", "recipient_end"]].set_axis(["row", "end"], axis=1))
    return pd.concat(parts).drop_duplicates("row").set_index("row")["end"].sort_index()


def readings(tokenizer: Any, quantized: torch.Tensor, measurer: Any, *, masks: torch.Tensor | None = None,
             batch: int = 256) -> np.ndarray:
    """``measurer`` on the decodes of ``quantized [R, N, C]`` -> float64 ``[R, D]``."""
    out = []
    for s in range(0, len(quantized), batch):
        img = decode_batched(tokenizer, quantized[s : s + batch], batch)
        mk = None if masks is None else masks[s : s + batch]
        with torch.no_grad():
            v = torch.as_tensor(measurer(img, masks=mk)).detach().to("cpu", torch.float64)
        out.append(v.reshape(len(img), -1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 1))


def measure_images(images: torch.Tensor, measurer: Any, *, masks: torch.Tensor | None = None) -> np.ndarray:
    """``measurer`` on images ``[R, 3, H, W]`` -> float64 ``[R, D]``."""
    with torch.no_grad():
        v = torch.as_tensor(measurer(images, masks=masks)).detach().to("cpu", torch.float64)
    return v.reshape(len(images), -1).numpy()


@dataclass
class LabelGeometry:
    """An attribute's visibility and the direction of each of its pairs.

    Attributes:
        visibility: the test (:class:`probe.swap.visibility.Visibility`).
        directions: ``[P, D]`` unit vector per pair (rows of the pairs table, in order).
        ends: each image row's end label.
        by_end: (recipient end, donor end) -> unit vector ``[D]``.
    """

    visibility: Visibility
    directions: np.ndarray
    ends: pd.Series
    by_end: dict = field(default_factory=dict)

    def directions_for(self, pairs: pd.DataFrame) -> np.ndarray:
        """``[P, D]`` directions of other pairs of the same attribute (by their ends). A pair of ends the test's
        images did not hold (a category no pair of the test drew) gets a zero direction: it moves nothing and
        has no gap, so it does not count."""
        dim = len(next(iter(self.by_end.values()))) if self.by_end else 1
        zero = np.zeros(dim)
        known = {k: self.by_end.get(k, zero) for k in zip(pairs["recipient_end"], pairs["donor_end"])}
        return pair_directions(known, pairs["recipient_end"], pairs["donor_end"])


def label_geometry(tokenizer: Any, quantized: torch.Tensor, measurer: Any, pairs: pd.DataFrame, *,
                   rule: VerdictConfig | None = None, masks: torch.Tensor | None = None,
                   originals: Callable[[np.ndarray], torch.Tensor | None] | None = None, batch: int = 256,
                   seed: int = 0) -> LabelGeometry:
    """Visibility and per-pair directions of one attribute (see the module docstring).

    Args:
        quantized: every stored image's tokens ``[M, N, C]``; ``pairs``: that attribute's pairs (row positions).
        masks: ``[M, 1, H, W]`` object masks for measurers that need them.
        originals: rows -> the original images ``[R, 3, H, W]`` (``None``, or a callable that returns
            ``None``: no reconstruction check).
    """
    r = rule or VerdictConfig()
    ends = row_ends(pairs)
    rows = ends.index.to_numpy(dtype=np.int64)
    idx = torch.as_tensor(rows.copy())
    mk = None if masks is None else masks[idx]
    recon = readings(tokenizer, quantized[idx], measurer, masks=mk, batch=batch)
    orig = None
    images = originals(rows) if originals is not None else None
    if images is not None:
        orig = measure_images(images, measurer, masks=mk)
    vis = visibility(recon, ends.to_numpy(), orig, alpha=r.visible_alpha, min_kept=r.min_kept, seed=seed)
    by_end = label_directions(recon, ends.to_numpy())
    dirs = pair_directions(by_end, pairs["recipient_end"], pairs["donor_end"])
    return LabelGeometry(vis, dirs, ends, by_end)


def judge_table(table: pd.DataFrame, rule: VerdictConfig | None = None, *, status: str = "testable",
                family_size: int | None = None) -> pd.DataFrame:
    """Verdicts of the mappings of one attribute from its confirmation rows (own measurer only; ``moved`` and
    ``gap`` along the label direction; controls in ``control``). A control's movement is normalised by the
    tested gap of the same pairs; ``self`` reads the distance moved (``moved_abs``)."""
    tested, controls = {}, {}
    for label, grp in table.groupby("positions", sort=False):
        by = dict(tuple(grp.groupby("control", sort=False)))
        if "none" not in by:
            continue
        t = by["none"].set_index("pair")
        tested[label] = (t["moved"].to_numpy(float), t["gap"].to_numpy(float))
        ctrl = {}
        for c, g in by.items():
            if c not in GATES:
                continue
            col = "moved_abs" if c == "self" else "moved"
            ctrl[c] = (g[col].to_numpy(float), t["gap"].reindex(g["pair"]).to_numpy(float))
        controls[label] = ctrl
    if not tested:
        return pd.DataFrame()
    return judge(tested, controls, rule, status=status, family_size=family_size)
