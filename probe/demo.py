"""The main job on the embedded default: ``tokenprobe run`` of ``probe/configs/demo.yaml``.

``tokenprobe demo`` (and :func:`run_demo`) run the pipeline (:mod:`probe.pipeline`) on the embedded default,
offline, in minutes on 2 CPU cores:

1. render a labelled set of the synthetic attribute world, with the world settings the shipped
   tokenizer was trained on (from its zoo entry), and tokenize it into a :class:`~probe.store.TokenStore`
   (resumable: a second run reuses it);
2. run the probe suite per token position x attribute (:func:`probe.run_probes`);
3. validate the probes' map by copy-paste token swaps (:mod:`probe.swap`): the validated map;
4. a copy-paste edit per confirmed mapping, a text-guided generation and an inpainting (:mod:`probe.optimize`);
5. write everything under ``out`` with a self-contained ``report.html`` (:mod:`probe.report`).

What the demo shows depends on how ``world-32`` was trained (:data:`READING_NOTE`): its one-position
semantics were encouraged by one-factor image pairs, not found by compression alone.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

#: Printed with the demo's table: what the shipped world-32 was trained to do, and so how to read it
#: (analyses/world_tokenizer/README.md; figures/compression_sweep.csv).
READING_NOTE = (
    "Note: world-32's single-position semantics were encouraged in training by one-factor image pairs (weak\n"
    "supervision after Locatello et al. 2020); in the compression sweep, compression alone did not localize\n"
    "lighting within its budget (~4,000 steps per model; analyses/world_tokenizer/README.md). Read this map as\n"
    "the probes finding what that training put there, not as 1D tokens localizing attributes on their own."
)


@dataclass
class DemoConfig:
    """Settings of :func:`run_demo`: the embedded default (``probe/configs/demo.yaml``) with these values in place
    of its own (the defaults are the YAML's; ``tests/test_pipeline.py`` keeps them equal).

    Attributes:
        out: run folder; the store goes to ``out/store``, probe outputs to ``out/probes``, the report to
            ``out/report.html``.
        tokenizer: any spec :func:`probe.load_tokenizer` takes; default the shipped ``world-32``.
        images: number of world images to render and tokenize.
        permutations: permutations per permutation test.
        seed: seed of the world sample, the probes, the swaps and the optimization.
        device: ``None`` picks cuda, then mps, then cpu.
        batch_size: images per forward pass.
        figures: also draw the probe figures (PNG + SVG).
        random_init: build the tokenizer preset with random weights (plumbing checks only:
            random weights carry no semantics).
        swap: run the swap validation stage.
        optimize: run the edits, the generation and the inpainting.
    """

    out: Path = Path("runs/demo")
    tokenizer: str = "world-32"
    images: int = 4000
    permutations: int = 200
    seed: int = 0
    device: str | None = None
    batch_size: int = 128
    figures: bool = True
    random_init: bool = False
    swap: bool = True
    optimize: bool = True


@dataclass
class DemoResult:
    """``probes`` is ``None`` when the probe stage was reused (its tables are under ``out/probes``)."""

    store: Any
    probes: Any  # probe.probes.ProbeResult
    summary: pd.DataFrame  # one row per attribute (SemanticMap.summary): top position, effect, q, family-wise answer
    paths: dict[str, Path] = field(default_factory=dict)
    report: Path | None = None
    run: Any = None  # probe.pipeline.RunResult: what each stage did


def demo_run_config(cfg: DemoConfig | None = None) -> Any:
    """The :class:`probe.pipeline.RunConfig` of ``cfg``: the embedded default with ``cfg``'s values."""
    from probe.pipeline import default_config_path, load_run_config

    cfg = cfg or DemoConfig()
    base = load_run_config(default_config_path())
    r = dataclasses.replace
    return r(base, out=str(cfg.out), tokenizer=cfg.tokenizer, random_init=cfg.random_init, device=cfg.device,
             seed=cfg.seed, data=r(base.data, images=cfg.images, batch_size=cfg.batch_size),
             probes=r(base.probes, permutations=cfg.permutations, figures=cfg.figures),
             swap=r(base.swap, enabled=cfg.swap), optimize=r(base.optimize, enabled=cfg.optimize))


def run_demo(cfg: DemoConfig | None = None) -> DemoResult:
    """Run the demo (the pipeline on the embedded default) and return its data; see the module docstring."""
    from probe.pipeline import run_pipeline

    run = run_pipeline(demo_run_config(cfg), log=lambda s: None)
    p = run.paths
    rank_by = run.probes.semantic_map.rank_by if run.probes is not None else "ami"
    paths = {"table_csv": p.probe_table, "table_parquet": p.probes / "probes.parquet", "semantic_map": p.semantic_map,
             "summary": p.summary, "probe_config": p.probe_config, "heatmap": p.probe_heatmap(rank_by),
             "summary_page": p.summary_figure, "validated_map": p.validated_map, "config": p.config,
             "report": p.report}
    paths = {k: v for k, v in paths.items() if v.exists()}
    summary = (run.probes.summary if run.probes is not None
               else pd.read_csv(p.summary, keep_default_na=False, na_values=[""]))
    return DemoResult(store=run.store, probes=run.probes, summary=summary, paths=paths, report=run.report, run=run)
