"""Manifests: shipped files validate; errors name the file and the field; the dataset contract."""
from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
import yaml

from probe.data import collate_skip_none, dataset_from_manifest, load_manifest
from probe.data.manifest import ManifestError
from probe.data.sources import SourceError

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "data_manifests").glob("*.yaml"))

WORLD = {"name": "w", "source": {"type": "world"}, "size": 40, "seed": 3,
         "attributes": [{"name": "shape", "kind": "categorical"},
                        {"name": "lighting", "kind": "continuous"}]}


def _write(tmp_path: Path, data: dict, name: str = "m.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def test_shipped_manifests_validate() -> None:
    names = {p.name for p in SHIPPED}
    assert {"world.yaml", "photos-corruptions.yaml", "imagenet-val.yaml",
            "celeba-attributes.yaml"} <= names
    for p in SHIPPED:
        m = load_manifest(p)
        assert m.attribute_names and set(m.attribute_kinds.values()) <= {"categorical", "continuous"}
    celeba = load_manifest(ROOT / "data_manifests" / "celeba-attributes.yaml")
    assert len(celeba.attributes) == 40 and "Blurry" in celeba.attribute_names
    world = load_manifest(ROOT / "data_manifests" / "world.yaml")
    assert {"null_factor", "lighting", "bg_blur", "global_blur", "shape"} <= set(world.attribute_names)


@pytest.mark.parametrize(
    "edit,field",
    [
        (lambda d: d["attributes"][1].update(kind="cont"), "attributes[1].kind"),
        (lambda d: d["attributes"][0].pop("name"), "attributes[0].name"),
        (lambda d: d["source"].update(type="webdataset"), "source.type"),
        (lambda d: d["source"].update(root="/x"), "source.root"),
        (lambda d: d.update(size=-3), "size"),
        (lambda d: d.update(seed="zero"), "seed"),
        (lambda d: d.update(colour="red"), "colour"),
        (lambda d: d["source"].update(config={"scale_range": [0.5, 0.1]}), "source.config"),
        (lambda d: d["source"].update(config={"wobble": 1}), "source.config.wobble"),
        (lambda d: d.update(corruptions=[{"kind": "fog", "strengths": [1]}]), "corruptions[0].kind"),
        (lambda d: d.update(corruptions={"mode": "grid", "partitions": [{"kind": "blur", "strengths": [0, 9]}]}),
         "corruptions.partitions[0].strengths[1]"),
        (lambda d: d.update(corruptions={"mode": "both", "partitions": []}), "corruptions.mode"),
        (lambda d: d["attributes"].append({"name": "shape", "kind": "categorical"}), "attributes[2].name"),
    ],
)
def test_errors_name_file_and_field(tmp_path: Path, edit, field: str) -> None:
    data = yaml.safe_load(yaml.safe_dump(WORLD))
    edit(data)
    path = _write(tmp_path, data)
    with pytest.raises(ManifestError) as exc:
        load_manifest(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: field '{field}'"), msg


def test_error_message_example(tmp_path: Path) -> None:
    data = yaml.safe_load(yaml.safe_dump(WORLD))
    data["attributes"].append({"name": "x", "kind": "cont"})
    path = _write(tmp_path, data)
    with pytest.raises(ManifestError, match=r"m\.yaml: field 'attributes\[2\]\.kind' must be "
                                            r"'categorical' or 'continuous', got 'cont'"):
        load_manifest(path)
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ManifestError, match="bad.yaml: not valid YAML"):
        load_manifest(tmp_path / "bad.yaml")
    with pytest.raises(ManifestError, match="table.yaml: field 'attributes' is required"):
        load_manifest(_write(tmp_path, {"name": "t", "source": {"type": "table", "path": "x.csv"}},
                             "table.yaml"))


def test_missing_data_folder_names_field_and_variable(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("IMAGENET_VAL", raising=False)
    monkeypatch.chdir(tmp_path)
    m = load_manifest(ROOT / "data_manifests" / "imagenet-val.yaml")
    with pytest.raises(SourceError, match=r"imagenet-val.yaml: field 'source.root'.*IMAGENET_VAL"):
        dataset_from_manifest(m, 32)


def test_world_dataset_contract(tmp_path: Path) -> None:
    m = load_manifest(_write(tmp_path, WORLD))
    ds = dataset_from_manifest(m, 32)
    assert len(ds) == 40 and m.attribute_names == ["shape", "lighting"]
    item = ds[17]
    assert set(item) >= {"image", "ref", "attrs"}
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    assert item["ref"] == "world:seed=3:idx=17"
    assert set(item["attrs"]) == {"shape", "lighting"} and isinstance(item["attrs"]["lighting"], float)
    # deterministic, picklable, batched access equals single access
    again = pickle.loads(pickle.dumps(ds))
    assert torch.equal(again[17]["image"], item["image"])
    batch = ds.__getitems__([16, 17, 39])
    assert torch.equal(batch[1]["image"], item["image"]) and batch[1]["attrs"] == item["attrs"]
    b = collate_skip_none([ds[0], None, ds[1]])
    assert b.images.shape == (2, 3, 32, 32) and b.skipped == 1 and b.refs[1].endswith("idx=1")
    empty = collate_skip_none([None, None])
    assert empty.images.shape[0] == 0 and empty.skipped == 2


def test_derived_attributes_and_corruption_modes(tmp_path: Path) -> None:
    data = {"name": "p", "source": {"type": "skimage", "photos": ["coffee", "rocket"]},
            "attributes": [{"name": "photo", "kind": "categorical"},
                           {"name": "is_coffee", "kind": "categorical", "from": "photo",
                            "map": {"coffee": "yes"}, "default": "no"}],
            "corruptions": {"mode": "grid", "partitions": [
                {"kind": "blur", "strengths": [0, 5]}, {"kind": "brightness", "strengths": [0, 3]}]}}
    ds = dataset_from_manifest(load_manifest(_write(tmp_path, data)), 32)
    assert len(ds) == 2 * 4
    attrs = [ds[i]["attrs"] for i in range(len(ds))]
    assert [a["photo"] for a in attrs] == ["coffee"] * 4 + ["rocket"] * 4
    assert [a["is_coffee"] for a in attrs] == ["yes"] * 4 + ["no"] * 4
    assert [(a["corruption"], a["blur"], a["brightness"]) for a in attrs[:4]] == [
        ("blur", 0.0, 0.0), ("blur", 5.0, 0.0), ("brightness", 0.0, 0.0), ("brightness", 0.0, 3.0)]
    assert torch.equal(ds[0]["image"], ds[2]["image"])  # severity 0 of any kind is the clean photo
    assert not torch.equal(ds[0]["image"], ds[1]["image"])
    assert len({ds[i]["ref"] for i in range(len(ds))}) == len(ds)  # refs are unique
    # mode "all": every kind at an independent severity; size cycles the photos
    data["corruptions"]["mode"] = "all"
    data["size"] = 12
    ds = dataset_from_manifest(load_manifest(_write(tmp_path, data)), 32)
    attrs = [ds[i]["attrs"] for i in range(12)]
    assert "corruption" not in attrs[0] and {a["blur"] for a in attrs} == {0.0, 5.0}
    assert [a["photo"] for a in attrs[:4]] == ["coffee", "rocket", "coffee", "rocket"]
    assert ds.attribute_names == ["photo", "is_coffee", "blur", "brightness"]


def test_shipped_name_and_dataloader_workers() -> None:
    from torch.utils.data import DataLoader, Subset

    m = load_manifest("world")  # a shipped manifest by name
    assert m.name == "world" and m.size == 10000
    ds = dataset_from_manifest(m)  # resolution from the world config: 64
    assert ds.resolution == 64
    sub = Subset(ds, range(24))
    loader = DataLoader(sub, batch_size=8, num_workers=2, collate_fn=collate_skip_none)
    batches = list(loader)
    images = torch.cat([b.images for b in batches])
    refs = [r for b in batches for r in b.refs]
    assert images.shape == (24, 3, 64, 64) and refs == [f"world:seed=0:idx={i}" for i in range(24)]
    assert torch.equal(images[5], ds[5]["image"])  # workers' batched render == single render
    with pytest.raises(ManifestError, match="not found"):
        load_manifest("no-such-manifest")
