"""probe.zoo: naming errors are clear and every shipped model has a known kind."""
import json

import pytest

from probe import zoo


def test_unknown_name_lists_what_is_shipped():
    with pytest.raises(KeyError, match="no shipped model named 'does-not-exist'"):
        zoo.config("does-not-exist")


def test_every_shipped_config_names_a_known_kind():
    for name in zoo.available():
        cfg = zoo.config(name)
        assert cfg["kind"] in zoo.LOADERS, name


def test_config_without_kind_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "ZOO_DIR", tmp_path)
    (tmp_path / "broken.json").write_text(json.dumps({"architecture": "world"}))
    (tmp_path / "broken.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match=r"broken\.json: missing required field 'kind'"):
        zoo.config("broken")
