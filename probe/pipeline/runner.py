"""The runner of ``tokenprobe run``: preflight, then each stage in order (reused when its done marker still
matches), then the report."""
from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from probe.pipeline.cache import (
    STAGES,
    StageRecord,
    changed_settings,
    clear_marker,
    relative_outputs,
    replaced_by,
    reusable,
    started_marker,
    stage_hashes,
    write_marker,
)
from probe.pipeline.config import RunConfig, RunConfigError
from probe.pipeline.preflight import preflight
from probe.pipeline.stages import STAGE_FUNCS, StageContext, StageSkipped
from probe.report.layout import RunPaths

#: stages everything after them needs: their failure stops the run
REQUIRED = ("tokenize", "probes")


@dataclass
class RunResult:
    """What :func:`run_pipeline` did: the run folder, each stage's record, the report, and the token store and
    probe result (``probes`` is ``None`` when the probe stage was reused: its tables are in ``paths.probes``)."""

    paths: RunPaths
    config: RunConfig
    stages: list[StageRecord]
    report: Path | None
    seconds: float
    store: Any = None
    probes: Any = None

    def stage(self, name: str) -> StageRecord:
        return next(s for s in self.stages if s.stage == name)

    @property
    def failed(self) -> list[StageRecord]:
        """The stages that failed (optional ones: the run went on and the report says so)."""
        return [s for s in self.stages if s.status == "failed"]


def _disabled(cfg: RunConfig, stage: str) -> bool:
    return (stage == "swap" and not cfg.swap.enabled) or (stage == "optimize" and not cfg.optimize.enabled)


def _run_stage(ctx: StageContext, stage: str, config_hash: str) -> StageRecord:
    """Run one stage; an optional stage that fails is recorded (its traceback in ``stages/<stage>.error.txt``)."""
    paths, t = ctx.paths, time.perf_counter()
    if _disabled(ctx.config, stage):
        return StageRecord(stage, "skipped", note=f"disabled in the run config ({stage}.enabled: false)")
    ctx.notes = []
    paths.stages.mkdir(parents=True, exist_ok=True)
    started_marker(paths, stage).write_text(config_hash)
    try:
        outputs = STAGE_FUNCS[stage](ctx)
    except StageSkipped as e:
        clear_marker(paths, stage)
        return StageRecord(stage, "skipped", round(time.perf_counter() - t, 1), str(e))
    except Exception as e:
        if stage in REQUIRED:
            raise  # nothing after them can run
        # the optional stages: the report still renders, saying what failed and where the traceback is
        paths.stages.mkdir(parents=True, exist_ok=True)
        err = paths.stages / f"{stage}.error.txt"
        err.write_text(traceback.format_exc())
        clear_marker(paths, stage)
        return StageRecord(stage, "failed", round(time.perf_counter() - t, 1),
                           f"{stage} failed: {type(e).__name__}: {e} (traceback: {err})")
    rec = StageRecord(stage, "ran", round(time.perf_counter() - t, 1), "; ".join(ctx.notes),
                      relative_outputs(paths, outputs), config_hash)
    write_marker(paths, rec)
    (paths.stages / f"{stage}.error.txt").unlink(missing_ok=True)  # an earlier failure is history now
    started_marker(paths, stage).unlink(missing_ok=True)
    return rec


def _check_nothing_replaced(cfg: RunConfig, paths: RunPaths, hashes: dict[str, str], overwrite: bool) -> None:
    """Refuse (before any work) to replace results made with other settings, unless ``overwrite``; with it,
    remove a store that would be rebuilt."""
    stages = [s for s in STAGES[:-1] if not _disabled(cfg, s)]
    stale = replaced_by(paths, hashes, stages)
    if stale and not overwrite:
        old = yaml.safe_load(paths.run_yaml.read_text()) if paths.run_yaml.exists() else {}
        changed = [k for k in changed_settings(old or {}, cfg.to_dict()) if k not in ("name", "out")]
        why = f"settings changed: {', '.join(changed)}" if changed else "made with other settings or by another command"
        raise RunConfigError(f"{paths.root} holds results this run would replace ({', '.join(stale)}; {why}); pass "
                             "--overwrite to replace them, or --out NEW_FOLDER to keep them")
    if overwrite and paths.store.exists() and reusable(paths, "tokenize", hashes["tokenize"]) is None:
        from probe.store import remove_store, store_lock

        with store_lock(paths.store):  # a store this run does not reuse is rebuilt; not while another run writes it
            remove_store(paths.store)


def run_pipeline(cfg: RunConfig, *, force: bool = False, overwrite: bool = False,
                 log: Callable[[str], None] = print) -> RunResult:
    """Run every stage of ``cfg`` into its run folder and render the report; returns what each stage did.

    A stage finished earlier with the same settings is reused (unless ``force``: every stage is redone). A run
    that would replace results made with other settings (or by a separate command) in the run folder refuses
    before any work unless ``overwrite`` (or ``force``) is given; a store made with other data or tokenizer
    settings is then removed and rebuilt. An optional stage (swap, optimize) that fails is recorded
    (:attr:`RunResult.failed`), its traceback in ``stages/<stage>.error.txt``, and the run goes on."""
    from probe.report import render_report
    from probe.store import package_versions

    t0 = time.perf_counter()
    tokenizer = preflight(cfg)
    paths = RunPaths(cfg.out)
    hashes = stage_hashes(cfg)
    _check_nothing_replaced(cfg, paths, hashes, overwrite or force)
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.run_yaml.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    ctx = StageContext(config=cfg, paths=paths, _tokenizer=tokenizer)
    records: list[StageRecord] = []
    for stage in STAGES[:-1]:
        rec = None if force else reusable(paths, stage, hashes[stage])
        if rec is None:
            rec = _run_stage(ctx, stage, hashes[stage])
        if stage == "tokenize":
            ctx.after_tokenize()
        records.append(rec)
        log(f"[{stage}] {rec.status.upper() if rec.status == 'failed' else rec.status}"
            + (f": {rec.note}" if rec.status in ("skipped", "failed") else f" ({rec.seconds:.1f} s)"))
    seconds = round(time.perf_counter() - t0, 1)
    run_config = {"title": f"tokenprobe run: {cfg.name}", "tokenizer": cfg.tokenizer, **cfg.to_dict(),
                  "world": ctx.world, "attributes": ctx.attributes, "stages": [asdict(r) for r in records],
                  "total_seconds": seconds, "versions": package_versions()}
    paths.config.write_text(json.dumps(run_config, indent=2, default=str))
    t = time.perf_counter()
    report = render_report(paths.root)
    records.append(StageRecord("report", "ran", round(time.perf_counter() - t, 1), "", [str(report.name)]))
    log(f"[report] {report}")
    return RunResult(paths, cfg, records, report, round(time.perf_counter() - t0, 1), ctx.store, ctx.probes)
