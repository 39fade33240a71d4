"""The main job as one command (``tokenprobe run CONFIG.yaml``): tokenize -> probes -> swap validation ->
the validated map -> edits, a generation and an inpainting -> the report.

A run is described by a :class:`RunConfig` (a YAML file; ``probe/configs/demo.yaml`` is the embedded default
that ``tokenprobe demo`` runs) and writes one run folder (:class:`probe.report.RunPaths`). The package:

- :mod:`~probe.pipeline.config`: :class:`RunConfig`, its YAML parsing and ``--set KEY=VALUE`` overrides;
- :mod:`~probe.pipeline.preflight`: the check of every input (images, CLIP weights, tokenizer) before any work;
- :mod:`~probe.pipeline.cache`: each finished stage writes a done marker ``stages/<stage>.json`` holding the hash
  of the settings it depends on (its own and those of the stages before it); a second run reuses every finished
  stage whose hash still matches and whose outputs are all there, and redoes the rest (tokenization is
  resumable by itself as well: the store's chunks);
- :mod:`~probe.pipeline.stages`: the thin stage adapters, each calling the library and writing its outputs;
  stages hand their results to the next in memory;
- :mod:`~probe.pipeline.runner`: :func:`run_pipeline`;
- :mod:`~probe.pipeline.world`: what the pipeline knows about the synthetic attribute world.

Example::

    from probe.pipeline import default_config_path, load_run_config, run_pipeline
    result = run_pipeline(load_run_config(default_config_path(), ["data.images=512"], out="runs/small"))
    print(result.report)
"""
from probe.pipeline.cache import STAGES, StageRecord, stage_hashes
from probe.pipeline.config import (
    DataConfig,
    OptimizeStageConfig,
    ProbeStageConfig,
    ReconstructionStageConfig,
    RunConfig,
    RunConfigError,
    SwapStageConfig,
    apply_settings,
    default_config_path,
    load_run_config,
)
from probe.pipeline.preflight import preflight
from probe.pipeline.runner import RunResult, run_pipeline
from probe.pipeline.world import world_manifest, world_settings

__all__ = [
    "STAGES", "DataConfig", "OptimizeStageConfig", "ProbeStageConfig", "ReconstructionStageConfig", "RunConfig", "RunConfigError", "RunResult",
    "StageRecord", "SwapStageConfig", "apply_settings", "default_config_path", "load_run_config", "preflight",
    "run_pipeline", "stage_hashes", "world_manifest", "world_settings",
]
