"""The batch tokenization engine: manifest images -> tokenizer -> :class:`~probe.store.TokenStore`.

One call, :func:`tokenize_manifest`, runs the whole pipeline:

- device: cuda, then mps, then cpu, or forced (:func:`probe.device.resolve_device`); bf16
  autocast on CUDA;
- images are decoded and resized by DataLoader workers; batches reach the device with
  ``non_blocking`` copies;
- results are written chunk by chunk (see :mod:`probe.store`), so a killed run resumes after its
  last complete chunk and ends with the same store as an uninterrupted run;
- under ``torchrun`` (``WORLD_SIZE`` > 1) each rank encodes a share of the pending chunks into its
  own shard folder ``OUT/shards/rank-RRRRR``; rank 0 then merges them into ``OUT``.

Why the result does not depend on the number of processes or on where a run was cut: chunk ``c``
always holds images ``[c * chunk_size, (c + 1) * chunk_size)``, and its batches always start at the
chunk's first image, so every image is encoded in a batch of exactly the same composition.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from probe.device import resolve_device
from probe.errors import TokenprobeError
from probe.store import (
    CODEBOOK,
    HEADER,
    LOCK,
    ChunkRows,
    StoreError,
    StoreLockedError,
    StoreMismatchError,
    StoreWriter,
    TokenStore,
    check_compatible,
    list_chunks,
    make_header,
    open_for_writing,
    read_header,
    remove_store,
    store_lock,
)

if TYPE_CHECKING:
    from probe.data.manifest import Manifest
    from probe.tokenizers.base import Tokenizer

log = logging.getLogger(__name__)

SHARD_DIR = "shards"
DEFAULT_CHUNK_SIZE = 1024  # images per chunk: the unit of resumption and of work sharing
INFER_SCAN = 256  # items scanned at most to find a readable one for the attribute column types
SKIPPED_CSV = "skipped.csv"  # the store's table of skipped images (ref, reason), written at the end


class NothingTokenizedError(TokenprobeError, RuntimeError):
    """A run that would end, or ended, with no image in the store."""


class WorldSettingsWarning(UserWarning):
    """A world manifest rendered with other settings than those the tokenizer was trained on."""


def world_settings_diff(manifest: Manifest, trained: Mapping[str, Any] | None) -> list[str]:
    """Fields of ``WorldConfig`` where a world manifest differs from a tokenizer's training world
    (``trained``: the ``world`` of its zoo JSON); ``[]`` when either is unknown. Resolution and
    the render chunk size do not change the images' statistics and are not compared."""
    if not trained or getattr(manifest, "source_type", None) != "world":
        return []
    from probe.data.world import WorldConfig

    ours = dataclasses.asdict(WorldConfig.from_dict(manifest.source_options.get("config", {})))
    theirs = dataclasses.asdict(WorldConfig.from_dict(dict(trained)))
    return [k for k in ours if k not in ("resolution", "chunk_size") and
            json.dumps(ours[k], default=str) != json.dumps(theirs.get(k), default=str)]


# ----------------------------------------------------------------------------- distributed


