"""The sprites world: Infinite dSprites shapes (``idsprites``) with known factors, and readers of those factors.

A second ground-truth world, drawn by a package we did not write: random closed spline shapes from
Infinite dSprites (Dziadzio et al. 2023, the ``idsprites`` package, MIT) on its dark-grey canvas, with
colour, scale, orientation and position. Every image is a pure function of ``(seed, index)``: its factors
come from the same counter-based hash as the attribute world (:func:`probe.data.world.hash_uniform`), so any
chunk can be rendered on its own. The optional ``idsprites`` dependency is needed to build the shape bank
(``pip install 'tokenprobe[sprites]'``).

Factors (DataFrame columns, one row per image, indexed by ``idx``; named as idsprites' ``Factors``):

=============  ===========  ==============================================================
name           kind         meaning
=============  ===========  ==============================================================
shape_id       categorical  index into the seeded shape bank (``n_shapes`` idsprites shapes)
color          continuous   the sprite's colour as its HSV hue in turns, [0, 1) (circular; fixed
                            saturation and value)
scale          continuous   linear size (idsprites' scale; see "Deliberate differences")
orientation    continuous   rotation in half-turns, [0, 1) (1 = pi radians = idsprites'
                            orientation / pi); circular with period 1, since a second-moment
                            axis repeats every half-turn
position_x     continuous   idsprites' position: the centre is at ``0.25 + 0.5 * position_x`` of
position_y     continuous   the side (x right, y down)
null_factor    continuous   drawn like the others, never rendered (a control)
=============  ===========  ==============================================================

Every continuous factor also has a ``<name>_bin`` column (equal-width bins over its range).

Deliberate differences from ``InfiniteDSprites.draw`` (each so that a factor can be read back exactly from
the pixels, by the world's analytic readers in :mod:`probe.worlds.sprites`):

- **Equal area.** idsprites scales each shape to a unit bounding box; here each bank shape is also scaled to
  the same polygon area (``shape_area``), so ``sqrt(sprite area)`` is proportional to ``scale`` for every shape.
- **Centred and aligned by its own moments.** Each bank shape is centred on its area centroid and rotated so its
  major second-moment axis is vertical at orientation 0 (idsprites aligns by PCA of the outline, then
  rescales x and y separately, which moves the axis). Shapes whose axis ratio is below ``min_elongation`` are
  redrawn, so the second moments define the orientation; ``orientation_range`` is half a turn by default
  (a moment axis reads the angle modulo pi).
- **No orientation marker** (idsprites blacks out the right half of the sprite by default), so the sprite has one
  colour.
- **Exact coverage.** The polygon is filled at ``supersample`` times the resolution with sub-pixel vertices
  (``cv2.fillPoly`` with ``shift``; idsprites truncates vertices to integers) and averaged down, giving the
  sprite's coverage per pixel; the image is ``background * (1 - coverage) + colour * coverage``.
- **Colour and orientation as circular values in turns** (idsprites: an RGB triple from a list of colour names,
  and radians), so that the swap engine's circular pairs (opposite arcs) apply to both.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import torch

from probe.data.world import hash_uniform
from probe.errors import TokenprobeError

INSTALL_HINT = "pip install 'tokenprobe[sprites]' (or: pip install idsprites)"


class SpritesUnavailable(TokenprobeError, ImportError):
    """The optional ``idsprites`` package is not installed."""


def _idsprites() -> Any:
    try:
        import idsprites
    except ImportError:
        raise SpritesUnavailable(f"the sprites world needs the idsprites package: {INSTALL_HINT}") from None
    return idsprites


@dataclass(frozen=True)
class SpritesConfig:
    """Every rendering parameter of the sprites world, with its default. Ranges are ``(low, high)``, uniform."""

    resolution: int = 64  # default output side in pixels
    n_shapes: int = 8  # size of the shape bank (``shape_id`` takes n_shapes values)
    shape_seed: int = 0  # seed of the shape bank (idsprites' random spline shapes)
    scale_range: tuple[float, float] = (0.5, 1.0)  # idsprites' default scale range
    orientation_range: tuple[float, float] = (0.0, 1.0)  # half-turns (1 = pi radians; moment axes read mod pi)
    position_range: tuple[float, float] = (0.15, 0.85)  # idsprites position (centre at 0.25 + 0.5 p of the side)
    color_range: tuple[float, float] = (0.0, 1.0)  # sprite hue (turns)
    saturation: float = 0.8  # sprite HSV saturation
    value: float = 0.95  # sprite HSV value
    background: tuple[float, float, float] = (0.6627, 0.6627, 0.6627)  # idsprites' "darkgray" canvas
    shape_area: float = 0.4  # polygon area of a bank shape at scale 1, in units of (0.45 * side)^2
    min_elongation: float = 1.5  # minimum ratio of a bank shape's principal standard deviations
    max_radius: float = 0.7  # bank shapes reach at most this far from their centroid (units of 0.45 * side),
    # so that no sprite leaves the canvas: 0.25 + 0.5 * 0.15 - 0.45 * 0.7 > 0
    supersample: int = 4  # fill at this multiple of the resolution, then average down (anti-aliasing)
    n_bins: int = 4  # levels of each ``<factor>_bin`` column

    def __post_init__(self) -> None:
        for name in ("scale_range", "orientation_range", "position_range", "color_range"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"SpritesConfig.{name}: low {lo} > high {hi}")
        if self.n_shapes < 1:
            raise ValueError(f"SpritesConfig.n_shapes must be >= 1, got {self.n_shapes}")
        if self.supersample < 1 or self.resolution < 4:
            raise ValueError("SpritesConfig: supersample must be >= 1 and resolution >= 4")
        if self.orientation_range[1] - self.orientation_range[0] > 1.0 + 1e-9:
            raise ValueError("SpritesConfig.orientation_range: at most 1 half-turn wide (second moments read it "
                             "modulo pi)")

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> SpritesConfig:
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        bad = sorted(set(d) - known)
        if bad:
            raise ValueError(f"unknown SpritesConfig field(s) {bad}; known: {sorted(known)}")
        for k, v in d.items():
            if isinstance(v, list):
                d[k] = tuple(v)
        return cls(**d)


# factor name -> (kind, config range field or None); the order is the DataFrame's column order
FACTORS: dict[str, tuple[str, str | None]] = {
    "shape_id": ("categorical", None),
    "color": ("continuous", "color_range"),
    "scale": ("continuous", "scale_range"),
    "orientation": ("continuous", "orientation_range"),
    "position_x": ("continuous", "position_range"),
    "position_y": ("continuous", "position_range"),
    "null_factor": ("continuous", None),
}
CIRCULAR = ("color", "orientation")  # circular factors (values in turns of their period)
_STREAM = {name: 300 + k for k, name in enumerate(FACTORS)}  # hash streams (distinct from the world's)
_EXTENT = 0.45  # idsprites' scale_factor: a scale-1 shape spans 0.45 of the side


def factor_kinds(config: SpritesConfig | None = None) -> dict[str, str]:
    """Every column of :func:`factors_at` (but ``idx``) -> "categorical" | "continuous"."""
    out: dict[str, str] = {}
    for name, (kind, _) in FACTORS.items():
        out[name] = kind
        if kind == "continuous":
            out[f"{name}_bin"] = "categorical"
    return out


def factor_range(name: str, config: SpritesConfig) -> tuple[float, float]:
    rng = FACTORS[name][1]
    return (0.0, 1.0) if rng is None else getattr(config, rng)


# ---------------------------------------------------------------------------------------------- shape bank
def _polygon_moments(pts: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Area, centroid ``[2]`` and central second moments ``[[mxx, mxy], [mxy, myy]]`` (per unit area) of the
    closed polygon ``pts [2, P]`` (Green's theorem; sign-free, any orientation)."""
    x, y = pts
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    cross = x * y1 - x1 * y
    a = cross.sum() / 2
    cx = ((x + x1) * cross).sum() / (6 * a)
    cy = ((y + y1) * cross).sum() / (6 * a)
    mxx = ((x * x + x * x1 + x1 * x1) * cross).sum() / (12 * a) - cx * cx
    myy = ((y * y + y * y1 + y1 * y1) * cross).sum() / (12 * a) - cy * cy
    mxy = ((x * y1 + 2 * x * y + 2 * x1 * y1 + x1 * y) * cross).sum() / (24 * a) - cx * cy
    return abs(a), np.array([cx, cy]), np.array([[mxx, mxy], [mxy, myy]])


