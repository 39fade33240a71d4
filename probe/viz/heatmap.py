"""Attribute x position heatmap of one probe, significant cells marked."""
from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from probe.probes.run import heatmap_frame

#: Colour-bar labels of the probes.
PROBE_LABELS = {
    "mi": "MI (nats)",
    "ami": "adjusted MI",
    "cramers_v": "Cramer's V",
    "eta2_features": "eta^2 (features)",
    "eta2_codebook": "eta^2 (codebook embeddings)",
    "var_logratio": "log variance ratio (level / rest)",
    "spearman_max": "max |Spearman rho|",
    "linear_r2": "CV R^2 (linear)",
    "linear_acc_features": "CV balanced accuracy (features)",
    "linear_acc_ids": "CV balanced accuracy (one-hot ids)",
}


def draw_heatmap(ax: Axes, table: pd.DataFrame, probe: str, *, alpha: float = 0.05, annotate: bool | None = None,
                 cmap: str | None = None) -> None:
    """Draw ``probe`` as attributes (rows) x positions (columns) on ``ax``; cells with q < alpha get a dot."""
    values = heatmap_frame(table, probe).T  # [attributes, positions]
    qvals = heatmap_frame(table, probe, "q_value").T.reindex_like(values)
    if annotate is None:
        annotate = values.size <= 160
    diverging = probe == "var_logratio"
    vmax = float(np.nanmax(np.abs(values.to_numpy()))) if values.size else 1.0
    fmt = ".3f" if vmax < 0.1 else ".2f"  # adjusted MI and eta^2 are often small
    sns.heatmap(
        values, ax=ax, cmap=cmap or ("vlag" if diverging else "rocket_r"), annot=annotate, fmt=fmt,
        annot_kws={"fontsize": 6}, center=0.0 if diverging else None,
        vmin=-vmax if diverging else None, vmax=vmax if diverging else None,
        cbar_kws={"label": PROBE_LABELS.get(probe, probe)}, linewidths=0.2, linecolor="white",
    )
    sig = np.argwhere(np.nan_to_num(qvals.to_numpy(), nan=1.0) < alpha)
    if len(sig):  # a dot in the corner of each significant cell
        ax.scatter(sig[:, 1] + 0.82, sig[:, 0] + 0.22, s=14, c="black", marker="o", edgecolors="white", linewidths=0.7)
    ax.set_xlabel("token position")
    ax.set_ylabel("attribute")
    ax.set_title(f"{PROBE_LABELS.get(probe, probe)}   (dot: q < {alpha:g}, Benjamini-Hochberg)", fontsize=9)


def probe_heatmap(table: pd.DataFrame, probe: str = "ami", *, alpha: float = 0.05, annotate: bool | None = None,
                  cmap: str | None = None) -> Figure:
    """Heatmap of one probe of the long table (see :func:`probe.probes.heatmap_frame`)."""
    values = heatmap_frame(table, probe)
    n_pos, n_attr = values.shape
    fig = Figure(figsize=(max(6.0, 0.38 * n_pos + 2.5), max(2.5, 0.42 * n_attr + 1.5)))
    draw_heatmap(fig.add_subplot(), table, probe, alpha=alpha, annotate=annotate, cmap=cmap)
    fig.tight_layout()
    return fig
