"""The layout of a run folder: every file a pipeline stage writes and the report reads, in one place.

A stage writes its outputs under its own sub-folder and nothing else; the report renders whatever of
them exists. ``RunPaths(root)`` names them::

    runs/NAME/
      run.yaml                  the run config as given (RunConfig, probe.pipeline)
      config.json               every setting, seed, versions and stage timings
      stages/<stage>.json       the done marker of a finished stage (its config hash, seconds, outputs)
      store/                    the token store (probe.store.TokenStore)
      reconstruction/           how well the tokenizer reconstructs the run's images (probe.measure.reconstruction):
        summary.json            mean PSNR and SSIM, images, random weights or not
        images.csv              PSNR and SSIM per image; attributes.csv: per attribute the share of the
                                originals' gap the reconstructions keep; examples.png|svg: originals over reconstructions
      probes/                   ProbeResult.save: probes.csv|parquet (the long table), semantic_map.json|csv,
                                summary.csv (the probe map: one row per attribute: top position, effect, q-value,
                                family-wise answer, runner-up), disentanglement.csv, usage.csv, config.json
      figures/                  heatmap_<probe>.png|svg per probe (heatmap_<rank_by> is the map's), summary.png|svg
                                (one-page summary), codebook_usage.png|svg
      swap/                     swap validation (probe.swap; ValidatedMap.save writes the tables and the two figures):
        swaps.csv|parquet       one row per swap x measured attribute (pair, split, positions, control, before /
                                after)
        mappings.csv            one row per (attribute, position set, split: discovery / confirmation): transfer,
                                ci_low, ci_high, ci_low_adj, the controls' movements, side effects, verdict
        validated_map.csv|json  the validated semantic map, one row per attribute: positions, the confirmation
                                numbers (transfer, intervals, controls, verdict, visibility), the discovery numbers
                                that selected it, probe_rank, source (single / greedy); the JSON holds the rule
        causal_heatmap.csv      positions x attributes of single-position transfer
        rank_agreement.csv      per attribute: Spearman of probe effect vs transfer, probe top, causal top
        disagreements.csv       the attributes whose probe top position is not the causal top
        pairs.csv, greedy_curves.csv, config.json (settings, seeds, the verdict rule)
        causal_vs_probe.png     the causal heatmap beside the probes' ranking; greedy_curves.png: transfer
                                against position-set size
        grids/<attribute>.png   recipient | donor | swapped | controls of a confirmed mapping
        traversal_<pos>.png|csv a position set to each code it takes in the store, every attribute measured
      optimize/                 test-time optimization (probe.optimize):
        copy_paste.csv          one copy-paste edit per confirmed mapping: measured target, source, result, transfer
        copy_paste/<attribute>.png   target | source | result
        generate.csv            the text-guided generation: prompt, CLIP score of seed and result, held-out reads
        inpaint.csv             the inpainting: PSNR on the hole, of the result and of the masked image's decode
        <task>/                 grid.png (input | milestones | result), trajectory.png, history.csv, images/,
                                config.json (probe.optimize.tasks.write_run)
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

    # tokenize + reconstruction + probes
    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def reconstruction(self) -> Path:
        return self.root / "reconstruction"

    @property
    def reconstruction_summary(self) -> Path:
        return self.reconstruction / "summary.json"

    @property
    def reconstruction_images(self) -> Path:
        return self.reconstruction / "images.csv"

    @property
    def reconstruction_attributes(self) -> Path:
        return self.reconstruction / "attributes.csv"

    @property
    def reconstruction_examples(self) -> Path:
        return self.reconstruction / "examples.png"

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
        return self.probes / "summary.csv"

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    def probe_heatmap(self, rank_by: str = "ami") -> Path:
        return self.figures / f"heatmap_{rank_by}.png"

    @property
    def summary_figure(self) -> Path:
        return self.figures / "summary.png"

    # swap validation
    @property
    def swap(self) -> Path:
        return self.root / "swap"

    @property
    def mappings(self) -> Path:
        return self.swap / "mappings.csv"

    @property
    def validated_map(self) -> Path:
        return self.swap / "validated_map.csv"

    @property
    def causal(self) -> Path:
        return self.swap / "causal_heatmap.csv"

    @property
    def rank_agreement(self) -> Path:
        return self.swap / "rank_agreement.csv"

    @property
    def disagreements(self) -> Path:
        return self.swap / "disagreements.csv"

    @property
    def swap_config(self) -> Path:
        return self.swap / "config.json"

    @property
    def causal_heatmap(self) -> Path:
        return self.swap / "causal_vs_probe.png"

    @property
    def greedy_curves(self) -> Path:
        return self.swap / "greedy_curves.png"

    @property
    def attribution_figure(self) -> Path:
        return self.swap / "attribution_vs_causal.png"

    @property
    def attribution_agreement(self) -> Path:
        return self.swap / "attribution_agreement.csv"

    @property
    def spatial_figure(self) -> Path:
        return self.swap / "spatial_abs.png"

    @property
    def swap_grids(self) -> Path:
        return self.swap / "grids"

    def traversal(self, position: int) -> Path:
        return self.swap / f"traversal_{position}.png"

    # test-time optimization
    @property
    def optimize(self) -> Path:
        return self.root / "optimize"

    def optimize_table(self, task: str) -> Path:
        """``task`` is ``copy_paste``, ``generate`` or ``inpaint`` (or any other task's name)."""
        return self.optimize / f"{task}.csv"

    def optimize_folder(self, task: str) -> Path:
        """The task's run folder (figures, history, images)."""
        return self.optimize / task


#: The optimization tasks the report shows, in order, with their section titles.
OPTIMIZE_TASKS: dict[str, str] = {
    "copy_paste": "Copy-paste edits (one per confirmed mapping)",
    "generate": "Text-guided generation",
    "inpaint": "Inpainting",
}
