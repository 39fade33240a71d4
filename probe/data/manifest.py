"""Data manifests: a YAML file that declares a labelled image set.

Example (``data_manifests/world.yaml``)::

    name: world
    source: {type: world, config: {resolution: 64}}
    attributes:                       # optional for world / folder / skimage
      - {name: shape, kind: categorical}
      - {name: lighting, kind: continuous}
      - {name: animal, kind: categorical, from: class_index,
         ranges: {animal: [0, 397], inanimate: [398, 999]}}
    corruptions:                      # optional
      mode: grid                      # grid | one | all
      partitions:
        - {kind: blur, strengths: [0, 1, 2, 3, 4, 5]}
    size: 10000                       # world: number of images; others: a seeded subset (or all)
    seed: 0
    resolution: 64                    # optional; default the tokenizer's

Attribute fields: ``name``; ``kind`` (categorical | continuous); ``from`` (the source field the
value comes from, default ``name``); optional ``map`` (value -> label) or ``ranges`` (label ->
[low, high], inclusive) with ``default`` (label outside every range); optional ``measurer`` (the
spec of the measurer that reads it on an image, e.g. ``analytic:luminance``; swaps use it).
Corruption partitions add one attribute per kind (its severity, continuous; its measurer is the
one the corruption declares) and, in modes ``grid`` and ``one``, a categorical ``corruption``
(the kind applied).

Source options by type: ``world``: ``config`` (WorldConfig fields); ``folder``: ``root``,
``extensions``, ``recursive``, ``min_size``; ``table``: ``path``, ``image_column``, ``root``,
``format``, ``min_size``; ``hf``: ``name`` or ``path``, ``split``, ``config``, ``image_column``,
``revision``, ``min_size``; ``skimage``: ``photos``, ``min_size``; ``sprites``: ``config``
(SpritesConfig fields); ``imagenet_x``: the folder options plus ``annotations`` (multi | top) and
``filter_prototypes``. Paths may use ``${VAR}`` or ``${VAR:-default}``; relative paths are taken
from the current directory.

Every error names the file and the field, e.g.
``data_manifests/world.yaml: field 'attributes[2].kind' must be 'categorical' or 'continuous', got 'cont'``.
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from probe.data.corruptions import CORRUPTIONS, MAX_SEVERITY
from probe.errors import TokenprobeError

KINDS = ("categorical", "continuous")
CORRUPTION_MODES = ("grid", "one", "all")
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")

# allowed options per source type: option -> accepted Python types
_SOURCE_OPTIONS: dict[str, dict[str, tuple[type, ...]]] = {
    "world": {"config": (dict,)},
    "sprites": {"config": (dict,)},
    "folder": {"root": (str,), "extensions": (list,), "recursive": (bool,), "min_size": (int,)},
    "table": {"path": (str,), "image_column": (str,), "root": (str,), "format": (str,),
              "min_size": (int,)},
    "hf": {"name": (str,), "path": (str,), "split": (str,), "config": (str,),
           "image_column": (str,), "revision": (str,), "min_size": (int,)},
    "skimage": {"photos": (list,), "min_size": (int,)},
    "imagenet_x": {"root": (str,), "annotations": (str,), "filter_prototypes": (bool,), "extensions": (list,),
                   "recursive": (bool,), "min_size": (int,)},
}
_REQUIRED = {"folder": ("root",), "table": ("path",), "imagenet_x": ("root",)}
GENERATED = ("world", "sprites")  # source types that draw seeded images: ``size`` is their number of images


class ManifestError(TokenprobeError, ValueError):
    """A manifest that does not validate; the message names the file and the field."""


@dataclass(frozen=True)
class AttributeSpec:
    """One attribute: its name, kind, the source field it comes from and an optional mapping."""

    name: str
    kind: str
    source_field: str
    map: dict | None = None
    ranges: dict | None = None
    default: Any = None
    measurer: str | None = None  # the measurer spec that reads this attribute on an image (probe.measure)

    def value(self, record: dict) -> Any:
        """The attribute's value for one source record (``None`` when absent / unmapped)."""
        v = record.get(self.source_field)
        if self.map is not None:
            return self.map.get(v, self.map.get(str(v), self.default))
        if self.ranges is not None:
            if v is None:
                return self.default
            for label, (lo, hi) in self.ranges.items():
                if lo <= v <= hi:
                    return label
            return self.default
        return v


