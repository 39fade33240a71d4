"""TokenStore: round trips, memory mapping, merging shards, resume refusal, clear errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from probe.store import (
    CHUNK_DIR,
    ChunkRows,
    StoreError,
    StoreMismatchError,
    TokenStore,
    chunk_name,
    make_header,
    open_for_writing,
)

N, C, K = 5, 3, 7
ATTRS = {"shape": "string", "light": "float64", "label": "int64", "blurry": "bool"}
SKIP = {4, 9}  # global indices that play "unreadable image"


def _header(num_images: int = 10, chunk_size: int = 4, tokenizer: str = "tok-a") -> dict:
    return make_header(
        identity={"tokenizer": {"id": tokenizer}, "manifest": {"name": "m"}, "precision": "fp32"},
        attributes=ATTRS, num_images=num_images, chunk_size=chunk_size,
        num_tokens=N, token_dim=C, codebook_size=K,
    )


def _rows(ids: list[int]) -> ChunkRows:
    """Deterministic rows for global indices ``ids``: every value is a function of the index."""
    ids = [i for i in ids if i not in SKIP]
    idx = np.array(ids, dtype=np.int64)
    tokens = (idx[:, None] * 3 + np.arange(N)[None]) % K
    feats = np.sin(idx[:, None, None] + np.arange(N * C).reshape(1, N, C))
    return ChunkRows(
        index=idx,
        refs=[f"img-{i}" for i in ids],
        attributes={"shape": ["circle" if i % 2 else "star" for i in ids], "light": [i / 10 for i in ids],
                    "label": [np.int64(i % 3) for i in ids], "blurry": [i % 4 == 0 for i in ids]},
        tokens=tokens,
        features=feats,
    )


def _write(path: Path, chunks: list[int] | None = None, header: dict | None = None) -> None:
    w = open_for_writing(path, header or _header())
    for c in range(w.num_chunks) if chunks is None else chunks:
        w.write_chunk(c, _rows(list(w.chunk_range(c))))
    w.write_codebook(np.arange(K * C, dtype=np.float32).reshape(K, C))


def test_round_trip_shapes_dtypes_and_values(tmp_path: Path) -> None:
    _write(tmp_path / "s")
    store = TokenStore.open(tmp_path / "s")
    kept = [i for i in range(10) if i not in SKIP]
    assert len(store) == len(kept) and store.skipped == len(SKIP)
    assert store.tokens.shape == (len(kept), N) and store.tokens.dtype == np.int64
    assert store.features.shape == (len(kept), N, C) and store.features.dtype == np.float16
    expect = _rows(list(range(10)))
    np.testing.assert_array_equal(store.tokens, expect.tokens)
    np.testing.assert_array_equal(store.features, expect.features.astype(np.float16))
    np.testing.assert_array_equal(store.index, kept)
    df = store.attributes
    assert list(df.columns) == ["index", "ref", *ATTRS]
    assert df["ref"].tolist() == [f"img-{i}" for i in kept]
    assert df["light"].dtype == np.float64 and df["label"].dtype == np.int64 and df["blurry"].dtype == bool
    assert df["label"].tolist() == [i % 3 for i in kept]
    assert df["shape"].tolist() == ["circle" if i % 2 else "star" for i in kept]
    np.testing.assert_array_equal(store.codebook, np.arange(K * C, dtype=np.float32).reshape(K, C))
    assert store.header["layout"]["num_tokens"] == N and store.attribute_names == list(ATTRS)
    ds = store.dataset  # the same rows as a datasets.Dataset
    assert ds.num_rows == len(kept) and ds[1]["ref"] == "img-1"
    np.testing.assert_array_equal(np.asarray(ds[2]["tokens"]), expect.tokens[2])


def test_single_chunk_store_is_memory_mapped(tmp_path: Path) -> None:
    _write(tmp_path / "s", header=_header(num_images=10, chunk_size=16))
    store = TokenStore.open(tmp_path / "s")
    assert store.features.shape == (8, N, C)
    # a zero-copy view of the mapped file: numpy does not own it and cannot write to it
    assert not store.features.flags.owndata and not store.features.flags.writeable


def test_merge_of_shards_equals_single_writer_byte_for_byte(tmp_path: Path) -> None:
    _write(tmp_path / "one")
    _write(tmp_path / "r0", chunks=[0, 2])
    _write(tmp_path / "r1", chunks=[1])
    merged = TokenStore.merge([tmp_path / "r1", tmp_path / "r0"], tmp_path / "merged")
    one = TokenStore.open(tmp_path / "one")
    np.testing.assert_array_equal(merged.index, one.index)
    np.testing.assert_array_equal(merged.tokens, one.tokens)
    np.testing.assert_array_equal(merged.features, one.features)
    assert merged.attributes.equals(one.attributes)
    for c in range(3):
        a = (tmp_path / "merged" / CHUNK_DIR / chunk_name(c)).read_bytes()
        assert a == (tmp_path / "one" / CHUNK_DIR / chunk_name(c)).read_bytes()
    assert merged.codebook is not None
    assert (tmp_path / "r0" / CHUNK_DIR / chunk_name(0)).exists()  # a copy by default, shards kept


def test_merge_refuses_missing_chunks_and_mismatched_shards(tmp_path: Path) -> None:
    _write(tmp_path / "r0", chunks=[0, 2])
    with pytest.raises(StoreError, match="chunks \\[1\\] are in none of the shards"):
        TokenStore.merge([tmp_path / "r0"], tmp_path / "m1")
    _write(tmp_path / "other", chunks=[1], header=_header(tokenizer="tok-b"))
    with pytest.raises(StoreMismatchError, match="different tokenizer"):
        TokenStore.merge([tmp_path / "r0", tmp_path / "other"], tmp_path / "m2")


def test_resume_into_store_of_another_tokenizer_is_refused_and_keeps_chunks(tmp_path: Path) -> None:
    _write(tmp_path / "s", chunks=[0, 1])
    before = {p.name: p.read_bytes() for p in (tmp_path / "s" / CHUNK_DIR).iterdir()}
    with pytest.raises(StoreMismatchError) as err:
        open_for_writing(tmp_path / "s", _header(tokenizer="tok-b"))
    assert "different tokenizer" in str(err.value) and str(tmp_path / "s") in str(err.value)
    with pytest.raises(StoreMismatchError, match="different layout"):
        open_for_writing(tmp_path / "s", _header(chunk_size=5))
    after = {p.name: p.read_bytes() for p in (tmp_path / "s" / CHUNK_DIR).iterdir()}
    assert after == before


def test_resume_reopens_matching_store_and_drops_stale_temp_files(tmp_path: Path) -> None:
    _write(tmp_path / "s", chunks=[0])
    stale = tmp_path / "s" / CHUNK_DIR / ".chunk-00001.arrow.tmp-12345"
    stale.write_bytes(b"half a chunk")
    w = open_for_writing(tmp_path / "s", _header())
    assert w.done_chunks() == {0} and not stale.exists()
    w2 = open_for_writing(tmp_path / "s", _header(), resume=False)  # afresh: chunks removed
    assert w2.done_chunks() == set()


def test_missing_incomplete_and_corrupt_stores_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=f"no token store at {tmp_path / 'nope'}"):
        TokenStore.open(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="header.json is missing"):
        TokenStore.open(tmp_path / "empty")
    _write(tmp_path / "s", chunks=[0, 2])
    with pytest.raises(StoreError, match="incomplete: 1 of 3 chunks missing"):
        TokenStore.open(tmp_path / "s")
    assert len(TokenStore.open(tmp_path / "s", allow_incomplete=True)) == 4 + 1
    bad = tmp_path / "s" / CHUNK_DIR / chunk_name(2)
    bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(StoreError, match=f"corrupt chunk file {bad}"):
        TokenStore.open(tmp_path / "s", allow_incomplete=True)
    (tmp_path / "s" / "header.json").write_text("{not json")
    with pytest.raises(StoreError, match="corrupt token store header"):
        TokenStore.open(tmp_path / "s")


def test_bad_attribute_value_names_attribute_and_image(tmp_path: Path) -> None:
    w = open_for_writing(tmp_path / "s", _header())
    rows = _rows([0, 1, 2, 3])
    rows.attributes["label"][1] = "seven"
    with pytest.raises(StoreError, match="attribute 'label' of image 'img-1'"):
        w.write_chunk(0, rows)
    assert w.done_chunks() == set()  # nothing half-written
    with pytest.raises(StoreError, match="clashes"):
        make_header(identity={}, attributes={"tokens": "int64"}, num_images=1, chunk_size=1,
                    num_tokens=N, token_dim=C, codebook_size=K)
