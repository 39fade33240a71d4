"""The imagenet-x manifest, offline: dummy image files named like ImageNet validation images are joined to
ImageNet-X's annotation factors by file name; files it does not annotate are left out."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("imagenet_x")

from probe.data.imagenet_x import FACTORS, ImagenetXSource, annotations  # noqa: E402


def _dummy_folder(root: Path, names: list[str], nested: bool) -> None:
    rng = np.random.default_rng(0)
    for k, name in enumerate(names):
        folder = root / (f"n{k:08d}" if nested else "")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (24, 20, 3), dtype=np.uint8)).save(folder / name, format="JPEG")


@pytest.mark.parametrize("nested", [False, True])
def test_manifest_joins_annotations_by_file_name(tmp_path: Path, monkeypatch, nested: bool) -> None:
    from probe.data.dataset import collate_skip_none, dataset_from_manifest
    from probe.data.manifest import load_manifest

    table = annotations("multi")
    known = list(table.index[[0, 1, 7, 500]])
    _dummy_folder(tmp_path / "val", [*known, "ILSVRC2012_val_99999999.JPEG"], nested)  # the last: not annotated
    monkeypatch.setenv("IMAGENET_VAL", str(tmp_path / "val"))
    m = load_manifest("imagenet-x")
    assert set(FACTORS) <= set(m.attribute_names) and m.attribute_kinds["pose"] == "categorical"
    ds = dataset_from_manifest(m, resolution=16)
    assert len(ds) == 4 and ds.source.n_unannotated == 1
    batch = collate_skip_none([ds[i] for i in range(len(ds))])
    assert batch.images.shape == (4, 3, 16, 16)
    for ref, attrs in zip(batch.refs, batch.attrs):
        row = table.loc[Path(ref).name]
        assert {f: attrs[f] for f in FACTORS} == {f: int(row[f]) for f in FACTORS}
        assert attrs["imagenet_class"] == int(row["imagenet_class"]) and attrs["metaclass"] == row["metaclass"]


def test_top_annotations_name_one_factor(tmp_path: Path) -> None:
    table = annotations("top")
    name = table.index[3]
    _dummy_folder(tmp_path, [name], nested=False)
    src = ImagenetXSource(tmp_path, annotations_kind="top")
    _, _, rec = src.item(0, 16)
    assert rec["top_factor"] in FACTORS and rec[rec["top_factor"]] == 1


def test_folder_without_annotated_names_is_one_clear_error(tmp_path: Path) -> None:
    from probe.data.sources import SourceError

    _dummy_folder(tmp_path, ["cat.jpg"], nested=False)
    with pytest.raises(SourceError, match="ImageNet-X annotated"):
        ImagenetXSource(tmp_path)


def test_missing_package_is_one_clear_line(monkeypatch) -> None:
    import sys

    from probe.data.imagenet_x import ImagenetXUnavailable

    monkeypatch.setitem(sys.modules, "imagenet_x", None)
    with pytest.raises(ImagenetXUnavailable, match=r"pip install 'tokenprobe\[imagenet-x\]'"):
        annotations.__wrapped__("multi")