@dataclass(frozen=True)
class CorruptionPartition:
    """One corruption kind and the severities (0..5) it is applied at."""

    kind: str
    strengths: tuple[float, ...]


@dataclass(frozen=True)
class Manifest:
    """A validated data manifest (see the module docstring for the YAML layout)."""

    name: str
    source_type: str
    source_options: dict
    attributes: tuple[AttributeSpec, ...] = ()
    corruptions: tuple[CorruptionPartition, ...] = ()
    corruption_mode: str = "grid"
    size: int | None = None
    seed: int = 0
    resolution: int | None = None
    description: str = ""
    path: str | None = None  # the YAML file it was read from (None when built in code)

    @property
    def attribute_names(self) -> list[str]:
        """Every attribute the dataset yields: declared ones, then corruption ones."""
        return list(self.attribute_kinds)

    @property
    def attribute_kinds(self) -> dict[str, str]:
        """name -> ``"categorical"`` | ``"continuous"`` for every yielded attribute."""
        out = {a.name: a.kind for a in self.attributes}
        if self.corruptions:
            if self.corruption_mode in ("grid", "one"):
                out["corruption"] = "categorical"
            for p in self.corruptions:
                out[p.kind] = "continuous"
        return out

    @property
    def measurers(self) -> dict[str, str]:
        """attribute -> the measurer spec the manifest declares for it: an attribute's own ``measurer``, and for
        each corruption partition the measurer of its strength (:data:`probe.data.corruptions.CORRUPTIONS`)."""
        from probe.data.corruptions import CORRUPTIONS

        out = {p.kind: CORRUPTIONS[p.kind].measurer for p in self.corruptions
               if p.kind in CORRUPTIONS and CORRUPTIONS[p.kind].measurer}
        return out | {a.name: a.measurer for a in self.attributes if a.measurer}

    def to_dict(self) -> dict:
        """A plain, YAML/JSON-serialisable dict (for store headers and run configs)."""
        d = {"name": self.name, "source": {"type": self.source_type, **self.source_options},
             "attributes": [{k: v for k, v in (("name", a.name), ("kind", a.kind),
                                                ("from", a.source_field), ("map", a.map),
                                                ("ranges", a.ranges), ("default", a.default),
                                                ("measurer", a.measurer))
                             if v is not None} for a in self.attributes],
             "size": self.size, "seed": self.seed, "resolution": self.resolution}
        if self.corruptions:
            d["corruptions"] = {"mode": self.corruption_mode, "partitions": [
                {"kind": p.kind, "strengths": list(p.strengths)} for p in self.corruptions]}
        if self.description:
            d["description"] = self.description
        return d


# --------------------------------------------------------------------------- loading
_VAR_RE = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def expand_path(value: str) -> str:
    """Expand ``${VAR}`` / ``${VAR:-default}`` and ``~``; unset variables without a default stay."""
    def sub(m: re.Match) -> str:
        v = os.environ.get(m.group(1))
        if v:
            return v
        return m.group(2) if m.group(2) is not None else m.group(0)
    return os.path.expanduser(_VAR_RE.sub(sub, value))


