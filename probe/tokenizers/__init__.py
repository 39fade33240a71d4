"""Tokenizers: the TiTok family (our implementation, loads the official checkpoints), presets,
loading from presets / shipped models / local files / the Hugging Face hub, and saving.

Public API: :func:`load_tokenizer`, :func:`save_tokenizer`, :func:`build_tokenizer`,
:func:`list_presets`, :class:`TiTok`, :class:`TiTokConfig`.
"""
from __future__ import annotations

from probe.tokenizers.config import PixelDecoderConfig, TiTokConfig
from probe.tokenizers.loading import (
    WeightsUnavailableError,
    build_tokenizer,
    load_tokenizer,
    load_zoo_tokenizer,
    save_tokenizer,
)
from probe.tokenizers.presets import PRESETS, get_preset, list_presets
from probe.tokenizers.registry import ARCHITECTURES, get_architecture
from probe.tokenizers.titok import TiTok

__all__ = [
    "ARCHITECTURES",
    "PRESETS",
    "PixelDecoderConfig",
    "TiTok",
    "TiTokConfig",
    "WeightsUnavailableError",
    "build_tokenizer",
    "get_architecture",
    "get_preset",
    "list_presets",
    "load_tokenizer",
    "load_zoo_tokenizer",
    "save_tokenizer",
]
