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

from probe.errors import TokenprobeError
from probe.report.layout import RunPaths

#: The stages in order.
STAGES = ("tokenize", "probes", "swap", "optimize", "report")


class RunConfigError(TokenprobeError, ValueError):
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
        attributes: the attributes validated (and measured for side effects) by swaps; ``None``: every probed
            attribute that has a measurer. Each swapped image is measured for every one of them, so this is
            the stage's main cost.
        pairs: (recipient, donor) pairs per attribute.
        candidates: the probes' top positions tested per attribute.
        sweep: also swap every single position (the causal heatmap and the disagreement table).
        control_pairs: run the decode-costly controls on only this many pairs per attribute (``None``: all).
        max_set: the largest position set the greedy search tries where no single position is confirmed
            (0: no greedy search).
        traversals: set the first confirmed position to each code the store uses there and measure the response.
        grids: pairs per image grid of a confirmed mapping (0: none).
        measurers: attribute -> measurer spec (e.g. ``oracle:shape``; default: ``probe.measure.measurer_for``);
            attributes without a measurer are not validated.
    """

    enabled: bool = True
    attributes: list[str] | None = None
    pairs: int = 16
    candidates: int = 3
    sweep: bool = True
    control_pairs: int | None = 8
    max_set: int = 4
    traversals: bool = True
    grids: int = 6
    measurers: dict[str, str] = field(default_factory=dict)


@dataclass
class OptimizeStageConfig:
    """Test-time token optimization (``probe.optimize``): one copy-paste edit per confirmed mapping, one
    text-guided generation, one inpainting.

    Attributes:
        enabled: run the stage.
        clip: the CLIP model of the text objective: a shipped name (``world-clip``), ``local-dir:FOLDER``,
            ``hf-hub:OWNER/NAME`` or an open_clip ``ARCH:PRETRAINED`` pair (PRETRAINED: a tag or a weights file).
        prompt: the prompt of the generation.
        iterations: optimization steps of the generation and the inpainting.
        images: images per copy-paste edit and in the inpainting (the generation makes one).
        copy_paste: do the copy-paste edits.
        generate: do the generation.
        inpaint: do the inpainting.
    """

    enabled: bool = True
    clip: str = "world-clip"
    prompt: str = "a red triangle"
    iterations: int = 30
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


def apply_settings(data: dict[str, Any], settings: list[str], where: str = "--set") -> dict[str, Any]:
    """``data`` with each ``KEY=VALUE`` of ``settings`` applied (dotted keys into sections, e.g.
    ``swap.pairs=8``; the value is read as YAML, so ``null``, ``true``, ``[a, b]`` work)."""
    out = json.loads(json.dumps(data))  # a deep copy of plain YAML data
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise RunConfigError(f"{where} {item!r}: expected KEY=VALUE, e.g. data.images=512")
        *parents, leaf = key.strip().split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise RunConfigError(f"{where} {item!r}: {p} is not a section")
        node[leaf] = yaml.safe_load(value)
    return out


def load_run_config(path: str | os.PathLike, settings: list[str] | None = None, **overrides: Any) -> RunConfig:
    """Read a run config YAML; ``settings`` (``KEY=VALUE``, see :func:`apply_settings`) and ``overrides`` (top-level
    keys, e.g. ``out=``; ``None`` values ignored) replace its values."""
    path = Path(path)
    if not path.exists():
        raise RunConfigError(f"{path}: no such run config file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise RunConfigError(f"{path}: not valid YAML ({e})") from None
    cfg = RunConfig.from_dict(apply_settings(data, settings or [], where=f"{path}: --set"), where=str(path))
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


@dataclass
class StageContext:
    """What a stage adapter gets: the config, the run folder, and what earlier stages produced."""

    config: RunConfig
    paths: RunPaths
    attributes: list[str] = field(default_factory=list)
    world: dict[str, Any] | None = None  # world settings of a world run (to re-render rows); None otherwise
    store: Any = None  # probe.TokenStore
    probes: Any = None  # probe.probes.ProbeResult (None when reused from disk: read paths.probes)
    notes: list[str] = field(default_factory=list)  # what a stage wants said in the report (joined into its note)
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


def world_settings(tokenizer_spec: str) -> dict[str, Any]:
    """The WorldConfig fields a shipped tokenizer was trained on (``{}`` if it is not shipped)."""
    from probe import zoo

    if tokenizer_spec not in zoo.available():
        return {}
    return dict(zoo.config(tokenizer_spec).get("world", {}))


def world_manifest(size: int, seed: int, resolution: int, world: dict[str, Any]) -> Any:
    """A manifest of ``size`` world images with every rendered factor (and ``null_factor``) as attribute."""
    from probe.data.manifest import manifest_from_dict

    config = {k: v for k, v in world.items() if k != "resolution"}
    return manifest_from_dict(
        {"name": "world-demo", "source": {"type": "world", "config": {**config, "resolution": resolution}},
         "size": size, "seed": seed, "resolution": resolution},
        where="<demo manifest>",
    )


def _manifest(ctx: StageContext, resolution: int) -> Any:
    """The manifest the run tokenizes (see :class:`DataConfig`)."""
    from probe.data.manifest import load_manifest

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

    cfg = ctx.config
    result = probe.run_probes(ctx.store, attributes_subset=ctx.attributes, permutations=cfg.probes.permutations,
                              seed=cfg.seed)
    ctx.probes = result
    paths = result.save(ctx.paths.probes, figures=cfg.probes.figures, figures_dir=ctx.paths.figures,
                        title=f"tokenprobe: {cfg.name}")
    return list(paths.values())


def _missing_api(module: str, names: tuple[str, ...]) -> str | None:
    """``None`` when ``module`` exposes every name; else what is missing, in words."""
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError:
        return f"the package {module} is not installed in this version of tokenprobe"
    absent = [n for n in names if not hasattr(mod, n)]
    return f"{module} has no {', '.join(absent)} yet" if absent else None


#: What the swap adapter calls (the swap engine, probe.swap; measurers, probe.measure).
SWAP_API = {"probe.swap": ("SwapConfig", "SwapData", "validate", "sweep"),
            "probe.measure": ("get_measurer", "measurer_for"), "probe.worlds": ("store_masks",)}
#: What the optimize adapter calls (test-time optimization, probe.optimize).
OPTIMIZE_API = {"probe.optimize": ("OptimizeConfig",),
                "probe.optimize.tasks": ("generate", "inpaint", "write_run", "masked_images")}


def _require(api: dict[str, tuple[str, ...]], what: str) -> None:
    for module, names in api.items():
        missing = _missing_api(module, names)
        if missing:
            raise StageSkipped(f"{what} did not run: {missing}")


def _measurers(ctx: StageContext) -> dict[str, Any]:
    """attribute -> measurer for the run's attributes that have one (spec from the config, else the default)."""
    from probe.measure import get_measurer, measurer_for

    out, without = {}, []
    wanted = ctx.config.swap.attributes
    if wanted:
        unknown = sorted(set(wanted) - set(ctx.attributes))
        if unknown:
            raise RunConfigError(f"swap.attributes: {unknown} are not among the run's attributes {ctx.attributes}")
    for a in wanted or ctx.attributes:
        spec = ctx.config.swap.measurers.get(a)
        try:
            out[a] = get_measurer(spec) if spec else measurer_for(a)
        except (KeyError, ValueError):
            if spec:
                raise RunConfigError(f"swap.measurers.{a}: {spec!r} is not a measurer spec") from None
            without.append(a)
    if without:
        ctx.notes.append(f"not validated (no measurer; set swap.measurers): {', '.join(without)}")
    return out


