"""Figures. Each function takes computed data and returns a :class:`matplotlib.figure.Figure`
(built without pyplot, so nothing global changes); :func:`save_figure` writes PNG + SVG."""
from probe.viz.heatmap import probe_heatmap
from probe.viz.probe_figures import probe_figures
from probe.viz.save import save_figure
from probe.viz.summary import summary_figure
from probe.viz.umap_plot import position_umap, umap_embedding
from probe.viz.usage import codebook_usage_figure

__all__ = ["codebook_usage_figure", "position_umap", "probe_figures", "probe_heatmap", "save_figure", "summary_figure",
           "umap_embedding"]
