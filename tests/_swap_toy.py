"""A tokenizer whose semantics are known by construction, for the swap engine's tests.

12 tokens, 16 codes of 4 dims. Code ``k`` is ``(cos 2pi k/16, sin 2pi k/16, (k % 4) / 3, (k // 4) / 3)``.
The decoder reads three things and ignores everything else:

- brightness: dim 2 of the token at position 3 -> the image's mean level ``0.22 + 0.45 * b``;
- hue: the angle of dims 0-1 of the token at position 7 -> a colour offset whose channel mean is zero;
- contrast: dim 3 of the token at position 5 -> a column stripe of amplitude ``0.05 * c``; with
  ``entangled=True`` it also raises the brightness by ``0.15 * c`` (a mapping with a side effect).

Position 9 (and every other position) is ignored. ``bright_positions=(3, 8)`` spreads the brightness over
two positions (their mean): no single one carries it all. The measurers read back exactly these quantities.
A store-like table plants a probe-vs-causal disagreement: its ``brightness`` label is copied exactly
into position 11's token (which the decoder ignores) while position 3 carries it for 70% of the rows.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from torch import nn

from probe.tokenizers.base import Encoded

N, C, K, S = 12, 4, 16, 8
BRIGHT, HUE, CONTRAST, IGNORED, PLANTED = 3, 7, 5, 9, 11


def codebook() -> torch.Tensor:
    k = torch.arange(K, dtype=torch.float32)
    th = 2 * math.pi * k / K
    return torch.stack([th.cos(), th.sin(), (k % 4) / 3, (k // 4) / 3], 1)


class ToyTokenizer(nn.Module):
    """See the module docstring. Implements the parts of :class:`probe.tokenizers.base.Tokenizer` swaps use."""

    num_tokens, codebook_size, token_dim, image_size, is_discrete = N, K, C, S, True

    def __init__(self, entangled: bool = False, bright_positions: tuple[int, ...] = (BRIGHT,)) -> None:
        super().__init__()
        self.register_buffer("codes", codebook())
        self.entangled = entangled
        self.bright_positions = list(bright_positions)
        self.decoded = 0

    @property
    def codebook(self) -> torch.Tensor:
        return self.codes

    def quantize(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.cdist(features.reshape(-1, C), self.codes).argmin(1).reshape(features.shape[:2])
        q = self.codes[idx]
        return features + (q - features).detach(), idx

    def decode(self, quantized: torch.Tensor, *, clamp: bool = True) -> torch.Tensor:
        b = quantized[:, self.bright_positions, 2].mean(1)
        c = quantized[:, CONTRAST, 3]
        h = torch.atan2(quantized[:, HUE, 1], quantized[:, HUE, 0])
        level = 0.22 + 0.45 * b + (0.15 * c if self.entangled else 0.0)
        offs = torch.stack([h.cos(), (h - 2 * math.pi / 3).cos(), (h + 2 * math.pi / 3).cos()], 1) * 0.1
        stripe = torch.tensor([1.0, -1.0] * (S // 2))[None, None, None, :] * (0.05 * c)[:, None, None, None]
        img = level[:, None, None, None] + offs[:, :, None, None] + stripe
        img = img.expand(-1, 3, S, S)
        self.decoded += len(quantized)
        return img.clamp(0, 1) if clamp else img

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        return self.decode(self.codes[indices])

    def encode(self, images: torch.Tensor, *, grad: bool = False) -> Encoded:
        """Reads the three quantities back and picks the codes that make them (others: code 0)."""
        bright, hue, contrast = Brightness(), Hue(), Contrast()
        lvl = ((bright(images) - 0.22 - (0.15 * contrast(images) if self.entangled else 0.0)) / 0.45 * 3).round()
        hv = hue(images)
        hk = ((torch.atan2(hv[:, 1], hv[:, 0]) / (2 * math.pi) * K).round() % K).long()
        ck = (contrast(images) * 3).round().clamp(0, 3).long()
        idx = torch.zeros(len(images), N, dtype=torch.long)
        idx[:, self.bright_positions] = lvl.clamp(0, 3).long()[:, None]
        idx[:, HUE] = hk
        idx[:, CONTRAST] = ck * 4
        q = self.codes[idx]
        return Encoded(indices=idx, features=q, quantized=q)


class Brightness:
    name, kind = "brightness", "continuous"

    def __call__(self, images: torch.Tensor, *, masks: torch.Tensor | None = None) -> torch.Tensor:
        return images.mean((1, 2, 3))


class Hue:
    name, kind = "hue", "circular"

    def __call__(self, images: torch.Tensor, *, masks: torch.Tensor | None = None) -> torch.Tensor:
        m = images.mean((2, 3))
        alpha = m[:, 0] - 0.5 * (m[:, 1] + m[:, 2])
        beta = (3**0.5) / 2 * (m[:, 1] - m[:, 2])
        return torch.nn.functional.normalize(torch.stack([alpha, beta], 1), dim=1)


class Contrast:
    name, kind = "contrast", "continuous"

    def __call__(self, images: torch.Tensor, *, masks: torch.Tensor | None = None) -> torch.Tensor:
        return (images[:, :, :, 0::2].mean((1, 2, 3)) - images[:, :, :, 1::2].mean((1, 2, 3))) / 0.1


MEASURERS = {"brightness": Brightness(), "hue": Hue(), "contrast": Contrast()}
KINDS = {"brightness": "continuous", "hue": "continuous", "contrast": "continuous"}
CIRCULAR = ("hue",)


def toy_store(m: int = 600, seed: int = 0, split: bool = False) -> tuple[np.ndarray, pd.DataFrame]:
    """``tokens [m, N]`` and their attributes (``brightness``, ``hue`` in turns, ``contrast``), with the
    planted non-causal copy of brightness at position 11 (``split``: brightness is the mean level of
    positions 3 and 8, recorded exactly)."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, K, size=(m, N))
    label = rng.integers(0, 4, size=m)  # the brightness level the store records
    keep = rng.random(m) < 0.7
    level3 = np.where(keep, label, rng.integers(0, 4, size=m))
    tokens[:, BRIGHT] = level3 + 4 * rng.integers(0, 4, size=m)
    tokens[:, PLANTED] = label  # a perfect copy of the label, never decoded
    bright = label / 3.0
    if split:
        bright = ((tokens[:, BRIGHT] % 4) + (tokens[:, 8] % 4)) / 6.0
    attrs = pd.DataFrame({
        "index": np.arange(m), "ref": [f"toy:{i}" for i in range(m)],
        "brightness": bright,
        "hue": tokens[:, HUE] / K,
        "contrast": (tokens[:, CONTRAST] // 4) / 3.0,
    })
    return tokens, attrs


class ToyStore:
    """The bits of :class:`probe.store.TokenStore` the swap layer reads."""

    def __init__(self, m: int = 600, seed: int = 0, split: bool = False) -> None:
        self.tokens, self.attributes = toy_store(m, seed, split)
        self.codebook = codebook().numpy()
        self.features = self.codebook[self.tokens]
        self.num_tokens, self.token_dim = N, C
        self.attribute_kinds = dict(KINDS)

    def __len__(self) -> int:
        return len(self.tokens)
