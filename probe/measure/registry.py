"""Measurers by name: ``"family:name"`` specs, a registry of families, and a default per world attribute."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from probe.measure.base import Measurer

# family -> factory(name, **kw) -> Measurer
_FAMILIES: dict[str, Callable[..., Measurer]] = {}


def register(family: str, factory: Callable[..., Measurer]) -> None:
    """Make ``"<family>:<name>"`` specs build ``factory(name, **kw)`` (a later registration replaces one)."""
    if not family.isidentifier():
        raise ValueError(f"measurer family {family!r}: use a plain word (letters, digits, _)")
    _FAMILIES[family] = factory


def families() -> list[str]:
    """The registered families (``analytic``, ``oracle``, ``clip`` and any registered later)."""
    return sorted(_FAMILIES)


def _analytic(name: str, **kw: Any) -> Measurer:
    from probe.measure.analytic import analytic

    if kw:
        raise TypeError(f"analytic measurer {name!r} takes no options, got {sorted(kw)}")
    return analytic(name)


def _oracle(name: str, **kw: Any) -> Measurer:
    from probe.measure.oracle import OracleMeasurer

    return OracleMeasurer(name, **kw)


def _clip(name: str, **kw: Any) -> Measurer:
    from probe.measure.clip import ClipMeasurer, world_clip_measurer

    if "|" in name:  # inline prompt set: one class per prompt
        return ClipMeasurer([p.strip() for p in name.split("|")], **kw)
    return world_clip_measurer(name, **kw)


def _corruption(name: str, **kw: Any) -> Measurer:
    from probe.measure.corruption import corruption_measurer

    return corruption_measurer(name)


register("analytic", _analytic)
register("corruption", _corruption)
register("oracle", _oracle)
register("clip", _clip)


def get_measurer(spec: str | Measurer, **kw: Any) -> Measurer:
    """The measurer a spec names (see :mod:`probe.measure`); a measurer object (anything that is not a string:
    a :class:`Measurer` or an object with ``name``, ``kind`` and ``__call__``) is returned as is."""
    if not isinstance(spec, str):
        if not (callable(spec) and hasattr(spec, "name") and hasattr(spec, "kind")):
            raise TypeError(f"measurer: expected a 'family:name' string or a measurer (name, kind, __call__), "
                            f"got {type(spec).__name__}")
        return spec
    family, sep, name = spec.partition(":")
    if not sep or not name:
        raise ValueError(f"measurer spec {spec!r}: expected 'family:name', e.g. 'analytic:lighting', "
                         f"'oracle:shape', 'clip:shape'; families: {', '.join(families())}")
    if family not in _FAMILIES:
        raise KeyError(f"measurer spec {spec!r}: unknown family {family!r}; known: {', '.join(families())}")
    return _FAMILIES[family](name, **kw)


DEFAULTS: dict[str, str] = {
    "lighting": "analytic:lighting",
    "bg_blur": "analytic:bg_blur",
    "global_blur": "analytic:global_blur",
    "obj_hue": "analytic:obj_hue",
    "shape": "oracle:shape",
    "bg_hue": "oracle:bg_hue",
    "obj_scale": "oracle:obj_scale",
    "obj_x": "oracle:obj_x",
    "obj_y": "oracle:obj_y",
}
"""The default measurer of each known world attribute (pixels where a closed form reads it, else the oracle)."""


def measurer_for(attribute: str, *, spec: str | None = None, **kw: Any) -> Measurer:
    """The measurer of ``attribute``: ``spec`` when given (e.g. from a manifest), else :data:`DEFAULTS`, else the
    analytic measurer of that name (``luminance``, ``contrast``, ...). ``kw`` go to the measurer's constructor
    (e.g. ``device`` for the oracle and CLIP)."""
    if spec is not None:
        return get_measurer(spec, **kw)
    if attribute in DEFAULTS:
        return get_measurer(DEFAULTS[attribute], **kw)
    from probe.measure.analytic import ANALYTIC_NAMES

    if attribute in ANALYTIC_NAMES:
        return get_measurer(f"analytic:{attribute}", **kw)
    raise KeyError(f"no default measurer for attribute {attribute!r} (known: "
                   f"{', '.join([*DEFAULTS, *(a for a in ANALYTIC_NAMES if a not in DEFAULTS)])}); name one "
                   "with a spec such as 'oracle:shape' or 'clip:a dark photo|a bright photo'")