def _semantic_map(ctx: StageContext) -> Any:
    from probe.probes.semantic_map import SemanticMap

    if ctx.probes is not None:
        return ctx.probes.semantic_map
    return SemanticMap.from_dict(json.loads(ctx.paths.semantic_map.read_text()))


def stage_swap(ctx: StageContext) -> list[Path]:
    """Validate the probe map by swaps (every position when ``swap.sweep``, else the probes' candidates);
    writes ``swap/`` (see :class:`probe.report.RunPaths`): tables, the validated map, the causal heatmap,
    image grids of the confirmed mappings, a traversal."""
    _require(SWAP_API, "swap validation")
    import pandas as pd

    from probe.swap import SwapConfig, SwapData, sweep, validate
    from probe.swap.maps import candidate_sets

    c, seed, tok = ctx.config.swap, ctx.config.seed, ctx.tokenizer
    measurers = _measurers(ctx)
    if not measurers:
        raise StageSkipped("swap validation did not run: no attribute of this run has a measurer (swap.measurers)")
    data = SwapData.from_store(ctx.store, tok)
    cfg = SwapConfig(pairs=c.pairs, seed=seed, control_pairs=c.control_pairs, greedy_pairs=min(64, c.pairs),
                     max_set=max(1, c.max_set))
    attrs = list(measurers)
    out = ctx.paths.swap
    out.mkdir(parents=True, exist_ok=True)
    smap = _semantic_map(ctx)
    if c.sweep:
        vmap = validate(tok, data, measurers, smap, attributes=attrs, config=cfg, greedy=c.max_set > 1,
                             progress=True)
        written = list(vmap.save(out, figures=True).values())
        answers, pairs = vmap.answers, vmap.sweep.pairs
    else:  # the probes' candidates only: the best tested set per attribute is its answer
        res = sweep(tok, data, measurers, candidate_sets(smap, attrs, c.candidates), attributes=attrs, config=cfg)
        res.summary.to_csv(ctx.paths.mappings, index=False)
        res.pairs.to_csv(out / "pairs.csv", index=False)
        answers = (res.summary.sort_values("transfer", ascending=False).drop_duplicates("attribute")
                   .assign(source="candidate"))
        answers.to_csv(ctx.paths.validated_map, index=False)
        written, pairs = [ctx.paths.mappings, out / "pairs.csv", ctx.paths.validated_map], res.pairs
    confirmed = answers[answers["verdict"] == "confirmed"]
    written += _swap_grids(ctx, tok, data, pairs, confirmed, c.grids, seed)
    if c.traversals:
        written += _traversal(ctx, tok, data, measurers, confirmed)
    ctx.paths.swap_config.write_text(json.dumps(
        {"swap": cfg.to_dict(), "thresholds": cfg.verdict.describe(), "attributes": attrs,
         "measurers": {a: getattr(m, "name", str(m)) for a, m in measurers.items()},
         "sweep": c.sweep, "candidates": c.candidates}, indent=2, default=str))
    n_conf = pd.Series(confirmed["attribute"]).nunique()
    ctx.notes.append(f"{n_conf} of {len(attrs)} attributes confirmed")
    return [*written, ctx.paths.swap_config]


