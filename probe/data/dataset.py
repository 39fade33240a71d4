"""The map-style dataset built from a manifest: the contract with the encode engine.

``dataset_from_manifest(manifest, resolution)[i]`` is either
``{"image": [3, R, R] float32 in [0, 1], "ref": str, "attrs": {name: scalar}, "index": i}``
or ``None`` for an image that had to be skipped (the reason is logged on the ``probe.data``
logger with the file, and kept in ``dataset.skipped`` of the process that read it).
``collate_skip_none`` drops the ``None`` items and stacks the rest.

Items come in a fixed, deterministic order; the dataset pickles (DataLoader workers, torchrun).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from probe.data.corruptions import corrupt
from probe.data.manifest import (
    GENERATED,
    Manifest,
    check_attribute_fields,
    expand_path,
    load_manifest,
)
from probe.data.sources import (
    FolderSource,
    HFSource,
    SkimageSource,
    SourceError,
    TableSource,
    WorldSource,
)
from probe.data.transforms import SkipImage
from probe.data.world import WorldConfig, hash_int, hash_uniform

log = logging.getLogger("probe.data")

DEFAULT_RESOLUTION = 64


def _path_option(manifest: Manifest, key: str) -> str | None:
    v = manifest.source_options.get(key)
    if v is None:
        return None
    out = expand_path(v)
    if "${" in out:
        var = out[out.index("${") + 2:].split("}")[0].split(":")[0]
        raise SourceError(f"{manifest.path or manifest.name}: field 'source.{key}' uses the "
                          f"environment variable {var} which is not set: set it to the data "
                          f"location (got {v!r})")
    if not Path(out).exists():
        hint = (f" (set the environment variable(s) in {v!r} or edit the manifest)"
                if "${" in v else " (edit the manifest or create it)")
        raise SourceError(f"{manifest.path or manifest.name}: field 'source.{key}': {out!r} does "
                          f"not exist{hint}")
    return out


def build_source(manifest: Manifest, n_world: int | None = None
                 ) -> WorldSource | FolderSource | TableSource | HFSource | SkimageSource:
    """The source object a manifest declares (raises :class:`SourceError` when it can't open)."""
    o, t = manifest.source_options, manifest.source_type
    where = manifest.path or manifest.name
    mins = {"min_size": o["min_size"]} if "min_size" in o else {}
    try:
        if t == "world":
            cfg = WorldConfig.from_dict(o.get("config", {}))
            return WorldSource(n_world if n_world is not None else int(manifest.size or 0),
                               seed=manifest.seed, config=cfg)
        if t == "sprites":
            from probe.data.sprites import SpritesConfig, SpritesSource
            return SpritesSource(n_world if n_world is not None else int(manifest.size or 0),
                                 seed=manifest.seed, config=SpritesConfig.from_dict(o.get("config", {})))
        if t == "imagenet_x":
            from probe.data.imagenet_x import ImagenetXSource
            kw = {k: o[k] for k in ("extensions", "recursive", "filter_prototypes") if k in o}
            return ImagenetXSource(_path_option(manifest, "root"), annotations_kind=o.get("annotations", "multi"),
                                   **kw, **mins)
        if t == "folder":
            kw = {k: o[k] for k in ("extensions", "recursive") if k in o}
            return FolderSource(_path_option(manifest, "root"), **kw, **mins)
        if t == "table":
            kw = {k: o[k] for k in ("image_column", "format") if k in o}
            return TableSource(_path_option(manifest, "path"), root=_path_option(manifest, "root"),
                               **kw, **mins)
        if t == "hf":
            kw = {k: o[k] for k in ("split", "config", "image_column", "revision") if k in o}
            return HFSource(o.get("name"), path=_path_option(manifest, "path"), **kw, **mins)
        if t == "skimage":
            return SkimageSource(o.get("photos"), **mins)
    except SourceError as e:
        msg = str(e)
        raise SourceError(msg if msg.startswith(where) else f"{where}: {msg}") from None
    raise SourceError(f"{where}: unknown source type {t!r}")


class ManifestDataset(Dataset):
    """Items of a manifest in a fixed order (see the module docstring for the item layout)."""

    def __init__(self, manifest: Manifest, resolution: int) -> None:
        self.manifest, self.resolution = manifest, int(resolution)
        self.attribute_kinds = manifest.attribute_kinds
        parts = manifest.corruptions
        self.mode = manifest.corruption_mode
        self.variants = [(p.kind, s) for p in parts for s in p.strengths] if parts else []
        size = manifest.size
        n_world = None
        if manifest.source_type in GENERATED:
            per = len(self.variants) if parts and self.mode == "grid" else 1
            n_world = -(-int(size) // per)
        self.source = build_source(manifest, n_world)
        if manifest.source_type in ("table", "hf") and getattr(self.source, "fields", None):
            # known only now that the table / dataset is open: refuse a misspelled column before any work
            label = getattr(self.source, "path", None) or getattr(self.source, "label", manifest.source_type)
            check_attribute_fields(manifest.attributes, self.source.fields, manifest.path or manifest.name,
                                   f"the {manifest.source_type} source {str(label)!r}")
        n_src = len(self.source)
        # the item plan: (source index, variant index or -1); order is fixed
        if parts and self.mode == "grid":
            nv = len(self.variants)
            total = n_src * nv
            plan = np.stack([np.repeat(np.arange(n_src), nv), np.tile(np.arange(nv), n_src)], 1)
        else:
            total = n_src if (size is None or not parts) else max(int(size), n_src)
            plan = np.stack([np.arange(total) % max(n_src, 1), np.full(total, -1)], 1)
        if size is not None and size < total:
            if manifest.source_type in GENERATED:
                keep = np.arange(int(size))  # world items are already a seeded sample
            else:  # a seeded subset, kept in source order
                keep = np.sort(np.random.default_rng(manifest.seed).choice(total, int(size), replace=False))
            plan = plan[keep]
        self.plan = plan
        self.skipped: list[dict] = []

    def __len__(self) -> int:
        return len(self.plan)

    @property
    def attribute_names(self) -> list[str]:
        return list(self.attribute_kinds)

    def _corruptions_for(self, i: int) -> list[tuple[str, float]]:
        """(kind, severity) pairs applied to item ``i``, in manifest order."""
        parts = self.manifest.corruptions
        if not parts:
            return []
        if self.mode == "grid":
            return [self.variants[int(self.plan[i, 1])]]
        seed, idx = self.manifest.seed, np.array([i])
        if self.mode == "one":
            p = parts[min(int(hash_uniform(seed, idx, 101)[0] * len(parts)), len(parts) - 1)]
            k = min(int(hash_uniform(seed, idx, 102)[0] * len(p.strengths)), len(p.strengths) - 1)
            return [(p.kind, p.strengths[k])]
        out = []
        for j, p in enumerate(parts):  # mode "all": independent severities per kind
            k = min(int(hash_uniform(seed, idx, 200 + j)[0] * len(p.strengths)), len(p.strengths) - 1)
            out.append((p.kind, p.strengths[k]))
        return out

    def __getitem__(self, i: int) -> dict[str, Any] | None:
        if not 0 <= i < len(self.plan):
            raise IndexError(f"index {i} out of range for a dataset of {len(self.plan)} items")
        src_i = int(self.plan[i, 0])
        try:
            loaded = self.source.item(src_i, self.resolution)
        except SkipImage as e:
            return self._skip(i, src_i, e)
        return self._finish(i, *loaded)

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any] | None]:
        """A whole batch at once (used by the DataLoader): the world renders it vectorised."""
        if not hasattr(self.source, "items"):
            return [self[i] for i in indices]
        for i in indices:
            if not 0 <= i < len(self.plan):
                raise IndexError(f"index {i} out of range for a dataset of {len(self.plan)} items")
        loaded = self.source.items([int(self.plan[i, 0]) for i in indices], self.resolution)
        return [self._finish(i, *x) for i, x in zip(indices, loaded)]

    def _skip(self, i: int, src_i: int, e: Exception) -> None:
        ref = self.source.ref(src_i)
        self.skipped.append({"index": i, "ref": ref, "reason": str(e)})
        log.warning("skipped %s: %s", ref, e)

    def _finish(self, i: int, image: torch.Tensor, ref: str, record: dict) -> dict[str, Any]:
        """Item ``i`` from its ``image [3, H, W]``: the manifest's corruptions applied, its attributes read."""
        attrs = {a.name: a.value(record) for a in self.manifest.attributes}
        applied = self._corruptions_for(i)
        if applied:
            img = image[None]
            for kind, s in applied:
                img = corrupt(img, kind, s, seed=hash_int(self.manifest.seed, i, 7))
            image = img[0]
            sev = dict(applied)
            if self.mode in ("grid", "one"):
                attrs["corruption"] = applied[0][0]
            for p in self.manifest.corruptions:
                attrs[p.kind] = float(sev.get(p.kind, 0.0))
            ref = f"{ref}#item={i}:" + ",".join(f"{k}={s:g}" for k, s in applied)
        return {"image": image.contiguous(), "ref": ref, "attrs": attrs, "index": i}


