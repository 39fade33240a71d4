"""One-page summary of a probe run."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from probe.viz.heatmap import PROBE_LABELS, draw_heatmap
from probe.viz.style import heatmap_width, readable
from probe.viz.usage import draw_usage

if TYPE_CHECKING:  # viz draws what the probes computed and never imports them at run time
    from probe.probes.semantic_map import SemanticMap

CARRIED_COLOR = "#C44E52"
NOT_CARRIED_COLOR = "#B0B0B0"


def summary_figure(
    table: pd.DataFrame,
    semantic_map: SemanticMap,
    disentanglement: pd.DataFrame | None = None,
    usage: pd.DataFrame | None = None,
    *,
    title: str | None = None,
) -> Figure:
    """Ranking-probe heatmap, feature eta^2 heatmap, each attribute's best position, overall
    disentanglement scores and codebook usage, on one page; a panel without data is left out.

    ``semantic_map`` is the run's :class:`probe.probes.SemanticMap`; the
    markers and bar colours are its family-wise answer, as in ``summary.csv``.
    """
    smap = semantic_map
    probes = set(table.loc[table.position >= 0, "probe"])
    rank_by = smap.rank_by if smap.rank_by in probes else next(iter(sorted(probes)))
    second = next((p for p in ("eta2_features", "eta2_codebook", "linear_acc_features", "mi") if p in probes and p != rank_by), None)
    has_dis = disentanglement is not None and bool((disentanglement["scope"] == "overall").any())
    n_pos = int(table.loc[table.position >= 0, "position"].max()) + 1
    n_attr = table.loc[(table.position >= 0) & (table.probe == rank_by), "attribute"].nunique()
    heights = [0.35 * n_attr + 1.2] * (2 if second else 1) + [max(2.6, 0.3 * n_attr + 1.0)]
    heights += [2.4] if usage is not None else []
    fig = Figure(figsize=(max(12.0, heatmap_width(n_pos)), sum(heights) + 1.0))
    grid = fig.add_gridspec(len(heights), 2, height_ratios=heights)
    draw_heatmap(fig.add_subplot(grid[0, :]), table, rank_by, semantic_map=smap, annotate=False)
    if second:
        draw_heatmap(fig.add_subplot(grid[1, :]), table, second, semantic_map=smap, annotate=False)
    row = 2 if second else 1

    ax = fig.add_subplot(grid[row, 0] if has_dis else grid[row, :])  # best position per attribute
    summ = smap.summary().dropna(subset=["top_position"])
    if len(summ):
        y = np.arange(len(summ))
        carried = summ["significant"].astype(bool).to_numpy()
        ax.barh(y, summ["effect"].fillna(0.0), color=np.where(carried, CARRIED_COLOR, NOT_CARRIED_COLOR))
        names = [f"{a} -> {p}" if c else f"{a} (n.s.)" for a, p, c in zip(summ["attribute"], summ["top_position"], carried)]
        ax.set_yticks(y, names, fontsize=8)
        for yi, (eff, p_any) in enumerate(zip(summ["effect"].fillna(0.0), summ["any_position_p"])):
            if pd.notna(p_any):
                ax.text(eff, yi, f"  p={p_any:.2g}", va="center", fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, max(float(summ["effect"].max()) * 1.25, 1e-3))
    ax.set_xlabel(f"{PROBE_LABELS.get(rank_by, rank_by)} at the top position (red: carried, "
                  f"family-wise p < {smap.alpha:g}; p: any-position test)", fontsize=8)
    ax.set_title("each attribute's strongest position", fontsize=9)

    if has_dis:
        ax = fig.add_subplot(grid[row, 1])
        ov = disentanglement[disentanglement["scope"] == "overall"]
        ax.barh(np.arange(len(ov)), ov["value"].astype(float), color="#55A868")
        ax.set_yticks(np.arange(len(ov)), list(ov["metric"]), fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_title("disentanglement (positions as codes, overall)", fontsize=9)

    if usage is not None:
        draw_usage(fig.add_subplot(grid[row + 1, :]), usage)
    fig.suptitle(title or "token-position probes", fontsize=12)
    readable(fig).tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))  # room for the title
    return fig
