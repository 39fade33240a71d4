"""Shipped weights of the embedded default (safetensors + a JSON config each).

Each model ``NAME`` is two files in this folder: ``NAME.json`` and ``NAME.safetensors``.
The JSON holds at least ``{"kind": "tokenizer" | "clip" | "oracle", ...}``; the rest is
read by the loader registered for that kind. Loaders live with the code of their kind
(e.g. ``probe.tokenizers``) and are looked up lazily here, so this module imports nothing heavy.
"""
from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

ZOO_DIR = Path(__file__).resolve().parent

# kind -> "module:function"; the function takes (config: dict, weights: Path, **kwargs)
LOADERS: dict[str, str] = {
    "tokenizer": "probe.tokenizers.loading:load_zoo_tokenizer",
    "clip": "probe.clip:load_zoo_clip",
    "oracle": "probe.oracle:load_zoo_oracle",
}


def available() -> list[str]:
    """Names of the shipped models (those with both a JSON config and weights)."""
    return sorted(p.stem for p in ZOO_DIR.glob("*.json") if p.with_suffix(".safetensors").exists())


def config(name: str) -> dict[str, Any]:
    """The JSON config of shipped model ``name``."""
    path = ZOO_DIR / f"{name}.json"
    if not path.exists():
        raise KeyError(
            f"no shipped model named {name!r} (looked for {path}); shipped models: {available() or 'none'}"
        )
    with open(path) as fh:
        cfg = json.load(fh)
    if "kind" not in cfg:
        raise ValueError(f"{path}: missing required field 'kind' (one of {sorted(LOADERS)})")
    return cfg


def weights_path(name: str) -> Path:
    path = ZOO_DIR / f"{name}.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"shipped model {name!r} has a config but no weights file {path}")
    return path


def load(name: str, **kwargs: Any) -> Any:
    """Load any shipped model by name (tokenizer, CLIP, oracle)."""
    cfg = config(name)
    kind = cfg["kind"]
    if kind not in LOADERS:
        raise ValueError(f"{ZOO_DIR / (name + '.json')}: unknown kind {kind!r}; expected one of {sorted(LOADERS)}")
    module, func = LOADERS[kind].split(":")
    loader = getattr(importlib.import_module(module), func)
    return loader(cfg, weights_path(name), **kwargs)
