"""Plain-text (markdown) renderings of result tables for analysis READMEs."""
from __future__ import annotations

import pandas as pd


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub markdown table of ``df`` (index included); floats with 3 decimals.

    Hand-written because pandas' to_markdown needs the optional ``tabulate`` package.
    """
    def fmt(v) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    head = [str(df.index.name or "")] + [str(c) for c in df.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for idx, row in df.iterrows():
        lines.append("| " + " | ".join([str(idx)] + [fmt(v) for v in row]) + " |")
    return "\n".join(lines)
