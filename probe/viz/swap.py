"""Figures of the swap engine: causal heatmap beside the probe heatmap, greedy curves, image grids,
traversals. Each takes the engine's tables (or images) and returns a Figure; save with
:func:`probe.viz.save.save_figure`."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from probe.viz.style import heatmap_width, readable


def causal_vs_probe_figure(heat: pd.DataFrame, ranking: pd.DataFrame, answers: pd.DataFrame | None = None) -> Figure:
    """Attributes x positions: swap transfer (left) beside the probe effect (right). A box marks each
    attribute's validated single position; a dot the probes' top position."""
    causal = heat.T  # [attributes, positions]
    probe = (ranking.pivot(index="attribute", columns="position", values="effect")
             .reindex(index=causal.index, columns=causal.columns) if len(ranking) else None)
    n_attr, n_pos = causal.shape
    panels = 2 if probe is not None else 1
    # one above the other: each panel gets the report's full column, so its text stays readable
    fig = Figure(figsize=(heatmap_width(n_pos), (max(2.5, 0.42 * n_attr + 1.5)) * panels))
    axes = fig.subplots(panels, 1, squeeze=False)[:, 0]
    sns.heatmap(causal, ax=axes[0], cmap="vlag", center=0.0, vmin=-1, vmax=1, linewidths=0.2, linecolor="white",
                cbar_kws={"label": "normalized transfer (swap)"})
    axes[0].set_title("swap: fraction of the gap a single-position paste moves (box: the validated single position)",
                      fontsize=9)
    if answers is not None and len(answers):
        for i, attr in enumerate(causal.index):
            a = answers[answers["attribute"] == attr]
            if len(a) and int(a["set_size"].iloc[0]) == 1 and a["verdict"].iloc[0] != "rejected":
                j = list(causal.columns).index(int(a["positions"].iloc[0]))
                axes[0].add_patch(_box(j, i))
    if probe is not None:
        sns.heatmap(probe, ax=axes[1], cmap="rocket_r", linewidths=0.2, linecolor="white",
                    cbar_kws={"label": "probe effect"})
        axes[1].set_title("probe effect (dot, in both panels: the probes' top position)", fontsize=9)
        for i, attr in enumerate(probe.index):
            row = probe.loc[attr]
            if row.notna().any():
                j = list(probe.columns).index(row.idxmax())
                for ax in axes:
                    ax.scatter([j + 0.5], [i + 0.5], s=14, c="black", edgecolors="white", linewidths=0.7)
    for ax in axes:
        ax.set_xlabel("token position")
        ax.set_ylabel("attribute")
    readable(fig).tight_layout()
    return fig


def _box(j: int, i: int) -> Rectangle:
    return Rectangle((j, i), 1, 1, fill=False, edgecolor="black", linewidth=1.8)


def transfer_curve_figure(curves: pd.DataFrame, target: float) -> Figure:
    """Transfer (with its 95% interval) against position-set size, one line per attribute (greedy search)."""
    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.add_subplot()
    for attr, c in curves.groupby("attribute", sort=False):
        ax.errorbar(c["set_size"], c["transfer"], yerr=[c["transfer"] - c["ci_low"], c["ci_high"] - c["transfer"]],
                    marker="o", capsize=2, label=attr)
    ax.axhline(target, color="grey", linestyle="--", linewidth=1, label=f"target {target:g}")
    ax.set_xlabel("positions in the set (greedy)")
    ax.set_ylabel("normalized transfer")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def image_grid_figure(columns: dict[str, torch.Tensor], title: str = "", *, by_row: bool = False) -> Figure:
    """Rows of images: one column per named tensor ``[R, 3, H, W]`` (e.g. recipient | donor | swapped |
    controls), same ``R`` for all; ``by_row``: one row per named tensor instead (e.g. originals over
    reconstructions)."""
    names = list(columns)
    r = len(next(iter(columns.values())))
    shape = (len(names), r) if by_row else (r, len(names))
    fig = Figure(figsize=(1.1 * shape[1] + 0.4, 1.1 * shape[0] + 0.5))
    axes = fig.subplots(*shape, squeeze=False)
    for j, name in enumerate(names):
        imgs = columns[name].detach().float().clamp(0, 1).cpu()
        for i in range(r):
            ax = axes[j, i] if by_row else axes[i, j]
            ax.imshow(imgs[i].permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if by_row and i == 0:
                ax.set_ylabel(name, fontsize=8)
            elif not by_row and i == 0:
                ax.set_title(name, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return fig


def traversal_figure(curve: pd.DataFrame, attributes: Sequence[str] | None = None, order_by: str | None = None,
                     images: torch.Tensor | None = None) -> Figure:
    """Response per code of a traversal: one panel per measured attribute, codes ordered by ``order_by``'s
    mean response (default: the first attribute); the recipients' own value as a dashed line.
    ``images`` (``[K', 3, H, W]``, one per code in the same order) adds a strip of decoded codes."""
    attrs = list(attributes or curve["measured"].unique())
    order_by = order_by or attrs[0]
    key = curve[curve["measured"] == order_by].set_index("code")["mean"].sort_values()
    codes = list(key.index)
    rows = len(attrs) + (images is not None)
    ticks = np.unique(np.linspace(0, len(codes) - 1, min(16, len(codes))).round().astype(int))
    fig = Figure(figsize=(7.0, 1.6 * rows + 0.9))
    axes = fig.subplots(rows, 1, squeeze=False)[:, 0]
    for ax, attr in zip(axes, attrs):
        c = curve[curve["measured"] == attr].set_index("code").reindex(codes)
        x = np.arange(len(codes))
        ax.fill_between(x, c["q25"], c["q75"], alpha=0.3)
        ax.plot(x, c["mean"], linewidth=1)
        if "baseline" in c:
            ax.axhline(float(c["baseline"].iloc[0]), color="grey", linestyle="--", linewidth=0.8)
        ax.set_ylabel(attr, fontsize=8)
        ax.set_xlim(-0.5, len(codes) - 0.5)
        ax.set_xticks(ticks, [""] * len(ticks))
    # the codes' ids at up to 16 places along the order
    axes[len(attrs) - 1].set_xticks(ticks, [str(codes[i]) for i in ticks], rotation=90)
    axes[len(attrs) - 1].set_xlabel(f"code id, ordered by the {order_by} it produces ({len(codes)} codes)")
    if images is not None:
        ax = axes[-1]
        show = images[: min(len(images), 32)].detach().float().clamp(0, 1).cpu()
        strip = torch.cat(list(show), dim=2).permute(1, 2, 0).numpy()
        ax.imshow(strip, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title("decoded (first image), codes in the same order, first 32", fontsize=7)
    readable(fig).tight_layout()
    return fig
