"""A perceptual reconstruction loss on a frozen network of our own (the offline stand-in for LPIPS).

TiTok trains with LPIPS, whose VGG weights cannot be downloaded here. The world-oracle
(``probe.oracle``, shipped as ``world-oracle``) is a small CNN trained to read every world factor,
shape included, from pixels; its conv features are sensitive to exactly what the world tokenizer must
keep. The distance follows LPIPS's recipe without its learned channel weights (hand-written, as
LPIPS itself is not usable offline): at the output of every conv stage, unit-normalise each
location's channel vector, take the squared difference, sum over channels, average over locations,
and sum over stages.

Caveat for measurement: a tokenizer trained with this loss is then read by the same oracle when its
reconstructions are scored (``analyses/world_tokenizer/shape_fidelity.py``), so that score is biased
upwards; the same script reports the object PSNR and ``probe.data.world.nearest_shape`` (analysis by
synthesis), which do not use the oracle.
"""
from __future__ import annotations

import torch
from torch import nn


class OraclePerceptual(nn.Module):
    """LPIPS-style distance on a frozen :class:`probe.oracle.model.WorldOracle`'s conv stages."""

    def __init__(self, oracle: nn.Module) -> None:
        super().__init__()
        self.oracle = oracle.eval()
        for p in self.oracle.parameters():
            p.requires_grad_(False)

    @classmethod
    def from_zoo(cls, name: str = "world-oracle", device: str | torch.device = "cpu") -> OraclePerceptual:
        from probe import zoo

        oracle = zoo.load(name, device=device)
        if not hasattr(oracle, "features") or not hasattr(oracle, "prepare"):
            raise ValueError(f"perceptual network {name!r} is not a world-oracle (kind {zoo.config(name)['kind']!r})")
        return cls(oracle)

    def train(self, mode: bool = True) -> OraclePerceptual:
        super().train(mode)
        self.oracle.eval()  # frozen batch-norm statistics, always
        return self

    def stage_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Unit-normalised activations of every conv stage, ``[B, C_l, H_l, W_l]`` each, for ``images [B,3,H,W]``."""
        x = self.oracle.prepare(images)
        feats = []
        for stage in self.oracle.features:
            x = stage(x)
            feats.append(x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-8))
        return feats

    def forward(self, rec: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """Scalar distance between ``rec`` and ``images`` ``[B,3,H,W]`` in [0, 1] (0 when equal; at most
        4 per stage)."""
        with torch.no_grad():
            target = self.stage_features(images)
        return sum(((a - b).pow(2).sum(dim=1)).mean() for a, b in zip(self.stage_features(rec), target))