class _Checker:
    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, fld: str, msg: str) -> ManifestError:
        return ManifestError(f"{self.where}: field '{fld}' {msg}")

    def typed(self, d: dict, key: str, types: tuple[type, ...], fld: str, *, required: bool = False,
              default: Any = None) -> Any:
        if key not in d or d[key] is None:
            if required and key in d:
                raise self.fail(fld, "is empty (YAML reads null, ~ and a missing value as "
                                "nothing; quote the text, e.g. \"null\")")
            if required:
                raise self.fail(fld, "is required (the shipped manifests, e.g. data_manifests/world-32.yaml, "
                                "show the layout)")
            return default
        v = d[key]
        # YAML `yes` is a bool, and bool is an int subclass: accept it only where bool is asked for
        if isinstance(v, types) and (bool in types or not isinstance(v, bool)):
            return v
        names = " or ".join(t.__name__ for t in types)
        raise self.fail(fld, f"must be of type {names}, got {type(v).__name__} {v!r}")


def manifest_from_dict(data: Any, where: str = "<manifest>") -> Manifest:
    """Validate a parsed YAML document; ``where`` (the file) prefixes every error."""
    c = _Checker(where)
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: the manifest must be a mapping, got {type(data).__name__}")
    known = {"name", "source", "attributes", "corruptions", "size", "seed", "resolution",
             "description"}
    for k in data:
        if k not in known:
            raise c.fail(str(k), f"is unknown; allowed: {sorted(known)}")
    name = c.typed(data, "name", (str,), "name", required=True)

    src = c.typed(data, "source", (dict,), "source", required=True)
    stype = c.typed(src, "type", (str,), "source.type", required=True)
    if stype not in _SOURCE_OPTIONS:
        raise c.fail("source.type", f"must be one of {list(_SOURCE_OPTIONS)}, got {stype!r}")
    opts: dict[str, Any] = {}
    for k in src:
        if k == "type":
            continue
        if k not in _SOURCE_OPTIONS[stype]:
            raise c.fail(f"source.{k}", f"is not an option of source type {stype!r}; allowed: "
                         f"{sorted(_SOURCE_OPTIONS[stype])}")
        opts[k] = c.typed(src, k, _SOURCE_OPTIONS[stype][k], f"source.{k}")
    for k in _REQUIRED.get(stype, ()):
        c.typed(src, k, _SOURCE_OPTIONS[stype][k], f"source.{k}", required=True)
    if stype == "hf" and ("name" in opts) == ("path" in opts):
        raise c.fail("source.name", "or 'source.path' is required for source type 'hf' (exactly one)")
    if stype == "world" and "config" in opts:
        from probe.data.world import WorldConfig
        allowed = {f.name for f in dataclasses.fields(WorldConfig)}
        for k in opts["config"]:
            if k not in allowed:
                raise c.fail(f"source.config.{k}", f"is not a WorldConfig field; allowed: {sorted(allowed)}")
        try:
            WorldConfig.from_dict(opts["config"])
        except (TypeError, ValueError) as e:
            raise c.fail("source.config", f"is invalid: {e}") from None
    if stype == "imagenet_x" and opts.get("annotations", "multi") not in ("multi", "top"):
        raise c.fail("source.annotations", f"must be 'multi' or 'top', got {opts['annotations']!r}")
    if stype == "sprites":
        from probe.data.sprites import SpritesConfig
        try:
            SpritesConfig.from_dict(opts.get("config", {}))
        except (TypeError, ValueError) as e:
            raise c.fail("source.config", f"is invalid: {e}") from None
    if "min_size" in opts and opts["min_size"] < 1:
        raise c.fail("source.min_size", f"must be >= 1, got {opts['min_size']}")

    attrs_raw = c.typed(data, "attributes", (list,), "attributes", default=None)
    if attrs_raw is None and stype in ("table", "hf"):
        raise c.fail("attributes", f"is required for source type {stype!r} (name the columns to use)")
    attributes = tuple(_attribute(c, a, i) for i, a in enumerate(attrs_raw or []))
    if attrs_raw is None:
        attributes = _default_attributes(stype, opts)
    seen: set[str] = set()
    for i, a in enumerate(attributes):
        if a.name in seen:
            raise c.fail(f"attributes[{i}].name", f"repeats attribute {a.name!r}")
        seen.add(a.name)
    if attrs_raw is not None:
        fields = source_fields(stype, opts)
        if fields is not None:
            check_attribute_fields(attributes, fields, where, f"source type {stype!r}")

    corruptions, mode = _corruptions(c, data.get("corruptions"))
    for p in corruptions:
        if p.kind in seen or (mode != "all" and "corruption" in seen):
            raise c.fail("corruptions", f"attribute {p.kind!r} / 'corruption' clashes with a declared attribute")

    size = c.typed(data, "size", (int,), "size")
    if size is not None and size < 1:
        raise c.fail("size", f"must be >= 1, got {size}")
    if stype in GENERATED and size is None:
        raise c.fail("size", f"is required for source type {stype!r} (the number of images)")
    seed = c.typed(data, "seed", (int,), "seed", default=0)
    res = c.typed(data, "resolution", (int,), "resolution")
    if res is not None and res < 4:
        raise c.fail("resolution", f"must be >= 4, got {res}")
    desc = c.typed(data, "description", (str,), "description", default="")
    return Manifest(name=name, source_type=stype, source_options=opts, attributes=attributes,
                    corruptions=corruptions, corruption_mode=mode, size=size, seed=seed,
                    resolution=res, description=desc,
                    path=None if where.startswith("<") else where)


