"""tokenprobe: latent analysis and interpretability of highly compressed 1D image tokenizers.

Public entry points (stable names; the README's Python section shows them in use):
``load_tokenizer``, ``TokenStore``, ``run_probes``, ``zoo``, ``data``.
Heavy submodules are imported lazily so ``import probe`` stays fast.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> (module, attribute)
_LAZY = {
    "load_tokenizer": ("probe.tokenizers", "load_tokenizer"),
    "TokenStore": ("probe.store", "TokenStore"),
    "run_probes": ("probe.probes", "run_probes"),
    "Encoded": ("probe.tokenizers.base", "Encoded"),
    "Tokenizer": ("probe.tokenizers.base", "Tokenizer"),
    "resolve_device": ("probe.device", "resolve_device"),
}
_SUBMODULES = {"zoo", "data", "tokenizers", "probes", "store", "encode", "viz", "clip", "oracle"}

__all__ = sorted(_LAZY) + sorted(_SUBMODULES)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    if name in _SUBMODULES:
        return importlib.import_module(f"probe.{name}")
    raise AttributeError(f"module 'probe' has no attribute {name!r}")
