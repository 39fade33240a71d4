"""The token store: tokens, pre-quantization features and attributes of an image set.

A store is a folder::

    OUT/
      header.json              what made it (tokenizer, manifest, versions, layout), see below
      codebook.safetensors     the tokenizer's codebook ``[K, C]`` (optional)
      chunks/chunk-00000.arrow one Arrow IPC stream file per chunk of ``chunk_size`` images
      chunks/chunk-00001.arrow ...

Rows: ``index`` (the global image index in the manifest), ``ref`` (where the image came from),
one column per attribute, ``tokens [N]`` int64 and ``features [N, C]`` float16.

The chunk plan is fixed when a store is created: chunk ``c`` holds the images whose global index
lies in ``[c * chunk_size, (c + 1) * chunk_size)`` (fewer rows when images were skipped), sorted by
index. A chunk file is written to a temporary name and renamed into place, so it either exists
complete or not at all; the set of chunk files *is* the chunk index. A run killed at any point
resumes after the last complete chunk, and because chunk contents depend only on the chunk id,
shards written by several processes (each a store of its own holding some chunk ids) merge into
exactly the store one process would have written.

The chunk files are plain Arrow stream files carrying the ``datasets`` feature metadata, so
``datasets.Dataset.from_file`` reads them memory-mapped; :attr:`TokenStore.dataset` gives them
as one :class:`datasets.Dataset`.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from probe.errors import TokenprobeError

if TYPE_CHECKING:  # heavy imports, made where used
    import datasets
    import pandas as pd
    import torch

FORMAT = "tokenprobe-store/1"
HEADER = "header.json"
CODEBOOK = "codebook.safetensors"
CHUNK_DIR = "chunks"
RESERVED_COLUMNS = ("index", "ref", "tokens", "features")
#: attribute column types a store accepts (Arrow type names, as written in the header)
ATTRIBUTE_TYPES = ("string", "float64", "int64", "bool")
#: header keys that must agree for a run to resume into (or merge with) a store
IDENTITY_KEY = "identity"


class StoreError(TokenprobeError, RuntimeError):
    """A store that is missing, corrupt, incomplete or does not match the run."""


class StoreMismatchError(StoreError):
    """A run or a shard made with a different tokenizer / manifest / layout than the store."""


class StoreLockedError(StoreError):
    """Another process is writing the same store."""


LOCK = ".tokenprobe.lock"
SKIPPED_KEY = b"tokenprobe_skipped"  # chunk schema metadata: JSON [[index, ref, reason], ...]


# ----------------------------------------------------------------------------- helpers


def config_hash(identity: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of ``identity`` (what must agree for two runs to share chunks)."""
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def package_versions() -> dict[str, str]:
    """Versions of the packages whose behaviour shapes a store's contents (from the installed
    distributions' metadata, so nothing heavy is imported)."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str] = {}
    for dist in ("tokenprobe", "torch", "numpy", "pyarrow", "datasets", "torchvision", "pillow"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "absent"
    return out


def chunk_name(chunk_id: int) -> str:
    """File name of chunk ``chunk_id`` inside ``chunks/``."""
    return f"chunk-{chunk_id:05d}.arrow"


def _chunk_id(name: str) -> int | None:
    if name.startswith("chunk-") and name.endswith(".arrow"):
        stem = name[len("chunk-") : -len(".arrow")]
        if stem.isdigit():
            return int(stem)
    return None


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some platforms cannot open directories; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _commit_file(tmp: Path, final: Path) -> None:
    """Atomically move a fully written ``tmp`` into place (a single rename on one filesystem)."""
    os.replace(tmp, final)
    _fsync_dir(final.parent)


def _tmp_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.tmp-{os.getpid()}")


def _write_json_atomic(path: Path, obj: Any) -> None:
    tmp = _tmp_name(path)
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, default=str)  # key order kept: attribute column order
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    _commit_file(tmp, path)


def read_header(path: Path) -> dict[str, Any]:
    """The validated ``header.json`` of the store in ``path`` (a :class:`StoreError` names what is wrong)."""
    path = Path(path)
    hp = path / HEADER
    redo = "; run `tokenprobe tokenize` with --no-resume into that folder to rebuild the store"
    if not path.exists():
        raise StoreError(f"no token store at {path}: the folder does not exist; check the path, "
                         "or make the store with `tokenprobe tokenize --out` first")
    if not hp.exists():
        raise StoreError(f"no token store at {path}: {hp} is missing (not a store, or one whose first "
                         "run failed); make the store with `tokenprobe tokenize --out` first")
    try:
        header = json.loads(hp.read_text())
    except (OSError, ValueError) as exc:
        raise StoreError(f"corrupt token store header {hp}: {exc}{redo}") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise StoreError(f"{hp} is not a tokenprobe store header (expected format {FORMAT!r}){redo}")
    for key in ("layout", IDENTITY_KEY, "config_hash", "attributes"):
        if key not in header:
            raise StoreError(f"corrupt token store header {hp}: key {key!r} is missing{redo}")
    return header


def _arrow_type(name: str) -> pa.DataType:
    if name not in ATTRIBUTE_TYPES:
        raise StoreError(f"attribute type {name!r} is not one of {ATTRIBUTE_TYPES}")
    return {"string": pa.string(), "float64": pa.float64(), "int64": pa.int64(), "bool": pa.bool_()}[name]


def chunk_schema(attributes: Mapping[str, str], num_tokens: int, token_dim: int) -> pa.Schema:
    """The Arrow schema of every chunk, with the ``datasets`` feature metadata attached."""
    from datasets import Features

    fields = [pa.field("index", pa.int64()), pa.field("ref", pa.string())]
    fields += [pa.field(name, _arrow_type(t)) for name, t in attributes.items()]
    fields.append(pa.field("tokens", pa.list_(pa.int64(), num_tokens)))
    fields.append(pa.field("features", pa.list_(pa.list_(pa.float16(), token_dim), num_tokens)))
    schema = pa.schema(fields)
    return Features.from_arrow_schema(schema).arrow_schema


# ----------------------------------------------------------------------------- writing


@dataclass
class ChunkRows:
    """Rows of one chunk, in global-index order.

    Attributes:
        index: ``[m]`` int64 global image indices, strictly increasing.
        refs: ``m`` image references.
        attributes: attribute name -> ``m`` values (``None`` for a missing value).
        tokens: ``[m, N]`` int64.
        features: ``[m, N, C]`` (stored as float16).
    """

    index: np.ndarray
    refs: Sequence[str]
    attributes: Mapping[str, Sequence[Any]]
    tokens: np.ndarray
    features: np.ndarray
    skipped: Sequence[tuple[int, str, str]] = ()  # (global index, ref, reason) of images left out


def _coerce(values: Sequence[Any], type_name: str, column: str, refs: Sequence[str]) -> pa.Array:
    conv = {"string": str, "float64": float, "int64": int, "bool": bool}[type_name]
    out = []
    for v, ref in zip(values, refs):
        if v is None:
            out.append(None)
            continue
        if hasattr(v, "item"):  # numpy / torch scalars
            v = v.item()
        try:
            out.append(conv(v))
        except (TypeError, ValueError) as exc:
            raise StoreError(
                f"attribute {column!r} of image {ref!r}: value {v!r} cannot be stored as {type_name}"
            ) from exc
    return pa.array(out, type=_arrow_type(type_name))


class StoreWriter:
    """Writes the chunks of one store (or one shard of it). Create with :func:`open_for_writing`."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        self.header = header
        layout = header["layout"]
        self.num_tokens = int(layout["num_tokens"])
        self.token_dim = int(layout["token_dim"])
        self.chunk_size = int(layout["chunk_size"])
        self.num_chunks = int(layout["num_chunks"])
        self.attribute_types: dict[str, str] = dict(header["attributes"])
        self.schema = chunk_schema(self.attribute_types, self.num_tokens, self.token_dim)
        (path / CHUNK_DIR).mkdir(parents=True, exist_ok=True)

    def done_chunks(self) -> set[int]:
        return list_chunks(self.path)

    def chunk_range(self, chunk_id: int) -> range:
        """Global image indices that belong to ``chunk_id``."""
        n = int(self.header["layout"]["num_images"])
        return range(chunk_id * self.chunk_size, min((chunk_id + 1) * self.chunk_size, n))

    def write_chunk(self, chunk_id: int, rows: ChunkRows) -> Path:
        """Write chunk ``chunk_id`` atomically (temporary file, fsync, rename). Returns its path."""
        if not 0 <= chunk_id < self.num_chunks:
            raise StoreError(f"chunk id {chunk_id} outside 0..{self.num_chunks - 1} of store {self.path}")
        m = len(rows.index)
        index = np.asarray(rows.index, dtype=np.int64)
        span = self.chunk_range(chunk_id)
        if m and (index[0] < span.start or index[-1] >= span.stop or np.any(np.diff(index) <= 0)):
            raise StoreError(f"chunk {chunk_id}: indices must be increasing and within [{span.start}, {span.stop})")
        tokens = np.ascontiguousarray(rows.tokens, dtype=np.int64).reshape(m, self.num_tokens)
        feats = np.ascontiguousarray(rows.features, dtype=np.float16).reshape(m, self.num_tokens, self.token_dim)
        refs = [str(r) for r in rows.refs]
        columns: dict[str, pa.Array] = {
            "index": pa.array(index, type=pa.int64()),
            "ref": pa.array(refs, type=pa.string()),
        }
        for name, t in self.attribute_types.items():
            if name not in rows.attributes:
                raise StoreError(f"chunk {chunk_id}: attribute {name!r} is missing from the rows")
            columns[name] = _coerce(rows.attributes[name], t, name, refs)
        columns["tokens"] = pa.FixedSizeListArray.from_arrays(pa.array(tokens.reshape(-1)), self.num_tokens)
        columns["features"] = pa.FixedSizeListArray.from_arrays(
            pa.FixedSizeListArray.from_arrays(pa.array(feats.reshape(-1)), self.token_dim), self.num_tokens
        )
        # the skipped images' reasons travel inside the chunk file (schema metadata), so they are
        # committed, resumed and merged with it atomically
        skipped = [[int(i), str(r), str(why)] for i, r, why in rows.skipped]
        schema = self.schema.with_metadata({**(self.schema.metadata or {}),
                                            SKIPPED_KEY: json.dumps(skipped).encode()})
        table = pa.Table.from_arrays(list(columns.values()), schema=schema)
        final = self.path / CHUNK_DIR / chunk_name(chunk_id)
        tmp = _tmp_name(final)
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
            writer.write_table(table)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        _commit_file(tmp, final)
        return final

    def write_codebook(self, codebook: torch.Tensor | np.ndarray) -> None:
        """Save the tokenizer's codebook ``[K, C]`` next to the chunks (float32 safetensors)."""
        import torch
        from safetensors.torch import save_file

        final = self.path / CODEBOOK
        if final.exists():
            return
        cb = torch.as_tensor(codebook).detach().to("cpu", torch.float32).contiguous()
        tmp = _tmp_name(final)
        save_file({"codebook": cb}, str(tmp))
        _commit_file(tmp, final)


