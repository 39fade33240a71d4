"""A tiny hand-built tokenizer with the project's tokenizer interface, for the optimize tests.

Images are 8x8; each of the 4 tokens is the mean colour of one 4x4 quadrant (``C = 3``); the VQ
variant snaps tokens to the 27 colours of {0, 0.5, 1}^3 with a straight-through gradient; decode
paints each quadrant with its token's colour and blurs a little across quadrant borders (a fixed,
known, differentiable decoder whose raw output leaves [0, 1] when tokens do).
"""
from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from probe.tokenizers.base import Encoded


class ToyTokenizer(nn.Module):
    num_tokens = 4
    token_dim = 3
    image_size = 8

    def __init__(self, discrete: bool = True, blur: float = 0.0) -> None:
        super().__init__()
        self.is_discrete = discrete
        levels = (0.0, 0.5, 1.0)
        self.register_buffer("codes", torch.tensor(list(itertools.product(levels, repeat=3))))
        self.blur = blur

    @property
    def codebook_size(self) -> int:
        return len(self.codes) if self.is_discrete else 0

    @property
    def codebook(self) -> torch.Tensor:
        return self.codes if self.is_discrete else self.codes[:0]

    def quantize(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not self.is_discrete:
            return features, None
        d = (features[..., None, :] - self.codes).pow(2).sum(-1)
        idx = d.argmin(-1)
        q = self.codes[idx]
        return features + (q - features).detach(), idx

    def encode(self, images: torch.Tensor, *, grad: bool = False) -> Encoded:
        with torch.set_grad_enabled(grad):
            f = F.avg_pool2d(images, 4).flatten(2).transpose(1, 2)  # [B, 4, 3]
            q, idx = self.quantize(f)
        return Encoded(indices=idx, features=f, quantized=q)

    def decode(self, quantized: torch.Tensor, *, clamp: bool = True) -> torch.Tensor:
        b = quantized.shape[0]
        img = quantized.transpose(1, 2).reshape(b, 3, 2, 2)
        img = F.interpolate(img, scale_factor=4, mode="nearest")
        if self.blur > 0:
            k = torch.tensor([self.blur, 1 - 2 * self.blur, self.blur], dtype=img.dtype)
            img = F.conv2d(F.pad(img, (1, 1, 0, 0), mode="replicate"), k.view(1, 1, 1, 3).repeat(3, 1, 1, 1), groups=3)
        return img.clamp(0, 1) if clamp else img

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        return self.decode(self.codes[indices])


def quadrant_images(colours: torch.Tensor) -> torch.Tensor:
    """``colours [B, 4, 3]`` -> 8x8 images with one flat colour per quadrant."""
    return ToyTokenizer(discrete=False).decode(colours, clamp=False)


def test_toy_round_trip() -> None:
    g = torch.Generator().manual_seed(0)
    cont = ToyTokenizer(discrete=False)
    colours = torch.rand(3, 4, 3, generator=g)
    enc = cont.encode(quadrant_images(colours))
    assert enc.indices is None
    torch.testing.assert_close(enc.features, colours)
    vq = ToyTokenizer()
    enc = vq.encode(quadrant_images(vq.codes[torch.tensor([[0, 5, 13, 26]])]))
    assert enc.indices.tolist() == [[0, 5, 13, 26]]
