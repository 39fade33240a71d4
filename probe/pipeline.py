"""The main job as one command (``tokenprobe run CONFIG.yaml``): tokenize -> probes -> swap validation ->
the validated map -> edits, a generation and an inpainting -> the report.

A run is described by a :class:`RunConfig` (a YAML file; ``probe/configs/demo.yaml`` is the embedded default
that ``tokenprobe demo`` runs) and writes one run folder (:class:`probe.report.RunPaths`). Each stage writes a
done marker ``stages/<stage>.json`` holding the hash of the settings it depends on (its own and those of the
stages before it); a second run reuses every finished stage whose hash still matches and whose outputs are
all there, and redoes the rest. Tokenization is resumable by itself as well (chunks of the token store).

Stages whose package has not landed yet (the swap engine, ``probe.swap``; test-time optimization,
``probe.optimize``) are skipped with a note that the report shows where their sections would be; without a
validated map the report shows the probe map, labelled unvalidated. A stage's adapter below is the one place
that calls its package.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from probe.report.layout import RunPaths

#: The stages in order.
STAGES = ("tokenize", "probes", "swap", "optimize", "report")


class RunConfigError(ValueError):
    """A run config that cannot be used (the message names the file, the key and what to do)."""


# --------------------------------------------------------------------------------------------- the run config
@dataclass
class DataConfig:
    """Which images are tokenized.

    Attributes:
        manifest: a manifest YAML (path, or the name of one in ``data_manifests/`` / the package), or ``None``:
            the synthetic world, with the settings the tokenizer was trained on when it is a shipped world model
            (its zoo entry), rendered at the tokenizer's resolution.
        images: number of images (a seeded subset of the manifest; ``None``: the manifest's own ``size``).
        attributes: attributes to probe and validate (``None``: the world's factors except nuisances, or every
            attribute of the manifest).
        batch_size: images per forward pass.
        num_workers: DataLoader workers (0: decode in the main process; "auto" picks).
    """

    manifest: str | None = None
    images: int | None = 4000
    attributes: list[str] | None = None
    batch_size: int = 128
    num_workers: int | str = 0


@dataclass
class ProbeStageConfig:
    """The probe suite (:func:`probe.run_probes`).

    Attributes:
        permutations: permutations per permutation test.
        figures: draw the probe heatmap and the one-page summary.
    """

    permutations: int = 200
    figures: bool = True


@dataclass
class SwapStageConfig:
    """Swap validation of the probe map (the swap engine, ``probe.swap``).

    Attributes:
        enabled: run the stage.
        pairs: (recipient, donor) pairs per attribute.
        candidates: the probes' top positions tested per attribute.
        sweep: also swap every single position (the causal heatmap and the disagreement table).
        traversals: set each confirmed position to many codes and measure the response.
        measurers: attribute -> measurer name (default: ``probe.measure.measurer_for(attribute)``).
    """

    enabled: bool = True
    pairs: int = 64
    candidates: int = 3
    sweep: bool = True
    traversals: bool = True
    measurers: dict[str, str] = field(default_factory=dict)


@dataclass
class OptimizeStageConfig:
    """Test-time token optimization (``probe.optimize``): one copy-paste edit per confirmed mapping, one
    text-guided generation, one inpainting.

    Attributes:
        enabled: run the stage.
        clip: the CLIP model of the text objective: a shipped name (``world-clip``), ``local-dir:FOLDER``,
            ``hf-hub:OWNER/NAME`` or an open_clip ``MODEL/PRETRAINED`` pair.
        prompt: the prompt of the generation.
        iterations: optimization steps of the generation and the inpainting.
        images: images per task.
        copy_paste: do the copy-paste edits.
        generate: do the generation.
        inpaint: do the inpainting.
    """

    enabled: bool = True
    clip: str = "world-clip"
    prompt: str = "a red triangle"
    iterations: int = 40
    images: int = 4
    copy_paste: bool = True
    generate: bool = True
    inpaint: bool = True


@dataclass
class RunConfig:
    """One run of the pipeline (a YAML file with these keys; nested sections as mappings).

    Attributes:
        name: the run's name (the report's title).
        out: the run folder.
        tokenizer: any spec :func:`probe.load_tokenizer` takes (preset, shipped name, folder, file, hub id);
            ``${VAR:-default}`` reads an environment variable.
        random_init: random tokenizer weights (plumbing checks only: they carry no semantics).
        device: ``None`` picks cuda, then mps, then cpu.
        seed: the seed of the data sample, the probes, the pairs and the optimization.
        data, probes, swap, optimize: the stages' settings.
    """

    name: str = "demo"
    out: str = "runs/demo"
    tokenizer: str = "world-32"
    random_init: bool = False
    device: str | None = None
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    probes: ProbeStageConfig = field(default_factory=ProbeStageConfig)
    swap: SwapStageConfig = field(default_factory=SwapStageConfig)
    optimize: OptimizeStageConfig = field(default_factory=OptimizeStageConfig)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "<run config>") -> RunConfig:
        """Build from a plain mapping; unknown keys and wrong types are errors naming ``where`` and the key."""
        return _from_dict(cls, d, where, "")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _from_dict(cls: type, d: Any, where: str, prefix: str) -> Any:
    # hand-written: a few lines instead of a validation dependency
    if not isinstance(d, dict):
        raise RunConfigError(f"{where}: {prefix.rstrip('.') or 'the file'} must be a mapping, got {type(d).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise RunConfigError(f"{where}: unknown key(s) {', '.join(prefix + k for k in unknown)}; "
                             f"known: {', '.join(prefix + k for k in fields)}")
    kw = {}
    for k, v in d.items():
        sub = _SECTIONS.get(k) if not prefix else None
        kw[k] = _from_dict(sub, v if v is not None else {}, where, f"{k}.") if sub else v
    try:
        return cls(**kw)
    except TypeError as e:
        raise RunConfigError(f"{where}: {e}") from None


_SECTIONS: dict[str, type] = {"data": DataConfig, "probes": ProbeStageConfig, "swap": SwapStageConfig,
                              "optimize": OptimizeStageConfig}


def load_run_config(path: str | os.PathLike, **overrides: Any) -> RunConfig:
    """Read a run config YAML; ``overrides`` replace top-level keys (e.g. ``out=``)."""
    path = Path(path)
    if not path.exists():
        raise RunConfigError(f"{path}: no such run config file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise RunConfigError(f"{path}: not valid YAML ({e})") from None
    cfg = RunConfig.from_dict(data, where=str(path))
    return dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


def default_config_path() -> Path:
    """The embedded default (``tokenprobe demo``), shipped inside the package."""
    return Path(__file__).resolve().parent / "configs" / "demo.yaml"


# --------------------------------------------------------------------------------------------- stage records
@dataclass
class StageRecord:
    """What happened to one stage: ``status`` is ran, reused, skipped or failed."""

    stage: str
    status: str
    seconds: float = 0.0
    note: str = ""
    outputs: list[str] = field(default_factory=list)
    config_hash: str = ""


@dataclass
class RunResult:
    paths: RunPaths
    config: RunConfig
    stages: list[StageRecord]
    report: Path | None
    seconds: float

    def stage(self, name: str) -> StageRecord:
        return next(s for s in self.stages if s.stage == name)


@dataclass
class StageContext:
    """What a stage adapter gets: the config, the run folder, and what earlier stages produced."""

    config: RunConfig
    paths: RunPaths
    attributes: list[str] = field(default_factory=list)
    world: dict[str, Any] | None = None  # world settings of a world run (to re-render rows); None otherwise
    store: Any = None  # probe.TokenStore
    probes: Any = None  # probe.probes.ProbeResult (None when reused from disk: read paths.probes)
    _tokenizer: Any = None

    @property
    def tokenizer(self) -> Any:
        """The tokenizer, loaded on first use (a reused tokenize stage does not need it)."""
        if self._tokenizer is None:
            import probe

            self._tokenizer = probe.load_tokenizer(_expand(self.config.tokenizer), device=self.config.device,
                                                   random_init=self.config.random_init)
        return self._tokenizer


class StageSkipped(Exception):
    """Raised by a stage adapter whose package (or a requirement) is missing; the message goes to the report."""


def _expand(value: str) -> str:
    from probe.data.manifest import expand_path

    return expand_path(value)


def stage_hashes(cfg: RunConfig) -> dict[str, str]:
    """Each stage's config hash: its own settings chained with the hash of the stage before it."""
    from probe.store import config_hash

    d = cfg.to_dict()
    common = {k: d[k] for k in ("tokenizer", "random_init", "seed")}
    own = {"tokenize": {**common, "data": d["data"], "tokenizer_resolved": _expand(cfg.tokenizer)},
           "probes": d["probes"], "swap": d["swap"], "optimize": d["optimize"], "report": {}}
    out, prev = {}, ""
    for s in STAGES:
        prev = config_hash({"stage": s, "settings": own[s], "upstream": prev})
        out[s] = prev
    return out