def _positions(label: Any) -> list[int]:
    """``"9+21+23"`` -> ``[9, 21, 23]`` (a CSV may have read a single position as ``26.0``)."""
    return [int(float(p)) for p in str(label).split("+")]


def _swap_grids(ctx: StageContext, tok: Any, data: Any, pairs: Any, confirmed: Any, n: int, seed: int) -> list[Path]:
    """recipient | donor | swapped | controls for each confirmed mapping."""
    if n <= 0:
        return []
    from probe.swap.validated import grid_images
    from probe.viz.save import save_figure
    from probe.viz.swap import image_grid_figure

    written = []
    for row in confirmed.drop_duplicates("attribute").itertuples():
        sub = pairs[pairs["attribute"] == row.attribute]
        imgs = grid_images(tok, data, sub, _positions(row.positions), n=n, seed=seed)
        fig = image_grid_figure(imgs, f"{row.attribute} @ {row.positions}: transfer {row.transfer:.2f}")
        written.append(save_figure(fig, ctx.paths.swap_grids / str(row.attribute))[0])
    return written


def _traversal(ctx: StageContext, tok: Any, data: Any, measurers: dict[str, Any], confirmed: Any) -> list[Path]:
    """The first confirmed single position set to every code the store uses there, 4 images, every attribute
    measured (VQ tokenizers only)."""
    single = confirmed[~confirmed["positions"].astype(str).str.contains("+", regex=False)]
    if single.empty or not getattr(ctx.tokenizer, "is_discrete", False):
        return []
    import numpy as np
    import torch

    from probe.swap.traverse import codes_used, response_curve, traverse
    from probe.viz.save import save_figure
    from probe.viz.swap import traversal_figure

    row = single.iloc[0]
    pos, attr = _positions(row["positions"])[0], str(row["attribute"])
    rows = torch.arange(min(4, len(data.quantized)))
    masks = None if data.masks is None else data.masks[rows]
    table = traverse(tok, data.quantized[rows], pos, measurers, codes=codes_used(np.asarray(ctx.store.tokens), pos),
                     masks=masks, progress=True)
    curve = response_curve(table)
    stem = ctx.paths.traversal(pos).with_suffix("")
    table.to_csv(stem.with_suffix(".csv"), index=False)
    fig = traversal_figure(curve, order_by=attr if attr in set(curve["measured"]) else None)
    return [stem.with_suffix(".csv"), save_figure(fig, stem)[0]]


def _images(ctx: StageContext, n: int, seed: int) -> Any:
    """``n`` images of the run's store rows, drawn with ``seed`` (re-rendered or re-read): ``[n, 3, H, W]``."""
    import numpy as np

    from probe.data.rematerialise import rematerialise

    rows = np.sort(np.random.default_rng(seed).choice(len(ctx.store), size=min(n, len(ctx.store)), replace=False))
    return rematerialise(ctx.store, rows, resolution=int(ctx.tokenizer.image_size))


