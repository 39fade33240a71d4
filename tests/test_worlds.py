"""The world registry and the attribute world: lookups, validation, defaults, and a second world added by one
registration (what a new world module does)."""
from __future__ import annotations

import pandas as pd
import pytest

from probe import worlds
from probe.worlds import World


@pytest.fixture
def second_world():
    """A planted second world that shares a factor name with the attribute world but measures it otherwise."""
    w = World(name="planted", source_type="planted-source", factors={"shape": "categorical", "tilt": "circular"},
              measurers={"shape": "clip:shape"})
    worlds.register(w)
    yield w
    worlds._REGISTRY.pop("planted", None)


def test_the_attribute_world_is_found_by_name_and_by_source() -> None:
    world = worlds.get("attribute")
    assert "attribute" in worlds.available() and worlds.for_source("world") is world
    assert worlds.for_source("folder") is None
    assert world.circular() == ("obj_hue", "bg_hue")
    assert world.factors["shape"] == "categorical" and world.factors["lighting"] == "continuous"
    assert "null_factor" in world.factors and "null_factor" not in world.measurers  # never rendered: not measured
    assert "stripe_angle" not in world.factors  # nuisances are not factors a user studies
    with pytest.raises(KeyError, match="attribute"):
        worlds.get("no-such-world")


def test_a_world_with_bad_kinds_or_stray_measurers_is_refused() -> None:
    with pytest.raises(ValueError, match="factor kinds"):
        World(name="bad", source_type="x", factors={"a": "ordinal"})
    with pytest.raises(ValueError, match="unknown factors"):
        World(name="bad", source_type="x", factors={"a": "continuous"}, measurers={"b": "analytic:luminance"})


def test_defaults_come_from_the_named_world_and_ambiguity_is_an_error(second_world) -> None:
    from probe.measure import measurer_for

    assert worlds.default_measurer("lighting") == "analytic:lighting"
    assert worlds.default_measurer("tilt") is None and worlds.default_measurer("contrast") is None
    assert worlds.default_measurer("shape", "attribute") == "oracle:shape"
    assert worlds.default_measurer("shape", second_world) == "clip:shape"
    with pytest.raises(KeyError, match="planted"):  # two worlds disagree: the caller must say which
        worlds.default_measurer("shape")
    assert measurer_for("lighting").kind == "continuous"  # one world knows it: no ambiguity


def test_a_store_learns_its_world_from_its_manifest(second_world) -> None:
    class Store:
        manifest = {"source": {"type": "planted-source"}}
        attributes = pd.DataFrame({"index": [0, 1]})

    assert worlds.of_store(Store()) is second_world
    assert worlds.store_masks(Store()) is None  # the planted world draws no masks
    Store.manifest = {"source": {"type": "folder", "root": "."}}
    assert worlds.of_store(Store()) is None and worlds.store_masks(Store()) is None


def test_the_default_manifest_renders_the_world_a_shipped_tokenizer_was_trained_on() -> None:
    from probe import zoo
    from probe.worlds.attribute import default_manifest, tokenizer_settings

    m = default_manifest("world-32", size=10, seed=3, resolution=32)
    assert m.source_type == "world" and m.size == 10 and m.seed == 3
    trained = zoo.config("world-32")["world"]
    assert tokenizer_settings("world-32") == trained and trained
    assert {k: v for k, v in m.source_options["config"].items() if k != "resolution"} == \
        {k: (list(v) if isinstance(v, tuple) else v) for k, v in trained.items() if k != "resolution"}
    assert default_manifest("not-shipped", size=4, seed=0, resolution=32).source_options["config"] == {"resolution": 32}


def test_prompts_name_what_the_judge_reads() -> None:
    from probe.worlds.attribute import parse_prompt, prompts

    ps = prompts(("circle", "star"), ("red", "blue"))
    assert ps == ["a photo of a red circle.", "a photo of a blue circle.", "a photo of a red star.",
                  "a photo of a blue star."]
    assert parse_prompt("A Blue STAR on grey") == ("star", "blue")
    assert parse_prompt("something else") == (None, None)
