"""What the pipeline needs to know about a run's world, through the world registry (:mod:`probe.worlds`): the
world settings a shipped tokenizer was trained on, the manifest of a world run, and which of its factors are
probed. No world module is imported here (``tests/test_import_graph.py``).
"""
from __future__ import annotations

from typing import Any

#: the world a run renders when its config names no manifest (the demo's)
DEFAULT_WORLD = "attribute"


def world_settings(tokenizer_spec: str) -> dict[str, Any]:
    """The world settings a shipped tokenizer was trained on (``{}`` if it is not shipped)."""
    from probe import zoo

    if tokenizer_spec not in zoo.available():
        return {}
    return dict(zoo.config(tokenizer_spec).get("world", {}))


def world_manifest(size: int, seed: int, resolution: int, world: dict[str, Any]) -> Any:
    """A manifest of ``size`` images of the default world rendered with the settings ``world``, every factor an
    attribute (the world's :attr:`probe.worlds.World.manifest`)."""
    from probe import worlds

    return worlds.get(DEFAULT_WORLD).manifest(None, size=size, seed=seed, resolution=resolution, settings=world)


def world_of(store: Any) -> dict[str, Any] | None:
    """The world settings a store was rendered with (``None`` when its images are not a registered world's)."""
    from probe import worlds

    if worlds.of_store(store) is None:
        return None
    return dict(store.manifest.get("source", {}).get("config", {}))


def world_attributes(world: dict[str, Any], name: str = DEFAULT_WORLD) -> list[str]:
    """The factors of a run of world ``name`` rendered with the settings ``world`` that are probed."""
    from probe import worlds

    return worlds.get(name).probe_attributes(world)


__all__ = ["DEFAULT_WORLD", "world_attributes", "world_manifest", "world_of", "world_settings"]