def _is_simple(pts: np.ndarray) -> bool:
    """Whether the closed outline ``pts [2, P]`` bounds one region the way its polygon moments assume: filled at
    512 px, its area and centroid agree with Green's theorem (a self-intersecting spline fails this)."""
    import cv2

    a, c, m = _polygon_moments(pts)
    if a <= 0 or np.linalg.eigvalsh(m)[0] <= 0:
        return False
    lo, span = pts.min(axis=1, keepdims=True), float(np.ptp(pts, axis=1).max())
    px = (pts - lo) / span * 500 + 6
    canvas = np.zeros((512, 512), dtype=np.uint8)
    cv2.fillPoly(canvas, [np.round(px.T * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    ys, xs = np.nonzero(canvas)
    area_px = a * (500 / span) ** 2
    centre = (np.array([xs.mean(), ys.mean()]) - 6) / 500 * span + lo[:, 0]
    return abs(len(xs) / area_px - 1) < 0.02 and float(np.abs(centre - c).max()) < 0.01 * span


def _normalise_shape(pts: np.ndarray, area: float) -> tuple[np.ndarray, float]:
    """``pts [2, P]`` centred on its area centroid, rotated so its major moment axis is the y axis, scaled to
    polygon ``area``; and its elongation (ratio of the principal standard deviations)."""
    _, c, m = _polygon_moments(pts)
    pts = pts - c[:, None]
    evals, evecs = np.linalg.eigh(m)  # ascending: evecs[:, 1] is the major axis
    major = evecs[:, 1]
    phi = math.atan2(major[1], major[0])
    rot = math.pi / 2 - phi  # rotate the major axis onto +y
    r = np.array([[math.cos(rot), -math.sin(rot)], [math.sin(rot), math.cos(rot)]])
    pts = r @ pts
    a, _, _ = _polygon_moments(pts)
    pts = pts * math.sqrt(area / a)
    return pts, float(math.sqrt(evals[1] / max(evals[0], 1e-12)))


@lru_cache(maxsize=8)
def shape_bank(n_shapes: int, seed: int, area: float, min_elongation: float,
               max_radius: float) -> tuple[np.ndarray, ...]:
    """``n_shapes`` idsprites shapes (``InfiniteDSprites.generate_shape``: random 5-8 vertices joined by a
    spline or straight lines), each ``[2, P]`` in units of ``0.45 * side`` at scale 1, normalised as the module
    docstring says. Shapes that self-intersect, are too round (``min_elongation``) or reach too far
    (``max_radius``) are redrawn. Seeded: idsprites draws from numpy's global RNG, whose state is restored."""
    ids = _idsprites()
    ds = ids.InfiniteDSprites(img_size=256, orientation_marker=False)
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        out: list[np.ndarray] = []
        while len(out) < n_shapes:
            raw = np.asarray(ds.generate_shape(), dtype=np.float64)
            if not _is_simple(raw):
                continue
            pts, elong = _normalise_shape(raw, area)
            if elong >= min_elongation and float(np.sqrt((pts ** 2).sum(axis=0)).max()) <= max_radius:
                out.append(pts)
    finally:
        np.random.set_state(state)
    return tuple(out)


def bank_for(config: SpritesConfig) -> tuple[np.ndarray, ...]:
    return shape_bank(config.n_shapes, config.shape_seed, config.shape_area, config.min_elongation,
                      config.max_radius)


# ---------------------------------------------------------------------------------------------- factors
def _bin(values: np.ndarray, lo: float, hi: float, n_bins: int) -> np.ndarray:
    if hi <= lo:
        return np.zeros(len(values), dtype=np.int64)
    return np.clip(((values - lo) / (hi - lo) * n_bins).astype(np.int64), 0, n_bins - 1)


def factors_at(indices: Any, *, seed: int = 0, config: SpritesConfig | None = None) -> pd.DataFrame:
    """Factors of sprites images ``(seed, i)`` for ``i`` in ``indices`` (see the module docstring)."""
    c = config or SpritesConfig()
    idx = np.asarray(list(indices), dtype=np.int64)
    cols: dict[str, np.ndarray] = {"idx": idx}
    for name, (kind, _) in FACTORS.items():
        u = hash_uniform(seed, idx, _STREAM[name])
        if kind == "categorical":
            cols[name] = np.minimum((u * c.n_shapes).astype(np.int64), c.n_shapes - 1)
        else:
            lo, hi = factor_range(name, c)
            cols[name] = lo + (hi - lo) * u
    for name, (kind, _) in FACTORS.items():
        if kind == "continuous":
            lo, hi = factor_range(name, c)
            cols[f"{name}_bin"] = _bin(cols[name], lo, hi, c.n_bins)
    return pd.DataFrame(cols)


def sprite_ref(seed: int, idx: int) -> str:
    return f"sprites://{seed}/{idx}"


# ---------------------------------------------------------------------------------------------- rendering
def _hsv_rgb(h: float, s: float, v: float) -> np.ndarray:
    from matplotlib.colors import hsv_to_rgb

    return np.asarray(hsv_to_rgb([h % 1.0, s, v]), dtype=np.float32)


def sprite_polygon(row: Any, resolution: int, config: SpritesConfig) -> np.ndarray:
    """The outline ``[P, 2]`` (x, y) of one image's sprite in output pixel coordinates (pixel ``j`` spans
    ``[j, j+1)``), through idsprites' own transforms (``apply_scale``, ``apply_orientation``)."""
    shape = bank_for(config)[int(row["shape_id"])]
    ids = _idsprites()
    pts = ids.InfiniteDSprites.apply_orientation(shape * (_EXTENT * resolution * float(row["scale"])),
                                                 math.pi * float(row["orientation"]))
    centre = np.array([(0.25 + 0.5 * float(row["position_x"])) * resolution,
                       (0.25 + 0.5 * float(row["position_y"])) * resolution])
    return (pts + centre[:, None]).T


def _coverage(poly: np.ndarray, resolution: int, supersample: int) -> np.ndarray:
    """Fraction of each output pixel ``[H, W]`` covered by the polygon ``poly [P, 2]`` (output pixel units)."""
    import cv2

    side = resolution * supersample
    canvas = np.zeros((side, side), dtype=np.uint8)
    shift = 6  # sub-pixel vertex precision 1/64 of a fine pixel
    # fine pixel k's centre is at output coordinate (k + 0.5) / supersample; cv2 puts it at k
    fine = poly * supersample - 0.5
    cv2.fillPoly(canvas, [np.round(fine * (1 << shift)).astype(np.int32)], 255, lineType=cv2.LINE_8, shift=shift)
    cov = canvas.reshape(resolution, supersample, resolution, supersample).mean(axis=(1, 3)) / 255.0
    return cov.astype(np.float32)


def render(factors: pd.DataFrame, resolution: int | None = None,
           config: SpritesConfig | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``[n, 3, H, W]`` in [0, 1] and sprite coverage masks ``[n, 1, H, W]`` for the rows of ``factors``."""
    c = config or SpritesConfig()
    res = int(resolution or c.resolution)
    n = len(factors)
    masks = np.zeros((n, 1, res, res), dtype=np.float32)
    colours = np.zeros((n, 3, 1, 1), dtype=np.float32)
    for k, row in enumerate(factors.to_dict("records")):
        masks[k, 0] = _coverage(sprite_polygon(row, res, c), res, c.supersample)
        colours[k, :, 0, 0] = _hsv_rgb(float(row["color"]), c.saturation, c.value)
    bg = np.asarray(c.background, dtype=np.float32)[None, :, None, None]
    images = bg * (1 - masks) + colours * masks
    return torch.from_numpy(images), torch.from_numpy(masks)


def sample_range(start: int, stop: int, *, seed: int = 0, resolution: int | None = None,
                 config: SpritesConfig | None = None) -> tuple[torch.Tensor, pd.DataFrame]:
    """Images ``(seed, start..stop-1)`` ``[n, 3, H, W]`` in [0, 1] and their factors DataFrame."""
    df = factors_at(range(start, stop), seed=seed, config=config)
    return render(df, resolution, config)[0], df


def sample(n: int, *, seed: int = 0, resolution: int | None = None, config: SpritesConfig | None = None,
           return_masks: bool = False) -> tuple[torch.Tensor, pd.DataFrame] | tuple[torch.Tensor, pd.DataFrame, torch.Tensor]:
    """``n`` seeded sprites images ``[n, 3, H, W]`` in [0, 1] and a DataFrame of every factor (and, with
    ``return_masks``, the sprites' coverage ``[n, 1, H, W]``)."""
    df = factors_at(range(n), seed=seed, config=config)
    images, masks = render(df, resolution, config)
    return (images, df, masks) if return_masks else (images, df)


# ---------------------------------------------------------------------------------------------- the source
class SpritesSource:
    """Manifest source ``type: sprites``: item ``i`` is sprites image ``(seed, i)``; records hold every factor.

    Picklable (a config and two ints); a batch (``items``) renders in one call.
    """

    def __init__(self, size: int, seed: int = 0, config: SpritesConfig | None = None) -> None:
        self.size, self.seed, self.config = int(size), int(seed), config or SpritesConfig()

    def __len__(self) -> int:
        return self.size

    @property
    def fields(self) -> dict[str, str]:
        return factor_kinds(self.config)

    def ref(self, i: int) -> str:
        return sprite_ref(self.seed, i)

    def items(self, indices: Any, resolution: int) -> list[tuple[torch.Tensor, str, dict]]:
        df = factors_at(list(indices), seed=self.seed, config=self.config)
        images, _ = render(df, resolution, self.config)
        recs = [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()}
                for r in df.drop(columns="idx").to_dict("records")]
        return [(images[k], self.ref(int(i)), recs[k]) for k, i in enumerate(indices)]

    def item(self, i: int, resolution: int) -> tuple[torch.Tensor, str, dict]:
        return self.items([i], resolution)[0]
