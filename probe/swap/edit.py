"""Copy-paste on images: encode, paste tokens with :func:`probe.tokenizers.base.paste_tokens`, decode."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from probe.tokenizers.base import Tokenizer, module_device, paste_tokens


@torch.no_grad()
def copy_paste(tokenizer: Tokenizer, target: torch.Tensor, source: torch.Tensor,
               positions: Sequence[int]) -> dict[str, torch.Tensor]:
    """Copy the tokens at ``positions`` from ``source`` images into ``target`` images (row by row).

    ``target [B, 3, H, W]``, ``source [B or 1, 3, H, W]`` in [0, 1]. Returns (on the CPU) ``images`` (decoded
    composites ``[B, 3, H, W]``), the ``target`` / ``source`` reconstructions, and ``quantized [B, N, C]``.

    Examples:
        >>> out = copy_paste(tok, rematerialise(store, [0, 1]), rematerialise(store, [2, 3]), [26])  # doctest: +SKIP
        >>> out["images"].shape  # doctest: +SKIP
        torch.Size([2, 3, 32, 32])
    """
    if len(target) != len(source) and len(source) != 1:
        raise ValueError(f"copy_paste: {len(target)} targets but {len(source)} sources (give 1 or as many)")
    bad = [p for p in positions if not 0 <= int(p) < tokenizer.num_tokens]
    if bad:
        raise ValueError(f"copy_paste: positions {bad} outside 0..{tokenizer.num_tokens - 1}")
    dev = module_device(tokenizer)
    qt = tokenizer.encode(target.to(dev)).quantized
    qs = tokenizer.encode(source.to(dev)).quantized.expand_as(qt)
    q = paste_tokens(qt, qs, [int(p) for p in positions])
    return {"images": tokenizer.decode(q).cpu(), "target": tokenizer.decode(qt).cpu(),
            "source": tokenizer.decode(qs).cpu(), "quantized": q.cpu()}
