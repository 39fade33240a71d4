"""Ground-truth worlds: everything that belongs to one synthetic world with known factors, behind one idea.

A :class:`World` bundles what generic code may need to know about a world without importing it: how its
images are drawn (the manifest source that renders it), its factors and their kinds, the default measurer
of each factor, the masks its measurers read, a default manifest, and (optionally) its prompts and its
judge for text-guided optimization. Each world is one module of this package that calls :func:`register`;
the generic packages (``swap``, ``measure``, ``optimize``, ``pipeline``) import only this registry, never a
world module (``tests/test_import_graph.py`` checks it).

Adding a world: write ``probe/worlds/<name>.py`` building a :class:`World` and calling :func:`register`,
and add its module to :data:`_BUILTIN` so lookups find it without an import elsewhere.

Examples:
    >>> from probe import worlds
    >>> world = worlds.get("attribute")
    >>> world.factors["obj_hue"], world.measurers["lighting"]
    ('circular', 'analytic:lighting')
    >>> worlds.for_source("world").name
    'attribute'
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from probe.data.manifest import Manifest
    from probe.store import TokenStore

#: world name -> the module that registers it (imported on first lookup)
_BUILTIN: dict[str, str] = {"attribute": "probe.worlds.attribute", "sprites": "probe.worlds.sprites"}

_REGISTRY: dict[str, World] = {}

FACTOR_KINDS = ("continuous", "categorical", "circular")


@dataclass(frozen=True)
class World:
    """One ground-truth world.

    Attributes:
        name: the world's name (``"attribute"``, ``"sprites"``, ...).
        source_type: the manifest source ``type`` that renders this world's images.
        factors: factor name -> kind, one of :data:`FACTOR_KINDS` (circular: a hue in [0, 1) turns); the
            factors a user studies (nuisances left out; a never-rendered null factor included).
        measurers: factor name -> default measurer spec (``"family:name"``, see :mod:`probe.measure`);
            factors without one are untested by swaps unless the user names a measurer.
        sample: ``sample(n, *, seed, resolution, config=None, return_masks=False) -> (images [n, 3, H, W] in
            [0, 1], factors DataFrame[, masks [n, 1, H, W]])``.
        masks: ``masks(manifest, index [n], resolution) -> [n, 1, H, W] | None``: the object masks the
            measurers read of the manifest's images ``index`` (None when the images have none, e.g. corrupted).
        manifest: ``manifest(tokenizer_spec, *, size, seed, resolution, settings=None) -> Manifest``: the default
            manifest for a tokenizer (the world settings a shipped tokenizer was trained on, else the default
            world; ``settings`` given: those).
        attributes: ``attributes(settings) -> list[str]``: the probe targets of a world rendered with
            ``settings`` (the manifest source's ``config``); default: every factor.
        prompts: ``prompts() -> list[str]`` text prompts for text-guided optimization (None: no prompts).
        judge: ``judge(oracle, prompts) -> callable(images [B,3,H,W]) -> [B]`` a held-out scorer that is not
            the optimized CLIP (None: no judge).
        description: one line shown in listings.
    """

    name: str
    source_type: str
    factors: Mapping[str, str]
    measurers: Mapping[str, str] = field(default_factory=dict)
    sample: Callable[..., Any] | None = None
    masks: Callable[..., Any] | None = None
    manifest: Callable[..., Any] | None = None
    attributes: Callable[[Mapping[str, Any]], list[str]] | None = None
    prompts: Callable[[], list[str]] | None = None
    judge: Callable[..., Any] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        bad = {k: v for k, v in self.factors.items() if v not in FACTOR_KINDS}
        if bad:
            raise ValueError(f"world {self.name!r}: factor kinds must be one of {FACTOR_KINDS}, got {bad}")
        unknown = sorted(set(self.measurers) - set(self.factors))
        if unknown:
            raise ValueError(f"world {self.name!r}: default measurers for unknown factors {unknown}")

    def circular(self) -> tuple[str, ...]:
        """The circular factors (hues)."""
        return tuple(k for k, v in self.factors.items() if v == "circular")

    def probe_attributes(self, settings: Mapping[str, Any] | None = None) -> list[str]:
        """The factors a run probes on this world rendered with ``settings`` (see ``attributes``)."""
        return list(self.attributes(dict(settings or {}))) if self.attributes else list(self.factors)


def register(world: World) -> None:
    """Make ``world`` known by its name (a later registration replaces one)."""
    _REGISTRY[world.name] = world


def _load_builtins() -> None:
    for module in _BUILTIN.values():
        importlib.import_module(module)


def available() -> list[str]:
    """The names of every known world."""
    _load_builtins()
    return sorted(_REGISTRY)


def get(name: str) -> World:
    """The world called ``name``; a KeyError names the known ones."""
    if name not in _REGISTRY and name in _BUILTIN:
        importlib.import_module(_BUILTIN[name])
    if name not in _REGISTRY:
        raise KeyError(f"unknown world {name!r}; known: {', '.join(available()) or 'none'}")
    return _REGISTRY[name]


def for_source(source_type: str) -> World | None:
    """The world whose images a manifest source of this ``type`` renders (None for photos, folders, ...)."""
    _load_builtins()
    return next((w for w in _REGISTRY.values() if w.source_type == source_type), None)


def _manifest_of(store: TokenStore | Any) -> Manifest | None:
    """The store header's manifest (None when it keeps none or this version cannot read it back)."""
    from probe.data.manifest import manifest_from_dict

    mdict = dict(getattr(store, "manifest", {}) or {})
    if not mdict:
        return None
    try:
        return manifest_from_dict(mdict, where=f"{getattr(store, 'path', 'store')}/header.json")
    except Exception:  # a manifest this version cannot read back: no world, the callers say what they miss
        return None


def of_store(store: TokenStore | Any) -> World | None:
    """The world a token store's images come from (by its manifest's source type; None for other sources)."""
    source = (dict(getattr(store, "manifest", {}) or {})).get("source", {})
    stype = source.get("type") if isinstance(source, Mapping) else None
    return for_source(str(stype)) if stype else None


def store_masks(store: TokenStore | Any) -> torch.Tensor | None:
    """Object masks ``[M, 1, R, R]`` of every row of a store whose world draws them (``None`` otherwise, e.g.
    photos or corrupted world images): what the mask-reading measurers (object hue, background sharpness) need."""
    import numpy as np

    from probe.data.rematerialise import store_resolution

    world = of_store(store)
    if world is None or world.masks is None:
        return None
    manifest = _manifest_of(store)
    if manifest is None:
        return None
    index = np.asarray(store.attributes["index"], dtype=np.int64)
    return world.masks(manifest, index, store_resolution(store))


def default_measurer(attribute: str, world: str | World | None = None) -> str | None:
    """The default measurer spec of ``attribute``: ``world``'s (a name or a :class:`World`), else the one every
    known world that has the attribute agrees on (None when no world has one; a KeyError when worlds disagree:
    name the world, e.g. the store's, :func:`of_store`)."""
    if world is not None:
        w = get(world) if isinstance(world, str) else world
        return w.measurers.get(attribute)
    _load_builtins()
    specs = {w.name: w.measurers[attribute] for w in _REGISTRY.values() if attribute in w.measurers}
    if len(set(specs.values())) > 1:
        raise KeyError(f"attribute {attribute!r} has a different default measurer in each of the worlds "
                       f"{sorted(specs)}; name the world (or a measurer spec)")
    return next(iter(specs.values()), None)


def default_measurers(world: str | World | None = None) -> dict[str, str]:
    """attribute -> default measurer spec of ``world`` (default: of every known world; the first wins)."""
    if world is not None:
        return dict((get(world) if isinstance(world, str) else world).measurers)
    out: dict[str, str] = {}
    for name in available():
        for a, spec in _REGISTRY[name].measurers.items():
            out.setdefault(a, spec)
    return out
