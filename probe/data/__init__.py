"""Labelled image partitions: the synthetic world, corruptions, sources, manifests, datasets.

The contract used by the encode engine::

    from probe.data import load_manifest, dataset_from_manifest, collate_skip_none
    ds = dataset_from_manifest(load_manifest("data_manifests/world.yaml"), resolution=64)
    ds[i] -> {"image": [3, H, W] float in [0, 1], "ref": str, "attrs": dict, "index": i}
             or None (skipped; logged on the "probe.data" logger, recorded in ds.skipped)
    loader = DataLoader(ds, batch_size=64, num_workers=4, collate_fn=collate_skip_none)
    for images, refs, attrs, n_skipped in loader: ...   # images [B, 3, H, W]

Submodules are imported lazily so ``import probe.data`` stays cheap.
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Manifest": ("probe.data.manifest", "Manifest"),
    "load_manifest": ("probe.data.manifest", "load_manifest"),
    "ManifestError": ("probe.data.manifest", "ManifestError"),
    "dataset_from_manifest": ("probe.data.dataset", "dataset_from_manifest"),
    "collate_skip_none": ("probe.data.dataset", "collate_skip_none"),
    "Batch": ("probe.data.dataset", "Batch"),
    "ManifestDataset": ("probe.data.dataset", "ManifestDataset"),
    "SourceError": ("probe.data.sources", "SourceError"),
    "SkipImage": ("probe.data.transforms", "SkipImage"),
    "corrupt": ("probe.data.corruptions", "corrupt"),
    "CORRUPTIONS": ("probe.data.corruptions", "CORRUPTIONS"),
    "WorldConfig": ("probe.data.world", "WorldConfig"),
    "FACTORS": ("probe.data.world", "FACTORS"),
}
_SUBMODULES = {"world", "corruptions", "sources", "manifest", "transforms", "dataset", "filters"}

__all__ = [  # noqa: RUF022 - lazy names, then submodules
    "Batch",
    "CORRUPTIONS",
    "FACTORS",
    "Manifest",
    "ManifestDataset",
    "ManifestError",
    "SkipImage",
    "SourceError",
    "WorldConfig",
    "collate_skip_none",
    "corrupt",
    "dataset_from_manifest",
    "load_manifest",
    "corruptions",
    "dataset",
    "filters",
    "manifest",
    "sources",
    "transforms",
    "world",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    if name in _SUBMODULES:
        return importlib.import_module(f"probe.data.{name}")
    raise AttributeError(f"module 'probe.data' has no attribute {name!r}")