def _psnr(a: Any, b: Any, region: Any) -> Any:
    """PSNR (dB) per image of ``a`` vs ``b`` ``[B, 3, H, W]`` over the pixels where ``region [B, 1, H, W]`` is 1."""
    import torch

    w = region.expand_as(a).float()
    mse = ((a.float().clamp(0, 1) - b.float()) ** 2 * w).sum((1, 2, 3)) / w.sum((1, 2, 3)).clamp_min(1)
    return 10 * torch.log10(1 / mse.clamp_min(1e-10))


def stage_optimize(ctx: StageContext) -> list[Path]:
    """A copy-paste edit per confirmed mapping, one text-guided generation, one inpainting; writes
    ``optimize/`` (see :class:`probe.report.RunPaths`)."""
    _require(OPTIMIZE_API, "edits, generation and inpainting")
    from probe.optimize import OptimizeConfig

    c, seed = ctx.config.optimize, ctx.config.seed
    ocfg = OptimizeConfig(iterations=c.iterations, seed=seed, progress=True)
    ctx.paths.optimize.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if c.copy_paste:
        written += _copy_paste(ctx, c.images)
    if c.generate:
        written += _generate(ctx, ocfg)
    if c.inpaint:
        written += _inpaint(ctx, ocfg)
    return written


def _copy_paste(ctx: StageContext, n: int) -> list[Path]:
    import pandas as pd

    from probe.swap import copy_paste
    from probe.viz.save import save_figure
    from probe.viz.swap import image_grid_figure

    vmap = pd.read_csv(ctx.paths.validated_map, keep_default_na=False, na_values=[""], dtype={"positions": str}) \
        if ctx.paths.validated_map.exists() else None
    pairs_path = ctx.paths.swap / "pairs.csv"
    if vmap is None or not pairs_path.exists():
        ctx.notes.append("no copy-paste edits: no validated map (the swap stage did not run)")
        return []
    confirmed = vmap[vmap["verdict"] == "confirmed"].drop_duplicates("attribute")
    if confirmed.empty:
        ctx.notes.append("no copy-paste edits: no mapping was confirmed")
        return []
    from probe.data.rematerialise import rematerialise

    pairs = pd.read_csv(pairs_path, keep_default_na=False, na_values=[""])
    rows, written = [], []
    for m in confirmed.itertuples():
        sub = pairs[pairs["attribute"] == m.attribute].head(n)
        pos = _positions(m.positions)
        size = int(ctx.tokenizer.image_size)
        target, t_masks = rematerialise(ctx.store, sub["recipient"].to_numpy(), resolution=size, masks=True)
        source, s_masks = rematerialise(ctx.store, sub["donor"].to_numpy(), resolution=size, masks=True)
        out = copy_paste(ctx.tokenizer, target, source, pos)
        measurer = _measurer(ctx, m.attribute)
        read_t = measurer(out["target"], masks=t_masks)
        gap = _reading_distance(read_t, measurer(out["source"], masks=s_masks), measurer).mean().item()
        moved = _reading_distance(read_t, measurer(out["images"], masks=t_masks), measurer).mean().item()
        rows.append({"attribute": m.attribute, "positions": m.positions, "images": len(sub), "gap": gap,
                     "moved": moved, "transfer": moved / gap if gap > 0 else float("nan"),
                     "swap_transfer": m.transfer})
        fig = image_grid_figure({"target": out["target"], "source": out["source"], f"pasted @{m.positions}":
                                 out["images"]}, f"{m.attribute} @ {m.positions}: moved {moved / max(gap, 1e-12):.2f}"
                                f" of the gap")
        written.append(save_figure(fig, ctx.paths.optimize_folder("copy_paste") / str(m.attribute))[0])
    pd.DataFrame(rows).to_csv(ctx.paths.optimize_table("copy_paste"), index=False)
    return [ctx.paths.optimize_table("copy_paste"), *written]


def _measurer(ctx: StageContext, attribute: str) -> Any:
    from probe.measure import get_measurer, measurer_for

    spec = ctx.config.swap.measurers.get(attribute)
    return get_measurer(spec) if spec else measurer_for(attribute)


def _reading_distance(a: Any, b: Any, measurer: Any) -> Any:
    """How far apart two readings of ``measurer`` are, per image: ``|b - a|`` for scalars ``[B]``, the angle over
    2 pi for unit vectors ``[B, 2]`` (circular), total variation for class probabilities ``[B, K]``.

    Written here, not probe.optimize.tasks.attribute_drift, because the world's object measurers need each
    image's own object mask, which attribute_drift does not pass."""
    import torch

    a, b = a.float(), b.float()
    if a.ndim == 1:
        return (b - a).abs()
    if getattr(measurer, "kind", None) == "circular":
        diff = torch.atan2(b[:, 1], b[:, 0]) - torch.atan2(a[:, 1], a[:, 0])
        return (torch.remainder(diff + torch.pi, 2 * torch.pi) - torch.pi).abs() / (2 * torch.pi)
    return 0.5 * (b - a).abs().sum(1)


