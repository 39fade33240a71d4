"""Markdown tables for analysis READMEs, and the shape-difficulty breakdown they report."""
import numpy as np
import pandas as pd

from probe.oracle.evaluate import shape_by_difficulty
from probe.report import markdown_table


def test_markdown_table_layout_and_float_format():
    df = pd.DataFrame({"acc": [0.5, 0.12345], "kind": ["x", "y"]}, index=pd.Index(["a", "b"], name="task"))
    assert markdown_table(df).splitlines() == [
        "| task | acc | kind |",
        "|---|---|---|",
        "| a | 0.500 | x |",
        "| b | 0.123 | y |",
    ]


def test_shape_by_difficulty_splits_by_blur_over_size():
    factors = pd.DataFrame({"global_blur": np.linspace(0.0, 0.05, 8), "obj_scale": np.full(8, 0.2)})
    correct = np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)  # the blurrier half is wrong
    out = shape_by_difficulty(correct, factors, bins=2)
    assert out["accuracy"].tolist() == [1.0, 0.0]
    assert out["n"].tolist() == [4, 4]
