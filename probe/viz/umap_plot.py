"""Per-position UMAP of the features, coloured by an attribute (umap-learn)."""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def umap_embedding(x: np.ndarray, *, n_neighbors: int = 10, min_dist: float = 0.1, seed: int = 0) -> np.ndarray:
    """``[m, 2]`` UMAP of ``x [m, C]`` (seeded, so single-threaded and repeatable)."""
    import warnings

    import umap  # imported lazily: it compiles numba code on first use

    reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=min_dist, random_state=seed, n_components=2, n_jobs=1)
    with warnings.catch_warnings():  # "n_jobs overridden by random_state": seeded UMAP is single-threaded by design
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        return reducer.fit_transform(np.asarray(x, dtype=np.float32))


def position_umap(
    features: np.ndarray,
    values: Sequence | np.ndarray | pd.Series,
    positions: Sequence[int],
    *,
    attribute: str = "attribute",
    n_neighbors: int = 10,
    min_dist: float = 0.1,
    seed: int = 0,
    max_points: int = 3000,
    embeddings: dict[int, np.ndarray] | None = None,
) -> Figure:
    """One panel per position: the UMAP of that position's ``features [M, N, C]``, coloured by ``values [M]``.

    Categorical values get a legend, numeric ones with many levels a colour bar. At most
    ``max_points`` rows (a seeded subsample) are embedded; ``embeddings`` (position -> ``[m, 2]``
    for the same subsample) skips the UMAP fit.
    """
    values = pd.Series(np.asarray(values)).reset_index(drop=True)
    m = len(values)
    if features.shape[0] != m:
        raise ValueError(f"features has {features.shape[0]} rows but values has {m}")
    rows = np.sort(np.random.default_rng(seed).choice(m, size=min(m, max_points), replace=False))
    vals = values.iloc[rows]
    continuous = pd.api.types.is_numeric_dtype(vals) and vals.nunique() > 12
    ncol = min(4, len(positions))
    nrow = int(np.ceil(len(positions) / ncol))
    fig = Figure(figsize=(3.3 * ncol + (0.8 if continuous else 1.6), 3.1 * nrow))
    axes = [fig.add_subplot(nrow, ncol, i + 1) for i in range(len(positions))]
    if continuous:
        color_kw = {"c": vals.to_numpy(dtype=float), "cmap": "viridis"}
    else:
        cats = pd.Categorical(vals.astype(str))
        palette = matplotlib.colormaps["tab10" if len(cats.categories) <= 10 else "tab20"]
        color_kw = {"c": [palette(i % palette.N) for i in cats.codes]}
    sc = None
    for ax, pos in zip(axes, positions):
        emb = embeddings[pos] if embeddings and pos in embeddings else umap_embedding(
            features[rows, pos], n_neighbors=n_neighbors, min_dist=min_dist, seed=seed)
        sc = ax.scatter(emb[:, 0], emb[:, 1], s=3, linewidths=0, **color_kw)
        ax.set_title(f"position {pos}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if continuous and sc is not None:
        fig.colorbar(sc, ax=axes, label=attribute, shrink=0.8)
    elif not continuous:
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], marker="o", ls="", color=palette(i % palette.N), label=c)
                   for i, c in enumerate(cats.categories)]
        fig.legend(handles=handles, title=attribute, loc="center right", fontsize=7, title_fontsize=8)
    fig.suptitle(f"UMAP of the features per position, coloured by {attribute}", fontsize=10)
    return fig
