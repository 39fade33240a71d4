"""Write a figure as PNG and SVG."""
from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure


def save_figure(fig: Figure, path_stem: str | Path, *, dpi: int = 150) -> list[Path]:
    """Save ``fig`` to ``<path_stem>.png`` and ``<path_stem>.svg`` (folders created); returns both paths."""
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".svg")]
    fig.savefig(paths[0], dpi=dpi, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    return paths