def _attribute(c: _Checker, a: Any, i: int) -> AttributeSpec:
    f = f"attributes[{i}]"
    if isinstance(a, str):  # shorthand: just a name (kind inferred later is not allowed)
        raise c.fail(f, f"must be a mapping with 'name' and 'kind', got the string {a!r}")
    if not isinstance(a, dict):
        raise c.fail(f, f"must be a mapping, got {type(a).__name__}")
    for k in a:
        if k not in ("name", "kind", "from", "map", "ranges", "default", "measurer"):
            raise c.fail(f"{f}.{k}", "is unknown; allowed: name, kind, from, map, ranges, default, measurer")
    name = c.typed(a, "name", (str,), f"{f}.name", required=True)
    if not _NAME_RE.match(name):
        raise c.fail(f"{f}.name", f"must be letters, digits, '_', '.', '-', got {name!r}")
    kind = c.typed(a, "kind", (str,), f"{f}.kind", required=True)
    if kind not in KINDS:
        raise c.fail(f"{f}.kind", f"must be 'categorical' or 'continuous', got {kind!r}")
    src = c.typed(a, "from", (str,), f"{f}.from", default=name)
    mp = c.typed(a, "map", (dict,), f"{f}.map")
    ranges = c.typed(a, "ranges", (dict,), f"{f}.ranges")
    if mp is not None and ranges is not None:
        raise c.fail(f"{f}.map", "and 'ranges' are exclusive")
    if ranges is not None:
        for label, r in ranges.items():
            ok = (isinstance(r, list) and len(r) == 2
                  and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in r)
                  and r[0] <= r[1])
            if not ok:
                raise c.fail(f"{f}.ranges.{label}", f"must be [low, high] numbers with low <= high, got {r!r}")
        ranges = {k: (r[0], r[1]) for k, r in ranges.items()}
    measurer = c.typed(a, "measurer", (str,), f"{f}.measurer")
    if measurer is not None and ":" not in measurer:
        raise c.fail(f"{f}.measurer", f"must be a measurer spec 'family:name' (e.g. analytic:luminance, "
                                      f"clip:a dark photo|a bright photo), got {measurer!r}")
    return AttributeSpec(name=name, kind=kind, source_field=src, map=mp, ranges=ranges,
                         default=a.get("default"), measurer=measurer)


