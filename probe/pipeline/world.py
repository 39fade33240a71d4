"""What the pipeline needs to know about the synthetic attribute world, in one place: the world settings a
shipped tokenizer was trained on, the manifest of a world run, and which of its factors are probed.

The only module of ``probe.pipeline`` that reads the world's own code; it moves behind the world registry
(:mod:`probe.worlds`) once the attribute world is registered there.
"""
from __future__ import annotations

from typing import Any


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


def world_of(store: Any) -> dict[str, Any] | None:
    """The world settings a store was rendered with (``None`` when its images are not the world's)."""
    source = store.manifest.get("source", {})
    if source.get("type") != "world":
        return None
    return dict(source.get("config", {}))


def world_attributes(world: dict[str, Any]) -> list[str]:
    """The factors of a world run that are probed: every factor except nuisances."""
    from probe.data.world import WorldConfig, factor_specs

    return [n for n, s in factor_specs(WorldConfig.from_dict(world)).items() if s.role != "nuisance"]


__all__ = ["world_attributes", "world_manifest", "world_of", "world_settings"]
