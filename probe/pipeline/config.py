"""The run config: :class:`RunConfig` (a YAML file, one section per stage), its parsing and ``--set`` overrides.

Every default is here, once; ``probe/configs/demo.yaml`` (the embedded default that ``tokenprobe demo`` runs)
spells them all out.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from probe.errors import TokenprobeError

class RunConfigError(TokenprobeError, ValueError):
    """A run config that cannot be used (the message names the file, the key and what to do)."""


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
    num_workers: int | str = 0  # an integer >= 0 or "auto"


@dataclass
class ReconstructionStageConfig:
    """How well the tokenizer reconstructs the run's own images (:mod:`probe.measure.reconstruction`), the first
    thing the report and the printed summary show: PSNR and SSIM, and per attribute the share of the originals'
    gap the reconstructions keep (a swap cannot move more of it).

    Attributes:
        images: images reconstructed (a seeded sample of the store).
        pairs: pairs per attribute from its opposite ends, for the share of the gap kept.
    """

    images: int = 256
    pairs: int = 64


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
        pairs: confirmation (recipient, donor) pairs per attribute: every reported number and verdict.
        discovery_pairs: discovery pairs per attribute, on other images: the sweep and the greedy search select
            on them (``None``: as many as ``pairs``).
        candidates: the probes' top positions tested per attribute.
        sweep: also swap every single position (the causal heatmap and the disagreement table).
        control_pairs: run the decode-costly controls on only this many pairs per attribute (``None``: all).
        max_set: the largest position set the greedy search tries where no single position is confirmed
            (0: no greedy search).
        traversals: set the first confirmed position to each code the store uses there and measure the response.
        grids: pairs per image grid of a confirmed mapping (0: none).
        measurers: attribute -> measurer spec (e.g. ``oracle:shape``; default: the manifest's, else
            ``probe.measure.measurer_for``); attributes without a measurer are not validated.
        clip: a CLIP (spec as ``optimize.clip``: ``world-clip``, ``ARCH:PRETRAINED``, ``hf-hub:ORG/NAME``,
            ``local-dir:FOLDER``) that measures, by zero-shot classification over the attribute's own values, every
            categorical attribute that has no other measurer; ``None``: no zero-shot measurer.
        clip_prompt: the zero-shot prompt of one value (``{value}``: the value, underscores as spaces).
    """

    enabled: bool = True
    attributes: list[str] | None = None
    pairs: int = 16
    discovery_pairs: int | None = None
    candidates: int = 3
    sweep: bool = True
    control_pairs: int | None = 8
    max_set: int = 4
    traversals: bool = True
    grids: int = 6
    measurers: dict[str, str] = field(default_factory=dict)
    clip: str | None = None
    clip_prompt: str = "a photo of {value}"


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
        data, reconstruction, probes, swap, optimize: the stages' settings.
    """

    name: str = "demo"
    out: str = "runs/demo"
    tokenizer: str = "world-32"
    random_init: bool = False
    device: str | None = None
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    reconstruction: ReconstructionStageConfig = field(default_factory=ReconstructionStageConfig)
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
        if sub:
            kw[k] = _from_dict(sub, v if v is not None else {}, where, f"{k}.")
        else:
            check_value(prefix + k, v, str(fields[k].type), where)
            kw[k] = v
    return cls(**kw)


#: the smallest value of a numeric setting
MINIMUM: dict[str, int] = {
    "data.images": 1, "data.batch_size": 1, "reconstruction.images": 1, "reconstruction.pairs": 1, "data.num_workers": 0, "probes.permutations": 1, "swap.pairs": 1,
    "swap.candidates": 1, "swap.control_pairs": 1, "swap.max_set": 0, "swap.grids": 0, "optimize.iterations": 1,
    "optimize.images": 1,
}
#: settings that must not be empty text
NON_EMPTY = ("name", "out", "tokenizer", "optimize.prompt", "optimize.clip", "swap.clip")

_TYPE_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "text",
               "None": "null", "list[str]": "a list of names, e.g. [a, b]",
               "dict[str, str]": "a mapping of names to text, e.g. {shape: oracle:shape}"}


def _is(value: Any, type_name: str) -> bool:
    if type_name == "None":
        return value is None
    if type_name == "bool":
        return isinstance(value, bool)
    if type_name == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if type_name == "str":
        return isinstance(value, str)
    if type_name == "list[str]":
        return isinstance(value, list) and all(isinstance(x, str) for x in value)
    if type_name == "dict[str, str]":
        return isinstance(value, dict) and all(isinstance(k, str) and isinstance(x, str) for k, x in value.items())
    raise AssertionError(f"no check for the type {type_name}")  # a new field type: add its check here


def check_value(key: str, value: Any, type_str: str, where: str = "<run config>") -> None:
    """Raise a :class:`RunConfigError` naming ``where`` and ``key`` unless ``value`` has the field's type (the
    annotation, e.g. ``"int | None"``) and lies in its range (:data:`MINIMUM`, :data:`NON_EMPTY`)."""
    kinds = [t.strip() for t in type_str.split("|")]
    if not any(_is(value, t) for t in kinds):
        if key == "data.num_workers" and value == "auto":
            return
        want = " or ".join(_TYPE_WORDS.get(t, t) for t in kinds)
        raise RunConfigError(f"{where}: {key} must be {want}, got {value!r}")
    low = MINIMUM.get(key)
    if low is not None and isinstance(value, (int, float)) and not isinstance(value, bool) and value < low:
        raise RunConfigError(f"{where}: {key} must be >= {low}, got {value!r}")
    if key in NON_EMPTY and isinstance(value, str) and not value.strip():
        raise RunConfigError(f"{where}: {key} must not be empty")
    if key == "swap.clip_prompt" and "{value}" not in value:
        raise RunConfigError(f"{where}: swap.clip_prompt must hold {{value}} (where each value goes), got {value!r}")


_SECTIONS: dict[str, type] = {"data": DataConfig, "reconstruction": ReconstructionStageConfig,
                              "probes": ProbeStageConfig, "swap": SwapStageConfig,
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
    given = {k: v for k, v in overrides.items() if v is not None}
    types = {f.name: str(f.type) for f in dataclasses.fields(RunConfig)}
    for k, v in given.items():
        check_value(k, v, types[k], where="the command line")
    return dataclasses.replace(cfg, **given)


def default_config_path() -> Path:
    """The embedded default (``tokenprobe demo``), shipped inside the package."""
    return Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"


def expand(value: str) -> str:
    """A config value with ``${VAR:-default}`` read from the environment (and ``~`` expanded)."""
    from probe.data.manifest import expand_path

    return expand_path(value)
