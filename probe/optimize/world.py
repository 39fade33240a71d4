"""Scoring optimization runs on the attribute world with the shipped oracle (``world-oracle``).

Prompts such as ``"a photo of a red triangle."`` name a shape and an object colour (the world CLIP's
caption vocabulary, :mod:`probe.clip.captions`); the oracle reads both back from the images, which
makes it a judge that the optimized CLIP cannot fool by construction (a different model, trained on
labels rather than captions).
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from probe.clip.captions import COLOUR_NAMES, colour_index
from probe.data.world import SHAPES


def world_prompts(shapes: Sequence[str] = SHAPES, colours: Sequence[str] = ("red", "green", "blue"),
                  template: str = "a photo of a {colour} {shape}.") -> list[str]:
    """One prompt per (shape, colour), shape-major."""
    return [template.format(colour=c, shape=s) for s in shapes for c in colours]


def parse_world_prompt(prompt: str) -> tuple[str | None, str | None]:
    """The shape and object colour a prompt names (None where it names none)."""
    words = re.findall(r"[a-z]+", prompt.lower())
    shape = next((w for w in words if w in SHAPES), None)
    colour = next((w for w in words if w in COLOUR_NAMES), None)
    return shape, colour


class OraclePromptScore:
    """Held-out score of images against world prompts, from the oracle: ``[B]`` in [0, 1].

    ``p(shape) * (1 + cos(hue - colour)) / 2``: the oracle's probability of the named shape times the
    closeness of its object hue to the named colour's centre (1 where a part is not named).
    """

    def __init__(self, oracle: torch.nn.Module, prompts: str | Sequence[str]) -> None:
        self.oracle = oracle
        self.prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        self.parsed = [parse_world_prompt(p) for p in self.prompts]
        self.name = "oracle_prompt_score"

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        out = self.oracle(images.float().clamp(0, 1))
        b = images.shape[0]
        parsed = self.parsed * b if len(self.parsed) == 1 else self.parsed
        if len(parsed) != b:
            raise ValueError(f"OraclePromptScore: {len(parsed)} prompts for {b} images")
        shapes = list(self.oracle.config.shapes)
        score = torch.ones(b, device=images.device)
        for i, (shape, colour) in enumerate(parsed):
            if shape is not None:
                score[i] *= out["shape_probs"][i, shapes.index(shape)]
            if colour is not None:
                want = 2 * np.pi * COLOUR_NAMES.index(colour) / len(COLOUR_NAMES)
                score[i] *= 0.5 * (1 + torch.cos(2 * np.pi * out["obj_hue"][i] - want))
        return score


@torch.no_grad()
def oracle_reads(oracle: torch.nn.Module, images: torch.Tensor, prompts: Sequence[str]) -> pd.DataFrame:
    """Per image: the prompted shape / colour, the oracle's reading, and whether they match.

    Columns ``prompt, want_shape, want_colour, shape, colour, shape_ok, colour_ok, success``.
    """
    pred = oracle.predict(images.float().clamp(0, 1))
    if len(prompts) != len(pred):
        raise ValueError(f"oracle_reads: {len(prompts)} prompts for {len(pred)} images")
    rows = []
    for i, p in enumerate(prompts):
        shape, colour = parse_world_prompt(p)
        got_colour = COLOUR_NAMES[int(colour_index(pred["obj_hue"].iloc[i]))]
        shape_ok = shape is None or pred["shape"].iloc[i] == shape
        colour_ok = colour is None or got_colour == colour
        rows.append({"prompt": p, "want_shape": shape, "want_colour": colour, "shape": pred["shape"].iloc[i],
                     "colour": got_colour, "shape_ok": shape_ok, "colour_ok": colour_ok,
                     "success": bool(shape_ok and colour_ok)})
    return pd.DataFrame(rows)
