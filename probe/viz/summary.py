"""One-page summary of a probe run."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from probe.viz.heatmap import draw_heatmap
from probe.viz.usage import draw_usage


def summary_figure(
    table: pd.DataFrame,
    semantic_map: Any,
    disentanglement: pd.DataFrame | None = None,
    usage: pd.DataFrame | None = None,
    *,
    alpha: float = 0.05,
    title: str | None = None,
) -> Figure:
    """Ranking-probe heatmap, feature eta^2 heatmap, each attribute's best position, overall
    disentanglement scores and codebook usage, on one page.

    ``semantic_map`` is a :class:`probe.probes.SemanticMap` (or its ``to_dict()``).
    """
    smap = semantic_map.to_dict() if hasattr(semantic_map, "to_dict") else dict(semantic_map)
    probes = set(table["probe"])
    rank_by = smap.get("rank_by") if smap.get("rank_by") in probes else next(iter(sorted(probes)))
    second = next((p for p in ("eta2_features", "eta2_codebook", "linear_acc_features", "mi") if p in probes and p != rank_by), None)
    n_pos = int(table.loc[table.position >= 0, "position"].max()) + 1
    fig = Figure(figsize=(max(12.0, 0.35 * n_pos + 5), 13.0))
    grid = fig.add_gridspec(4, 2, height_ratios=[1.2, 1.2, 1.0, 1.0])
    draw_heatmap(fig.add_subplot(grid[0, :]), table, rank_by, alpha=alpha, annotate=False)
    if second:
        draw_heatmap(fig.add_subplot(grid[1, :]), table, second, alpha=alpha, annotate=False)

    ax = fig.add_subplot(grid[2, 0])  # best position per attribute
    best = [(a, r[0]) for a, r in smap.get("by_attribute", {}).items() if r]
    if best:
        names = [f"{a} -> pos {r['position']}" for a, r in best]
        effects = [r["effect"] or 0.0 for _, r in best]
        colors = ["#C44E52" if r["significant"] else "#8C8C8C" for _, r in best]
        ax.barh(np.arange(len(best)), effects, color=colors)
        ax.set_yticks(np.arange(len(best)), names, fontsize=7)
        ax.invert_yaxis()
    ax.set_xlabel(f"{rank_by} of the top position (red: q < {alpha:g})")
    ax.set_title("each attribute's strongest position", fontsize=9)

    ax = fig.add_subplot(grid[2, 1])
    if disentanglement is not None and len(disentanglement):
        ov = disentanglement[disentanglement["scope"] == "overall"]
        ax.barh(np.arange(len(ov)), ov["value"].astype(float), color="#55A868")
        ax.set_yticks(np.arange(len(ov)), list(ov["metric"]), fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
    ax.set_title("disentanglement (positions as codes, overall)", fontsize=9)

    ax = fig.add_subplot(grid[3, :])
    if usage is not None:
        draw_usage(ax, usage)
    else:
        ax.axis("off")
    fig.suptitle(title or "token-position probes", fontsize=12)
    fig.tight_layout()
    return fig
