"""Core data types shared across tokenprobe.

Conventions (see ../shared/DESIGN.md):
- images are float tensors ``[B, 3, H, W]``, RGB, values in ``[0, 1]``;
- token positions are 0-based.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch


@dataclass
class Encoded:
    """What a tokenizer's ``encode`` returns.

    Attributes:
        indices: ``[B, N]`` int64 token ids (``None`` for continuous tokenizers).
        features: ``[B, N, C]`` pre-quantization features.
        quantized: ``[B, N, C]`` quantized features (equal to ``features`` for continuous ones).
    """

    indices: torch.Tensor | None
    features: torch.Tensor
    quantized: torch.Tensor


@runtime_checkable
class Tokenizer(Protocol):
    """The interface every tokenizer in tokenprobe implements (TiTok presets, embedded models)."""

    num_tokens: int
    codebook_size: int
    token_dim: int
    image_size: int

    def encode(self, images: torch.Tensor) -> Encoded:
        """``images [B, 3, H, W]`` in [0, 1] -> :class:`Encoded`."""
        ...

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """``indices [B, N]`` -> images ``[B, 3, H, W]`` in [0, 1]."""
        ...

    def decode_features(self, features: torch.Tensor) -> torch.Tensor:
        """``features [B, N, C]`` -> images; quantizes with a straight-through gradient."""
        ...

    @property
    def codebook(self) -> torch.Tensor:
        """``[K, C]`` code vectors as used for lookup (normalized where the quantizer normalizes)."""
        ...
