"""Image sources: where images and their raw attribute values come from.

Every source is a small picklable object (paths, names and lists only, so DataLoader workers and
torchrun ranks can copy it) with::

    len(source)                           -> number of items
    source.item(i, resolution) -> (image [3, R, R] float in [0, 1], ref: str, record: dict)
    source.ref(i)                         -> the stable reference of item i (cheap, no decoding)
    source.fields                         -> {field name: "categorical" | "continuous"} (known
                                             before loading anything; may be empty for tables)

``item`` raises :class:`~probe.data.transforms.SkipImage` for an image that cannot be used.

Types: ``world`` (the synthetic attribute world), ``folder`` (image files, class per
sub-folder), ``table`` (CSV/TSV/parquet/Arrow of paths or encoded bytes plus attribute
columns, or a CelebA ``list_attr_celeba.txt``), ``hf`` (a Hugging Face dataset by hub name, or a
``save_to_disk`` folder), ``skimage`` (colour photos bundled with scikit-image, offline).
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from probe.data import world as world_mod
from probe.data.transforms import DEFAULT_MIN_SIZE, SkipImage, load_as_tensor
from probe.errors import TokenprobeError
from probe.hub import hub_offline, hub_reachable

log = logging.getLogger("probe.data")

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff",
                                     ".webp", ".ppm", ".pgm", ".pbm", ".jfif")


class SourceError(TokenprobeError, RuntimeError):
    """A source that cannot be opened at all (missing folder, dataset not cached, ...)."""


def _py(v: Any) -> Any:
    """numpy / torch scalars -> plain Python scalars (Arrow- and JSON-friendly)."""
    if isinstance(v, (np.generic,)):
        return v.item()
    if isinstance(v, torch.Tensor) and v.numel() == 1:
        return v.item()
    return v


# --------------------------------------------------------------------------- world
class WorldSource:
    """The synthetic attribute world (:mod:`probe.data.world`); image ``i`` is world index ``i``.

    Renders a whole chunk around the requested index and keeps it (per process; not pickled),
    because vectorised chunk rendering is far faster than one image at a time and images are
    chunk-independent.
    """

    def __init__(self, size: int, seed: int = 0, config: world_mod.WorldConfig | None = None,
                 chunk: int = 64) -> None:
        self.size, self.seed, self.config, self.chunk = int(size), int(seed), config, int(chunk)
        self._cache: tuple[int, int, torch.Tensor, list[dict]] | None = None

    def __len__(self) -> int:
        return self.size

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_cache": None}

    @property
    def fields(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, spec in world_mod.factor_specs(self.config).items():
            out[name] = spec.kind
            if spec.kind == "continuous" and spec.role != "nuisance":
                out[f"{name}_bin"] = "categorical"
        return out

    def ref(self, i: int) -> str:
        return world_mod.world_ref(self.seed, i)

    def items(self, indices: Sequence[int], resolution: int) -> list[tuple[torch.Tensor, str, dict]]:
        """Many items in one vectorised render (what a DataLoader batch asks for)."""
        df = world_mod.factors_at(list(indices), seed=self.seed, config=self.config)
        images, _ = world_mod.render(df, resolution, self.config)
        recs = [{k: _py(v) for k, v in r.items()} for r in df.to_dict("records")]
        return [(images[k], self.ref(int(i)), recs[k]) for k, i in enumerate(indices)]

    def item(self, i: int, resolution: int) -> tuple[torch.Tensor, str, dict]:
        c = self._cache
        if c is None or c[0] != resolution or not c[1] <= i < c[1] + len(c[3]):
            start = (i // self.chunk) * self.chunk
            stop = min(self.size, start + self.chunk)
            images, df = world_mod.sample_range(start, stop, seed=self.seed,
                                                resolution=resolution, config=self.config)
            records = [{k: _py(v) for k, v in r.items()} for r in df.to_dict("records")]
            c = self._cache = (resolution, start, images, records)
        return c[2][i - c[1]].clone(), world_mod.world_ref(self.seed, i), dict(c[3][i - c[1]])


# --------------------------------------------------------------------------- folder
class FolderSource:
    """Image files under ``root`` (sorted), class = first-level sub-folder.

    Records: ``class`` (folder name) and ``class_index`` (its rank among the sorted class
    folders, which for ImageNet's wnid folders is the standard class index), ``file`` (path
    relative to root). Files directly under ``root`` get class ``"."``.
    """

    def __init__(self, root: str | Path, *, extensions: Sequence[str] = IMAGE_EXTENSIONS,
                 recursive: bool = True, min_size: int = DEFAULT_MIN_SIZE) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise SourceError(f"image folder {str(self.root)!r} does not exist or is not a folder")
        exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
        it: Iterator[Path] = self.root.rglob("*") if recursive else self.root.glob("*")
        self.files = sorted(str(p.relative_to(self.root)) for p in it
                            if p.suffix.lower() in exts and p.is_file())
        if not self.files:
            raise SourceError(f"image folder {str(self.root)!r} holds no files with extensions "
                              f"{list(exts)}")
        self.classes = sorted({Path(f).parts[0] if len(Path(f).parts) > 1 else "."
                               for f in self.files})
        self._class_index = {c: k for k, c in enumerate(self.classes)}
        self.min_size = int(min_size)

    def __len__(self) -> int:
        return len(self.files)

    fields: ClassVar[dict[str, str]] = {"class": "categorical", "class_index": "categorical",
                                        "file": "categorical"}

    def ref(self, i: int) -> str:
        return str(self.root / self.files[i])

    def item(self, i: int, resolution: int) -> tuple[torch.Tensor, str, dict]:
        rel = self.files[i]
        parts = Path(rel).parts
        cls = parts[0] if len(parts) > 1 else "."
        path = self.root / rel
        img = load_as_tensor(path, resolution, min_size=self.min_size)
        return img, str(path), {"class": cls, "class_index": self._class_index[cls], "file": rel}


# --------------------------------------------------------------------------- table
def read_table(path: str | Path, fmt: str | None = None) -> pd.DataFrame:
    """Read CSV / TSV / parquet / feather / Arrow IPC, or a CelebA ``list_attr_celeba.txt``."""
    p = Path(path)
    if not p.exists():
        raise SourceError(f"table {str(p)!r} does not exist")
    fmt = (fmt or p.suffix.lstrip(".")).lower()
    try:
        if fmt == "celeba-attr":
            # line 1: image count; line 2: the 40 names; then "000001.jpg -1 1 ..." (+-1 -> bool)
            df = pd.read_csv(p, sep=r"\s+", skiprows=1, engine="python")
            df = (df > 0).reset_index().rename(columns={"index": "path"})
            return df
        if fmt in ("csv",):
            return pd.read_csv(p)
        if fmt in ("tsv", "tab"):
            return pd.read_csv(p, sep="\t")
        if fmt in ("parquet", "pq"):
            return pd.read_parquet(p)
        if fmt in ("feather", "arrow", "ipc"):
            import pyarrow as pa
            from pyarrow import feather
            try:
                return feather.read_table(p).to_pandas()
            except pa.ArrowInvalid:  # Arrow IPC *stream* files (what `datasets` writes)
                with pa.memory_map(str(p)) as src:
                    return pa.ipc.open_stream(src).read_all().to_pandas()
    except SourceError:
        raise
    except Exception as e:
        raise SourceError(f"cannot read table {str(p)!r} as {fmt}: {type(e).__name__}: {e}") from e
    raise SourceError(f"table {str(p)!r}: unknown format {fmt!r}; use csv, tsv, parquet, "
                      "feather/arrow or celeba-attr")


def _decode_cell(v: Any, root: Path | None) -> str | Path | bytes:
    """A table / HF image cell -> something :func:`load_as_tensor` accepts."""
    if isinstance(v, dict):  # the `datasets` Image feature without decoding: {"bytes", "path"}
        if v.get("bytes"):
            return bytes(v["bytes"])
        v = v.get("path")
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    if isinstance(v, str) and v:
        p = Path(v)
        return p if p.is_absolute() or root is None else root / p
    raise SkipImage(f"empty or unsupported image cell ({type(v).__name__})")


class TableSource:
    """Rows of a table: an image column (paths relative to ``root``, or encoded bytes) plus
    attribute columns (every other column is a record field)."""

    def __init__(self, path: str | Path, *, image_column: str = "path", root: str | Path | None = None,
                 format: str | None = None, min_size: int = DEFAULT_MIN_SIZE) -> None:
        self.path = Path(path)
        df = read_table(self.path, format)
        if image_column not in df.columns:
            raise SourceError(f"table {str(self.path)!r} has no image column {image_column!r}; "
                              f"columns: {list(df.columns)[:20]}")
        self.image_column = image_column
        self.root = Path(root) if root is not None else self.path.parent
        self.images = df[image_column].tolist()
        self.records = [{k: _py(v) for k, v in r.items()}
                        for r in df.drop(columns=[image_column]).to_dict("records")]
        self.fields = {c: ("continuous" if pd.api.types.is_float_dtype(df[c]) else "categorical")
                       for c in df.columns if c != image_column}
        self.min_size = int(min_size)

    def __len__(self) -> int:
        return len(self.images)

    def ref(self, i: int) -> str:
        v = self.images[i]
        if isinstance(v, dict) and not v.get("bytes"):
            v = v.get("path")
        if isinstance(v, str) and v:
            return str(v if Path(v).is_absolute() else self.root / v)
        return f"{self.path}#row={i}"

    def item(self, i: int, resolution: int) -> tuple[torch.Tensor, str, dict]:
        cell = _decode_cell(self.images[i], self.root)
        return load_as_tensor(cell, resolution, min_size=self.min_size), self.ref(i), dict(self.records[i])


# --------------------------------------------------------------------------- Hugging Face
def _offline() -> bool:
    return hub_offline()


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub answers a TCP connect quickly (avoids ~25 s of retries when offline)."""
    return hub_reachable(timeout)


