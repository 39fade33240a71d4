"""The attribute oracle: a small CNN that reads every world factor from an image.

Input ``[B, 3, H, W]`` in [0, 1], resized (antialiased) to 32x32. Heads: shape (classes),
hues as a ``(cos, sin)`` pair each (circular), and the other continuous factors as values
normalised to their world range. :meth:`WorldOracle.forward` is differentiable (an optimizer
can use it as an objective); :meth:`WorldOracle.predict` returns a DataFrame.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from probe.device import resolve_device
from probe.errors import check_fields, check_images


def _default_ranges() -> dict[str, list[float]]:
    # the default world's ranges (probe.data.world.WorldConfig), copied so loading needs no world
    return {"obj_scale": [0.14, 0.28], "obj_x": [0.28, 0.72], "obj_y": [0.28, 0.72],
            "lighting": [0.25, 1.0], "bg_blur": [0.0, 0.08], "global_blur": [0.0, 0.05]}


@dataclass
class OracleConfig:
    """Architecture and output vocabulary of the oracle (defaults: the shipped ``world-oracle``)."""

    image_size: int = 32
    widths: tuple[int, ...] = (16, 32, 64)  # channels of the conv stages (each halves the side)
    hidden: int = 192  # width of the shared fully connected layer
    spatial_channels: int = 16  # channels of the flattened (position-keeping) view
    shapes: tuple[str, ...] = ("circle", "square", "triangle", "star")
    hues: tuple[str, ...] = ("obj_hue", "bg_hue")  # circular factors in [0, 1)
    ranges: dict[str, list[float]] = field(default_factory=_default_ranges)  # linear factors

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OracleConfig:
        check_fields(cls, d, "oracle config")
        d = dict(d)
        for k in ("widths", "shapes", "hues"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @property
    def scalars(self) -> list[str]:
        return list(self.ranges)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class WorldOracle(nn.Module):
    """Small CNN with one head per factor (see module docstring)."""

    def __init__(self, config: OracleConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or OracleConfig()
        s = c.image_size
        # two coordinate channels (CoordConv) make position easy to read off
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, s), torch.linspace(-1, 1, s), indexing="ij")
        self.register_buffer("coords", torch.stack([xs, ys])[None], persistent=False)
        chans = [5, *c.widths]
        self.features = nn.Sequential(*[_block(a, b) for a, b in itertools.pairwise(chans)])
        side = s // 2 ** len(c.widths)
        # two views of the last feature map: global mean+max pooling (translation invariant,
        # what shape and colour need) and a small flattened map (where things are)
        self.spatial = nn.Sequential(nn.Conv2d(c.widths[-1], c.spatial_channels, 1), nn.ReLU(inplace=True),
                                     nn.Flatten())
        self.trunk = nn.Sequential(
            nn.Linear(2 * c.widths[-1] + c.spatial_channels * side * side, c.hidden),
            nn.ReLU(inplace=True), nn.Dropout(0.1))
        self.shape_head = nn.Linear(c.hidden, len(c.shapes))
        self.hue_head = nn.Linear(c.hidden, 2 * len(c.hues))
        self.scalar_head = nn.Linear(c.hidden, len(c.ranges))
        lo_hi = torch.tensor([c.ranges[k] for k in c.ranges], dtype=torch.float32)
        self.register_buffer("lo", lo_hi[:, 0], persistent=False)
        self.register_buffer("span", lo_hi[:, 1] - lo_hi[:, 0], persistent=False)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` in [0, 1] -> ``[B, 5, 32, 32]`` (centred pixels + coordinates)."""
        check_images(images, "oracle")
        s = self.config.image_size
        if images.shape[-2:] != (s, s):
            images = F.interpolate(images, size=(s, s), mode="bilinear", antialias=True, align_corners=False)
        x = (images - 0.5) / 0.25
        return torch.cat([x, self.coords.expand(len(x), -1, -1, -1)], dim=1)

    def raw(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Head outputs: ``shape_logits [B, S]``, ``hue_vec [B, n_hues, 2]``, ``scalars01 [B, n]``."""
        f = self.features(self.prepare(images))
        h = self.trunk(torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3)), self.spatial(f)], dim=1))
        return {"shape_logits": self.shape_head(h),
                "hue_vec": self.hue_head(h).view(len(h), len(self.config.hues), 2),
                "scalars01": self.scalar_head(h)}

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Differentiable predictions of ``images [B, 3, H, W]`` in [0, 1].

        Keys: ``shape_logits [B, S]``, ``shape_probs [B, S]``; per hue ``<hue> [B]`` in [0, 1)
        and ``<hue>_vec [B, 2]`` (cos, sin of 2 pi hue, not unit-normalised); per linear factor
        ``<name> [B]`` in the factor's own units.
        """
        r = self.raw(images)
        out = {"shape_logits": r["shape_logits"], "shape_probs": r["shape_logits"].softmax(dim=1)}
        for i, name in enumerate(self.config.hues):
            v = r["hue_vec"][:, i]
            out[f"{name}_vec"] = v
            out[name] = torch.remainder(torch.atan2(v[:, 1], v[:, 0]) / (2 * math.pi), 1.0)
        vals = self.lo + self.span * r["scalars01"]
        for i, name in enumerate(self.config.ranges):
            out[name] = vals[:, i]
        return out

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch_size: int = 512) -> pd.DataFrame:
        """Factor predictions, one row per image: ``shape`` (str), ``shape_confidence``, hues, scalars."""
        was = self.training
        self.eval()
        dev = next(self.parameters()).device
        parts = [{k: v.cpu() for k, v in self(images[i:i + batch_size].to(dev)).items()}
                 for i in range(0, len(images), batch_size)]
        self.train(was)
        if not parts:
            return pd.DataFrame(columns=["shape", "shape_confidence", *self.config.hues, *self.config.ranges])
        cat = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        probs = cat["shape_probs"]
        df = pd.DataFrame({"shape": np.asarray(self.config.shapes, dtype=object)[probs.argmax(1).numpy()],
                           "shape_confidence": probs.max(1).values.numpy()})
        for name in (*self.config.hues, *self.config.ranges):
            df[name] = cat[name].numpy()
        return df


def load_zoo_oracle(cfg: dict[str, Any], weights: Path, device: str | torch.device | None = None,
                    **_: Any) -> WorldOracle:
    """Loader of the zoo's ``kind: oracle`` entries: the model in eval mode."""
    if "model_cfg" not in cfg:
        raise KeyError(f"oracle zoo config for {weights} lacks 'model_cfg'")
    model = WorldOracle(OracleConfig.from_dict(cfg["model_cfg"]))
    missing, unexpected = model.load_state_dict(load_file(str(weights)), strict=False)
    if missing or unexpected:
        raise ValueError(f"{weights}: weights do not fit the config (missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]})")
    return model.to(resolve_device(device)).eval()
