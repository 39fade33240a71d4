"""The batch tokenization engine: known answers, kill -9 and resume, skipped images, refusal, CLI."""
from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from _encode_common import (BATCH, CHUNK, LIMIT, WORLD, assert_same_store, encode_reference, one_thread, python, run,
                            runner_args)

import probe
import probe.data
from probe.store import CHUNK_DIR, StoreMismatchError, TokenStore, list_chunks


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "store"
    encode_reference(out)
    return out


def test_store_holds_what_the_tokenizer_says_about_the_manifest_images(reference: Path) -> None:
    store = TokenStore.open(reference)
    manifest = probe.data.load_manifest(WORLD)
    tok = probe.load_tokenizer("titok-tiny", random_init=True, seed=0, device="cpu")
    ds = probe.data.dataset_from_manifest(manifest, resolution=tok.image_size)
    assert len(store) == LIMIT and store.skipped == 0
    np.testing.assert_array_equal(store.index, np.arange(LIMIT))
    items = [ds[i] for i in range(LIMIT)]
    assert store.attributes["ref"].tolist() == [x["ref"] for x in items]
    for name in manifest.attribute_names:
        got = store.attributes[name].tolist()
        want = [x["attrs"][name] for x in items]
        if store.header["attributes"][name] == "float64":
            np.testing.assert_allclose(got, np.asarray(want, dtype=float))
        else:
            assert [str(g) for g in got] == [str(w) for w in want], name
    # known answer: encoding the same batches directly gives the stored tokens and features
    with one_thread(), torch.inference_mode():
        encs = [tok.encode(torch.stack([x["image"] for x in items[s : s + BATCH]])) for s in range(0, LIMIT, BATCH)]
    np.testing.assert_array_equal(store.tokens, torch.cat([e.indices for e in encs]).numpy())
    feats = torch.cat([e.features for e in encs]).to(torch.float16).numpy()
    assert store.features.tobytes() == feats.tobytes()
    assert store.features.shape == (LIMIT, tok.num_tokens, tok.token_dim)
    np.testing.assert_array_equal(store.codebook, tok.codebook.detach().numpy())
    assert store.header["tokenizer_id"] == "TiTok" and store.header["layout"]["chunk_size"] == CHUNK


def test_kill_9_twice_then_resume_gives_the_uninterrupted_store(reference: Path, tmp_path: Path) -> None:
    from probe.encode import tokenize_manifest

    out = tmp_path / "store"
    # 1st run: SIGKILL while committing chunk 1 (its temporary file complete, not yet renamed)
    killed = run([python(), *runner_args(out, "--kill-at", "write", "--kill-after", "1")])
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert list_chunks(out) == {0}
    assert list((out / CHUNK_DIR).glob(".chunk-00001.arrow.tmp-*"))  # the half-committed file
    # 2nd run resumes at chunk 1; SIGKILL inside its 4th forward pass, in the middle of chunk 2
    killed = run([python(), *runner_args(out, "--kill-at", "encode", "--kill-after", "3")])
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert list_chunks(out) == {0, 1}
    # 3rd run (here, with a loader worker: where images are decoded must not matter) finishes
    written: list[int] = []
    tok = probe.load_tokenizer("titok-tiny", random_init=True, seed=0, device="cpu")
    with one_thread():
        tokenize_manifest(WORLD, tok, out, device="cpu", batch_size=BATCH, num_workers=1, chunk_size=CHUNK,
                          limit=LIMIT, progress=False, on_chunk=lambda c, p: written.append(c))
    assert written == [2, 3]
    assert_same_store(reference, out)


def test_finished_store_is_not_redone_and_other_tokenizer_is_refused(reference: Path, tmp_path: Path) -> None:
    import shutil

    from probe.encode import tokenize_manifest

    out = tmp_path / "store"
    shutil.copytree(reference, out)
    before = {p.name: p.read_bytes() for p in (out / CHUNK_DIR).iterdir()}
    chunks_written: list[int] = []
    tok = probe.load_tokenizer("titok-tiny", random_init=True, seed=0, device="cpu")
    tokenize_manifest(WORLD, tok, out, device="cpu", batch_size=BATCH, num_workers=0, chunk_size=CHUNK,
                      limit=LIMIT, progress=False, on_chunk=lambda c, p: chunks_written.append(c))
    assert chunks_written == []
    other = probe.load_tokenizer("titok-tiny", random_init=True, seed=1, device="cpu")
    with pytest.raises(StoreMismatchError, match=f"store at {out} was made with a different tokenizer"):
        tokenize_manifest(WORLD, other, out, device="cpu", batch_size=BATCH, num_workers=0,
                          chunk_size=CHUNK, limit=LIMIT, progress=False)
    with pytest.raises(StoreMismatchError, match="different layout"):
        tokenize_manifest(WORLD, tok, out, device="cpu", num_workers=0, chunk_size=CHUNK, limit=LIMIT // 2,
                          progress=False)
    assert {p.name: p.read_bytes() for p in (out / CHUNK_DIR).iterdir()} == before


