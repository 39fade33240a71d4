"""Sources: bad images are converted or skipped (and counted), bundled photos load offline,
the hub source fails fast offline, folders and tables give their attributes."""
from __future__ import annotations

import io
import logging
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from probe.data import collate_skip_none, dataset_from_manifest
from probe.data.manifest import manifest_from_dict
from probe.data.sources import (
    SKIMAGE_PHOTOS,
    FolderSource,
    HFSource,
    SkimageSource,
    SourceError,
    TableSource,
)
from probe.data.transforms import SkipImage, load_as_tensor, to_rgb

RES = 32


def _rgb(w: int = 40, h: int = 30, color=(200, 40, 10)) -> Image.Image:
    return Image.new("RGB", (w, h), color)


@pytest.fixture()
def bad_folder(tmp_path: Path) -> Path:
    """A class-per-folder tree with every awkward kind of file; expected outcome in the name."""
    good, odd = tmp_path / "good", tmp_path / "odd"
    good.mkdir()
    odd.mkdir()
    _rgb().save(good / "ok_rgb.jpg")
    _rgb(64, 48).save(good / "ok_rgb2.png")
    Image.new("L", (40, 40), 128).save(odd / "ok_gray.png")
    Image.new("RGBA", (40, 40), (0, 0, 255, 0)).save(odd / "ok_rgba.png")  # transparent -> white
    Image.new("P", (40, 40), 3).save(odd / "ok_palette.png")
    a16 = (np.arange(40 * 40, dtype=np.uint16).reshape(40, 40) * 40).astype(np.uint16)
    Image.fromarray(a16).save(odd / "ok_16bit.png")
    Image.new("CMYK", (40, 40), (0, 255, 255, 0)).save(odd / "ok_cmyk.jpg")
    _rgb(4, 4).save(odd / "skip_tiny.png")
    (odd / "skip_text.png").write_text("this is not an image")
    buf = io.BytesIO()
    _rgb(200, 200).save(buf, format="PNG")
    (odd / "skip_truncated.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (odd / "notes.txt").write_text("ignored: not an image extension")
    return tmp_path


def test_bad_images_are_converted_or_skipped_and_counted(bad_folder: Path, caplog) -> None:
    m = manifest_from_dict({"name": "bad", "source": {"type": "folder", "root": str(bad_folder)}},
                           "bad.yaml")
    ds = dataset_from_manifest(m, RES)
    names = [Path(f).name for f in ds.source.files]
    assert len(ds) == 10 and "notes.txt" not in names
    with caplog.at_level(logging.WARNING, logger="probe.data"):
        items = [ds[i] for i in range(len(ds))]
    for name, it in zip(names, items):
        if name.startswith("ok_"):
            assert it is not None, name
            assert it["image"].shape == (3, RES, RES) and it["image"].dtype == torch.float32
            assert 0.0 <= float(it["image"].min()) and float(it["image"].max()) <= 1.0
            assert it["attrs"]["class"] in ("good", "odd")
        else:
            assert it is None, name
    skipped = {Path(s["ref"]).name: s["reason"] for s in ds.skipped}
    assert set(skipped) == {"skip_tiny.png", "skip_text.png", "skip_truncated.png"}
    assert "too small" in skipped["skip_tiny.png"]
    assert "not a readable image" in skipped["skip_text.png"]
    assert "skip_truncated.png" in caplog.text and "skip_text.png" in caplog.text
    # the batch goes on: collate drops the Nones and counts them
    batch = collate_skip_none(items)
    assert batch.images.shape == (7, 3, RES, RES) and batch.skipped == 3
    assert len(batch.refs) == len(batch.attrs) == 7


def test_conversions_are_faithful() -> None:
    # transparent pixels composite over white; grey stays grey; 16-bit scales to full range
    rgba = load_as_tensor(Image.new("RGBA", (20, 20), (0, 0, 255, 0)), 16)
    assert torch.allclose(rgba, torch.ones_like(rgba))
    gray = load_as_tensor(Image.new("L", (20, 20), 128), 16)
    assert torch.allclose(gray, torch.full_like(gray, 128 / 255))
    a16 = np.full((20, 20), 65535, dtype=np.uint16)
    assert to_rgb(Image.fromarray(a16)).getpixel((0, 0)) == (255, 255, 255)
    pal = Image.new("P", (20, 20), 1)
    pal.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    assert to_rgb(pal).getpixel((3, 3)) == (10, 200, 30)
    # shorter side resized, centre crop: a wide image keeps its middle
    wide = np.zeros((20, 60, 3), dtype=np.uint8)
    wide[:, 20:40] = 255
    out = load_as_tensor(wide, 20)
    assert out.shape == (3, 20, 20) and float(out.mean()) > 0.95
    with pytest.raises(SkipImage, match="too small"):
        load_as_tensor(_rgb(8, 100), 32)


def test_folder_classes_and_index(tmp_path: Path) -> None:
    for cls, color in (("b_cls", (0, 0, 255)), ("a_cls", (255, 0, 0))):
        (tmp_path / cls).mkdir()
        for k in range(2):
            _rgb(color=color).save(tmp_path / cls / f"{k}.png")
    src = FolderSource(tmp_path)
    img, ref, rec = src.item(0, RES)
    assert rec["class"] == "a_cls" and rec["class_index"] == 0 and ref.endswith("0.png")
    assert float(img[0].mean()) > 0.9 and float(img[2].mean()) < 0.1  # red
    assert src.item(3, RES)[2] == {"class": "b_cls", "class_index": 1, "file": "b_cls/1.png"}
    with pytest.raises(SourceError, match="does not exist"):
        FolderSource(tmp_path / "nope")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_table_of_paths_and_bytes(tmp_path: Path, fmt: str) -> None:
    (tmp_path / "imgs").mkdir()
    _rgb(color=(0, 255, 0)).save(tmp_path / "imgs" / "g.png")
    rows = pd.DataFrame({"path": ["imgs/g.png", "imgs/missing.png"], "label": ["green", "none"],
                         "score": [0.5, 1.5]})
    path = tmp_path / f"t.{fmt}"
    rows.to_csv(path, index=False) if fmt == "csv" else rows.to_parquet(path)
    src = TableSource(path)
    img, ref, rec = src.item(0, RES)
    assert rec == {"label": "green", "score": 0.5} and float(img[1].mean()) > 0.9
    assert src.fields == {"label": "categorical", "score": "continuous"}
    with pytest.raises(SkipImage, match="not found"):
        src.item(1, RES)
    # encoded bytes in the table (what Hugging Face parquet files hold)
    buf = io.BytesIO()
    _rgb(color=(0, 0, 255)).save(buf, format="PNG")
    pd.DataFrame({"image": [{"bytes": buf.getvalue(), "path": None}], "y": [1]}).to_parquet(tmp_path / "b.parquet")
    src = TableSource(tmp_path / "b.parquet", image_column="image")
    img, ref, rec = src.item(0, RES)
    assert float(img[2].mean()) > 0.9 and rec == {"y": 1} and ref.endswith("#row=0")


def test_skimage_photos_load_offline() -> None:
    src = SkimageSource()
    assert len(src) == len(SKIMAGE_PHOTOS) == 9
    imgs = [src.item(i, RES)[0] for i in range(len(src))]
    stack = torch.stack(imgs)
    assert stack.shape == (9, 3, RES, RES)
    # real colour photos: not constant, not grey, all different
    assert float(stack.std()) > 0.1
    assert float((stack.amax(1) - stack.amin(1)).mean()) > 0.05
    assert len({round(float(x.sum()), 3) for x in imgs}) == 9


def test_hf_offline_fails_fast_with_a_clear_message(monkeypatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # failing fast means not trying the network at all (its retries take ~25 s): record every connection attempt
    attempts: list[object] = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled by the test")

    for name in ("getaddrinfo", "create_connection"):  # name lookups and connections
        monkeypatch.setattr(socket, name, refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    with pytest.raises(SourceError, match="not in the local cache") as exc:
        HFSource("tokenprobe-test/definitely-not-cached", split="train")
    assert attempts == []
    assert "tokenprobe-test/definitely-not-cached" in str(exc.value)


def test_hf_local_save_to_disk(tmp_path: Path) -> None:
    import datasets

    buf = io.BytesIO()
    _rgb(color=(255, 255, 0)).save(buf, format="PNG")
    feats = datasets.Features({"image": datasets.Image(),
                               "label": datasets.ClassLabel(names=["cat", "dog"])})
    ds = datasets.Dataset.from_dict({"image": [{"bytes": buf.getvalue(), "path": None},
                                               {"bytes": b"garbage", "path": None}],
                                     "label": [1, 0]}, features=feats)
    ds.save_to_disk(str(tmp_path / "hfds"))
    src = HFSource(path=tmp_path / "hfds")
    img, _, rec = src.item(0, RES)
    assert rec == {"label": "dog"} and float(img[0].mean()) > 0.9 and float(img[2].mean()) < 0.1
    with pytest.raises(SkipImage):
        src.item(1, RES)