def _reusable(paths: RunPaths, stage: str, h: str) -> dict[str, Any] | None:
    marker = paths.done_marker(stage)
    if not marker.exists():
        return None
    rec = json.loads(marker.read_text())
    if rec.get("config_hash") != h or not all((paths.root / o).exists() for o in rec.get("outputs", [])):
        return None
    return rec


def _write_marker(paths: RunPaths, rec: StageRecord) -> None:
    paths.stages.mkdir(parents=True, exist_ok=True)
    paths.done_marker(rec.stage).write_text(json.dumps(asdict(rec), indent=2))


def _relative(paths: RunPaths, outputs: dict[str, Path] | list[Path]) -> list[str]:
    items = outputs.values() if isinstance(outputs, dict) else outputs
    return sorted({str(Path(p).resolve().relative_to(paths.root.resolve())) for p in items})


# --------------------------------------------------------------------------------------------- the stages
def _world_attributes(world: dict[str, Any]) -> list[str]:
    from probe.data.world import WorldConfig, factor_specs

    return [n for n, s in factor_specs(WorldConfig.from_dict(world)).items() if s.role != "nuisance"]


def _manifest(ctx: StageContext, resolution: int) -> Any:
    """The manifest the run tokenizes (see :class:`DataConfig`)."""
    from probe.data.manifest import load_manifest
    from probe.demo import world_manifest, world_settings

    cfg = ctx.config
    if cfg.data.manifest is None:
        world = world_settings(_expand(cfg.tokenizer))
        return world_manifest(int(cfg.data.images or 4000), cfg.seed, resolution, world)
    manifest = load_manifest(_expand(cfg.data.manifest))
    if cfg.data.images is not None:
        manifest = dataclasses.replace(manifest, size=int(cfg.data.images))
    return manifest


