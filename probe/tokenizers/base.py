"""The shared tokenizer contract and the pieces every caller of a tokenizer uses.

- :class:`Tokenizer`: the one interface every tokenizer implements (TiTok presets, embedded models);
- :class:`Encoded`: what ``encode`` returns;
- :func:`paste_tokens`: the one copy-paste of token positions from donors into recipients;
- :func:`encode_batched` / :func:`decode_batched`: the one batched encode / decode (no autograd, fixed-size
  batches on the tokenizer's device, CPU results);
- :func:`module_device`: where a module's weights live.

Conventions: images are float tensors ``[B, 3, H, W]``, RGB, values in ``[0, 1]``; token positions are 0-based.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch

PositionSet = int | Sequence[int]
"""One token position, or a set of them (order and repeats do not matter)."""


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
    indices, and ``quantize`` is the identity on encoder outputs. Tokenizers are ``torch.nn.Module`` s
    (``parameters()``, ``eval()``, ``to(device)``).
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


def position_tuple(positions: PositionSet) -> tuple[int, ...]:
    """``positions`` as a sorted tuple of distinct ints (a set must hold at least one position)."""
    if isinstance(positions, (int, np.integer)):
        return (int(positions),)
    out = tuple(sorted({int(p) for p in positions}))
    if not out:
        raise ValueError("a position set must hold at least one position")
    return out


def paste_tokens(recipients: torch.Tensor, donors: torch.Tensor, positions: PositionSet) -> torch.Tensor:
    """``recipients [M, N, ...]`` with the tokens at ``positions`` replaced by the donors' (a copy).

    Works on code vectors ``[M, N, C]`` and on token ids ``[M, N]`` alike; ``donors`` has the recipients'
    shape (or broadcasts to it, e.g. one donor ``[1, N, C]`` for every recipient).
    """
    q = recipients.clone()
    idx = list(position_tuple(positions))
    q[:, idx] = donors[:, idx].to(q.dtype) if donors.shape[0] == q.shape[0] else donors[:, idx].expand_as(q[:, idx])
    return q


def module_device(module: object) -> torch.device:
    """Where a module's weights live (its first parameter, else its first buffer; CPU for a module without any
    or an object that is no module)."""
    for getter in ("parameters", "buffers"):
        if hasattr(module, getter):
            t = next(iter(getattr(module, getter)()), None)
            if t is not None:
                return t.device
    return torch.device("cpu")


@torch.no_grad()
def encode_batched(tok: Tokenizer, images: torch.Tensor, batch: int = 256) -> Encoded:
    """``tok.encode`` of ``images [M, 3, H, W]`` in [0, 1], ``batch`` images at a time on the tokenizer's device.

    Returns an :class:`Encoded` of CPU tensors: ``indices [M, N]`` (``None`` for continuous tokenizers),
    ``features [M, N, C]``, ``quantized [M, N, C]``.
    """
    if batch < 1:
        raise ValueError(f"encode_batched: batch must be >= 1, got {batch}")
    dev = module_device(tok)
    parts = [tok.encode(images[s : s + batch].to(dev)) for s in range(0, len(images), batch)]
    if not parts:
        empty = torch.zeros(0, tok.num_tokens, tok.token_dim)
        idx = torch.zeros(0, tok.num_tokens, dtype=torch.long) if getattr(tok, "is_discrete", True) else None
        return Encoded(indices=idx, features=empty, quantized=empty.clone())
    indices = None if parts[0].indices is None else torch.cat([p.indices.cpu() for p in parts])
    return Encoded(indices=indices, features=torch.cat([p.features.cpu() for p in parts]),
                   quantized=torch.cat([p.quantized.cpu() for p in parts]))


@torch.no_grad()
def decode_batched(tok: Tokenizer, q: torch.Tensor, batch: int = 256, *, clamp: bool = True) -> torch.Tensor:
    """``tok.decode`` of tokens ``q [M, N, C]`` (quantized vectors, for every kind of tokenizer), ``batch`` at a
    time on the tokenizer's device -> CPU images ``[M, 3, H, W]`` (in [0, 1] unless ``clamp=False``)."""
    if batch < 1:
        raise ValueError(f"decode_batched: batch must be >= 1, got {batch}")
    dev = module_device(tok)
    parts = [tok.decode(q[s : s + batch].to(dev), clamp=clamp).cpu() for s in range(0, len(q), batch)]
    if not parts:
        return torch.zeros(0, 3, tok.image_size, tok.image_size)
    return torch.cat(parts)