def list_chunks(path: Path) -> set[int]:
    """Ids of the finished chunks in ``path`` (every ``chunks/chunk-NNNNN.arrow`` present)."""
    d = Path(path) / CHUNK_DIR
    if not d.is_dir():
        return set()
    return {cid for name in os.listdir(d) if (cid := _chunk_id(name)) is not None}


def _remove_stale_tmp(path: Path) -> None:
    """Remove temporary files that a killed writer left behind (never a finished chunk)."""
    for d in (path, path / CHUNK_DIR):
        if d.is_dir():
            for name in os.listdir(d):
                if name.startswith(".") and ".tmp-" in name:
                    (d / name).unlink(missing_ok=True)


def _identity_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    keys = sorted(set(a) | set(b))
    return [k for k in keys if config_hash({"v": a.get(k)}) != config_hash({"v": b.get(k)})]


def make_header(
    *,
    identity: Mapping[str, Any],
    attributes: Mapping[str, str],
    num_images: int,
    chunk_size: int,
    num_tokens: int,
    token_dim: int,
    codebook_size: int | None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A store header. ``identity`` is what must agree to resume (tokenizer, manifest, ...)."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    for name, t in attributes.items():
        if name in RESERVED_COLUMNS:
            raise StoreError(f"attribute name {name!r} clashes with a store column {RESERVED_COLUMNS}")
        _arrow_type(t)
    identity = dict(identity)
    identity["layout"] = {"num_images": int(num_images), "chunk_size": int(chunk_size)}
    header: dict[str, Any] = {
        "format": FORMAT,
        IDENTITY_KEY: identity,
        "config_hash": config_hash(identity),
        "attributes": dict(attributes),
        "layout": {
            "num_images": int(num_images),
            "chunk_size": int(chunk_size),
            "num_chunks": (int(num_images) + chunk_size - 1) // chunk_size,
            "num_tokens": int(num_tokens),
            "token_dim": int(token_dim),
            "codebook_size": None if codebook_size is None else int(codebook_size),
        },
        "versions": package_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    header.update(extra or {})
    return header


def check_compatible(existing: Mapping[str, Any], header: Mapping[str, Any], where: Path) -> None:
    if existing["config_hash"] == header["config_hash"] and existing["layout"] == header["layout"]:
        return
    diff = _identity_diff(existing[IDENTITY_KEY], header[IDENTITY_KEY])
    if existing["layout"] != header["layout"] and "layout" not in diff:
        diff.append("layout")
    raise StoreMismatchError(
        f"the store at {where} was made with a different {', '.join(diff) or 'configuration'} "
        f"(config hash {existing['config_hash'][:12]} there, {header['config_hash'][:12]} for this run); "
        f"refusing to resume into it. Use another output folder, or pass --no-resume / resume=False "
        f"to start that folder afresh. Its finished chunks were left untouched."
    )


def open_for_writing(path: str | os.PathLike, header: dict[str, Any], *, resume: bool = True) -> StoreWriter:
    """Create a store at ``path`` or, with ``resume``, reopen a matching unfinished one.

    With ``resume=False`` an existing store in ``path`` is removed first (its header, chunks and
    codebook only; other files in the folder are left alone). With ``resume=True`` a store made
    with a different identity raises :class:`StoreMismatchError` and nothing is touched.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise StoreError(f"cannot write a token store to {path}: it is a file, not a folder")
    has_header = (path / HEADER).exists()
    if has_header and not resume:
        read_header(path)  # only ever delete what is recognisably a store
        shutil.rmtree(path / CHUNK_DIR, ignore_errors=True)
        (path / CODEBOOK).unlink(missing_ok=True)
        (path / HEADER).unlink()
        has_header = False
    if not has_header and list_chunks(path):
        raise StoreError(f"{path} holds chunk files but no {HEADER}; refusing to write into it")
    if has_header and not list_chunks(path):
        # a store without a finished chunk holds nothing to lose: a rerun with a corrected
        # manifest or tokenizer starts it afresh instead of being refused as a mismatch
        try:
            check_compatible(read_header(path), header, path)
        except StoreError:  # another identity, or a broken header: replaced just the same
            (path / CODEBOOK).unlink(missing_ok=True)
            (path / HEADER).unlink()
            has_header = False
    if has_header:
        existing = read_header(path)
        check_compatible(existing, header, path)
        _remove_stale_tmp(path)
        return StoreWriter(path, existing)
    path.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(path)
    _write_json_atomic(path / HEADER, header)
    return StoreWriter(path, header)


def remove_store(path: str | os.PathLike) -> None:
    """Remove the store in ``path`` (header, chunks, codebook, shards; other files are left),
    if there is one; refuses a folder that is not recognisably a store."""
    path = Path(path)
    if not path.exists():
        return
    if not (path / HEADER).exists():
        if list_chunks(path):
            raise StoreError(f"{path} holds chunk files but no {HEADER}; not removing it, delete it yourself")
        return
    read_header(path)  # only ever delete what is recognisably a store
    for sub in (CHUNK_DIR, "shards"):
        shutil.rmtree(path / sub, ignore_errors=True)
    (path / CODEBOOK).unlink(missing_ok=True)
    (path / HEADER).unlink()


class store_lock:
    """Exclusive lock of a store folder while one process writes it (``with store_lock(path):``).

    A second writer of the same store is refused at once with :class:`StoreLockedError` instead of
    doing all the work again. The lock is an OS lock (``fcntl.flock``) on ``path/.tokenprobe.lock``,
    so a killed writer never leaves a stale lock behind. Creates ``path``. Where ``fcntl`` does not
    exist (Windows), no lock is taken.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def __enter__(self) -> store_lock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        self.path.mkdir(parents=True, exist_ok=True)
        lock = self.path / LOCK
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            try:
                pid = lock.read_text().strip() or "?"
            except OSError:
                pid = "?"
            raise StoreLockedError(
                f"another tokenprobe run (pid {pid}) is writing the store at {self.path} (lock {lock}); "
                "wait for it to finish, then run again (it resumes), or use another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fd is not None:
            import fcntl

            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


# ----------------------------------------------------------------------------- reading


def _read_chunk(file: Path, schema: pa.Schema) -> pa.Table:
    """Read one chunk memory-mapped (zero copy)."""
    try:
        source = pa.memory_map(str(file), "r")
        table = pa.ipc.open_stream(source).read_all()
    except (OSError, pa.ArrowInvalid) as exc:
        raise StoreError(f"corrupt chunk file {file}: {exc}; delete that file and run the same "
                         "`tokenprobe tokenize` command again to encode its images anew") from exc
    if not table.schema.equals(schema, check_metadata=False):
        raise StoreError(f"chunk file {file} does not have the columns its store header declares")
    return table


def _fixed_list_numpy(column: pa.ChunkedArray, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A fixed-size-list column as a numpy array ``[rows, *shape]``; zero copy when possible."""
    parts = []
    for chunk in column.chunks:
        flat = chunk
        for _ in shape:
            flat = flat.flatten()
        parts.append(flat.to_numpy(zero_copy_only=False).reshape((len(chunk), *shape)))
    if not parts:
        return np.zeros((0, *shape), dtype=dtype)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


class TokenStore:
    """A finished token store, read-only. Open with :meth:`TokenStore.open`.

    Attributes (lazily loaded):
        tokens: ``[M, N]`` int64.
        features: ``[M, N, C]`` float16 (a zero-copy memory-mapped view for a one-chunk store,
            one in-memory copy otherwise).
        attributes: DataFrame, one row per image: ``index``, ``ref`` and one column per attribute.
        header: the header dict.
        codebook: ``[K, C]`` float32 numpy array, or ``None`` when not saved.
    """

    def __init__(self, path: Path, header: dict[str, Any], tables: list[pa.Table]) -> None:
        self.path = path
        self.header = header
        self._tables = tables

    # -- construction -------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike, *, allow_incomplete: bool = False) -> TokenStore:
        """Open the store in ``path``; raises :class:`StoreError` naming the folder or file at fault."""
        path = Path(path)
        header = read_header(path)
        layout = header["layout"]
        done = list_chunks(path)
        missing = sorted(set(range(int(layout["num_chunks"]))) - done)
        if missing and not allow_incomplete:
            shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
            raise StoreError(
                f"token store {path} is incomplete: {len(missing)} of {layout['num_chunks']} chunks "
                f"missing in {path / CHUNK_DIR} ({shown}); run the same tokenize command again to resume"
            )
        schema = chunk_schema(header["attributes"], int(layout["num_tokens"]), int(layout["token_dim"]))
        tables = [_read_chunk(path / CHUNK_DIR / chunk_name(c), schema) for c in sorted(done)]
        return cls(path, header, tables)

    @staticmethod
    def merge(
        shard_paths: Iterable[str | os.PathLike], out: str | os.PathLike, *, move: bool = False
    ) -> TokenStore:
        """Merge shard stores (same identity and chunk plan) into one store at ``out``.

        Rows end up ordered by global image index (chunk ``c`` holds indices
        ``[c * chunk_size, (c + 1) * chunk_size)``). Chunks already in ``out`` are kept; the others
        are copied (or, with ``move``, renamed) from the shards. Raises :class:`StoreError` when a
        chunk is in no shard, and :class:`StoreMismatchError` when shards disagree.
        """
        shards = [Path(p) for p in shard_paths]
        out = Path(out)
        if not shards:
            raise StoreError("merge needs at least one shard path")
        headers = [read_header(s) for s in shards]
        ref = headers[0]
        for s, h in zip(shards[1:], headers[1:]):
            check_compatible(ref, h, s)
        base = {k: v for k, v in ref.items() if k != "shard"}
        writer = open_for_writing(out, base, resume=True)
        have = writer.done_chunks()
        where: dict[int, Path] = {}
        for s in shards:
            for c in sorted(list_chunks(s)):
                where.setdefault(c, s)
        missing = sorted(set(range(writer.num_chunks)) - have - set(where))
        if missing:
            raise StoreError(
                f"cannot merge into {out}: chunks {missing[:10]} are in none of the shards {[str(s) for s in shards]}"
            )
        for c in range(writer.num_chunks):
            if c in have:
                continue
            src = where[c] / CHUNK_DIR / chunk_name(c)
            dst = out / CHUNK_DIR / chunk_name(c)
            if move:
                _commit_file(src, dst)
            else:
                tmp = _tmp_name(dst)
                shutil.copyfile(src, tmp)
                with open(tmp, "rb+") as f:
                    os.fsync(f.fileno())
                _commit_file(tmp, dst)
        if not (out / CODEBOOK).exists():
            for s in shards:
                if (s / CODEBOOK).exists():
                    tmp = _tmp_name(out / CODEBOOK)
                    shutil.copyfile(s / CODEBOOK, tmp)
                    _commit_file(tmp, out / CODEBOOK)
                    break
        return TokenStore.open(out)

    # -- contents -----------------------------------------------------------------
    def __len__(self) -> int:
        return sum(t.num_rows for t in self._tables)

    def __repr__(self) -> str:
        lay = self.header["layout"]
        return (
            f"TokenStore({str(self.path)!r}, images={len(self)}/{lay['num_images']}, "
            f"N={lay['num_tokens']}, C={lay['token_dim']}, attributes={list(self.header['attributes'])})"
        )

    @property
    def num_tokens(self) -> int:
        return int(self.header["layout"]["num_tokens"])

    @property
    def token_dim(self) -> int:
        return int(self.header["layout"]["token_dim"])

    @property
    def attribute_names(self) -> list[str]:
        return list(self.header["attributes"])

    @property
    def manifest(self) -> dict[str, Any]:
        """The manifest (as a dict) the images came from."""
        return dict(self.header[IDENTITY_KEY].get("manifest") or {})

    @property
    def tokenizer(self) -> dict[str, Any]:
        """What identifies the tokenizer: class, config, sizes, weight fingerprint."""
        return dict(self.header[IDENTITY_KEY].get("tokenizer") or {})

    @property
    def skipped(self) -> int:
        """How many images of the plan are absent (skipped as unreadable) in the chunks present."""
        lay = self.header["layout"]
        size, n = int(lay["chunk_size"]), int(lay["num_images"])
        planned = sum(min(size, n - c * size) for c in list_chunks(self.path))
        return planned - len(self)

    @property
    def skipped_images(self) -> pd.DataFrame:
        """pandas DataFrame of the images left out as unreadable: ``index``, ``ref``, ``reason``."""
        import pandas as pd

        rows = []
        for t in self._tables:
            raw = (t.schema.metadata or {}).get(SKIPPED_KEY)
            if raw:
                rows += json.loads(raw)
        return pd.DataFrame(rows, columns=["index", "ref", "reason"]).astype({"index": "int64"})

    def _column(self, name: str) -> pa.ChunkedArray:
        if not self._tables:
            schema = chunk_schema(self.header["attributes"], self.num_tokens, self.token_dim)
            return pa.chunked_array([], type=schema.field(name).type)
        return pa.chunked_array([c for t in self._tables for c in t.column(name).chunks])

    @cached_property
    def tokens(self) -> np.ndarray:
        """``[M, N]`` int64 token ids."""
        return _fixed_list_numpy(self._column("tokens"), (self.num_tokens,), np.dtype(np.int64))

    @cached_property
    def features(self) -> np.ndarray:
        """``[M, N, C]`` float16 pre-quantization features."""
        return _fixed_list_numpy(self._column("features"), (self.num_tokens, self.token_dim), np.dtype(np.float16))

    @cached_property
    def index(self) -> np.ndarray:
        """``[M]`` int64 global image indices (increasing)."""
        return self._column("index").to_numpy()

    @cached_property
    def attributes(self) -> pd.DataFrame:
        """pandas DataFrame: ``index``, ``ref`` and one column per attribute, one row per image."""
        cols = ["index", "ref", *self.header["attributes"]]
        if not self._tables:
            schema = chunk_schema(self.header["attributes"], self.num_tokens, self.token_dim)
            return pa.Table.from_pylist([], schema=pa.schema([schema.field(c) for c in cols])).to_pandas()
        return pa.concat_tables([t.select(cols) for t in self._tables]).to_pandas()

    @cached_property
    def codebook(self) -> np.ndarray | None:
        """``[K, C]`` float32 codebook the tokens index into, or ``None`` when not saved."""
        f = self.path / CODEBOOK
        if not f.exists():
            return None
        from safetensors.numpy import load_file

        try:
            return load_file(str(f))["codebook"]
        except Exception as exc:  # safetensors raises several error types for a bad file
            raise StoreError(f"corrupt codebook file {f}: {exc}") from exc

    @property
    def dataset(self) -> datasets.Dataset:
        """All rows as one memory-mapped :class:`datasets.Dataset` (for ``.map``, ``.filter``, hub upload)."""
        from datasets import Dataset, concatenate_datasets

        files = [self.path / CHUNK_DIR / chunk_name(c) for c in sorted(list_chunks(self.path))]
        return concatenate_datasets([Dataset.from_file(str(f)) for f in files])

    # -- row access (the swap engine reads pairs of rows and the images behind them) --------------
    def select(self, rows: Sequence[int] | np.ndarray) -> TokenStore:
        """A read-only store of the rows at positions ``rows`` (0-based, in that order; repeats allowed),
        with this store's header and path: ``.tokens``, ``.features``, ``.attributes`` as for any store."""
        idx = np.asarray(rows, dtype=np.int64).reshape(-1)
        n = len(self)
        if len(idx) and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"row {int(idx.max() if idx.max() >= n else idx.min())} out of range for the "
                             f"{n} rows of store {self.path}")
        idx = np.where(idx < 0, idx + n, idx)
        if not self._tables:
            return TokenStore(self.path, self.header, [])
        table = pa.concat_tables(self._tables) if len(self._tables) > 1 else self._tables[0]
        return TokenStore(self.path, self.header, [table.take(pa.array(idx))])

    def iter_batches(self, batch: int = 256) -> Iterable[TokenStore]:
        """Consecutive row batches of at most ``batch`` rows, each a :meth:`select`-ed store."""
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        for s in range(0, len(self), batch):
            yield self.select(np.arange(s, min(s + batch, len(self))))