def _generate(ctx: StageContext, ocfg: Any) -> list[Path]:
    """One prompt, one sample, from the CLIP top-1 image of 256 of the run's images (the paper's protocol; more
    samples from the same seed would be identical without token noise)."""
    import pandas as pd

    from probe.optimize.tasks import generate, write_run

    c = ctx.config.optimize
    seeds = _images(ctx, 256, ctx.config.seed)
    res = generate(ctx.tokenizer, c.prompt, n=1, clip=_expand(c.clip), seed_images=seeds, init="top1", config=ocfg)
    folder = write_run(ctx.paths.optimize_folder("generate"), res, inputs=res.seed_images, labels=[c.prompt],
                       settings={"prompt": c.prompt, "clip": c.clip, "init": "top1", **asdict(ocfg)})
    h = res.history
    first = h[h["step"] == h["step"].min()].set_index("row")["objective"]
    last = h[h["step"] == h["step"].max()].set_index("row")
    table = pd.DataFrame({"prompt": c.prompt, "objective_seed": first, "objective_result": last["objective"],
                          "changed_tokens": last.get("changed")}).reset_index()
    table.to_csv(ctx.paths.optimize_table("generate"), index=False)
    return [ctx.paths.optimize_table("generate"), folder / "grid.png", folder / "history.csv"]


def _inpaint(ctx: StageContext, ocfg: Any) -> list[Path]:
    """A centred square hole (half the side) in ``optimize.images`` images; PSNR on the hole of the result
    against that of decoding the masked image (the seed)."""
    import pandas as pd
    import torch

    from probe.optimize.tasks import inpaint, masked_images, write_run

    c = ctx.config.optimize
    images = _images(ctx, c.images, ctx.config.seed + 1)
    h = images.shape[-1]
    known = torch.ones(len(images), 1, h, h)
    known[..., h // 4: h - h // 4, h // 4: h - h // 4] = 0
    res = inpaint(ctx.tokenizer, images, known, reset_every=max(1, c.iterations // 4), config=ocfg)
    folder = write_run(ctx.paths.optimize_folder("inpaint"), res, inputs=masked_images(images, known),
                       settings={"hole": "centred square, half the side", **asdict(ocfg)})
    hole = 1 - known
    table = pd.DataFrame({"psnr_hole_result": _psnr(res.images.cpu(), images, hole).numpy(),
                          "psnr_hole_masked_decode": _psnr(res.seed_images.cpu(), images, hole).numpy()})
    table.insert(0, "row", range(len(table)))
    table.to_csv(ctx.paths.optimize_table("inpaint"), index=False)
    return [ctx.paths.optimize_table("inpaint"), folder / "grid.png", folder / "history.csv"]


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
    elif ":" in spec:
        import open_clip

        name, tag = spec.split(":", 1)
        if Path(tag).expanduser().exists():
            return None  # a local weights file
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
                "or an open_clip ARCH:PRETRAINED pair")
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
            ctx.notes = []
            try:
                outputs = _STAGE_FUNCS[stage](ctx)
            except StageSkipped as e:
                rec = StageRecord(stage, "skipped", round(time.perf_counter() - t, 1), str(e))
                records.append(rec)
                paths.done_marker(stage).unlink(missing_ok=True)
                log(f"[{stage}] skipped: {rec.note}")
                continue
            except Exception as e:
                if stage in ("tokenize", "probes"):
                    raise  # nothing after them can run
                # the optional stages: the report still renders, saying what failed and where the traceback is
                import traceback

                paths.stages.mkdir(parents=True, exist_ok=True)
                err = paths.stages / f"{stage}.error.txt"
                err.write_text(traceback.format_exc())
                rec = StageRecord(stage, "failed", round(time.perf_counter() - t, 1),
                                  f"{stage} failed: {type(e).__name__}: {e} (traceback: {err})")
                records.append(rec)
                paths.done_marker(stage).unlink(missing_ok=True)
                log(f"[{stage}] FAILED: {rec.note}")
                continue
            rec = StageRecord(stage, "ran", round(time.perf_counter() - t, 1), "; ".join(ctx.notes),
                              _relative(paths, outputs), hashes[stage])
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
    return RunResult(paths, cfg, records, report, round(time.perf_counter() - t0, 1), ctx.store, ctx.probes)