class Batch(NamedTuple):
    """What :func:`collate_skip_none` returns."""

    images: torch.Tensor  # [B, 3, H, W]
    refs: list[str]
    attrs: list[dict]
    skipped: int  # items of the incoming batch that were None


def collate_skip_none(batch: list[dict | None]) -> Batch:
    """Drop skipped (``None``) items and stack the rest: ``Batch(images [B,3,H,W], refs, attrs, skipped)``.

    An all-skipped batch gives ``images`` of shape ``[0, 3, 0, 0]``.
    """
    kept = [b for b in batch if b is not None]
    skipped = len(batch) - len(kept)
    if not kept:
        return Batch(torch.zeros(0, 3, 0, 0), [], [], skipped)
    return Batch(torch.stack([b["image"] for b in kept]), [b["ref"] for b in kept],
                 [b["attrs"] for b in kept], skipped)


def dataset_from_manifest(manifest: Manifest | str | Path, resolution: int | None = None) -> ManifestDataset:
    """The dataset of a manifest (or a manifest file / shipped name) at ``resolution`` (default:
    the manifest's ``resolution``, then a world's ``config.resolution``, then 64). Raises :class:`~probe.data.sources.SourceError` when the source can't be opened."""
    if not isinstance(manifest, Manifest):
        manifest = load_manifest(manifest)
    res = resolution or manifest.resolution
    if res is None and manifest.source_type in GENERATED:
        res = manifest.source_options.get("config", {}).get("resolution")
    res = res or DEFAULT_RESOLUTION
    return ManifestDataset(manifest, int(res))


__all__ = ["Batch", "ManifestDataset", "build_source", "collate_skip_none", "dataset_from_manifest"]
