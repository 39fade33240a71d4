"""Reports of a run: the self-contained HTML report (:func:`render_report`), the run-folder layout every
stage writes to (:class:`RunPaths`), and markdown tables for analysis READMEs (:func:`markdown_table`)."""
from probe.report.html import build_report, render_report
from probe.report.layout import OPTIMIZE_TASKS, RunPaths
from probe.report.markdown import markdown_table

__all__ = ["OPTIMIZE_TASKS", "RunPaths", "build_report", "markdown_table", "render_report"]
