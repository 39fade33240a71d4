"""Measurers by name: ``"family:name"`` specs, a registry of families, and the default measurer of an attribute
(a world's default, looked up through :mod:`probe.worlds`, else the analytic measurer of that name)."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from probe.measure.base import Measurer

if TYPE_CHECKING:
    from probe.worlds import World

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


def measurer_for(attribute: str, *, spec: str | None = None, world: str | World | None = None,
                 **kw: Any) -> Measurer:
    """The measurer of ``attribute``: ``spec`` when given (e.g. from a manifest), else the default of ``world``
    (a name, a :class:`probe.worlds.World`, e.g. a store's :func:`probe.worlds.of_store`; default: the one every
    known world agrees on), else the analytic measurer of that name (``luminance``, ``contrast``, ...). ``kw`` go
    to the measurer's constructor (e.g. ``device`` for the oracle and CLIP).

    Examples:
        >>> measurer_for("lighting").name, measurer_for("shape", world="attribute").kind
        ('lighting', 'categorical')
        >>> measurer_for("contrast").kind
        'continuous'
    """
    from probe import worlds

    if spec is not None:
        return get_measurer(spec, **kw)
    default = worlds.default_measurer(attribute, world)
    if default is not None:
        return get_measurer(default, **kw)
    from probe.measure.analytic import ANALYTIC_NAMES

    if attribute in ANALYTIC_NAMES:
        return get_measurer(f"analytic:{attribute}", **kw)
    known = [*worlds.default_measurers(world), *ANALYTIC_NAMES]
    raise KeyError(f"no default measurer for attribute {attribute!r} (known: {', '.join(dict.fromkeys(known))}); "
                   "name one with a spec such as 'oracle:shape' or 'clip:a dark photo|a bright photo'")
