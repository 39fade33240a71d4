"""The attribution heatmap (estimated transfer) beside the causal one (real swaps), with their agreement."""
from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from probe.viz.style import heatmap_width, readable


def attribution_vs_causal_figure(attribution: pd.DataFrame, causal: pd.DataFrame | None = None,
                                 agreement: pd.DataFrame | None = None, *,
                                 label: str = "attribution: estimate of the same") -> Figure:
    """Attributes x positions: real swap transfer (left, when given), attribution's estimate (middle), and
    estimated vs real transfer per position (right, when both are given).

    Args:
        attribution: positions x attributes of estimated transfer
            (:func:`probe.swap.attribution.attribution_heatmap`).
        causal: positions x attributes of real transfer (:func:`probe.swap.validated.causal_heatmap`).
        agreement: :func:`probe.swap.attribution.agreement` (the legend then gives each attribute's Spearman).
        label: the estimate panel's title (e.g. which variant of the estimate).
    """
    est = attribution.T
    real = causal.T.reindex(index=est.index, columns=est.columns) if causal is not None else None
    panels = [("swap: fraction of the gap a single-position paste moves", real)] if real is not None else []
    panels.append((label, est))
    n_attr, n_pos = est.shape
    # heatmaps one above the other at the column's width, the scatter below them: text readable in the report
    height = max(2.5, 0.42 * n_attr + 1.5)
    heights = [height] * len(panels) + ([4.2] if real is not None else [])
    fig = Figure(figsize=(heatmap_width(n_pos), sum(heights)))
    grid = fig.add_gridspec(len(heights), 2, height_ratios=heights, width_ratios=[1.0, 1.2])
    axes = [fig.add_subplot(grid[i, :]) for i in range(len(panels))]
    if real is not None:
        axes.append(fig.add_subplot(grid[len(panels), 0]))
    lim = max(1.0, float(np.nanmax(np.abs(real.to_numpy()))) if real is not None else 1.0)
    for ax, (title, h) in zip(axes, panels):
        sns.heatmap(h, ax=ax, cmap="vlag", center=0.0, vmin=-lim, vmax=lim, linewidths=0.2, linecolor="white",
                    cbar_kws={"label": "normalized transfer"})
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("token position")
        ax.set_ylabel("attribute")
    if real is not None:
        ax = axes[-1]
        rho = dict(zip(agreement["attribute"], agreement["spearman"])) if agreement is not None else {}
        for attr in est.index:
            label = f"{attr} (Spearman {rho[attr]:.2f})" if attr in rho and np.isfinite(rho[attr]) else attr
            ax.scatter(real.loc[attr], est.loc[attr], s=10, label=label)
        ax.axline((0, 0), slope=1, color="grey", lw=0.8, ls="--")
        ax.set_xlabel("real transfer (swap)")
        ax.set_ylabel("estimated transfer (attribution)")
        ax.set_title("per position", fontsize=9)
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    readable(fig).tight_layout()
    return fig