def stage_tokenize(ctx: StageContext) -> list[Path]:
    from probe.encode import tokenize_manifest

    tok = ctx.tokenizer
    manifest = _manifest(ctx, int(tok.image_size))
    ctx.store = tokenize_manifest(manifest, tok, ctx.paths.store, device=ctx.config.device,
                                  batch_size=ctx.config.data.batch_size, num_workers=ctx.config.data.num_workers)
    return [ctx.paths.store / "header.json"]


def _world_of(store: Any) -> dict[str, Any] | None:
    """The world settings a store was rendered with (``None`` when its images are not the world's)."""
    source = store.manifest.get("source", {})
    if source.get("type") != "world":
        return None
    return {k: v for k, v in source.get("config", {}).items()}


def _attributes(ctx: StageContext) -> list[str]:
    if ctx.config.data.attributes:
        missing = sorted(set(ctx.config.data.attributes) - set(ctx.store.attribute_names))
        if missing:
            raise RunConfigError(f"data.attributes: {missing} not in the store (it has {ctx.store.attribute_names})")
        return list(ctx.config.data.attributes)
    if ctx.world is not None:
        return [a for a in _world_attributes(ctx.world) if a in ctx.store.attribute_names]
    return list(ctx.store.attribute_names)


def stage_probes(ctx: StageContext) -> list[Path]:
    import probe
    from probe.demo import _figures, summarize

    cfg = ctx.config
    result = probe.run_probes(ctx.store, attributes_subset=ctx.attributes, permutations=cfg.probes.permutations,
                              seed=cfg.seed)
    ctx.probes = result
    paths = result.save(ctx.paths.probes)
    summarize(result.semantic_map, ctx.attributes, result.table).to_csv(ctx.paths.summary, index=False)
    out = [*paths.values(), ctx.paths.summary]
    if cfg.probes.figures:
        out += list(_figures(result, ctx.paths.figures).values())
    return out


def _missing_api(module: str, names: tuple[str, ...]) -> str | None:
    """``None`` when ``module`` exposes every name; else what is missing, in words."""
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError:
        return f"the package {module} is not installed in this version of tokenprobe"
    absent = [n for n in names if not hasattr(mod, n)]
    return f"{module} has no {', '.join(absent)} yet" if absent else None