def source_fields(stype: str, opts: dict) -> list[str] | None:
    """The record fields a source of type ``stype`` provides, when known without opening it
    (world, folder, skimage); ``None`` for tables and datasets (known once they are read)."""
    if stype == "world":
        from probe.data.world import WorldConfig, factors_at
        cfg = WorldConfig.from_dict(opts.get("config", {}))
        return [str(col) for col in factors_at([0], seed=0, config=cfg).columns]
    if stype == "sprites":
        from probe.data.sprites import factor_kinds
        return list(factor_kinds())
    if stype == "imagenet_x":
        from probe.data.imagenet_x import record_fields
        return list(record_fields(opts.get("annotations", "multi")))
    if stype == "folder":
        from probe.data.sources import FolderSource
        return list(FolderSource.fields)
    if stype == "skimage":
        from probe.data.sources import SkimageSource
        return list(SkimageSource.fields)
    return None


def check_attribute_fields(attributes: Any, fields: Any, where: str, source: str) -> None:
    """Refuse an attribute whose source field (``from``, default its name) the source lacks,
    listing the fields that exist (a misspelled name would otherwise give a column of NaN)."""
    have = list(fields)
    for i, a in enumerate(attributes):
        if a.source_field not in have:
            key = f"attributes[{i}].from" if a.source_field != a.name else f"attributes[{i}].name"
            raise ManifestError(f"{where}: field '{key}' is {a.source_field!r}, which {source} does not "
                                f"provide; it provides: {', '.join(have)}")


def _default_attributes(stype: str, opts: dict) -> tuple[AttributeSpec, ...]:
    """Attributes used when the manifest lists none (world: every factor and bin; folder: class)."""
    if stype == "world":
        from probe.data.world import WorldConfig, factor_specs
        cfg = WorldConfig.from_dict(opts.get("config", {}))
        out = []
        for name, spec in factor_specs(cfg).items():
            if spec.role == "nuisance":
                continue
            out.append(AttributeSpec(name, spec.kind, name))
            if spec.kind == "continuous":
                out.append(AttributeSpec(f"{name}_bin", "categorical", f"{name}_bin"))
        return tuple(out)
    if stype == "sprites":
        from probe.data.sprites import factor_kinds
        return tuple(AttributeSpec(name, kind, name) for name, kind in factor_kinds().items())
    if stype == "imagenet_x":
        from probe.data.imagenet_x import record_fields
        return tuple(AttributeSpec(name, kind, name) for name, kind in record_fields(opts.get("annotations", "multi")).items()
                     if name not in ("file", "class_index"))
    if stype == "folder":
        return (AttributeSpec("class", "categorical", "class"),)
    if stype == "skimage":
        return (AttributeSpec("photo", "categorical", "photo"),)
    return ()


def _corruptions(c: _Checker, raw: Any) -> tuple[tuple[CorruptionPartition, ...], str]:
    if raw is None:
        return (), "grid"
    mode = "grid"
    parts_raw = raw
    if isinstance(raw, dict):
        for k in raw:
            if k not in ("mode", "partitions"):
                raise c.fail(f"corruptions.{k}", "is unknown; allowed: mode, partitions")
        mode = c.typed(raw, "mode", (str,), "corruptions.mode", default="grid")
        if mode not in CORRUPTION_MODES:
            raise c.fail("corruptions.mode", f"must be one of {list(CORRUPTION_MODES)}, got {mode!r}")
        parts_raw = c.typed(raw, "partitions", (list,), "corruptions.partitions", required=True)
    elif not isinstance(raw, list):
        raise c.fail("corruptions", f"must be a list of partitions or a mapping, got {type(raw).__name__}")
    out, seen = [], set()
    for i, p in enumerate(parts_raw):
        f = f"corruptions.partitions[{i}]" if isinstance(raw, dict) else f"corruptions[{i}]"
        if not isinstance(p, dict):
            raise c.fail(f, f"must be a mapping with 'kind' and 'strengths', got {p!r}")
        for k in p:
            if k not in ("kind", "strengths"):
                raise c.fail(f"{f}.{k}", "is unknown; allowed: kind, strengths")
        kind = c.typed(p, "kind", (str,), f"{f}.kind", required=True)
        if kind not in CORRUPTIONS:
            raise c.fail(f"{f}.kind", f"must be one of {sorted(CORRUPTIONS)}, got {kind!r}")
        if kind in seen:
            raise c.fail(f"{f}.kind", f"repeats corruption {kind!r}")
        seen.add(kind)
        st = c.typed(p, "strengths", (list,), f"{f}.strengths", default=list(range(MAX_SEVERITY + 1)))
        for j, s in enumerate(st):
            if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 <= s <= MAX_SEVERITY:
                raise c.fail(f"{f}.strengths[{j}]", f"must be a number in [0, {MAX_SEVERITY}], got {s!r}")
        if not st:
            raise c.fail(f"{f}.strengths", "must not be empty")
        out.append(CorruptionPartition(kind, tuple(float(s) for s in st)))
    if not out:
        raise c.fail("corruptions", "must list at least one partition (or be omitted)")
    return tuple(out), mode


