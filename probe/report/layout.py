"""The layout of a run folder: every file a pipeline stage writes and the report reads, in one place.

A stage writes its outputs under its own sub-folder and nothing else; the report renders whatever of
them exists. ``RunPaths(root)`` names them::

    runs/NAME/
      run.yaml                  the run config as given (RunConfig, probe.pipeline)
      config.json               every setting, seed, versions and stage timings
      stages/<stage>.json       the done marker of a finished stage (its config hash, seconds, outputs)
      store/                    the token store (probe.store.TokenStore)
      probes/                   probes.csv|parquet (long table), semantic_map.json, disentanglement.csv, config.json
      summary.csv               the probe map: one row per attribute (top position, effect, q, runner-up)
      figures/                  heatmap_<probe>.png|svg (probe heatmap), summary.png|svg (one-page summary)
      swap/                     the swap engine (probe.swap):
        swaps.csv               one row per swap (pair, positions, measurer, control, before / after)
        mappings.csv            one row per tested mapping (transfer + interval, IIA, effect sizes, verdict)
        validated_map.csv       the validated semantic map: attribute, positions, transfer, transfer_lo,
                                transfer_hi, specificity, verdict, probe_rank (one row per attribute)
        causal.csv              the causal heatmap as a long table: position, attribute, transfer
        disagreements.csv       attributes whose probe top position is not the causal top position
        rank_agreement.csv      per attribute: the rank agreement of the probe and causal position orders
        traversals.csv          position x code -> measured attributes
        config.json             the swap settings and seeds
        figures/                causal_heatmap.png, grid_<attribute>.png, traversal_<attribute>.png, ...
      optimize/                 test-time optimization (probe.optimize):
        copy_paste.csv|png      one copy-paste edit per confirmed mapping, with its scores
        generate.csv|png        text-guided generation(s), with the objective and the held-out score
        inpaint.csv|png         inpainting(s), with PSNR on the hidden region
        history_<task>.csv      per-step loss / held-out score / changed tokens
      report.html               the self-contained report (probe.report.render_report)

Only standard-library imports here, so any stage can use it without pulling in the report's
dependencies.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunPaths:
    """Every path of a run folder rooted at ``root`` (see the module docstring for the tree)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))  # accept str / os.PathLike

    # run level
    @property
    def run_yaml(self) -> Path:
        return self.root / "run.yaml"

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def stages(self) -> Path:
        return self.root / "stages"

    def done_marker(self, stage: str) -> Path:
        return self.stages / f"{stage}.json"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    # tokenize + probes
    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def probes(self) -> Path:
        return self.root / "probes"

    @property
    def probe_table(self) -> Path:
        return self.probes / "probes.csv"

    @property
    def semantic_map(self) -> Path:
        return self.probes / "semantic_map.json"

    @property
    def probe_config(self) -> Path:
        return self.probes / "config.json"

    @property
    def summary(self) -> Path:
        return self.root / "summary.csv"

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    def probe_heatmap(self, rank_by: str = "ami") -> Path:
        return self.figures / f"heatmap_{rank_by}.png"

    @property
    def summary_figure(self) -> Path:
        return self.figures / "summary.png"

    # swap engine
    @property
    def swap(self) -> Path:
        return self.root / "swap"

    @property
    def swaps(self) -> Path:
        return self.swap / "swaps.csv"

    @property
    def mappings(self) -> Path:
        return self.swap / "mappings.csv"

    @property
    def validated_map(self) -> Path:
        return self.swap / "validated_map.csv"

    @property
    def causal(self) -> Path:
        return self.swap / "causal.csv"

    @property
    def disagreements(self) -> Path:
        return self.swap / "disagreements.csv"

    @property
    def rank_agreement(self) -> Path:
        return self.swap / "rank_agreement.csv"

    @property
    def traversals(self) -> Path:
        return self.swap / "traversals.csv"

    @property
    def swap_config(self) -> Path:
        return self.swap / "config.json"

    @property
    def swap_figures(self) -> Path:
        return self.swap / "figures"

    @property
    def causal_heatmap(self) -> Path:
        return self.swap_figures / "causal_heatmap.png"

    # test-time optimization
    @property
    def optimize(self) -> Path:
        return self.root / "optimize"

    def optimize_table(self, task: str) -> Path:
        """``task`` is ``copy_paste``, ``generate``, ``inpaint`` (or any other task's name)."""
        return self.optimize / f"{task}.csv"

    def optimize_figure(self, task: str) -> Path:
        return self.optimize / f"{task}.png"

    def history(self, task: str) -> Path:
        return self.optimize / f"history_{task}.csv"


#: The optimization tasks the report shows, in order, with their section titles.
OPTIMIZE_TASKS: dict[str, str] = {
    "copy_paste": "Copy-paste edits (one per confirmed mapping)",
    "generate": "Text-guided generation",
    "inpaint": "Inpainting",
}
