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
    """The one interface every tokenizer in tokenprobe implements (TiTok presets, embedded models).

    ``decode`` is the one decode: ``decode_indices`` and every caller go through it. Continuous
    (VAE-style) tokenizers have ``codebook_size == 0``, an empty ``codebook [0, C]``, ``None``
    indices, and ``quantize`` is the identity on encoder outputs.
    """

    @property
    def num_tokens(self) -> int: ...

    @property
    def codebook_size(self) -> int:
        """K, the number of codes (0 for continuous tokenizers)."""
        ...

    @property
    def token_dim(self) -> int: ...

    @property
    def image_size(self) -> int: ...

    @property
    def is_discrete(self) -> bool: ...

    @property
    def codebook(self) -> torch.Tensor:
        """``[K, C]`` code vectors as used for lookup (normalized where the quantizer normalizes)."""
        ...

    def encode(self, images: torch.Tensor, *, grad: bool = False) -> Encoded:
        """``images [B, 3, H, W]`` in [0, 1] -> :class:`Encoded`; no autograd graph unless ``grad``."""
        ...

    def quantize(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``features [B, N, C]`` -> (quantized ``[B, N, C]`` with a straight-through gradient to
        ``features``, indices ``[B, N]`` int64 or None for continuous tokenizers)."""
        ...

    def decode(self, quantized: torch.Tensor, *, clamp: bool = True) -> torch.Tensor:
        """``quantized [B, N, C]`` -> images ``[B, 3, H, W]``, clamped to [0, 1] unless ``clamp=False``
        (the raw output, differentiable, for gradient-based optimization)."""
        ...

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """``indices [B, N]`` -> images ``[B, 3, H, W]`` in [0, 1]; equals ``decode(codebook[indices])``."""
        ...
