"""Shared pieces of the engine tests: the reference (uninterrupted, one-process) store and a
byte-level comparison of two stores."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from probe.store import CHUNK_DIR, TokenStore, list_chunks

ROOT = Path(__file__).resolve().parents[1]
RUNNER = ROOT / "tests" / "_encode_run.py"
WORLD = ROOT / "data_manifests" / "world.yaml"
# small enough to be quick, big enough for several chunks of several batches
LIMIT, CHUNK, BATCH = 64, 16, 8


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread inside, as in the runner: the same numerics in every process."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def encode_reference(out: Path, *, seed: int = 0) -> TokenStore:
    """An uninterrupted one-process run in this process, with the runner's settings."""
    import probe
    from probe.encode import tokenize_manifest

    with one_thread():
        tok = probe.load_tokenizer("titok-tiny", random_init=True, seed=seed, device="cpu")
        return tokenize_manifest(WORLD, tok, out, device="cpu", batch_size=BATCH, num_workers=0,
                                 chunk_size=CHUNK, limit=LIMIT, progress=False)


def runner_args(out: Path, *extra: str) -> list[str]:
    return [str(RUNNER), "--out", str(out), "--manifest", str(WORLD), "--limit", str(LIMIT),
            "--chunk-size", str(CHUNK), "--batch-size", str(BATCH), *extra]


def run(cmd: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.run(cmd, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def python() -> str:
    return sys.executable


def assert_same_store(a: Path, b: Path) -> None:
    """Same rows, same order, same tokens / features / attributes, byte-identical chunk files."""
    sa, sb = TokenStore.open(a), TokenStore.open(b)
    assert sa.header["config_hash"] == sb.header["config_hash"]
    assert len(sa) == len(sb) > 0
    np.testing.assert_array_equal(sa.index, sb.index)
    np.testing.assert_array_equal(sa.tokens, sb.tokens)
    assert sa.features.tobytes() == sb.features.tobytes()
    assert sa.attributes.equals(sb.attributes)
    np.testing.assert_array_equal(sa.codebook, sb.codebook)
    assert list_chunks(a) == list_chunks(b)
    for f in sorted((a / CHUNK_DIR).glob("chunk-*.arrow")):
        assert f.read_bytes() == (b / CHUNK_DIR / f.name).read_bytes(), f.name
    assert sorted(p.name for p in (b / CHUNK_DIR).iterdir()) == sorted(p.name for p in (a / CHUNK_DIR).iterdir())
