"""Figures of test-time token optimization: the image grid and the loss trajectory."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure


def _show(ax: Axes, img: torch.Tensor) -> None:
    """Draw ``img [3, H, W]`` in [0, 1] on ``ax``, without ticks."""
    ax.imshow(img.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy(), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def optimization_grid(milestones: Sequence[tuple[int, torch.Tensor]], *, inputs: torch.Tensor | None = None,
                      labels: Sequence[str] | None = None, titles: Sequence[str] | None = None,
                      max_rows: int = 8, cell: float = 1.2) -> Figure:
    """One row per image: input | images at the milestone steps | result (the last milestone).

    ``milestones``: ``[(step, images [B, 3, H, W])]``; ``inputs`` ``[B, 3, H, W]`` (optional);
    ``labels``: one row label per image (e.g. its prompt); ``titles``: column titles instead of the steps.
    """
    if not milestones:
        raise ValueError("optimization_grid: no milestone images")
    b = min(len(milestones[0][1]), max_rows)
    cols = [("input", inputs)] if inputs is not None else []
    cols += [(f"step {s}", im) for s, im in milestones[:-1]] + [("result", milestones[-1][1])]
    if titles is not None:
        if len(titles) != len(cols):
            raise ValueError(f"optimization_grid: {len(titles)} titles for {len(cols)} columns")
        cols = [(t, im) for t, (_, im) in zip(titles, cols)]
    fig = Figure(figsize=(cell * len(cols), cell * b + 0.4))
    axes = np.atleast_2d(fig.subplots(b, len(cols), squeeze=False))
    for r in range(b):
        for c, (title, im) in enumerate(cols):
            _show(axes[r, c], im[r])
            if r == 0:
                axes[r, c].set_title(title, fontsize=8)
        if labels is not None and r < len(labels):
            axes[r, 0].set_ylabel(str(labels[r]), fontsize=7, rotation=0, ha="right", va="center")
    return fig


def optimization_trajectory(history: pd.DataFrame) -> Figure:
    """Mean (and per-row range) of the loss, the held-out score and the changed tokens per step."""
    h = history[history["step"] < history["step"].max()]  # the last row scores the result, not a step
    g = h.groupby("step")
    panels = [("loss", "loss"), ("heldout", "held-out score"), ("changed", "tokens changed")]
    panels = [(k, t) for k, t in panels if h[k].notna().any()]
    fig = Figure(figsize=(3.2 * len(panels), 2.6))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (key, title) in zip(axes, panels):
        d = g[key].agg(["mean", "min", "max"]).dropna()
        ax.plot(d.index, d["mean"], lw=1.2)
        if len(h["row"].unique()) > 1:
            ax.fill_between(d.index, d["min"], d["max"], alpha=0.2, lw=0)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig
