"""Captions from world factors, and the zero-shot tasks that read them back.

A caption names the shape (almost always) and, at random, some of the other factors in
words ("a blurry photo of a small red star on the left, on a crisp cyan striped background").
Continuous factors get a word only when their value is clearly at one end of its range
(:data:`WORDS`); values in the middle are left unsaid, so no caption is wrong, only silent.
The same word table defines the held-out zero-shot tasks (:data:`ZERO_SHOT_TASKS`), so what
the model is taught and what it is tested on cannot drift apart.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# Six hue names centred on the HSV primaries/secondaries: hue h gets name round(6 h) mod 6.
COLOUR_NAMES: tuple[str, ...] = ("red", "yellow", "green", "cyan", "blue", "magenta")


def colour_index(hue: np.ndarray | float) -> np.ndarray:
    """Index into :data:`COLOUR_NAMES` of HSV hue(s) in [0, 1) (each name covers 1/6 of the circle)."""
    return np.rint(np.asarray(hue, dtype=np.float64) * 6.0).astype(np.int64) % 6


@dataclass(frozen=True)
class WordRule:
    """Words for one continuous factor: ``low`` below ``lo``, ``high`` above ``hi``, else silent."""

    factor: str
    lo: float
    hi: float
    low: str
    high: str


# Thresholds sit at about the lower / upper 25-30 % of each factor's default range
# (probe.data.world.WorldConfig), leaving a silent middle band.
WORDS: dict[str, WordRule] = {
    "lighting": WordRule("lighting", 0.45, 0.8, "dark", "bright"),  # range 0.25 .. 1.0
    "global_blur": WordRule("global_blur", 0.012, 0.032, "sharp", "blurry"),  # 0 .. 0.05
    "bg_blur": WordRule("bg_blur", 0.02, 0.055, "crisp", "smooth"),  # 0 .. 0.08
    "obj_scale": WordRule("obj_scale", 0.18, 0.24, "small", "large"),  # 0.14 .. 0.28
    "obj_x": WordRule("obj_x", 0.42, 0.58, "on the left", "on the right"),  # 0.28 .. 0.72
    "obj_y": WordRule("obj_y", 0.42, 0.58, "at the top", "at the bottom"),  # y grows downwards
}


def word_class(rule: WordRule, values: np.ndarray) -> np.ndarray:
    """0 (low word), 1 (high word) or -1 (silent middle band) per value."""
    v = np.asarray(values, dtype=np.float64)
    return np.where(v < rule.lo, 0, np.where(v > rule.hi, 1, -1)).astype(np.int64)


_PHOTO_NOUNS = ("photo", "picture", "image", "rendering")
# probability that a caption mentions each optional part; the shape is (almost) always named
_P_MENTION = {"obj_colour": 0.85, "bg_colour": 0.6, "lighting": 0.6, "global_blur": 0.5,
              "bg_blur": 0.45, "obj_scale": 0.5, "position": 0.4}


def _caption(row: dict, rng: np.random.Generator) -> str:
    def say(part: str) -> bool:
        return bool(rng.random() < _P_MENTION[part])

    def word(name: str) -> str | None:
        cls = int(word_class(WORDS[name], np.array([row[name]]))[0])
        return None if cls < 0 else (WORDS[name].low, WORDS[name].high)[cls]

    shape = str(row["shape"]) if rng.random() < 0.95 else "shape"
    adjs = []
    if say("obj_scale") and (w := word("obj_scale")):
        adjs.append(w)
    if say("obj_colour"):
        adjs.append(COLOUR_NAMES[int(colour_index(row["obj_hue"]))])
    obj = " ".join(adjs + [shape])
    photo_adjs = [w for part in ("lighting", "global_blur") if say(part) and (w := word(part))]
    rng.shuffle(photo_adjs)
    noun = _PHOTO_NOUNS[rng.integers(len(_PHOTO_NOUNS))]
    head = " ".join(photo_adjs + [noun])
    article = "an" if head[0] in "aeiou" else "a"
    obj_article = "an" if obj[0] in "aeiou" else "a"
    text = f"{article} {head} of {obj_article} {obj}"
    if say("position"):
        pos = [w for name in ("obj_x", "obj_y") if (w := word(name))]
        if pos:
            text += " " + " and ".join(pos)
    bg = []
    if say("bg_blur") and (w := word("bg_blur")):
        bg.append(w)
    if say("bg_colour"):
        bg.append(COLOUR_NAMES[int(colour_index(row["bg_hue"]))])
    if bg:
        text += f" on a {' '.join(bg)} striped background"
    return text + "."


def captions(factors: pd.DataFrame, *, seed: int = 0) -> list[str]:
    """One random caption per row of a world factor table (deterministic given ``seed``)."""
    missing = [c for c in ("shape", "obj_hue", "bg_hue", *WORDS) if c not in factors.columns]
    if missing:
        raise KeyError(f"captions: factor table lacks column(s) {missing}")
    rng = np.random.default_rng(seed)
    return [_caption(row, rng) for row in factors.to_dict("records")]


@dataclass(frozen=True)
class ZeroShotTask:
    """A zero-shot classification task: class names, prompt templates and true labels.

    ``templates`` hold ``{c}`` (the class word) and may hold ``{shape}``; prompts are averaged
    over templates and the four shapes (prompt ensembling, as in the CLIP paper).
    """

    name: str
    classes: tuple[str, ...]
    templates: tuple[str, ...]

    def labels(self, factors: pd.DataFrame) -> np.ndarray:
        """True class index per row, -1 where the factor is in its silent middle band."""
        if self.name == "shape":
            return pd.Categorical(factors["shape"], categories=list(self.classes)).codes.astype(np.int64)
        if self.name == "obj_colour":
            return colour_index(factors["obj_hue"].to_numpy())
        if self.name == "bg_colour":
            return colour_index(factors["bg_hue"].to_numpy())
        return word_class(WORDS[self.name], factors[self.name].to_numpy())


ZERO_SHOT_TASKS: dict[str, ZeroShotTask] = {
    "shape": ZeroShotTask("shape", ("circle", "square", "triangle", "star"),
                          ("a photo of a {c}.", "a picture of a {c}.", "an image of a {c}.")),
    "obj_colour": ZeroShotTask("obj_colour", COLOUR_NAMES,
                               ("a photo of a {c} {shape}.", "a picture of a {c} {shape}.")),
    "bg_colour": ZeroShotTask("bg_colour", COLOUR_NAMES,
                              ("a photo of a {shape} on a {c} striped background.",)),
    "lighting": ZeroShotTask("lighting", ("dark", "bright"),
                             ("a {c} photo of a {shape}.", "a {c} picture of a {shape}.")),
    "global_blur": ZeroShotTask("global_blur", ("sharp", "blurry"),
                                ("a {c} photo of a {shape}.", "a {c} picture of a {shape}.")),
    "bg_blur": ZeroShotTask("bg_blur", ("crisp", "smooth"),
                            ("a photo of a {shape} on a {c} striped background.",)),
    "obj_scale": ZeroShotTask("obj_scale", ("small", "large"),
                              ("a photo of a {c} {shape}.", "a picture of a {c} {shape}.")),
    "obj_x": ZeroShotTask("obj_x", ("on the left", "on the right"), ("a photo of a {shape} {c}.",)),
    "obj_y": ZeroShotTask("obj_y", ("at the top", "at the bottom"), ("a photo of a {shape} {c}.",)),
}
