"""Attribute x position heatmap of one probe, each attribute's top positions marked."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from probe.viz.style import heatmap_width, readable

if TYPE_CHECKING:  # viz draws what the probes computed and never imports them at run time
    from probe.probes.semantic_map import SemanticMap


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


#: Outline of the marked cells (stands out on the light-to-dark "rocket_r" map and on "vlag").
MARK_COLOR = "#00A6D6"


def heatmap_frame(table: pd.DataFrame, probe: str, value: str = "value") -> pd.DataFrame:
    """Pivot one probe of the long table to a ``position x attribute`` frame (positions >= 0)."""
    sub = table[(table["probe"] == probe) & (table["position"] >= 0)]
    if sub.empty:
        raise ValueError(f"probe {probe!r} has no per-position rows; present: {sorted(table['probe'].unique())}")
    order = list(dict.fromkeys(sub["attribute"]))
    return sub.pivot(index="position", columns="attribute", values=value)[order]


def draw_heatmap(ax: Axes, table: pd.DataFrame, probe: str, *, semantic_map: SemanticMap, top_k: int = 3,
                 annotate: bool | None = None, cmap: str | None = None) -> None:
    """Draw ``probe`` as attributes (rows) x positions (columns) on ``ax``.

    The markers are the semantic map's answer, the same as ``semantic_map.json`` and ``summary.csv``:
    each carried attribute's top ``top_k`` significant positions (:meth:`SemanticMap.candidates`) are
    outlined and numbered by rank; an attribute that no position carries (family-wise) has a grey,
    "n.s." row label and no marker. ``semantic_map`` is the run's :class:`probe.probes.SemanticMap`.
    """
    smap = semantic_map
    values = heatmap_frame(table, probe).T  # [attributes, positions]
    if annotate is None:
        annotate = values.size <= 160
    diverging = probe == "var_logratio"
    vmax = float(np.nanmax(np.abs(values.to_numpy()))) if values.size else 1.0
    fmt = ".3f" if vmax < 0.1 else ".2f"  # adjusted MI and eta^2 are often small
    sns.heatmap(
        values, ax=ax, cmap=cmap or ("vlag" if diverging else "rocket_r"), annot=annotate, fmt=fmt,
        annot_kws={"fontsize": 8}, center=0.0 if diverging else None,
        vmin=-vmax if diverging else None, vmax=vmax if diverging else None,
        cbar_kws={"label": PROBE_LABELS.get(probe, probe)}, linewidths=0.2, linecolor="white",
    )
    columns = list(values.columns)
    labels = []
    for row, attr in enumerate(values.index):
        if attr not in smap.attributes:  # e.g. the "name=level" partitions of var_logratio
            labels.append((attr, "black"))
            continue
        if not smap.carried(attr):
            labels.append((f"{attr} (n.s.)", "#999999"))
            continue
        labels.append((attr, "black"))
        for rank, pos in enumerate(smap.candidates(attr, top_k), start=1):
            if pos not in columns:
                continue
            col = columns.index(pos)
            ax.add_patch(Rectangle((col + 0.06, row + 0.06), 0.88, 0.88, fill=False, edgecolor=MARK_COLOR,
                                   linewidth=2.2 if rank == 1 else 1.3, gid="top-position", zorder=3))
            if not annotate:
                ax.text(col + 0.5, row + 0.52, str(rank), ha="center", va="center", fontsize=8, fontweight="bold",
                        color="white", zorder=4,
                        path_effects=[patheffects.withStroke(linewidth=1.5, foreground="black")])
    ax.set_yticks(np.arange(len(labels)) + 0.5, [t for t, _ in labels], rotation=0)
    for tick, (_, color) in zip(ax.get_yticklabels(), labels):
        tick.set_color(color)
    ax.set_xlabel("token position")
    ax.set_ylabel("attribute")
    test = ("family-wise over positions" if smap.frame["fw_p_value"].notna().any()
            else "Benjamini-Hochberg q")
    ax.set_title(f"{PROBE_LABELS.get(probe, probe)}.   Outlined 1-{top_k}: top positions by "
                 f"{PROBE_LABELS.get(smap.rank_by, smap.rank_by)}\nof each attribute some position carries "
                 f"({test} < {smap.alpha:g}); n.s.: carried by none", fontsize=9)


def probe_heatmap(table: pd.DataFrame, probe: str = "ami", *, semantic_map: SemanticMap, top_k: int = 3,
                  annotate: bool | None = None, cmap: str | None = None) -> Figure:
    """Heatmap of one probe of the long table (see :func:`heatmap_frame`), the semantic
    map's answer marked (see :func:`draw_heatmap`)."""
    values = heatmap_frame(table, probe)
    n_pos, n_attr = values.shape
    fig = Figure(figsize=(heatmap_width(n_pos), max(2.5, 0.42 * n_attr + 1.8)))
    draw_heatmap(fig.add_subplot(), table, probe, semantic_map=semantic_map, top_k=top_k,
                 annotate=annotate, cmap=cmap)
    readable(fig).tight_layout()
    return fig
