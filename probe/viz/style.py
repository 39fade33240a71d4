"""Text that stays readable where the figures are shown: the HTML report's column.

The report embeds each PNG (saved at :data:`PNG_DPI`) at its natural size, shrunk to fit a column of
:data:`REPORT_COLUMN_PX` CSS pixels. A figure ``w`` inches wide is therefore shown at
``min(PNG_DPI, column / w)`` pixels per inch, and a ``s``-point text at ``s / 72`` of that. :func:`readable`
raises every text of a figure to the size that shows at least :data:`MIN_TEXT_PX` pixels there; the figures of
the report are drawn narrow enough (at most ~13 inches for the full column) that this stays a normal size.
"""
from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.text import Text

#: the report's content column in CSS pixels (body max-width 1360 px minus its margins; probe.report.html)
REPORT_COLUMN_PX = 1312
#: the smallest text, in CSS pixels, a figure of the report may show
MIN_TEXT_PX = 11.0
#: the PNGs' resolution (probe.viz.save.save_figure)
PNG_DPI = 150


def shown_px_per_inch(width_in: float, column_px: float = REPORT_COLUMN_PX, dpi: float = PNG_DPI) -> float:
    """Pixels per inch at which a figure ``width_in`` inches wide is shown in a column of ``column_px``."""
    return min(float(dpi), column_px / max(width_in, 1e-6))


def min_points(width_in: float, column_px: float = REPORT_COLUMN_PX) -> float:
    """The smallest font size (points) that shows :data:`MIN_TEXT_PX` pixels for a figure of that width."""
    return MIN_TEXT_PX * 72.0 / shown_px_per_inch(width_in, column_px)


def heatmap_width(n_positions: int) -> float:
    """Width (inches) of a positions-wide heatmap panel: 0.3 in per position plus labels, 6 to 13 in (wider would
    shrink its text below :data:`MIN_TEXT_PX` at a normal size)."""
    return float(min(13.0, max(6.0, 0.3 * n_positions + 2.5)))


def _texts(fig: Figure) -> list[Text]:
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def readable(fig: Figure, column_px: float = REPORT_COLUMN_PX) -> Figure:
    """Raise every visible text of ``fig`` below :func:`min_points` to it; returns ``fig`` (lay it out after)."""
    floor = min_points(float(fig.get_size_inches()[0]), column_px)
    for ax in fig.axes:  # tick labels are made lazily: their size is the axis' setting
        for axis, labels in (("x", ax.get_xticklabels()), ("y", ax.get_yticklabels())):
            if labels and min(t.get_fontsize() for t in labels) < floor:
                ax.tick_params(axis=axis, labelsize=floor)
    for t in _texts(fig):
        if t.get_fontsize() < floor:
            t.set_fontsize(floor)
    return fig


def text_sizes(fig: Figure, column_px: float = REPORT_COLUMN_PX) -> pd.DataFrame:
    """Every visible text of ``fig`` with its size in points and in shown pixels (``text, points, px``), after a
    draw (tick labels exist then); for checks and tests."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    scale = shown_px_per_inch(float(fig.get_size_inches()[0]), column_px)
    rows = [{"text": t.get_text(), "points": float(t.get_fontsize()), "px": float(t.get_fontsize()) * scale / 72}
            for t in _texts(fig)]
    return pd.DataFrame(rows, columns=["text", "points", "px"])


__all__ = ["MIN_TEXT_PX", "PNG_DPI", "REPORT_COLUMN_PX", "heatmap_width", "min_points", "readable", "shown_px_per_inch",
           "text_sizes"]
