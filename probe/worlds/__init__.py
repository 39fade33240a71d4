"""Ground-truth worlds: everything that belongs to one synthetic world with known factors, behind one idea.

A :class:`World` bundles what generic code may need to know about a world without importing it: how its
images are drawn (the manifest source that renders it), its factors and their kinds, the default measurer
of each factor, the masks its measurers read, and (optionally) its prompts and its judge for text-guided
optimization. Each world is one module of this package that calls :func:`register`; the generic packages
(``swap``, ``measure``, ``optimize``, ``pipeline``) import only this registry, never a world module.

Adding a world: write ``probe/worlds/<name>.py`` building a :class:`World` and calling :func:`register`,
and add its module to :data:`_BUILTIN` so lookups find it without an import elsewhere.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: world name -> the module that registers it (imported on first lookup)
_BUILTIN: dict[str, str] = {"sprites": "probe.worlds.sprites"}

_REGISTRY: dict[str, World] = {}

FACTOR_KINDS = ("continuous", "categorical", "circular")


@dataclass(frozen=True)
class World:
    """One ground-truth world.

    Attributes:
        name: the world's name (``"attribute"``, ``"sprites"``, ...).
        source_type: the manifest source ``type`` that renders this world's images.
        factors: factor name -> kind, one of :data:`FACTOR_KINDS` (circular: a hue in [0, 1) turns).
        measurers: factor name -> default measurer spec (``"family:name"``, see :mod:`probe.measure`);
            factors without one are untested by swaps unless the user names a measurer.
        sample: ``sample(n, *, seed, resolution, **settings) -> (images [n, 3, H, W] in [0, 1], factors
            DataFrame)``.
        masks: ``masks(factors DataFrame, resolution) -> [n, 1, H, W]`` foreground masks the measurers read
            (None when no measurer needs one).
        prompts: ``prompts() -> list[str]`` text prompts for text-guided optimization (None: no prompts).
        judge: ``judge(device) -> callable(images [B,3,H,W], prompts) -> [B]`` a held-out scorer that is not
            the optimized CLIP (None: no judge).
        description: one line shown in listings.
    """

    name: str
    source_type: str
    factors: Mapping[str, str]
    measurers: Mapping[str, str] = field(default_factory=dict)
    sample: Callable[..., Any] | None = None
    masks: Callable[..., Any] | None = None
    prompts: Callable[[], list[str]] | None = None
    judge: Callable[..., Any] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        bad = {k: v for k, v in self.factors.items() if v not in FACTOR_KINDS}
        if bad:
            raise ValueError(f"world {self.name!r}: factor kinds must be one of {FACTOR_KINDS}, got {bad}")

    def circular(self) -> tuple[str, ...]:
        """The circular factors (hues)."""
        return tuple(k for k, v in self.factors.items() if v == "circular")


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
