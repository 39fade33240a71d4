"""The attribute oracle (``world-oracle``, :class:`probe.oracle.WorldOracle`) as measurers, one per attribute.

- ``shape`` (categorical): the oracle's class probabilities ``[B, K]``, ``classes`` its shape names;
- the hues (``obj_hue``, ``bg_hue``; circular): its ``(cos, sin)`` of ``2 pi hue``, unit-normalised ``[B, 2]``
  (the same angle convention as ``analytic:hue``);
- every other factor it reads (``lighting``, ``bg_blur``, ``global_blur``, ``obj_scale``, ``obj_x``, ``obj_y``;
  continuous): its prediction ``[B]`` in the factor's own units (blur: high = blurry).

The oracle sees the image only (masks are ignored). It is loaded once per process and device.
"""
from __future__ import annotations

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


class OracleMeasurer(Measurer):
    """One attribute read by the oracle (see the module docstring).

    Args:
        attribute: one of :func:`oracle_attributes`.
        oracle: a :class:`probe.oracle.WorldOracle` (default: the shipped ``world-oracle`` on ``device``).
        device: where the shipped oracle runs when ``oracle`` is not given (default: cuda, then mps, then cpu).
        batch_size: images per oracle call.
    """

    def __init__(self, attribute: str, *, oracle: torch.nn.Module | None = None,
                 device: str | torch.device | None = None, batch_size: int = 512) -> None:
        self.oracle = oracle if oracle is not None else load_oracle(device)
        known = oracle_attributes(self.oracle)
        if attribute not in known:
            raise KeyError(f"the oracle does not read {attribute!r}; it reads: {', '.join(known)}")
        c = self.oracle.config
        self.name, self.batch_size = attribute, batch_size
        if attribute == "shape":
            self.kind, self.classes = "categorical", list(c.shapes)
        elif attribute in c.hues:
            self.kind = "circular"
        else:
            self.kind = "continuous"

    def __call__(self, images: torch.Tensor, *, masks: torch.Tensor | None = None) -> torch.Tensor:
        check_images(images, f"oracle measurer {self.name!r}")
        if self.oracle.training:
            self.oracle.eval()
        dev = next(self.oracle.parameters()).device
        key = {"categorical": "shape_probs", "circular": f"{self.name}_vec"}.get(self.kind, self.name)
        parts = [self.oracle(images[s : s + self.batch_size].to(dev))[key]
                 for s in range(0, len(images), self.batch_size)]
        if not parts:
            shape = (0, len(self.classes)) if self.classes else (0, 2) if self.kind == "circular" else (0,)
            return images.new_zeros(shape)
        out = torch.cat(parts)
        if self.kind == "circular":
            out = F.normalize(out, dim=1)
        return out.to(images.device)


def oracle_measurers(oracle: torch.nn.Module | None = None, **kw: object) -> dict[str, OracleMeasurer]:
    """One :class:`OracleMeasurer` per attribute the oracle reads."""
    oracle = oracle if oracle is not None else load_oracle(kw.pop("device", None))  # type: ignore[arg-type]
    return {a: OracleMeasurer(a, oracle=oracle, **kw) for a in oracle_attributes(oracle)}  # type: ignore[arg-type]
