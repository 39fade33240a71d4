"""The stage cache: each finished stage leaves a done marker ``stages/<stage>.json`` holding the hash of the
settings it depends on (its own chained with the stages' before it) and its outputs; a second run reuses every
stage whose hash still matches and whose outputs are all there."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from probe.pipeline.config import RunConfig, expand
from probe.report.layout import RunPaths

#: The stages in order.
STAGES = ("tokenize", "reconstruction", "probes", "swap", "optimize", "report")
#: the stage whose results each stage reads (its hash chains from that stage's)
UPSTREAM = {"tokenize": None, "reconstruction": "tokenize", "probes": "tokenize", "swap": "probes",
            "optimize": "swap", "report": "optimize"}


@dataclass
class StageRecord:
    """What happened to one stage: ``status`` is ran, reused, skipped or failed."""

    stage: str
    status: str
    seconds: float = 0.0
    note: str = ""
    outputs: list[str] = field(default_factory=list)
    config_hash: str = ""


def weights_fingerprint(spec: str) -> str:
    """Which weights a tokenizer spec names now: the SHA-256 of a shipped model's weights file, or a local
    file's size and modification time; ``""`` otherwise (a hub id, a preset). A model re-trained and shipped
    under the same name then makes a different run, not a reused one."""
    import hashlib

    from probe import zoo

    if spec in zoo.available():
        return hashlib.sha256(zoo.weights_path(spec).read_bytes()).hexdigest()[:16]
    path = Path(spec).expanduser()
    files = [path] if path.is_file() else sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")) \
        if path.is_dir() else []
    return ",".join(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)


def stage_hashes(cfg: RunConfig) -> dict[str, str]:
    """Each stage's config hash: its own settings chained with the hash of the stage before it."""
    from probe.store import config_hash

    d = cfg.to_dict()
    common = {k: d[k] for k in ("tokenizer", "random_init", "seed")}
    own = {"tokenize": {**common, "data": d["data"], "tokenizer_resolved": expand(cfg.tokenizer),
                        "weights": weights_fingerprint(expand(cfg.tokenizer))},
           "reconstruction": d["reconstruction"], "probes": d["probes"], "swap": d["swap"], "optimize": d["optimize"],
           "report": {}}
    out: dict[str, str] = {}
    for s in STAGES:
        up = UPSTREAM[s]
        out[s] = config_hash({"stage": s, "settings": own[s], "upstream": out[up] if up else ""})
    return out


def reusable(paths: RunPaths, stage: str, config_hash: str) -> StageRecord | None:
    """The record of ``stage`` when it finished with ``config_hash`` and its outputs are all there (else None)."""
    marker = paths.done_marker(stage)
    if not marker.exists():
        return None
    rec = json.loads(marker.read_text())
    if rec.get("config_hash") != config_hash or not all((paths.root / o).exists() for o in rec.get("outputs", [])):
        return None
    return StageRecord(stage, "reused", rec.get("seconds", 0.0), rec.get("note", ""), rec.get("outputs", []),
                       config_hash)


def write_marker(paths: RunPaths, rec: StageRecord) -> None:
    """Mark ``rec.stage`` finished (what :func:`reusable` reads)."""
    paths.stages.mkdir(parents=True, exist_ok=True)
    paths.done_marker(rec.stage).write_text(json.dumps(asdict(rec), indent=2))


def started_marker(paths: RunPaths, stage: str) -> Path:
    """Written when a stage starts, removed when it finishes: its outputs are an unfinished attempt of a run
    (interrupted or failed), which the next run may replace."""
    return paths.stages / f"{stage}.started"


def clear_marker(paths: RunPaths, stage: str) -> None:
    """Forget that ``stage`` finished (it runs again next time)."""
    paths.done_marker(stage).unlink(missing_ok=True)


def relative_outputs(paths: RunPaths, outputs: list[Path] | dict[str, Any]) -> list[str]:
    """Output files as sorted paths relative to the run folder (as the marker records them)."""
    items = outputs.values() if isinstance(outputs, dict) else outputs
    return sorted({str(Path(p).resolve().relative_to(paths.root.resolve())) for p in items})


#: the folder of each stage's results (besides its done marker)
_FOLDERS = {"reconstruction": "reconstruction", "probes": "probes", "swap": "swap", "optimize": "optimize"}


def replaced_by(paths: RunPaths, hashes: dict[str, str], stages: list[str]) -> list[str]:
    """The stages among ``stages`` whose earlier results this run would replace: finished with other settings
    (their done marker's hash differs), or written by a separate command into the run folder (results there,
    no done marker and no unfinished attempt of a run)."""
    out = []
    for stage in stages:
        marker = paths.done_marker(stage)
        if marker.exists():
            if json.loads(marker.read_text()).get("config_hash") != hashes[stage]:
                out.append(stage)
            continue
        folder = paths.root / _FOLDERS.get(stage, "-")
        unfinished = started_marker(paths, stage).exists() or (paths.stages / f"{stage}.error.txt").exists()
        if stage in _FOLDERS and folder.is_dir() and any(folder.iterdir()) and not unfinished:
            out.append(stage)
    return out


def changed_settings(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two run configs (as dicts)."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += changed_settings(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(prefix + k)
    return out
