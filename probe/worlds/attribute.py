"""The synthetic attribute world (:mod:`probe.data.world`) as a :class:`probe.worlds.World`.

One object on a striped background with known factors (shape, hues, scale, position, lighting, two blurs and a
never-rendered null factor). What belongs to it, in one place:

- its factors and their kinds (:data:`FACTORS`; the hues are circular);
- the default measurer of each factor (:data:`MEASURERS`: pixels where a closed form reads it, else the shipped
  oracle ``world-oracle``);
- the object masks its mask-reading measurers need (:func:`masks`);
- the demo's default manifest for a tokenizer (:func:`tokenizer_settings`, :func:`default_manifest`);
- prompts and a held-out judge for text-guided optimization: prompts such as ``"a photo of a red triangle."``
  name a shape and an object colour (the world CLIP's caption vocabulary, :mod:`probe.clip.captions`); the
  oracle reads both back from the images, which makes it a judge that the optimized CLIP cannot fool by
  construction (a different model, trained on labels rather than captions): :class:`OraclePromptScore`,
  :func:`oracle_reads`.

Examples:
    >>> from probe.worlds import get
    >>> world = get("attribute")
    >>> world.circular()
    ('obj_hue', 'bg_hue')
    >>> world.prompts()[:2]
    ['a photo of a red circle.', 'a photo of a green circle.']
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from probe.clip.captions import COLOUR_NAMES, colour_index
from probe.data import world as _world
from probe.data.world import SHAPES, WorldConfig, factor_specs
from probe.worlds import World, register

if TYPE_CHECKING:
    from probe.data.manifest import Manifest

#: factor -> kind (the probe targets: nuisances left out, the never-rendered null factor kept as a control)
FACTORS: dict[str, str] = {n: ("circular" if s.circular else s.kind)
                           for n, s in factor_specs().items() if s.role != "nuisance"}

MEASURERS: dict[str, str] = {
    "lighting": "analytic:lighting",
    "bg_blur": "analytic:bg_blur",
    "global_blur": "analytic:global_blur",
    "obj_hue": "analytic:obj_hue",
    "shape": "oracle:shape",
    "bg_hue": "oracle:bg_hue",
    "obj_scale": "oracle:obj_scale",
    "obj_x": "oracle:obj_x",
    "obj_y": "oracle:obj_y",
}
"""The default measurer of each factor (pixels where a closed form reads it, else the oracle); the null factor
is never rendered, so nothing measures it."""


def probe_attributes(settings: Mapping[str, Any]) -> list[str]:
    """The factors a run probes on this world rendered with ``settings`` (every one except the nuisances)."""
    return [n for n, s in factor_specs(WorldConfig.from_dict(dict(settings))).items() if s.role != "nuisance"]


def masks(manifest: Manifest, index: np.ndarray, resolution: int) -> torch.Tensor | None:
    """Object masks ``[n, 1, R, R]`` of the manifest's images ``index`` (None when they are corrupted)."""
    if manifest.corruptions:
        return None
    cfg = WorldConfig.from_dict({k: v for k, v in manifest.source_options.get("config", {}).items()})
    df = _world.factors_at([int(i) for i in np.asarray(index).reshape(-1)], seed=manifest.seed, config=cfg)
    return _world.render(df, int(resolution), cfg)[1]


def tokenizer_settings(tokenizer_spec: str | None) -> dict[str, Any]:
    """The WorldConfig fields a shipped tokenizer was trained on (``{}`` if it is not shipped)."""
    from probe import zoo

    if not tokenizer_spec or tokenizer_spec not in zoo.available():
        return {}
    return dict(zoo.config(tokenizer_spec).get("world", {}))


def default_manifest(tokenizer_spec: str | None, *, size: int, seed: int, resolution: int,
                     settings: Mapping[str, Any] | None = None) -> Manifest:
    """A manifest of ``size`` world images rendered with the settings ``tokenizer_spec`` was trained on (or
    ``settings``), every factor recorded as an attribute: the demo's default data."""
    from probe.data.manifest import manifest_from_dict

    world = dict(settings) if settings is not None else tokenizer_settings(tokenizer_spec)
    config = {k: v for k, v in world.items() if k != "resolution"}
    return manifest_from_dict(
        {"name": "world-demo", "source": {"type": "world", "config": {**config, "resolution": resolution}},
         "size": size, "seed": seed, "resolution": resolution},
        where="<demo manifest>",
    )


# ----------------------------------------------------------------------------------- prompts and judge
def prompts(shapes: Sequence[str] = SHAPES, colours: Sequence[str] = ("red", "green", "blue"),
            template: str = "a photo of a {colour} {shape}.") -> list[str]:
    """One prompt per (shape, colour), shape-major."""
    return [template.format(colour=c, shape=s) for s in shapes for c in colours]


def parse_prompt(prompt: str) -> tuple[str | None, str | None]:
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
        self.parsed = [parse_prompt(p) for p in self.prompts]
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
        shape, colour = parse_prompt(p)
        got_colour = COLOUR_NAMES[int(colour_index(pred["obj_hue"].iloc[i]))]
        shape_ok = shape is None or pred["shape"].iloc[i] == shape
        colour_ok = colour is None or got_colour == colour
        rows.append({"prompt": p, "want_shape": shape, "want_colour": colour, "shape": pred["shape"].iloc[i],
                     "colour": got_colour, "shape_ok": shape_ok, "colour_ok": colour_ok,
                     "success": bool(shape_ok and colour_ok)})
    return pd.DataFrame(rows)


WORLD = World(
    name="attribute",
    source_type="world",
    factors=FACTORS,
    measurers=MEASURERS,
    sample=_world.sample,
    masks=masks,
    manifest=default_manifest,
    attributes=probe_attributes,
    prompts=prompts,
    judge=OraclePromptScore,
    description="one object on a striped background: shape, hues, scale, position, lighting, two blurs, a null",
)
register(WORLD)
