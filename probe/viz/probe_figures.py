"""Every figure of a probe run, written in one place (PNG + SVG)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from probe.viz.heatmap import probe_heatmap
from probe.viz.save import save_figure
from probe.viz.summary import summary_figure
from probe.viz.usage import codebook_usage_figure

if TYPE_CHECKING:  # viz draws what the probes computed and never imports them at run time
    from probe.probes.run import ProbeResult
    from probe.store import TokenStore


def probe_figures(result: ProbeResult, folder: str | Path, *, store: TokenStore | None = None, umap_top: int = 0,
                  umap_points: int = 3000, title: str | None = None) -> dict[str, Path]:
    """Draw and save the figures of a :class:`probe.probes.ProbeResult` under ``folder``.

    ``heatmap_<probe>`` for every per-position probe (``heatmap``: the ranking probe's), ``summary``,
    ``codebook_usage`` (when the result has usage), and with a ``store`` holding features and
    ``umap_top`` > 0, ``umap_<attribute>`` (the UMAP of each attribute's top positions). Returns
    name -> PNG path.
    """
    folder = Path(folder)
    smap = result.semantic_map
    paths: dict[str, Path] = {}
    per_position = list(dict.fromkeys(result.table.loc[result.table.position >= 0, "probe"]))
    for probe in per_position:
        png = save_figure(probe_heatmap(result.table, probe, semantic_map=smap), folder / f"heatmap_{probe}")[0]
        paths[f"heatmap_{probe}"] = png
        if probe == smap.rank_by:
            paths["heatmap"] = png
    if result.usage is not None:
        paths["codebook_usage"] = save_figure(codebook_usage_figure(result.usage, result.frequencies),
                                              folder / "codebook_usage")[0]
    paths["summary_page"] = save_figure(summary_figure(result.table, smap, result.disentanglement, result.usage,
                                                       title=title), folder / "summary")[0]
    rep = getattr(store, "features", None)
    if umap_top > 0 and rep is not None and len(rep):
        from probe.viz.umap_plot import position_umap

        for attr in smap.attributes:
            positions = smap.top_positions(attr, umap_top)
            if positions:
                fig = position_umap(np.asarray(rep), store.attributes[attr], positions, attribute=attr,
                                    seed=int(result.config.get("seed", 0)), max_points=umap_points)
                paths[f"umap_{attr}"] = save_figure(fig, folder / f"umap_{attr}")[0]
    return paths
