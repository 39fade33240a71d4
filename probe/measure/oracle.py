"""The attribute oracle (``world-oracle``, :class:`probe.oracle.WorldOracle`) as measurers, one per attribute.

- ``shape`` (categorical): the oracle's class probabilities ``[B, K]``, ``classes`` its shape names;
- the hues (``obj_hue``, ``bg_hue``; circular): its ``(cos, sin)`` of ``2 pi hue``, unit-normalised ``[B, 2]``
  (the same angle convention as ``analytic:hue``);
- every other factor it reads (``lighting``, ``bg_blur``, ``global_blur``, ``obj_scale``, ``obj_x``, ``obj_y``;
  continuous): its prediction ``[B]`` in the factor's own units (blur: high = blurry).

The oracle sees the image only (masks are ignored). It is loaded once per process and device, and it reads
every attribute in one forward: :class:`OracleReadings` is that one pass (``readings(images) -> {attribute:
value}``, the multi-attribute measurer), and every :class:`OracleMeasurer` of one oracle shares one
:class:`OracleReadings` as its ``source``, so callers that measure several attributes
(:func:`probe.measure.shared.measure_all`) run the oracle once per batch. All of it is differentiable.
"""
from __future__ import annotations

import weakref
from functools import cache

import torch
import torch.nn.functional as F

from probe.measure.base import Measurer, check_images


@cache
def _zoo_oracle(device: str) -> torch.nn.Module:
    from probe import zoo

    return zoo.load("world-oracle", device=device).eval()


def load_oracle(device: str | torch.device | None = None) -> torch.nn.Module:
    """The shipped ``world-oracle`` in eval mode (cached per device)."""
    from probe.device import resolve_device

    return _zoo_oracle(str(resolve_device(device)))


def oracle_attributes(oracle: torch.nn.Module | None = None) -> list[str]:
    """The attributes the oracle reads (``shape``, its hues, its continuous factors)."""
    c = (oracle or load_oracle("cpu")).config
    return ["shape", *c.hues, *c.ranges]


def _kind(oracle: torch.nn.Module, attribute: str) -> str:
    c = oracle.config
    return "categorical" if attribute == "shape" else "circular" if attribute in c.hues else "continuous"


class OracleReadings:
    """Every attribute the oracle reads, in one forward pass: the multi-attribute measurer.

    ``readings(images [B,3,H,W], masks=None) -> {attribute: value}`` with the values of :class:`OracleMeasurer`
    (``shape`` ``[B, K]`` probabilities, hues unit vectors ``[B, 2]``, the rest ``[B]``), on the images' device;
    differentiable. Use :meth:`of` for the one instance per oracle that its measurers share.

    Attributes:
        reads: the attributes it reads (:func:`oracle_attributes`); ``kinds``: attribute -> kind.
    """

    differentiable = True
    _instances: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def __init__(self, oracle: torch.nn.Module, *, batch_size: int = 512) -> None:
        self.oracle, self.batch_size = oracle, batch_size
        self.reads = tuple(oracle_attributes(oracle))
        self.kinds = {a: _kind(oracle, a) for a in self.reads}

    @classmethod
    def of(cls, oracle: torch.nn.Module, *, batch_size: int = 512) -> OracleReadings:
        """The readings object of ``oracle`` (one per oracle module, so its measurers share it)."""
        got = cls._instances.get(oracle)
        if got is None:
            got = cls._instances[oracle] = cls(oracle, batch_size=batch_size)
        return got

    def __call__(self, images: torch.Tensor, *, masks: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        check_images(images, "oracle readings")
        if self.oracle.training:
            self.oracle.eval()
        dev = next(self.oracle.parameters()).device
        keys = {a: {"categorical": "shape_probs", "circular": f"{a}_vec"}.get(k, a) for a, k in self.kinds.items()}
        parts = [self.oracle(images[s : s + self.batch_size].to(dev)) for s in range(0, len(images), self.batch_size)]
        out: dict[str, torch.Tensor] = {}
        for a, key in keys.items():
            if not parts:
                c = self.oracle.config
                shape = (0, len(c.shapes)) if a == "shape" else (0, 2) if self.kinds[a] == "circular" else (0,)
                out[a] = images.new_zeros(shape)
                continue
            v = torch.cat([p[key] for p in parts])
            out[a] = (F.normalize(v, dim=1) if self.kinds[a] == "circular" else v).to(images.device)
        return out

    def measurers(self) -> dict[str, OracleMeasurer]:
        """One :class:`OracleMeasurer` per attribute, all reading this one pass."""
        return {a: OracleMeasurer(a, oracle=self.oracle, batch_size=self.batch_size) for a in self.reads}


class OracleMeasurer(Measurer):
    """One attribute read by the oracle (see the module docstring).

    Args:
        attribute: one of :func:`oracle_attributes`.
        oracle: a :class:`probe.oracle.WorldOracle` (default: the shipped ``world-oracle`` on ``device``).
        device: where the shipped oracle runs when ``oracle`` is not given (default: cuda, then mps, then cpu).
        batch_size: images per oracle call.
    """

    differentiable = True

    def __init__(self, attribute: str, *, oracle: torch.nn.Module | None = None,
                 device: str | torch.device | None = None, batch_size: int = 512) -> None:
        self.oracle = oracle if oracle is not None else load_oracle(device)
        known = oracle_attributes(self.oracle)
        if attribute not in known:
            raise KeyError(f"the oracle does not read {attribute!r}; it reads: {', '.join(known)}")
        self.name, self.batch_size = attribute, batch_size
        self.kind = _kind(self.oracle, attribute)
        if self.kind == "categorical":
            self.classes = list(self.oracle.config.shapes)
        # the one forward of this oracle that every measurer of it reads
        self.source = OracleReadings.of(self.oracle, batch_size=batch_size)

    def read(self, readings: dict[str, torch.Tensor]) -> torch.Tensor:
        """This attribute's value from :class:`OracleReadings`' output."""
        return readings[self.name]

    def __call__(self, images: torch.Tensor, *, masks: torch.Tensor | None = None) -> torch.Tensor:
        check_images(images, f"oracle measurer {self.name!r}")
        return self.read(self.source(images))


def oracle_measurers(oracle: torch.nn.Module | None = None, **kw: object) -> dict[str, OracleMeasurer]:
    """One :class:`OracleMeasurer` per attribute the oracle reads."""
    oracle = oracle if oracle is not None else load_oracle(kw.pop("device", None))  # type: ignore[arg-type]
    return {a: OracleMeasurer(a, oracle=oracle, **kw) for a in oracle_attributes(oracle)}  # type: ignore[arg-type]
