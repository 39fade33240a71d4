"""The images behind a token store's rows, made again from what the store recorded.

A store keeps, per row, the global ``index`` of the image in its manifest and its ``ref``; the header
keeps the manifest itself. The manifest's dataset is deterministic (a world image is a pure function of
its seed and index; folder, table and hub items are read by their index in a fixed order; corruptions are
seeded per item), so rebuilding the dataset and reading the stored indices gives the same images the
tokenizer saw. World rows also give their object masks (for measurers that need them; for a whole store,
:func:`probe.worlds.store_masks` asks the store's world).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from probe.store import TokenStore

_WORLD_REF = re.compile(r"^world:seed=(-?\d+):idx=(\d+)$")


def store_resolution(store: TokenStore) -> int:
    """The resolution a store's images were tokenized at (the tokenizer's, else the manifest's, else 64)."""
    res = store.tokenizer.get("image_size") if hasattr(store, "tokenizer") else None
    if res is None:
        res = (store.manifest.get("resolution") if hasattr(store, "manifest") else None) or 64
    return int(res)


def rematerialise(store: TokenStore, rows: Sequence[int] | np.ndarray, *, masks: bool = False,
                  resolution: int | None = None) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]:
    """Images ``[B, 3, R, R]`` in [0, 1] of the store rows ``rows`` (0-based row positions).

    With ``masks=True`` returns ``(images, masks)``; masks ``[B, 1, R, R]`` for world stores without
    corruptions, else ``None``. Raises ``ValueError`` naming the store when its manifest is missing.
    """
    from probe.data.dataset import dataset_from_manifest
    from probe.data.manifest import manifest_from_dict

    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    mdict = dict(store.manifest)
    if not mdict:
        raise ValueError(f"store {getattr(store, 'path', '?')}: its header keeps no manifest, so its images "
                         f"cannot be made again")
    res = int(resolution or store_resolution(store))
    index = np.asarray(store.attributes["index"])[rows]
    manifest = manifest_from_dict(mdict, where=f"{getattr(store, 'path', 'store')}/header.json")
    world_plain = manifest.source_type == "world" and not manifest.corruptions
    if world_plain:  # one vectorised render, with masks
        from probe.data.world import WorldConfig, factors_at, render

        cfg = WorldConfig.from_dict(manifest.source_options.get("config", {}))
        df = factors_at([int(i) for i in index], seed=manifest.seed, config=cfg)
        images, mk = render(df, res, cfg)
        return (images, mk) if masks else images
    ds = dataset_from_manifest(manifest, resolution=res)
    items = ds.__getitems__([int(i) for i in index])
    missing = [int(i) for i, it in zip(index, items) if it is None]
    if missing:
        raise ValueError(f"store {getattr(store, 'path', '?')}: images {missing[:5]} can no longer be read "
                         f"(their source changed)")
    images = torch.stack([it["image"] for it in items])
    return (images, None) if masks else images


def image_from_ref(ref: str, resolution: int, *, world_config: dict | None = None) -> torch.Tensor:
    """One image ``[3, R, R]`` from its store reference: ``world:seed=S:idx=I`` re-renders the world image
    (with ``world_config``, the manifest's world settings); a file path is read and resized as the encode
    engine does. References with a ``#item=...`` corruption suffix need the manifest: use
    :func:`rematerialise`."""
    m = _WORLD_REF.match(ref)
    if m:
        from probe.data.world import WorldConfig, factors_at, render

        cfg = WorldConfig.from_dict(dict(world_config or {}))
        images, _ = render(factors_at([int(m.group(2))], seed=int(m.group(1)), config=cfg), resolution, cfg)
        return images[0]
    if "#" in ref:
        raise ValueError(f"reference {ref!r} names a corrupted variant; re-make it with rematerialise(store, rows)")
    from probe.data.transforms import load_as_tensor

    return load_as_tensor(ref, resolution)
