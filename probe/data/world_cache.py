"""Rendered attribute-world training sets, cached on disk.

Rendering tens of thousands of world images costs minutes; a training run (and every run that repeats its
data settings) reads them back from ``<cache_dir>/<prefix>_<sha1 of the settings>.pt`` instead:

- :func:`render_world`: world images ``(seed, 0..n-1)`` as uint8, their factors and (optionally) object masks;
- :func:`render_partners`: for each of those images, a partner that differs in one rendered factor
  (:data:`PAIR_FACTORS`), the one-factor pairs of the tokenizer recipe (``probe.training.tokenizer``);
- :func:`world_config`: a ``WorldConfig`` from a dict of overrides, with errors that name the field.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

if TYPE_CHECKING:  # pandas and the world module are imported where used
    import pandas as pd

    from probe.data.world import WorldConfig


def world_config(overrides: dict[str, Any]) -> WorldConfig:
    """A ``probe.data.world.WorldConfig`` with ``overrides`` applied (errors name the unknown field)."""
    from probe.data import world as world_mod

    try:
        return world_mod.WorldConfig.from_dict(overrides)
    except ValueError as exc:
        raise ValueError(f"world overrides: {exc}") from None


def disk_cached(prefix: str, key: dict[str, Any], cache_dir: str | Path | None,
                 build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``build()``'s dict, cached as ``<cache_dir>/<prefix>_<sha1 of key>.pt`` (no cache when ``cache_dir`` is None).

    Our own cache of tensors and DataFrames, hence ``weights_only=False``; the key is stored beside the data.
    """
    text = json.dumps(key, sort_keys=True)
    path = Path(cache_dir) / f"{prefix}_{hashlib.sha1(text.encode()).hexdigest()[:12]}.pt" if cache_dir else None
    if path is not None and path.exists():
        return torch.load(path, weights_only=False)
    blob = build()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({**blob, "key": text}, path)
    return blob


def to_u8(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Images in [0, 1] (tensor or array) -> uint8 tensor of the same shape."""
    return (torch.as_tensor(images).clamp(0, 1) * 255).round().to(torch.uint8)


def render_world(n: int, *, seed: int, resolution: int, world: dict[str, Any], cache_dir: str | Path | None,
                 chunk: int = 2000, masks: bool = False
                 ) -> tuple[torch.Tensor, pd.DataFrame] | tuple[torch.Tensor, pd.DataFrame, torch.Tensor]:
    """Rendered world images ``[n,3,H,W]`` as uint8 and their factors DataFrame, cached on disk.

    Image ``i`` is world image ``(seed, i)`` (``probe.data.world.sample_range``), rendered in chunks of
    ``chunk`` for a progress bar; the cache key hashes (n, seed, resolution, world overrides). With ``masks``,
    also the object masks ``[n,1,H,W]`` as uint8 (a cache of its own).
    """
    import pandas as pd

    from probe.data import world as world_mod

    def build() -> dict[str, Any]:
        wcfg = world_config(world)
        imgs, frames, ms = [], [], []
        for start in tqdm(range(0, n, chunk), desc=f"rendering {n} world images", leave=False):
            x, f, m = world_mod.sample_range(start, min(n, start + chunk), seed=seed, resolution=resolution,
                                             config=wcfg, return_masks=True)
            imgs.append(to_u8(x))
            frames.append(f)
            ms.append(to_u8(m))
        blob = {"images": torch.cat(imgs), "factors": pd.concat(frames, ignore_index=True)}
        return {**blob, "masks": torch.cat(ms)} if masks else blob

    key = {"n": n, "seed": seed, "res": resolution, "world": world}
    blob = disk_cached("world", {**key, "masks": True} if masks else key, cache_dir, build)
    return (blob["images"], blob["factors"], blob["masks"]) if masks else (blob["images"], blob["factors"])


PAIR_FACTORS = ("shape", "obj_hue", "bg_hue", "obj_scale", "obj_x", "obj_y", "lighting", "bg_blur", "global_blur",
                "stripe_period", "stripe_angle", "stripe_phase")
"""The rendered world columns a partner image may differ in (``null`` is never rendered)."""


def render_partners(factors: pd.DataFrame, *, seed: int, resolution: int, world: dict[str, Any],
                    cache_dir: str | Path | None, chunk: int = 2000,
                    masks: bool = False) -> tuple[torch.Tensor, list[str]] | tuple[torch.Tensor, list[str], torch.Tensor]:
    """Partners of the images described by ``factors``: each re-rendered with one column of
    :data:`PAIR_FACTORS` (chosen uniformly) resampled uniformly over its range. Returns uint8
    ``[n,3,H,W]`` and the changed column per image (and with ``masks`` the object masks, uint8
    ``[n,1,H,W]``). Cached like :func:`render_world`."""
    from probe.data import world as world_mod

    n = len(factors)

    def build() -> dict[str, Any]:
        wcfg = world_config(world)
        specs = world_mod.factor_specs(wcfg)
        # a column pinned by the world settings (low == high) cannot differ: it would make identical pairs
        names = [f for f in PAIR_FACTORS if specs[f].kind == "categorical" or specs[f].range[0] < specs[f].range[1]]
        rng = np.random.default_rng([seed, 7_777])
        changed = [names[i] for i in rng.integers(0, len(names), n)]
        edited = factors.copy()
        for name in names:
            rows = np.flatnonzero(np.asarray(changed) == name)
            spec = specs[name]
            col = edited.columns.get_loc(name)
            if spec.kind == "categorical":
                vals = np.asarray(spec.levels, dtype=object)[rng.integers(0, len(spec.levels), len(rows))]
            else:
                vals = rng.uniform(spec.range[0], spec.range[1], len(rows))
            edited.iloc[rows, col] = vals
        imgs, ms = [], []
        for start in tqdm(range(0, n, chunk), desc=f"rendering {n} partner images", leave=False):
            x, m = world_mod.render(edited.iloc[start : start + chunk], resolution=resolution, config=wcfg)
            imgs.append(to_u8(x))
            ms.append(to_u8(m))
        blob = {"images": torch.cat(imgs), "changed": changed}
        return {**blob, "masks": torch.cat(ms)} if masks else blob

    key = {"n": n, "pairs_of_seed": seed, "res": resolution, "world": world}
    blob = disk_cached("partners", {**key, "masks": True} if masks else key, cache_dir, build)
    return (blob["images"], blob["changed"], blob["masks"]) if masks else (blob["images"], blob["changed"])