#: The swap engine's entry points the swap adapter calls (issue 14).
SWAP_API = ("pipeline_stage",)
#: Test-time optimization's entry points the optimize adapter calls (issue 15).
OPTIMIZE_API = ("pipeline_stage",)


def stage_swap(ctx: StageContext) -> list[Path]:
    """Validate the probe map by swaps; writes ``swap/`` (see :class:`probe.report.RunPaths`)."""
    missing = _missing_api("probe.swap", SWAP_API)
    if missing:
        raise StageSkipped(f"swap validation did not run: {missing} (the swap engine, issue 14), so the map "
                           "shown is the probes' ranking, not a validated one")
    import probe.swap

    return list(probe.swap.pipeline_stage(ctx))


def stage_optimize(ctx: StageContext) -> list[Path]:
    """Copy-paste edits per confirmed mapping, one generation, one inpainting; writes ``optimize/``."""
    missing = _missing_api("probe.optimize", OPTIMIZE_API)
    if missing:
        raise StageSkipped(f"edits, generation and inpainting did not run: {missing} (test-time optimization, "
                           "issue 15)")
    import probe.optimize

    return list(probe.optimize.pipeline_stage(ctx))


_STAGE_FUNCS: dict[str, Callable[[StageContext], list[Path]]] = {
    "tokenize": stage_tokenize, "probes": stage_probes, "swap": stage_swap, "optimize": stage_optimize}


# --------------------------------------------------------------------------------------------- preflight
def _clip_problem(spec: str) -> str | None:
    """What is missing for CLIP model ``spec`` to load offline (``None`` when nothing is)."""
    from probe import zoo

    if spec in zoo.available():
        return None
    if spec.startswith("local-dir:") or Path(spec).expanduser().exists():
        folder = Path(spec.removeprefix("local-dir:")).expanduser()
        return None if folder.exists() else f"optimize.clip: the folder {folder} does not exist"
    from huggingface_hub import try_to_load_from_cache

    if spec.startswith("hf-hub:"):
        repo, filename = spec.removeprefix("hf-hub:"), "open_clip_config.json"
    elif "/" in spec:
        import open_clip

        name, tag = spec.split("/", 1)
        pcfg = open_clip.get_pretrained_cfg(name, tag)
        if not pcfg:
            return (f"optimize.clip: open_clip has no pretrained weights {tag!r} for model {name!r} "
                    "(see open_clip.list_pretrained())")
        repo = pcfg.get("hf_hub", "").rstrip("/")
        if not repo:
            return None  # weights from a URL: open_clip's own cache; cannot be checked cheaply here
        filename = pcfg.get("file") or "open_clip_model.safetensors"
    else:
        return (f"optimize.clip: {spec!r} is not a shipped model, a local-dir:FOLDER, an hf-hub:OWNER/NAME id "
                "or an open_clip MODEL/PRETRAINED pair")
    cached = try_to_load_from_cache(repo, filename)
    if not isinstance(cached, str):
        return (f"optimize.clip: CLIP weights {spec} ({repo}/{filename}) are not in the Hugging Face cache "
                f"({os.environ.get('HF_HOME', '~/.cache/huggingface')}); download them once with network access "
                "(hf download " + repo + "), or set optimize.clip to local-dir:FOLDER")
    return None


