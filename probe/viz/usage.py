"""Codebook usage per position."""
from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure


def draw_usage(ax: Axes, usage: pd.DataFrame) -> None:
    """Perplexity (bars) and used codes (line, right axis) per position on ``ax``."""
    ax.bar(usage["position"], usage["perplexity"], color="#4C72B0", label="perplexity")
    ax.set_xlabel("token position")
    ax.set_ylabel("perplexity (exp entropy)")
    ax2 = ax.twinx()
    ax2.plot(usage["position"], usage["used_codes"], color="#DD8452", marker=".", label="codes used")
    ax2.set_ylabel("codes used")
    ax2.set_ylim(0, max(1, usage["used_codes"].max()) * 1.1)
    ax.set_title("codebook usage per position", fontsize=9)


def codebook_usage_figure(usage: pd.DataFrame, frequencies: np.ndarray | None = None) -> Figure:
    """``usage`` from :func:`probe.probes.usage.codebook_usage`; ``frequencies [N, K]`` (optional,
    from :func:`probe.probes.usage.code_frequencies`) adds rank-frequency curves per position."""
    fig = Figure(figsize=(11.0 if frequencies is not None else 7.0, 3.6))
    ax = fig.add_subplot(1, 2 if frequencies is not None else 1, 1)
    draw_usage(ax, usage)
    if frequencies is not None:
        ax_r = fig.add_subplot(1, 2, 2)
        n_pos = frequencies.shape[0]
        colors = [matplotlib.colormaps["viridis"](i / max(n_pos - 1, 1)) for i in range(n_pos)]
        ranks = np.arange(1, frequencies.shape[1] + 1)
        for n in range(n_pos):
            f = frequencies[n]
            keep = f > 0
            ax_r.loglog(ranks[keep], f[keep], color=colors[n], lw=0.8)
        ax_r.set_xlabel("code rank")
        ax_r.set_ylabel("frequency")
        ax_r.set_title("rank-frequency per position (dark: first, light: last)", fontsize=9)
    fig.tight_layout()
    return fig