def test_skipped_images_are_counted_and_left_out(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from probe.encode import tokenize_manifest

    real = probe.data.dataset_from_manifest
    bad = {3, 17, 18}  # stand-ins for unreadable files: the dataset yields None for them

    class Holes(torch.utils.data.Dataset):
        def __init__(self, ds: torch.utils.data.Dataset) -> None:
            self.ds = ds

        def __len__(self) -> int:
            return len(self.ds)

        def __getitem__(self, i: int):
            return None if i in bad else self.ds[i]

    monkeypatch.setattr(probe.data, "dataset_from_manifest", lambda m, resolution: Holes(real(m, resolution)))
    tok = probe.load_tokenizer("titok-tiny", random_init=True, seed=0, device="cpu")
    store = tokenize_manifest(WORLD, tok, tmp_path / "s", device="cpu", batch_size=4, num_workers=0,
                              chunk_size=8, limit=24, progress=False)
    assert len(store) == 21 and store.skipped == 3
    assert store.index.tolist() == [i for i in range(24) if i not in bad]
    assert store.tokens.shape == (21, tok.num_tokens)


def test_cli_tokenize_writes_and_reports_the_store(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import argparse

    from probe.commands import tokenize as cmd

    # the command module itself (probe.cli.main would also import every other command)
    parser = argparse.ArgumentParser(prog="tokenprobe tokenize")
    cmd.add_arguments(parser)
    out = tmp_path / "cli"
    args = parser.parse_args(["--manifest", str(WORLD), "--tokenizer", "titok-tiny", "--random-init",
                              "--out", str(out), "--limit", "16", "--chunk-size", "8", "--workers", "0",
                              "--device", "cpu", "--no-progress"])
    assert cmd.NAME == "tokenize" and cmd.run(args) == 0
    printed = capsys.readouterr().out
    assert f"token store: {out} (16 images, 32 tokens x 16 dims" in printed
    store = TokenStore.open(out)
    assert len(store) == 16 and store.header["tokenizer_id"] == "titok-tiny"
    assert len(list((out / CHUNK_DIR).glob("chunk-*.arrow"))) == 2


def test_single_process_resumes_a_killed_multi_process_run(reference: Path, tmp_path: Path) -> None:
    """Shards left by a killed torchrun run (rank 0 had chunks 0 and 2, rank 1 chunk 1) are kept:
    a one-process run encodes only the missing chunk, merges the shards and removes them."""
    import json
    import shutil

    from probe.encode import SHARD_DIR, tokenize_manifest

    out = tmp_path / "store"
    (out / CHUNK_DIR).mkdir(parents=True)
    header = json.loads((reference / "header.json").read_text())
    (out / "header.json").write_text(json.dumps(header))
    for rank, chunks in ((0, [0, 2]), (1, [1])):
        shard = out / SHARD_DIR / f"rank-{rank:05d}"
        (shard / CHUNK_DIR).mkdir(parents=True)
        (shard / "header.json").write_text(json.dumps(dict(header, shard={"rank": rank, "world_size": 2})))
        for c in chunks:
            name = f"chunk-{c:05d}.arrow"
            shutil.copyfile(reference / CHUNK_DIR / name, shard / CHUNK_DIR / name)
    written: list[int] = []
    tok = probe.load_tokenizer("titok-tiny", random_init=True, seed=0, device="cpu")
    with one_thread():
        tokenize_manifest(WORLD, tok, out, device="cpu", batch_size=BATCH, num_workers=0, chunk_size=CHUNK,
                          limit=LIMIT, progress=False, on_chunk=lambda c, p: written.append(c))
    assert written == [3] and not (out / SHARD_DIR).exists()
    assert_same_store(reference, out)
