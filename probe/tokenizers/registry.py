"""Tokenizer architectures by name, resolved lazily ("module:Class") so importing is cheap.

Every registered class provides ``from_config(dict) -> model`` (random weights) and
``config_dict() -> dict``; saving and loading (``probe.tokenizers.loading``) rely only on these.
"""
from __future__ import annotations

import importlib

from probe.tokenizers.base import Tokenizer

ARCHITECTURES: dict[str, str] = {
    "titok": "probe.tokenizers.titok:TiTok",
    "world": "probe.tokenizers.world:WorldTokenizer",
}


def get_architecture(name: str) -> type:
    """The class registered as ``name``; a KeyError lists the known names."""
    if name not in ARCHITECTURES:
        raise KeyError(f"unknown tokenizer architecture {name!r}; known: {sorted(ARCHITECTURES)}")
    module, attr = ARCHITECTURES[name].split(":")
    return getattr(importlib.import_module(module), attr)


def architecture_of(model: Tokenizer) -> str:
    """The registered name of ``model``'s class (its ``architecture`` attribute, else by class)."""
    name = getattr(model, "architecture", None)
    if isinstance(name, str) and name in ARCHITECTURES:
        return name
    cls = type(model)
    for key, target in ARCHITECTURES.items():
        if target == f"{cls.__module__}:{cls.__qualname__}":
            return key
    raise ValueError(f"{cls.__qualname__} is not a registered tokenizer architecture ({sorted(ARCHITECTURES)})")
