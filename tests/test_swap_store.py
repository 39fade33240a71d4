"""What the swap engine reads from a store: rows by position, batches, and the images behind the rows."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def world_store(tmp_path_factory):
    import probe
    from probe.worlds.attribute import default_manifest
    from probe.encode import tokenize_manifest

    tok = probe.load_tokenizer("world-32")
    manifest = default_manifest("world-32", size=40, seed=3, resolution=int(tok.image_size))
    store = tokenize_manifest(manifest, tok, tmp_path_factory.mktemp("w") / "store", batch_size=16,
                              chunk_size=16, num_workers=0, progress=False)
    return tok, store


def test_select_and_iter_batches(world_store) -> None:
    _, store = world_store
    rows = [7, 0, 33, 7, -1]
    sub = store.select(rows)
    expect = [7, 0, 33, 7, len(store) - 1]
    assert len(sub) == 5
    np.testing.assert_array_equal(sub.tokens, store.tokens[expect])
    np.testing.assert_array_equal(sub.features, store.features[expect])
    assert list(sub.attributes["index"]) == list(store.attributes["index"].iloc[expect])
    assert sub.header == store.header
    batches = list(store.iter_batches(16))
    assert [len(b) for b in batches] == [16, 16, 8]
    np.testing.assert_array_equal(np.concatenate([b.tokens for b in batches]), store.tokens)
    with pytest.raises(IndexError, match="out of range"):
        store.select([len(store)])


def test_rematerialised_world_rows_encode_to_their_stored_tokens(world_store) -> None:
    from probe.data.rematerialise import image_from_ref, rematerialise
    from probe.worlds import store_masks

    tok, store = world_store
    rows = np.array([5, 0, 39])
    images, masks = rematerialise(store, rows, masks=True)
    assert images.shape == (3, 3, 32, 32) and masks.shape == (3, 1, 32, 32)
    with torch.no_grad():
        enc = tok.encode(images)
    np.testing.assert_array_equal(enc.indices.numpy(), store.tokens[rows])
    ref = store.attributes["ref"].iloc[5]
    one = image_from_ref(ref, 32, world_config=store.manifest["source"]["config"])
    assert torch.equal(one, images[0])
    assert store_masks(store).shape == (len(store), 1, 32, 32)


def test_rematerialised_folder_rows_are_the_files(tmp_path: Path) -> None:
    from PIL import Image

    import probe
    from probe.data.manifest import manifest_from_dict
    from probe.data.rematerialise import image_from_ref, rematerialise
    from probe.worlds import store_masks
    from probe.data.transforms import load_as_tensor
    from probe.encode import tokenize_manifest

    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / "img" / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(tmp_path / "img" / cls / f"{i}.png")
    manifest = manifest_from_dict({"name": "f", "source": {"type": "folder", "root": str(tmp_path / "img")},
                                   "resolution": 32}, where="<test>")
    tok = probe.load_tokenizer("world-32")
    store = tokenize_manifest(manifest, tok, tmp_path / "store", batch_size=4, num_workers=0, progress=False)
    images = rematerialise(store, [4, 1])
    for k, row in enumerate([4, 1]):
        ref = store.attributes["ref"].iloc[row]
        assert torch.equal(images[k], load_as_tensor(ref, 32))
        assert torch.equal(image_from_ref(ref, 32), images[k])
    assert store_masks(store) is None


def test_world_ids_and_code_vectors_swap_alike(world_store) -> None:
    from probe.swap import patch

    tok, store = world_store

    class Mean:
        name, kind = "mean", "continuous"

        def __call__(self, images, *, masks=None):
            return images.mean((1, 2, 3))

    ids = torch.as_tensor(np.array(store.tokens))
    a = patch(tok, ids[:6], ids[6:12], [[26], [4, 21]], [Mean()], controls=("none", "all_except"), progress=False)
    b = patch(tok, tok.codebook[ids[:6]], tok.codebook[ids[6:12]], [[26], [4, 21]], [Mean()],
              controls=("none", "all_except"), progress=False)
    import pandas as pd

    pd.testing.assert_frame_equal(a, b)
    assert a["moved_abs"].max() > 0  # the swaps did change the images