@dataclass
class _Dist:
    """Rank bookkeeping; a single process is ``world_size == 1`` and every call is a no-op."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    owns_group: bool = False  # we initialised the process group, so we tear it down

    @classmethod
    def from_env(cls, device: torch.device) -> _Dist:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist

        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
        owns = False
        if not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            if device.type == "cuda":
                torch.cuda.set_device(local)
            dist.init_process_group(backend=backend)
            owns = True
        return cls(dist.get_world_size(), dist.get_rank(), local, owns)

    def broadcast(self, obj: Any) -> Any:
        """``obj`` of rank 0, on every rank."""
        if self.world_size == 1:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        if self.world_size == 1:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()


# ----------------------------------------------------------------------------- identity


def weights_fingerprint(module: torch.nn.Module) -> str:
    """A cheap fingerprint of a module's weights: per tensor its name, shape, dtype and a strided
    sample of at most ~64k values (hashing every byte of a 600M-parameter model takes seconds)."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        flat = t.detach().reshape(-1)
        step = max(1, flat.numel() // 65536)
        sample = flat[::step].to("cpu", copy=True).contiguous()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(sample.view(torch.uint8).numpy().tobytes() if sample.numel() else b"")
    return h.hexdigest()


def tokenizer_identity(tokenizer: Tokenizer) -> dict[str, Any]:
    """What identifies a tokenizer for resumption: class, config, sizes and weight fingerprint."""
    cls = type(tokenizer)
    cfg = tokenizer.config_dict() if hasattr(tokenizer, "config_dict") else None
    ident: dict[str, Any] = {
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "config": json.loads(json.dumps(cfg, default=str)) if cfg is not None else None,
        "num_tokens": int(tokenizer.num_tokens),
        "token_dim": int(tokenizer.token_dim),
        "codebook_size": int(tokenizer.codebook_size),
        "image_size": int(tokenizer.image_size),
    }
    if isinstance(tokenizer, torch.nn.Module):
        ident["weights"] = weights_fingerprint(tokenizer)
    return ident


def manifest_dict(manifest: Manifest) -> dict[str, Any]:
    """A JSON-safe dict of a manifest (its ``to_dict`` when it has one)."""
    if hasattr(manifest, "to_dict"):
        d = manifest.to_dict()
    elif dataclasses.is_dataclass(manifest):
        d = dataclasses.asdict(manifest)
    else:
        d = dict(vars(manifest))
    return json.loads(json.dumps(d, default=str))


def _manifest_kinds(manifest: Manifest) -> dict[str, str | None]:
    """Attribute name -> declared kind ("categorical" / "continuous" / None when unknown), in the
    manifest's order (declared attributes, then those its corruption partitions add)."""
    kinds = getattr(manifest, "attribute_kinds", None)
    if isinstance(kinds, Mapping):
        return {str(k): None if v is None else str(v) for k, v in kinds.items()}
    out: dict[str, str | None] = {str(n): None for n in getattr(manifest, "attribute_names", None) or []}
    for spec in getattr(manifest, "attributes", None) or []:
        name = getattr(spec, "name", None)
        if name is not None:
            out[str(name)] = getattr(spec, "kind", None)
    return out


def _value_type(value: Any) -> str:
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    return "string"


def _first_readable(dataset: Dataset, stop: int) -> Mapping[str, Any] | None:
    """The first non-skipped item among ``dataset[0:stop]``, fetched in growing batches through
    ``__getitems__`` where the dataset has it (the world renders just those images then, where
    ``dataset[i]`` would render a whole cached block)."""
    get = getattr(dataset, "__getitems__", None)
    start, step = 0, 1
    while start < stop:
        idx = list(range(start, min(start + step, stop)))
        for item in get(idx) if get is not None else [dataset[i] for i in idx]:
            if item is not None:
                return item
        start, step = idx[-1] + 1, min(2 * step, 64)
    return None


def attribute_types(manifest: Manifest, dataset: Dataset, num_images: int) -> dict[str, str]:
    """Store column type per attribute: continuous -> float64, otherwise the type of the value in
    the first readable item (bool / int64 / float64 / string). Order follows the manifest."""
    kinds = _manifest_kinds(manifest)
    item = _first_readable(dataset, min(num_images, INFER_SCAN))
    first: Mapping[str, Any] | None = None if item is None else (item.get("attrs") or {})
    names = list(kinds) if kinds else list(first or {})
    types: dict[str, str] = {}
    for name in names:
        if kinds.get(name) == "continuous":
            types[name] = "float64"
        elif first is not None and first.get(name) is not None:
            types[name] = _value_type(first[name])
        else:
            types[name] = "string"
    return types


def _matching_manifests(trained: Mapping[str, Any]) -> list[str]:
    """Names of the shipped world manifests whose settings match a tokenizer's training world."""
    from probe.data.manifest import load_manifest, shipped_manifests

    out = []
    for name in shipped_manifests():
        try:
            m = load_manifest(name)
        except Exception:  # noqa: BLE001 - a hint only; a broken shipped manifest has its own test
            continue
        if m.source_type == "world" and not world_settings_diff(m, trained):
            out.append(repr(name))
    return out


# ----------------------------------------------------------------------------- data


class _Indexed(Dataset):
    """Pairs every item with its global index, so skipped (``None``) items can be accounted for."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def _why(self, i: int, item: Any) -> tuple[str, str] | None:
        """(ref, reason) of a skipped item, from the dataset's own record of it where it keeps one."""
        if item is not None:
            return None
        for rec in reversed(getattr(self.dataset, "skipped", None) or []):
            if rec.get("index") == i:
                return str(rec.get("ref")), str(rec.get("reason"))
        return f"item {i}", "unreadable (the dataset gave no reason)"

    def __getitem__(self, i: int) -> tuple[int, Any, tuple[str, str] | None]:
        item = self.dataset[i]
        return i, item, self._why(i, item)

    def __getitems__(self, idx: Sequence[int]) -> list[tuple[int, Any, tuple[str, str] | None]]:
        # datasets that render a whole batch at once (the world) expose __getitems__; keep it
        if hasattr(self.dataset, "__getitems__"):
            return [(i, x, self._why(i, x)) for i, x in zip(idx, self.dataset.__getitems__(list(idx)))]
        return [self[i] for i in idx]


@dataclass
class _Batch:
    index: list[int]
    images: torch.Tensor | None  # [b, 3, H, W], None when every image of the batch was skipped
    refs: list[str]
    attrs: list[Mapping[str, Any]]
    skipped: int
    why: list[tuple[int, str, str]] = dataclasses.field(default_factory=list)  # (index, ref, reason)


def _collate(items: list[tuple[int, Any, tuple[str, str] | None]]) -> _Batch:
    """Drop skipped items and stack the images ``[b, 3, H, W]`` (``probe.data.collate_skip_none``),
    keeping the global index of every image that is left."""
    from probe.data import collate_skip_none

    b = collate_skip_none([x for _, x, _ in items])
    index = [i for i, x, _ in items if x is not None]
    why = [(i, *w) for i, x, w in items if x is None and w is not None]
    return _Batch(index=index, images=b.images if index else None, refs=[str(r) for r in b.refs],
                  attrs=list(b.attrs), skipped=int(b.skipped), why=why)


def auto_workers(local_world: int = 1) -> int:
    """Loader workers when none are asked for: the cores this process may use, less one for the
    model, at most 8 (0 on a machine of two cores or fewer, where a worker only competes)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    per_rank = cores // max(1, local_world)
    return 0 if per_rank <= 2 else min(8, per_rank - 1)


# ----------------------------------------------------------------------------- engine


@dataclass
class _Plan:
    header: dict[str, Any]
    pending: list[int]  # chunk ids still to encode, ascending
    error: str | None = None


def _shard_path(out: Path, rank: int) -> Path:
    return out / SHARD_DIR / f"rank-{rank:05d}"


def _done_chunks(out: Path) -> set[int]:
    """Chunks finished in ``out`` or in any shard folder left by an earlier (multi-process) run."""
    done = list_chunks(out)
    shards = out / SHARD_DIR
    if shards.is_dir():
        for d in shards.iterdir():
            done |= list_chunks(d)
    return done


def _merge_shards(out: Path) -> None:
    """Move every shard chunk into ``out`` (each move is one atomic rename) and drop the emptied
    shard folders. Safe to kill and rerun: a chunk is always in exactly one of the two places."""
    shards = out / SHARD_DIR
    if not shards.is_dir():
        return
    folders = sorted(d for d in shards.iterdir() if d.is_dir())
    with_chunks = [d for d in folders if list_chunks(d)]
    if with_chunks:
        TokenStore.merge(with_chunks, out, move=True)
    for d in folders:
        shutil.rmtree(d)  # only headers and codebooks are left in them
    shards.rmdir()


def _check_shards(out: Path, header: Mapping[str, Any]) -> None:
    """Refuse shard folders of an earlier run made with another tokenizer / manifest / layout."""
    shards = out / SHARD_DIR
    if shards.is_dir():
        for d in sorted(shards.iterdir()):
            if (d / HEADER).exists() or list_chunks(d):
                check_compatible(read_header(d), header, d)


def _batches(writer: StoreWriter, chunks: Sequence[int], batch_size: int) -> list[tuple[int, list[int]]]:
    """(chunk id, global indices) per batch; batches start at their chunk's first image."""
    out = []
    for c in chunks:
        r = writer.chunk_range(c)
        for s in range(r.start, r.stop, batch_size):
            out.append((c, list(range(s, min(s + batch_size, r.stop)))))
    return out


def _load(tokenizer: Tokenizer | str | os.PathLike, device: torch.device,
          tokenizer_kwargs: Mapping[str, Any] | None) -> tuple[Tokenizer, str]:
    if isinstance(tokenizer, (str, os.PathLike)):
        from probe.tokenizers import load_tokenizer

        return load_tokenizer(str(tokenizer), device=device, **dict(tokenizer_kwargs or {})), str(tokenizer)
    if isinstance(tokenizer, torch.nn.Module):
        tokenizer = tokenizer.to(device)
    return tokenizer, getattr(tokenizer, "name", None) or type(tokenizer).__name__


def tokenize_manifest(
    manifest: Manifest | str | os.PathLike,
    tokenizer: Tokenizer | str | os.PathLike,
    out: str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    batch_size: int = 64,
    num_workers: int | str = "auto",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    limit: int | None = None,
    resume: bool = True,
    progress: bool = True,
    amp: bool = True,
    tokenizer_kwargs: Mapping[str, Any] | None = None,
    on_chunk: Callable[[int, Path], None] | None = None,
) -> TokenStore:
    """Encode every image of ``manifest`` with ``tokenizer`` into a token store at ``out``.

    Args:
        manifest: a :class:`probe.data.Manifest` or the path of a manifest YAML.
        tokenizer: a tokenizer module, or a spec for :func:`probe.load_tokenizer` (preset name,
            hub id, folder, file); ``tokenizer_kwargs`` go to the loader (e.g. ``random_init=True``).
        out: the store folder.
        device: ``None`` / ``"auto"`` (cuda, then mps, then cpu) or a forced device. Under
            torchrun on CUDA each rank uses ``cuda:LOCAL_RANK``.
        batch_size: images per forward pass.
        num_workers: DataLoader workers decoding and resizing images; ``"auto"``: see :func:`auto_workers`.
        chunk_size: images per chunk file (the unit of resumption and of work sharing). Fixed
            when the store is created; resuming with another value is refused.
        limit: encode only the first ``limit`` images of the manifest.
        resume: continue an unfinished store in ``out`` made with the same tokenizer and manifest
            (a different one is refused). ``False`` removes a store in ``out`` and starts afresh.
        progress: show a tqdm bar (images/s) and print a summary (rank 0 only).
        amp: bf16 autocast on CUDA (ignored elsewhere).
        on_chunk: called as ``on_chunk(chunk_id, path)`` after each chunk file is committed.

    Returns:
        The finished :class:`TokenStore` (on every rank).

    Raises:
        StoreLockedError: another process is writing the same store.
        NothingTokenizedError: ``limit=0``, an empty manifest, or every image skipped as unreadable
            (their reasons are in ``out/skipped.csv`` and :attr:`TokenStore.skipped_images`).

    A run that fails before finishing a chunk removes the store it started, so a corrected rerun
    starts afresh. A world manifest whose settings differ from those a shipped tokenizer was
    trained on gives a :class:`WorldSettingsWarning`.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if limit is not None and int(limit) < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    out = Path(out)
    dev = resolve_device(device)
    dist = _Dist.from_env(dev)
    # what was there before, so that a failed run leaves no empty store folder behind
    existed, had_header = out.exists(), (out / HEADER).exists()
    failed = True
    try:
        with contextlib.ExitStack() as hold:
            if dist.world_size == 1:
                # a second writer of the same store is refused before it loads anything; an
                # unwritable --out fails here too, before any work (under torchrun: in _plan)
                hold.enter_context(store_lock(out))
            store = _tokenize(manifest, tokenizer, out, dev, dist, hold, batch_size=batch_size,
                              num_workers=num_workers, chunk_size=chunk_size, limit=limit, resume=resume,
                              progress=progress, amp=amp, tokenizer_kwargs=tokenizer_kwargs, on_chunk=on_chunk)
        failed = False
        return store
    except StoreLockedError:
        failed = False  # the store is another run's: leave it alone
        raise
    finally:
        if failed and dist.rank == 0:
            _remove_if_empty(out, existed, had_header)
        dist.close()


def _remove_if_empty(out: Path, existed: bool, had_header: bool) -> None:
    """After a failed run: remove what it created when no chunk was finished (so a corrected
    rerun is not refused as a mismatch, and no empty folder is left); the table of skipped images
    and their reasons stays, when there is one."""
    try:
        if _done_chunks(out):
            return
        if not existed and (out / SKIPPED_CSV).exists():
            for p in out.iterdir():
                if p.name != SKIPPED_CSV:
                    shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        elif not existed:
            shutil.rmtree(out, ignore_errors=True)
        elif not had_header:
            for name in (HEADER, CODEBOOK, LOCK):
                (out / name).unlink(missing_ok=True)
    except OSError:  # best effort: never hide the error that made the run fail
        pass


def _tokenize(manifest: Manifest | str | os.PathLike, tokenizer: Tokenizer | str | os.PathLike, out: Path,
              dev: torch.device, dist: _Dist, hold: contextlib.ExitStack, *, batch_size: int, num_workers: int | str, chunk_size: int,
              limit: int | None, resume: bool, progress: bool, amp: bool,
              tokenizer_kwargs: Mapping[str, Any] | None,
              on_chunk: Callable[[int, Path], None] | None) -> TokenStore:
    from probe.data import dataset_from_manifest, load_manifest

    if dist.world_size > 1 and dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", dist.local_rank)
    manifest_path = None
    if isinstance(manifest, (str, os.PathLike)):
        manifest_path = str(manifest)
        manifest = load_manifest(manifest)
    manifest_path = manifest_path or (str(getattr(manifest, "path", "")) or None)
    tok, tok_id = _load(tokenizer, dev, tokenizer_kwargs)
    if isinstance(tok, torch.nn.Module):
        tok.eval()
    trained_world = getattr(tok, "training_world", None)
    differ = world_settings_diff(manifest, trained_world)
    if differ and dist.rank == 0:
        shipped = _matching_manifests(trained_world)
        hint = f" (the shipped manifest {' / '.join(shipped)} matches them)" if shipped else ""
        warnings.warn(
            f"{manifest_path or getattr(manifest, 'name', 'the manifest')}: its world settings differ from "
            f"those tokenizer {tok_id} was trained on in {', '.join(differ)}; the tokens will read these "
            f"images worse than the training images{hint}", WorldSettingsWarning, stacklevel=3)
    dataset = dataset_from_manifest(manifest, resolution=int(tok.image_size))
    num_images = len(dataset) if limit is None else min(int(limit), len(dataset))
    if num_images == 0:
        why = "limit=0 (--limit 0) selects none" if limit is not None and int(limit) == 0 else "it has none"
        raise NothingTokenizedError(f"nothing to tokenize: {manifest_path or 'the manifest'} gives "
                                    f"{len(dataset)} images and {why}")
    use_amp = bool(amp and dev.type == "cuda")

    # rank 0 validates / creates the store and plans the work; the others receive the plan
    plan: _Plan | None = None
    if dist.rank == 0:
        try:
            if dist.world_size > 1:
                hold.enter_context(store_lock(out))
            plan = _plan(out, manifest, manifest_path, tok, tok_id, dataset, num_images,
                         chunk_size, batch_size, use_amp, resume, trained_world)
        except (StoreError, ValueError, OSError) as exc:
            plan = _Plan({}, [], f"{type(exc).__name__}: {exc}")
            if dist.world_size == 1:
                raise
    plan = dist.broadcast(plan)
    assert plan is not None
    if plan.error is not None:  # rank 0 failed; every rank raises (a refusal keeps its type)
        raise (StoreMismatchError if plan.error.startswith("StoreMismatchError") else StoreError)(plan.error)
    if dist.world_size > 1 and len(set(dist.gather(tokenizer_identity(tok).get("weights")))) > 1:
        raise StoreError("the ranks loaded different tokenizer weights; seed random initialisation "
                         "or load the same checkpoint on every rank")

    mine = plan.pending[dist.rank :: dist.world_size]
    if dist.world_size == 1:
        writer = open_for_writing(out, plan.header, resume=True)
    else:
        shard_header = dict(plan.header, shard={"rank": dist.rank, "world_size": dist.world_size})
        writer = open_for_writing(_shard_path(out, dist.rank), shard_header, resume=True)
    if isinstance(num_workers, str):
        if num_workers != "auto":
            raise ValueError(f"num_workers must be an int or 'auto', got {num_workers!r}")
        num_workers = auto_workers(int(os.environ.get("LOCAL_WORLD_SIZE", dist.world_size)))
    show = progress and dist.rank == 0
    t0 = time.perf_counter()
    encoded, skipped = _encode_chunks(tok, dataset, writer, mine, batch_size=batch_size,
                                      num_workers=int(num_workers), device=dev, use_amp=use_amp,
                                      show=show, on_chunk=on_chunk)
    elapsed = time.perf_counter() - t0
    totals = dist.gather((encoded, skipped))

    dist.barrier()  # every shard is complete
    if dist.rank == 0:
        _merge_shards(out)
    dist.barrier()  # the merged store is in place
    store = TokenStore.open(out)
    if dist.rank == 0:
        n_enc = sum(t[0] for t in totals)
        n_skip = sum(t[1] for t in totals)
        rate = n_enc / elapsed if elapsed > 0 else float("nan")
        skipped_table = store.skipped_images
        if len(skipped_table):  # the reasons, as a table a user can open (also in the chunk files)
            skipped_table.to_csv(out / SKIPPED_CSV, index=False)
        summary = (f"tokenized {n_enc} images in {elapsed:.1f} s ({rate:.1f} images/s, {dist.world_size} "
                   f"process(es), device {dev}); skipped {n_skip} unreadable image(s) in this run, "
                   f"{store.skipped} in the store" + (f" (reasons in {out / SKIPPED_CSV})" if store.skipped else "")
                   + f"; {len(store)} rows in {out}")
        if show:
            print(summary)
        else:
            log.info(summary)
    if len(store) == 0:
        first = store.skipped_images.head(1)
        example = (f"; e.g. {first['ref'].iloc[0]}: {first['reason'].iloc[0]}" if len(first) else "")
        n_skipped = store.skipped
        dist.barrier()  # every rank has read the store before rank 0 removes it
        if dist.rank == 0:
            remove_store(out)  # no empty store is left behind (skipped.csv, the reasons, stays)
        raise NothingTokenizedError(
            f"no image could be tokenized into {out}: all {n_skipped} images were skipped as "
            f"unreadable (reasons in {out / SKIPPED_CSV}{example}); fix the data or the manifest and "
            "run again")
    return store


def _plan(
    out: Path, manifest: Manifest, manifest_path: str | None, tok: Tokenizer, tok_id: str, dataset: Dataset,
    num_images: int, chunk_size: int, batch_size: int, use_amp: bool, resume: bool,
    trained_world: Mapping[str, Any] | None = None,
) -> _Plan:
    identity = {
        "tokenizer": tokenizer_identity(tok),
        "manifest": manifest_dict(manifest),
        "precision": "bf16-autocast" if use_amp else "fp32",
    }
    codebook_size = int(tok.codebook_size)
    header = make_header(
        identity=identity,
        attributes=attribute_types(manifest, dataset, num_images),
        num_images=num_images,
        chunk_size=chunk_size,
        num_tokens=int(tok.num_tokens),
        token_dim=int(tok.token_dim),
        codebook_size=codebook_size or None,
        extra={
            "tokenizer_id": tok_id,
            "manifest_path": manifest_path,
            "seed": getattr(manifest, "seed", None),
            "batch_size": batch_size,
            # the world the tokenizer was trained on (shipped models), to compare with the manifest's
            "tokenizer_world": dict(trained_world) if trained_world else None,
        },
    )
    if not resume and (out / SHARD_DIR).is_dir():
        shutil.rmtree(out / SHARD_DIR)
    writer = open_for_writing(out, header, resume=resume)
    _check_shards(out, writer.header)
    if codebook_size > 0:
        writer.write_codebook(tok.codebook)
    pending = sorted(set(range(writer.num_chunks)) - _done_chunks(out))
    return _Plan(writer.header, pending)


def _encode_chunks(
    tok: Tokenizer, dataset: Dataset, writer: StoreWriter, chunks: Sequence[int], *, batch_size: int,
    num_workers: int, device: torch.device, use_amp: bool, show: bool,
    on_chunk: Callable[[int, Path], None] | None,
) -> tuple[int, int]:
    """Encode ``chunks`` and write each as soon as its last batch is done. Returns (encoded, skipped)."""
    from tqdm.auto import tqdm

    plan = _batches(writer, chunks, batch_size)
    if not plan:
        return 0, 0
    remaining = {c: 0 for c in chunks}
    for c, _ in plan:
        remaining[c] += 1
    loader = DataLoader(
        _Indexed(dataset),
        batch_sampler=[idx for _, idx in plan],
        num_workers=num_workers,
        collate_fn=_collate,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    total = sum(len(idx) for _, idx in plan)
    bar = tqdm(total=total, unit="img", desc="tokenize", disable=not show, dynamic_ncols=True, smoothing=0.1)
    buf: dict[str, list[Any]] = {"index": [], "refs": [], "attrs": [], "tokens": [], "features": [], "why": []}
    encoded = skipped = 0
    n_tok, dim = writer.num_tokens, writer.token_dim
    try:
        for (chunk, idx), batch in zip(plan, loader):
            skipped += batch.skipped
            buf["why"] += batch.why
            if batch.images is not None:
                images = batch.images.to(device, non_blocking=True)
                with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
                    enc = tok.encode(images)
                feats = enc.features.float().reshape(len(batch.index), n_tok, dim)
                if enc.indices is not None:
                    toks = enc.indices.reshape(len(batch.index), n_tok).to(torch.int64)
                else:  # continuous (VAE) tokenizer: no ids, only features
                    toks = torch.full((len(batch.index), n_tok), -1, dtype=torch.int64)
                buf["index"] += batch.index
                buf["refs"] += batch.refs
                buf["attrs"] += batch.attrs
                buf["tokens"].append(toks.cpu().numpy())
                buf["features"].append(feats.to(torch.float16).cpu().numpy())
                encoded += len(batch.index)
            bar.update(len(idx))
            bar.set_postfix(skipped=skipped, refresh=False)
            remaining[chunk] -= 1
            if remaining[chunk] == 0:
                rows = ChunkRows(
                    index=np.asarray(buf["index"], dtype=np.int64),
                    refs=buf["refs"],
                    attributes={a: [r.get(a) for r in buf["attrs"]] for a in writer.attribute_types},
                    tokens=np.concatenate(buf["tokens"]) if buf["tokens"] else np.zeros((0, n_tok), np.int64),
                    features=np.concatenate(buf["features"]) if buf["features"] else np.zeros((0, n_tok, dim), np.float16),
                    skipped=buf["why"],
                )
                path = writer.write_chunk(chunk, rows)
                buf = {k: [] for k in buf}
                if on_chunk is not None:
                    on_chunk(chunk, path)
    finally:
        bar.close()
    return encoded, skipped