def preflight(cfg: RunConfig) -> Any:
    """Check, before any work, that what the run needs is there: the manifest's images, the CLIP weights and
    the tokenizer. Raises one :class:`RunConfigError` listing everything missing; returns the tokenizer when it
    had to be loaded to check it (else ``None``).

    A tokenizer from the hub is only looked up in the local cache when something else is missing already, so a
    run that cannot start does not wait for downloads first."""
    problems = []
    if cfg.data.manifest is not None:
        from probe.data.dataset import build_source
        from probe.data.manifest import load_manifest

        try:
            build_source(load_manifest(_expand(cfg.data.manifest)), n_world=1)
        except Exception as e:  # noqa: BLE001 - every reason a manifest cannot open is reported the same way
            problems.append(f"data.manifest: {e}")
    if cfg.optimize.enabled and cfg.optimize.generate:
        p = _clip_problem(_expand(cfg.optimize.clip))
        if p:
            problems.append(p)
    spec = _expand(cfg.tokenizer)
    from probe import zoo
    from probe.tokenizers.presets import PRESETS

    tokenizer = None
    if spec in zoo.available() or (spec in PRESETS and cfg.random_init):
        pass  # shipped or built: nothing to fetch
    elif problems and not Path(spec).expanduser().exists():
        from huggingface_hub import try_to_load_from_cache

        repo = PRESETS[spec].hub_id if spec in PRESETS else spec
        if spec.startswith(("/", ".", "~")) or spec.count("/") != 1:
            problems.append(f"tokenizer: {spec!r} does not exist (a folder with config.json + model.safetensors, "
                            "a weight file, a preset, a shipped model or a hub id OWNER/NAME)")
        elif repo is None or not isinstance(try_to_load_from_cache(repo, "config.json"), str):
            problems.append(f"tokenizer: {spec!r} is not a local folder or file, and the hub repository {repo} is "
                            "not in the Hugging Face cache; download it once (hf download REPO --local-dir FOLDER) "
                            "and set the tokenizer to that folder (e.g. TOKENPROBE_TITOK_L32=FOLDER)")
    else:
        import probe

        try:
            tokenizer = probe.load_tokenizer(spec, device=cfg.device, random_init=cfg.random_init)
        except Exception as e:  # noqa: BLE001 - every reason it cannot load is reported the same way
            problems.append(f"tokenizer: {e}")
    if problems:
        raise RunConfigError("the run cannot start; missing:\n  - " + "\n  - ".join(problems))
    return tokenizer


# --------------------------------------------------------------------------------------------- the runner
def run_pipeline(cfg: RunConfig, *, force: bool = False, log: Callable[[str], None] = print) -> RunResult:
    """Run every stage of ``cfg`` into its run folder (reusing finished ones unless ``force``); returns what
    each stage did and the report's path."""
    from probe.report import render_report
    from probe.store import TokenStore, package_versions

    t0 = time.perf_counter()
    tokenizer = preflight(cfg)
    paths = RunPaths(cfg.out)
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.run_yaml.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    hashes = stage_hashes(cfg)
    ctx = StageContext(config=cfg, paths=paths, _tokenizer=tokenizer)
    records: list[StageRecord] = []
    for stage in STAGES[:-1]:
        t = time.perf_counter()
        prev = _reusable(paths, stage, hashes[stage]) if not force else None
        if prev is not None:
            rec = StageRecord(stage, "reused", prev.get("seconds", 0.0), prev.get("note", ""), prev.get("outputs", []),
                              hashes[stage])
        else:
            if stage == "swap" and not cfg.swap.enabled or stage == "optimize" and not cfg.optimize.enabled:
                rec = StageRecord(stage, "skipped", note=f"disabled in the run config ({stage}.enabled: false)")
                records.append(rec)
                log(f"[{stage}] skipped: {rec.note}")
                continue
            if stage != "tokenize" and ctx.store is None:
                ctx.store = TokenStore.open(paths.store)
            try:
                outputs = _STAGE_FUNCS[stage](ctx)
            except StageSkipped as e:
                rec = StageRecord(stage, "skipped", round(time.perf_counter() - t, 1), str(e))
                records.append(rec)
                paths.done_marker(stage).unlink(missing_ok=True)
                log(f"[{stage}] skipped: {rec.note}")
                continue
            rec = StageRecord(stage, "ran", round(time.perf_counter() - t, 1), "", _relative(paths, outputs),
                              hashes[stage])
            _write_marker(paths, rec)
        if stage == "tokenize":
            if ctx.store is None:
                ctx.store = TokenStore.open(paths.store)
            ctx.world = _world_of(ctx.store)
            ctx.attributes = _attributes(ctx)
        records.append(rec)
        log(f"[{stage}] {rec.status} ({rec.seconds:.1f} s)")
    seconds = round(time.perf_counter() - t0, 1)
    run_config = {"title": f"tokenprobe run: {cfg.name}", "tokenizer": cfg.tokenizer, **cfg.to_dict(),
                  "world": ctx.world, "attributes": ctx.attributes, "stages": [asdict(r) for r in records],
                  "total_seconds": seconds, "versions": package_versions()}
    paths.config.write_text(json.dumps(run_config, indent=2, default=str))
    t = time.perf_counter()
    report = render_report(paths.root)
    records.append(StageRecord("report", "ran", round(time.perf_counter() - t, 1), "", [str(report.name)]))
    log(f"[report] {report}")
    return RunResult(paths, cfg, records, report, round(time.perf_counter() - t0, 1))
