"""Per-position contribution maps (:func:`probe.swap.spatial.spatial_maps`) as one figure of small maps."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from probe.viz.style import readable


def spatial_maps_figure(maps: torch.Tensor | np.ndarray, *, table: pd.DataFrame | None = None, signed: bool = False,
                        cols: int = 8, title: str = "", image: torch.Tensor | np.ndarray | None = None) -> Figure:
    """One small map per token position, on one shared colour scale.

    Args:
        maps: ``[N, H, W]``: mean absolute pixel change (``signed=False``, colour from 0) or signed luminance
            change (``signed=True``, a diverging scale centred on 0).
        table: the maps' table (:class:`probe.swap.spatial.SpatialMaps`); with ``object_ratio`` each panel's
            title also gives the object / background ratio (> 1: acts on the object).
        cols: panels per row.
        title: the figure's title.
        image: an optional example image ``[3, H, W]`` drawn first, for orientation.
    """
    m = torch.as_tensor(maps).float().numpy()
    n = len(m)
    extra = 1 if image is not None else 0
    rows = -(-(n + extra) // cols)
    fig = Figure(figsize=(1.35 * cols + 0.8, 1.45 * rows + (0.4 if title else 0.1)))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    lim = float(np.abs(m).max()) or 1.0
    kw = dict(cmap="RdBu_r", vmin=-lim, vmax=lim) if signed else dict(cmap="magma", vmin=0.0, vmax=lim)
    ratio = (dict(zip(table["position"], table["object_ratio"]))
             if table is not None and "object_ratio" in table and table["object_ratio"].notna().any() else {})
    if image is not None:
        img = torch.as_tensor(image).float().clamp(0, 1).permute(1, 2, 0).numpy()
        axes[0].imshow(img, interpolation="nearest")
        axes[0].set_title("example", fontsize=7)
    im = None
    for p in range(n):
        ax = axes[p + extra]
        im = ax.imshow(m[p], interpolation="nearest", **kw)
        label = f"{p}" + (f"  obj x{ratio[p]:.1f}" if p in ratio and np.isfinite(ratio[p]) else "")
        ax.set_title(label, fontsize=7)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[n + extra:]:
        ax.set_visible(False)
    if im is not None:
        fig.colorbar(im, ax=list(axes), shrink=0.6, pad=0.02,
                     label="mean signed luminance change" if signed else "mean |pixel change|")
    if title:
        fig.suptitle(title, fontsize=9)
    return readable(fig)