@contextlib.contextmanager
def _forced_offline() -> Iterator[None]:
    """Make `datasets` / `huggingface_hub` use the local cache only, for one call."""
    import datasets.config as dcfg
    import huggingface_hub.constants as hcst
    saved = (dcfg.HF_HUB_OFFLINE, hcst.HF_HUB_OFFLINE)
    dcfg.HF_HUB_OFFLINE = hcst.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        dcfg.HF_HUB_OFFLINE, hcst.HF_HUB_OFFLINE = saved


class HFSource:
    """A Hugging Face dataset: by hub ``name`` (online, or from the local cache) or a local
    ``save_to_disk`` folder (``path``). Images are decoded by us (so bad ones are skipped, not
    fatal); ClassLabel columns give their label names."""

    def __init__(self, name: str | None = None, *, path: str | Path | None = None,
                 split: str = "train", config: str | None = None, image_column: str = "image",
                 revision: str | None = None, min_size: int = DEFAULT_MIN_SIZE) -> None:
        import datasets

        self.name, self.split, self.min_size = name, split, int(min_size)
        if (name is None) == (path is None):
            raise SourceError("hf source: give exactly one of 'name' (hub id) or 'path' (a local "
                              "save_to_disk folder)")
        label = name or str(path)
        if path is not None:
            if not Path(path).exists():
                raise SourceError(f"hf source: local dataset folder {str(path)!r} does not exist")
            try:
                ds = datasets.load_from_disk(str(path))
            except Exception as e:
                raise SourceError(f"hf source: cannot load {str(path)!r} with load_from_disk: {e}") from e
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise SourceError(f"hf source {label!r}: no split {split!r}; have {list(ds)}")
                ds = ds[split]
        else:
            offline = _offline()
            cm = contextlib.nullcontext()
            if not offline and not _hub_reachable():
                log.warning("Hugging Face Hub unreachable: using the local cache only for %r", name)
                offline, cm = True, _forced_offline()
            try:
                with cm:
                    ds = datasets.load_dataset(name, config, split=split, revision=revision)
            except Exception as e:  # noqa: BLE001 - translate every failure into one clear message
                hint = ("offline mode is on (HF_DATASETS_OFFLINE / HF_HUB_OFFLINE) or the Hub is "
                        "unreachable, and the dataset is not in the local cache; run once online, "
                        "or use source.path (a save_to_disk folder) / a folder or table source"
                        if offline else "check the name, config and split")
                raise SourceError(f"hf source: cannot load dataset {name!r} (config={config!r}, "
                                  f"split={split!r}): {type(e).__name__}: {e}. {hint}") from None
        if image_column not in ds.column_names:
            raise SourceError(f"hf source {label!r}: no image column {image_column!r}; columns: "
                              f"{ds.column_names}")
        if isinstance(ds.features[image_column], datasets.Image):
            ds = ds.cast_column(image_column, datasets.Image(decode=False))
        self.ds, self.image_column, self.label = ds, image_column, label
        self._names = {c: f.names for c, f in ds.features.items() if isinstance(f, datasets.ClassLabel)}
        self.fields = {c: ("continuous" if getattr(f, "dtype", "").startswith("float") else "categorical")
                       for c, f in ds.features.items() if c != image_column}

    def __len__(self) -> int:
        return len(self.ds)

    def item(self, i: int, resolution: int) -> tuple[torch.Tensor, str, dict]:
        row = self.ds[int(i)]
        cell = row.pop(self.image_column)
        rec = {k: (self._names[k][v] if k in self._names and isinstance(v, int) and v >= 0 else _py(v))
               for k, v in row.items()}
        if hasattr(cell, "mode"):  # already a PIL image (e.g. a non-Image feature that decodes)
            return load_as_tensor(cell, resolution, min_size=self.min_size), self.ref(i), rec
        img = load_as_tensor(_decode_cell(cell, None), resolution, min_size=self.min_size)
        return img, self.ref(i), rec

    def ref(self, i: int) -> str:
        return f"hf:{self.label}:{self.split}:{i}"


