"""Planted tokenizers: decoders that are known functions of their tokens, to calibrate swap verdicts.

Each attribute ``j`` has a latent value ``a_j`` uniform in [0, 1] (its label). The positions that carry it
(:attr:`PlantedAttribute.weights`) all hold the same token, ``a_j`` quantized to ``levels`` codes (code
``k`` is the scalar ``k / (levels - 1)``); every other position holds a uniform random token. The decoder
writes one reading per attribute into the image (channel 0, pixel ``j`` in row-major order):

    reading_j = gain_j * (sum_p w_jp v_p + sum_q s_jq v_q) + noise_j(tokens)

with ``v_p`` the code value at position ``p``, ``w`` the attribute's weights (they sum to 1), ``s`` its
side terms (positions carrying *another* attribute that this reading also reads: entanglement) and
``gain`` how much of the attribute the decoder reproduces (0.05: "not reconstructed"). Because every
carrying position holds the same value, pasting a position set ``S`` moves reading ``j`` by exactly
``sum_{p in S} w_jp`` of the pair's gap, up to noise: the true transfer is known (:func:`truth`).

The noise is a deterministic function of the whole token sequence (a hash, so the same tokens decode the
same way and any paste redraws it): Gaussian, or Student t with 3 degrees of freedom (``tails="t3"``,
heavy tails), scaled so that the noise of one pair's movement has standard deviation ``noise`` times the
mean gap between the quartile ends of a uniform latent (0.75, times ``gain``). ``stochastic=True``
draws fresh noise on every decode instead (a stochastic decoder, for the self-swap control).

The original images (:func:`originals`) show each latent exactly, so the reconstructions' share of the
originals' gap is ``gain``. :data:`NULL_LABELS` are label columns that carry no information: ``coin``
(random 0/1) and ``shuffled`` (the first attribute's latent, permuted).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from probe.tokenizers.base import Encoded, PositionSet, position_tuple

#: mean gap between the quartile ends of a uniform latent: the unit of ``noise``
UNIT_GAP = 0.75
#: label columns of :func:`sample` that carry no information
NULL_LABELS = ("coin", "shuffled")
_MASK32 = 0xFFFFFFFF


@dataclass(frozen=True)
class PlantedAttribute:
    """One attribute of a planted tokenizer.

    Attributes:
        name: the label column.
        weights: position -> the share of the attribute it carries (the shares sum to 1).
        side: position -> weight with which this reading also reads a position that carries another
            attribute (pasting that position for the other attribute moves this one: entanglement).
        gain: the share of the attribute the decoder reproduces.
    """

    name: str
    weights: Mapping[int, float]
    side: Mapping[int, float] = field(default_factory=dict)
    gain: float = 1.0


@dataclass(frozen=True)
class PlantedSpec:
    """A planted tokenizer and its data (see the module docstring).

    Attributes:
        attributes: the attributes, each carried by its own positions.
        n_tokens: positions; ``levels``: codes.
        noise: standard deviation of one pair's movement noise, in units of the mean pair gap.
        tails: ``"normal"`` or ``"t3"`` (Student t, 3 degrees of freedom, scaled to the same SD).
        stochastic: fresh noise on every decode instead of a function of the tokens.
        seed: seeds the noise (its hash, or the stochastic decoder's generator).
    """

    attributes: tuple[PlantedAttribute, ...]
    n_tokens: int = 16
    levels: int = 16
    noise: float = 0.3
    tails: str = "normal"
    stochastic: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        owner: dict[int, str] = {}
        for a in self.attributes:
            total = sum(a.weights.values())
            if abs(total - 1) > 1e-6:
                raise ValueError(f"attribute {a.name!r}: weights sum to {total}, not 1")
            for p in list(a.weights) + list(a.side):
                if not 0 <= p < self.n_tokens:
                    raise ValueError(f"attribute {a.name!r}: position {p} outside 0..{self.n_tokens - 1}")
            for p in a.weights:
                if p in owner:
                    raise ValueError(f"position {p} carries both {owner[p]!r} and {a.name!r}")
                owner[p] = a.name
        if self.tails not in ("normal", "t3"):
            raise ValueError(f"tails must be 'normal' or 't3', got {self.tails!r}")

    def attribute(self, name: str) -> PlantedAttribute:
        for a in self.attributes:
            if a.name == name:
                return a
        raise KeyError(f"no planted attribute {name!r}; have {[a.name for a in self.attributes]}")


def _mix32(h: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer mixer (the 'lowbias32' finalizer) on int64 tensors holding uint32 values."""
    h = h & _MASK32
    h = ((h >> 16) ^ h) * 0x7FEB352D & _MASK32
    h = ((h >> 15) ^ h) * 0x846CA68B & _MASK32
    return (h >> 16) ^ h


def _hash_normal(idx: torch.Tensor, salt: int) -> torch.Tensor:
    """A standard normal per row of token ids ``[B, N]``, a deterministic function of the whole row."""
    h = torch.full((len(idx),), salt & _MASK32, dtype=torch.int64, device=idx.device)
    for p in range(idx.shape[1]):
        h = _mix32(h ^ ((idx[:, p] + 1) * 0x9E3779B1 + p * 0x85EBCA77))
    u = (h.double() + 0.5) / 2.0**32
    return math.sqrt(2.0) * torch.erfinv(2 * u - 1)


class PlantedTokenizer(nn.Module):
    """A tokenizer of scalar codes whose decoder is the known function of :mod:`probe.tokenizers.planted`.

    Implements what swaps use of :class:`probe.tokenizers.base.Tokenizer` (``codebook``, ``quantize``,
    ``decode``, ``decode_indices``); there is no encoder.
    """

    is_discrete = True

    def __init__(self, spec: PlantedSpec) -> None:
        super().__init__()
        self.spec = spec
        n, k = spec.n_tokens, spec.levels
        self.register_buffer("codes", (torch.arange(k, dtype=torch.float32) / (k - 1))[:, None])
        w = torch.zeros(len(spec.attributes), n, dtype=torch.float64)
        for j, a in enumerate(spec.attributes):
            for p, v in a.weights.items():
                w[j, p] += v
            for p, v in a.side.items():
                w[j, p] += v
            w[j] *= a.gain
        self.register_buffer("weights", w)
        gains = torch.tensor([a.gain for a in spec.attributes], dtype=torch.float64)
        self.register_buffer("noise_sd", spec.noise * UNIT_GAP * gains / math.sqrt(2.0))
        self._gen = torch.Generator().manual_seed(int(spec.seed))

    num_tokens = property(lambda self: self.spec.n_tokens)
    codebook_size = property(lambda self: self.spec.levels)
    token_dim = property(lambda self: 1)
    image_size = property(lambda self: max(2, math.ceil(math.sqrt(len(self.spec.attributes)))))

    @property
    def codebook(self) -> torch.Tensor:
        return self.codes

    @property
    def stochastic(self) -> bool:
        """Whether two decodes of the same tokens differ."""
        return self.spec.stochastic

    def quantize(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        idx = (features[..., 0] * (self.spec.levels - 1)).round().clamp(0, self.spec.levels - 1).long()
        q = self.codes[idx]
        return features + (q - features).detach(), idx

    def readings(self, quantized: torch.Tensor) -> torch.Tensor:
        """``quantized [B, N, 1]`` -> the attributes' readings ``[B, A]`` (float64)."""
        v = quantized[..., 0].double()
        out = v @ self.weights.T
        a = len(self.spec.attributes)
        if self.spec.noise <= 0 or a == 0:
            return out
        idx = (v * (self.spec.levels - 1)).round().long()
        z = torch.empty_like(out)
        for j in range(a):
            if self.spec.stochastic:
                z[:, j] = self._draw(len(v), j)
            else:
                z[:, j] = self._hashed(idx, j)
        return out + z * self.noise_sd

    def _hashed(self, idx: torch.Tensor, j: int) -> torch.Tensor:
        base = (int(self.spec.seed) * 1000003 + 7919 * j) & _MASK32
        z0 = _hash_normal(idx, base)
        if self.spec.tails == "normal":
            return z0
        chi = sum(_hash_normal(idx, base ^ (0x5BD1E995 * (i + 1) & _MASK32)) ** 2 for i in range(3))
        return z0 / torch.sqrt(chi / 3) / math.sqrt(3.0)  # t with 3 df has variance 3

    def _draw(self, b: int, j: int) -> torch.Tensor:
        z0 = torch.randn(b, generator=self._gen, dtype=torch.float64)
        if self.spec.tails == "normal":
            return z0
        chi = (torch.randn(3, b, generator=self._gen, dtype=torch.float64) ** 2).sum(0)
        return z0 / torch.sqrt(chi / 3) / math.sqrt(3.0)

    def decode(self, quantized: torch.Tensor, *, clamp: bool = True) -> torch.Tensor:
        """``quantized [B, N, 1]`` -> images ``[B, 3, S, S]``: reading ``j`` at channel 0, pixel ``j``
        (readings are not clamped: they are measurements, not intensities)."""
        r = self.readings(quantized).float()
        return render(r, self.image_size)

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        return self.decode(self.codes[indices])

    def encode(self, images: torch.Tensor, *, grad: bool = False) -> Encoded:
        raise NotImplementedError("a planted tokenizer has no encoder (the swap_back control needs one)")


def render(readings: torch.Tensor, size: int) -> torch.Tensor:
    """Readings ``[B, A]`` -> images ``[B, 3, size, size]`` holding reading ``j`` at channel 0, pixel ``j``."""
    b, a = readings.shape
    img = torch.zeros(b, 3, size * size, dtype=readings.dtype, device=readings.device)
    img[:, 0, :a] = readings
    return img.reshape(b, 3, size, size)


class PlantedMeasurer:
    """Reads attribute ``index``'s value from a planted image (channel 0, pixel ``index``)."""

    kind = "continuous"

    def __init__(self, index: int, name: str) -> None:
        self.index, self.name = index, name

    def __call__(self, images: torch.Tensor, *, masks: torch.Tensor | None = None) -> torch.Tensor:
        return images[:, 0].flatten(1)[:, self.index]


def measurers(spec: PlantedSpec) -> dict[str, PlantedMeasurer]:
    """label column -> its measurer; the null labels are read with the first attribute's measurer (as a
    user who measures luminance for a label that is not luminance)."""
    out = {a.name: PlantedMeasurer(j, a.name) for j, a in enumerate(spec.attributes)}
    for name in NULL_LABELS:
        out[name] = PlantedMeasurer(0, name)
    return out


def sample(spec: PlantedSpec, m: int, *, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    """``m`` token sequences ``[m, N]`` (int64) and their labels: one column per attribute (its latent),
    ``coin`` and ``shuffled`` (see :data:`NULL_LABELS`)."""
    rng = np.random.default_rng([int(seed), 0x51A7])
    k = spec.levels
    tokens = rng.integers(0, k, size=(m, spec.n_tokens))
    labels = {}
    for a in spec.attributes:
        lat = rng.random(m)
        labels[a.name] = lat
        for p in a.weights:
            tokens[:, p] = np.rint(lat * (k - 1)).astype(np.int64)
    first = spec.attributes[0].name if spec.attributes else None
    labels["coin"] = rng.integers(0, 2, size=m).astype(str)
    labels["shuffled"] = rng.permutation(labels[first]) if first else rng.random(m)
    return tokens.astype(np.int64), pd.DataFrame(labels)


def originals(spec: PlantedSpec, labels: pd.DataFrame) -> torch.Tensor:
    """The original images of ``labels``: every attribute's latent shown exactly, ``[m, 3, S, S]``."""
    r = torch.as_tensor(np.stack([labels[a.name].to_numpy(float) for a in spec.attributes], 1))
    return render(r.float(), max(2, math.ceil(math.sqrt(len(spec.attributes)))))


def truth(spec: PlantedSpec, label: str, positions: PositionSet) -> float:
    """The true transfer of pasting ``positions`` for the pairs of ``label``: the carried shares summed
    (0 for a null label: its pairs' ends carry nothing)."""
    if label in NULL_LABELS:
        return 0.0
    a = spec.attribute(label)
    return float(sum(a.weights.get(p, 0.0) for p in position_tuple(positions)))


def scenario(name: str, *, noise: float = 0.3, tails: str = "normal", n_tokens: int = 16, seed: int = 0,
             stochastic: bool = False) -> PlantedSpec:
    """The calibration benchmark's planted tokenizers, by name:

    - ``single``: attribute ``a``: position 0 carries 0.7, positions 1-3 0.1 each (sub-threshold);
      attribute ``b`` at positions 4-5 (0.5 each); positions 6.. are null;
    - ``redundant``: ``a`` at positions 0 and 1 (0.4 each) and 2 (0.2): no single position reaches 0.5;
    - ``entangled``: ``single``, and ``b``'s reading also reads position 0 (weight 0.5);
    - ``lost``: ``single`` with the decoder keeping 0.05 of ``a`` (not reconstructed).
    """
    a_single = {0: 0.7, 1: 0.1, 2: 0.1, 3: 0.1}
    b = PlantedAttribute("b", {4: 0.5, 5: 0.5})
    if name == "single":
        attrs = (PlantedAttribute("a", a_single), b)
    elif name == "redundant":
        attrs = (PlantedAttribute("a", {0: 0.4, 1: 0.4, 2: 0.2}), b)
    elif name == "entangled":
        attrs = (PlantedAttribute("a", a_single), PlantedAttribute("b", {4: 0.5, 5: 0.5}, side={0: 0.5}))
    elif name == "lost":
        attrs = (PlantedAttribute("a", a_single, gain=0.05), b)
    else:
        raise ValueError(f"unknown planted scenario {name!r}; known: single, redundant, entangled, lost")
    return PlantedSpec(attrs, n_tokens=n_tokens, noise=noise, tails=tails, stochastic=stochastic, seed=seed)


SCENARIOS: Sequence[str] = ("single", "redundant", "entangled", "lost")