# The shipped manifests are package data (in the wheel, read through importlib.resources);
# data_manifests/ at the repository root is the user-facing copy of the same files, and
# tests/test_manifest.py checks that the two are byte-identical. The package copy is the one
# source of truth (a symlink would not survive a wheel; a build step would not run for a plain
# `pip install -e .` or a source checkout on sys.path).
SHIPPED_DIR = Path(str(resources.files("probe.data") / "manifests"))
"""The manifests shipped with the package (``probe/data/manifests/*.yaml``)."""


def shipped_manifests() -> list[str]:
    """Names of the shipped manifests (``load_manifest(name)`` reads them)."""
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.yaml")) if SHIPPED_DIR.is_dir() else []


def resolve_manifest_path(path: str | Path) -> Path:
    """A manifest file, or a shipped manifest's bare name (``"world"`` -> ``world.yaml``, looked up
    in ``./data_manifests/``, then among the manifests shipped with the package)."""
    p = Path(path)
    if p.is_file() or p.suffix or len(p.parts) > 1:
        return p
    for base in (Path("data_manifests"), SHIPPED_DIR):
        if (base / f"{p}.yaml").is_file():
            return base / f"{p}.yaml"
    return p


def load_manifest(path: str | Path) -> Manifest:
    """Read and validate a manifest YAML file, or a shipped one by name (``"world"``).

    Errors (:class:`ManifestError`) are one line naming the file and the field.
    """
    p = resolve_manifest_path(path)
    if not p.is_file():
        what = "is a folder, not a manifest file" if p.is_dir() else "manifest file not found"
        raise ManifestError(f"{p}: {what}; give a YAML file or a shipped name "
                            f"({', '.join(shipped_manifests()) or 'none shipped'})")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ManifestError(f"{p}: not valid YAML at {at}{problem}; fix the syntax there") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(f"{p}: cannot read the manifest ({e})") from None
    return manifest_from_dict(data, str(p))


__all__ = [
    "CORRUPTION_MODES",
    "KINDS",
    "AttributeSpec",
    "CorruptionPartition",
    "Manifest",
    "ManifestError",
    "expand_path",
    "load_manifest",
    "manifest_from_dict",
    "shipped_manifests",
    "declared_measurers",
    "source_fields",
]


def declared_measurers(manifest: dict) -> dict[str, str]:
    """attribute -> measurer spec a manifest (as a dict, e.g. a token store's header's) declares:
    :attr:`Manifest.measurers`; ``{}`` when it cannot be read back (an older or foreign header)."""
    try:
        return manifest_from_dict(dict(manifest), where="<manifest>").measurers
    except Exception:  # noqa: BLE001 - nothing declared: the default measurers apply
        return {}
