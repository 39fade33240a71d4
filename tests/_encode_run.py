"""Helper process for the engine tests: tokenize world images into a store, and optionally kill
itself with SIGKILL at a chosen point (a real ``kill -9``: no cleanup, no atexit, no flush).

Run directly (one process) or under ``python -m torch.distributed.run`` (several ranks)::

    python tests/_encode_run.py --out DIR --limit 64 --chunk-size 8 --batch-size 8 \
        [--kill-at chunk|write|encode --kill-after K] [--workers N] [--seed S]

Kill points:
    chunk   right after chunk K's file was committed;
    write   while chunk K is being committed: its temporary file is complete but not renamed;
    encode  inside the K-th forward pass (0-based), i.e. in the middle of a chunk.
"""
from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--manifest", default=str(ROOT / "data_manifests" / "world.yaml"))
    p.add_argument("--limit", type=int, default=64)
    p.add_argument("--chunk-size", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--seed", type=int, default=0, help="random-init seed of the tokenizer")
    p.add_argument("--kill-at", choices=["chunk", "write", "encode"], default=None)
    p.add_argument("--kill-after", type=int, default=0)
    args = p.parse_args()

    torch.set_num_threads(1)  # the same numerics in every process of every test run
    import probe
    import probe.store as store_mod
    from probe.encode import tokenize_manifest

    tok = probe.load_tokenizer("titok-tiny", random_init=True, seed=args.seed, device="cpu")
    on_chunk = None
    k = args.kill_after
    if args.kill_at == "chunk":
        on_chunk = lambda chunk, path: _die() if chunk == k else None
    elif args.kill_at == "write":
        commit = store_mod._commit_file

        def commit_or_die(tmp: Path, final: Path) -> None:
            if final.name == store_mod.chunk_name(k):
                assert tmp.stat().st_size > 0
                _die()
            commit(tmp, final)

        store_mod._commit_file = commit_or_die
    elif args.kill_at == "encode":
        encode, calls = tok.encode, [0]

        def encode_or_die(images: torch.Tensor):
            if calls[0] == k:
                _die()
            calls[0] += 1
            return encode(images)

        tok.encode = encode_or_die
    store = tokenize_manifest(args.manifest, tok, args.out, device="cpu", batch_size=args.batch_size,
                              num_workers=args.workers, chunk_size=args.chunk_size, limit=args.limit,
                              progress=False, on_chunk=on_chunk)
    print(f"rows={len(store)}")


if __name__ == "__main__":
    main()