# --------------------------------------------------------------------------- scikit-image
SKIMAGE_PHOTOS: tuple[str, ...] = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
                                   "immunohistochemistry", "retina", "motorcycle_left",
                                   "motorcycle_right")
"""The colour photographs that ship inside scikit-image (no download needed)."""


def load_skimage_photo(name: str) -> np.ndarray:
    """``[H, W, 3]`` uint8 photo from ``skimage.data`` (``motorcycle_left/right`` from the stereo pair)."""
    import skimage.data

    if name in ("motorcycle_left", "motorcycle_right"):
        left, right, _ = skimage.data.stereo_motorcycle()
        return left if name == "motorcycle_left" else right
    fn = getattr(skimage.data, name, None)
    if fn is None:
        raise SourceError(f"skimage source: no photo {name!r}; choose from {SKIMAGE_PHOTOS}")
    return fn()


class SkimageSource:
    """The colour photos bundled with scikit-image: a tiny offline real-photo set."""

    fields: ClassVar[dict[str, str]] = {"photo": "categorical"}

    def __init__(self, photos: Sequence[str] | None = None, *, min_size: int = DEFAULT_MIN_SIZE) -> None:
        self.photos = tuple(photos or SKIMAGE_PHOTOS)
        unknown = [p for p in self.photos if p not in SKIMAGE_PHOTOS]
        if unknown:
            raise SourceError(f"skimage source: unknown photo(s) {unknown}; choose from {SKIMAGE_PHOTOS}")
        self.min_size = int(min_size)
        self._cache: dict[tuple[int, int], torch.Tensor] = {}  # (index, resolution) -> image

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_cache": {}}

    def __len__(self) -> int:
        return len(self.photos)

    def ref(self, i: int) -> str:
        return f"skimage:{self.photos[i]}"

    def item(self, i: int, resolution: int) -> tuple[torch.Tensor, str, dict]:
        name = self.photos[i]
        key = (i, resolution)
        if key not in self._cache:  # nine small tensors at most: decode each photo once
            self._cache[key] = load_as_tensor(load_skimage_photo(name), resolution,
                                              min_size=self.min_size)
        return self._cache[key].clone(), self.ref(i), {"photo": name}


SOURCE_TYPES = {"world": WorldSource, "folder": FolderSource, "table": TableSource,
                "hf": HFSource, "skimage": SkimageSource}

__all__ = [
    "IMAGE_EXTENSIONS",
    "SKIMAGE_PHOTOS",
    "SOURCE_TYPES",
    "FolderSource",
    "HFSource",
    "SkimageSource",
    "SourceError",
    "TableSource",
    "WorldSource",
    "load_skimage_photo",
    "read_table",
]
