"""Figures of the verdict's calibration: error rates, power and interval coverage against their targets."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter


def calibration_figure(table: pd.DataFrame, targets: dict[str, float] | None = None) -> Figure:
    """Three panels from a calibration table (one row per case: ``pairs``, ``scenario``, ``label``, ``noise``,
    ``tails``, ``false_confirmation``, ``power``, ``coverage_<method>``): false confirmations per attribute
    (every case), power of the true 0.7 position, and each interval method's coverage (mean over the
    cases with a real attribute), each against pairs, with the targets as dashed lines."""
    t = targets or {"false_confirmation": 0.05, "power": 0.9, "coverage": 0.95}
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    ax = axes[0]
    for (sc, lab), g in table.groupby(["scenario", "label"], sort=True):
        g = g.groupby("pairs")["false_confirmation"].mean()
        ax.plot(g.index, g.values, marker="o", label=f"{sc} / {lab}")
    ax.axhline(t["false_confirmation"], ls="--", c="k", lw=1)
    ax.set(xscale="log", xlabel="confirmation pairs", ylabel="false confirmation per attribute",
           title="false confirmation (family-wise)")
    ax.legend(fontsize=7)
    ax = axes[1]
    single = table[table["power"].notna() & (table["scenario"] == "single") & (table["label"] == "a")]
    for (noise, tails), g in single.groupby(["noise", "tails"], sort=True):
        g = g.sort_values("pairs")
        ax.plot(g["pairs"], g["power"], marker="o", label=f"noise {noise:g}, {tails}")
    ax.axhline(t["power"], ls="--", c="k", lw=1)
    ax.set(xscale="log", xlabel="confirmation pairs", ylabel="power", ylim=(0, 1.02),
           title="power: one position moving 0.7")
    ax.legend(fontsize=7)
    ax = axes[2]
    cov = [c for c in table.columns if c.startswith("coverage_")]
    real = table[~table["label"].isin(["coin", "shuffled"])]
    for c in cov:
        g = real.groupby("pairs")[c].mean()
        ax.plot(g.index, g.values, marker="o", label=c.removeprefix("coverage_"))
    ax.axhline(t["coverage"], ls="--", c="k", lw=1)
    ax.set(xscale="log", xlabel="confirmation pairs", ylabel="coverage of the 95% interval",
           title="interval coverage", ylim=(0.85, 1.0))
    ax.legend(fontsize=7)
    sizes = sorted(table["pairs"].unique())
    for ax in axes:  # the sizes run, as plain numbers
        ax.set_xticks(sizes)
        ax.set_xticklabels([str(int(n)) for n in sizes])
        ax.xaxis.set_minor_formatter(NullFormatter())
    axes[0].set_ylim(-0.005, max(0.1, float(table["false_confirmation"].max()) + 0.02))
    fig.tight_layout()
    return fig
