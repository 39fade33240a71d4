"""The one batched encode / decode: no autograd, fixed-size batches on the tokenizer's device, CPU results.

Works with any :class:`probe.types.Tokenizer` (``encode(images) -> Encoded``, ``decode(quantized, clamp=...)``).
"""
from __future__ import annotations

import torch

from probe.types import Encoded


def tokenizer_device(tok: torch.nn.Module) -> torch.device:
    """Where the tokenizer's weights live (CPU for a module without any)."""
    for t in (*tok.parameters(), *tok.buffers()):
        return t.device
    return torch.device("cpu")


@torch.no_grad()
def encode_batched(tok: torch.nn.Module, images: torch.Tensor, batch: int = 256) -> Encoded:
    """``tok.encode`` of ``images [M, 3, H, W]`` in [0, 1], ``batch`` images at a time on the tokenizer's device.

    Returns an :class:`Encoded` of CPU tensors: ``indices [M, N]`` (``None`` for continuous tokenizers),
    ``features [M, N, C]``, ``quantized [M, N, C]``.
    """
    if batch < 1:
        raise ValueError(f"encode_batched: batch must be >= 1, got {batch}")
    dev = tokenizer_device(tok)
    parts = [tok.encode(images[s : s + batch].to(dev)) for s in range(0, len(images), batch)]
    if not parts:
        empty = torch.zeros(0, tok.num_tokens, tok.token_dim)
        idx = torch.zeros(0, tok.num_tokens, dtype=torch.long) if getattr(tok, "is_discrete", True) else None
        return Encoded(indices=idx, features=empty, quantized=empty.clone())
    indices = None if parts[0].indices is None else torch.cat([p.indices.cpu() for p in parts])
    return Encoded(indices=indices, features=torch.cat([p.features.cpu() for p in parts]),
                   quantized=torch.cat([p.quantized.cpu() for p in parts]))


@torch.no_grad()
def decode_batched(tok: torch.nn.Module, q: torch.Tensor, batch: int = 256, *, clamp: bool = True) -> torch.Tensor:
    """``tok.decode`` of tokens ``q [M, N, C]`` (quantized vectors, for every kind of tokenizer), ``batch`` at a
    time on the tokenizer's device -> CPU images ``[M, 3, H, W]`` (in [0, 1] unless ``clamp=False``)."""
    if batch < 1:
        raise ValueError(f"decode_batched: batch must be >= 1, got {batch}")
    dev = tokenizer_device(tok)
    parts = [tok.decode(q[s : s + batch].to(dev), clamp=clamp).cpu() for s in range(0, len(q), batch)]
    if not parts:
        return torch.zeros(0, 3, tok.image_size, tok.image_size)
    return torch.cat(parts)
