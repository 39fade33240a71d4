"""The synthetic attribute world: one object on a striped background, with known factors.

Every image is a pure function of ``(seed, index)``: factors come from a counter-based hash
(splitmix64) instead of a sequential RNG, so any chunk ``[start, stop)`` can be generated on
its own and equals the same rows of a single big call.

Factors (all recorded as DataFrame columns, one row per image, indexed by ``idx``):

=============  ===========  ==============================================================
name           kind         meaning
=============  ===========  ==============================================================
shape          categorical  circle | square | triangle | star (all inscribed in a circle of
                            radius ``obj_scale``)
obj_hue        continuous   object hue in [0, 1) (HSV hue, circular)
bg_hue         continuous   background hue in [0, 1) (circular)
obj_scale      continuous   object circumradius, fraction of the image side
obj_x, obj_y   continuous   object centre, fraction of the image side (x right, y down)
lighting       continuous   global gain: low = dark, high = bright
bg_blur        continuous   Gaussian sigma (fraction of the image side) applied to the
                            background texture only; 0 = crisp stripes, high = blurry
global_blur    continuous   Gaussian sigma (fraction of the image side) applied to the whole
                            image; 0 = sharp, high = blurry (i.e. the inverse of "sharpness")
null_factor    continuous   drawn like the others, never rendered (a control)
=============  ===========  ==============================================================

Nuisance columns (varied, recorded, not meant as probe targets): ``stripe_period`` (fraction
of the image side), ``stripe_angle`` (radians), ``stripe_phase`` (fraction of a period). Their ranges
are settings (``stripe_periods``, ``stripe_angle_range``, ``stripe_phase_range``); pinning them (equal
low and high) gives a sub-world whose every image is also an image of the default world, with the
same factors (the shipped world tokenizers are trained on such a sub-world).
Every continuous factor also has a ``<name>_bin`` column (int in ``[0, n_bins)``, equal-width
bins over the factor's range).

Render order: striped background (blurred analytically by ``bg_blur``), object composited on
top with a 1-pixel anti-aliased edge, whole-image blur by ``global_blur``, gain by ``lighting``.
Blur sigmas are in units of the image side, so the same label looks the same at any resolution.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from probe.data.filters import gaussian_blur
from probe.errors import check_fields

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")


@dataclass(frozen=True)
class WorldConfig:
    """Every rendering parameter of the world, with its default.

    Ranges are ``(low, high)`` and sampled uniformly. Lengths are fractions of the image side.
    """

    resolution: int = 64  # default output side in pixels
    shapes: tuple[str, ...] = SHAPES  # categorical shape vocabulary (subset of SHAPES)
    scale_range: tuple[float, float] = (0.14, 0.28)  # object circumradius
    position_range: tuple[float, float] = (0.28, 0.72)  # object centre x and y
    obj_saturation: float = 0.85  # HSV saturation of the object colour
    obj_value: float = 0.95  # HSV value of the object colour
    bg_saturation: float = 0.45  # HSV saturation of the background colour
    bg_value_range: tuple[float, float] = (0.3, 0.85)  # HSV value of dark / light stripes
    stripe_periods: tuple[float, float] = (3.0, 6.0)  # stripe periods across the image (coarse)
    stripe_angle_range: tuple[float, float] = (0.0, math.pi)  # stripe direction (radians; 0 = vertical)
    stripe_phase_range: tuple[float, float] = (0.0, 1.0)  # stripe offset at the centre (fraction of a period)
    bg_blur_range: tuple[float, float] = (0.0, 0.08)  # background blur sigma
    global_blur_range: tuple[float, float] = (0.0, 0.05)  # whole-image blur sigma
    lighting_range: tuple[float, float] = (0.25, 1.0)  # global gain
    star_inner_ratio: float = 0.5  # inner / outer radius of the 5-point star
    n_bins: int = 4  # levels of each ``<factor>_bin`` column
    chunk_size: int = 256  # images rendered per vectorised step (bounds memory)

    def __post_init__(self) -> None:
        bad = [s for s in self.shapes if s not in SHAPES]
        if bad or not self.shapes:
            raise ValueError(f"WorldConfig.shapes: unknown shape(s) {bad}; choose from {SHAPES}")
        for name in ("scale_range", "position_range", "bg_value_range", "stripe_periods",
                     "stripe_angle_range", "stripe_phase_range", "bg_blur_range", "global_blur_range",
                     "lighting_range"):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise ValueError(f"WorldConfig.{name}: low {lo} > high {hi}")
        if self.resolution < 4:
            raise ValueError(f"WorldConfig.resolution must be >= 4, got {self.resolution}")
        if self.n_bins < 1:
            raise ValueError(f"WorldConfig.n_bins must be >= 1, got {self.n_bins}")
        if self.stripe_periods[0] <= 0:
            raise ValueError("WorldConfig.stripe_periods must be > 0")

    @classmethod
    def from_dict(cls, values: dict) -> WorldConfig:
        """A config from plain values (JSON / YAML lists become tuples); unknown keys are named in the error."""
        check_fields(cls, values, "WorldConfig")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


@dataclass(frozen=True)
class FactorSpec:
    """Metadata of one world column.

    Attributes:
        kind: ``"categorical"`` or ``"continuous"``.
        range: ``(low, high)`` for continuous factors, ``None`` otherwise.
        levels: the categories for categorical factors, ``None`` otherwise.
        role: ``"factor"`` (rendered, a probe target), ``"null"`` (never rendered) or
            ``"nuisance"`` (rendered, varied, not a target).
        circular: True for hues (0 and 1 are the same colour).
    """

    kind: str
    range: tuple[float, float] | None = None
    levels: tuple[str, ...] | None = None
    role: str = "factor"
    circular: bool = False


def factor_specs(config: WorldConfig | None = None) -> dict[str, FactorSpec]:
    """Factor metadata (name -> :class:`FactorSpec`) for ``config`` (default: ``WorldConfig()``)."""
    c = config or WorldConfig()
    return {
        "shape": FactorSpec("categorical", levels=tuple(c.shapes)),
        "obj_hue": FactorSpec("continuous", (0.0, 1.0), circular=True),
        "bg_hue": FactorSpec("continuous", (0.0, 1.0), circular=True),
        "obj_scale": FactorSpec("continuous", tuple(c.scale_range)),
        "obj_x": FactorSpec("continuous", tuple(c.position_range)),
        "obj_y": FactorSpec("continuous", tuple(c.position_range)),
        "lighting": FactorSpec("continuous", tuple(c.lighting_range)),
        "bg_blur": FactorSpec("continuous", tuple(c.bg_blur_range)),
        "global_blur": FactorSpec("continuous", tuple(c.global_blur_range)),
        "null_factor": FactorSpec("continuous", (0.0, 1.0), role="null"),
        "stripe_period": FactorSpec(
            "continuous", (1.0 / c.stripe_periods[1], 1.0 / c.stripe_periods[0]), role="nuisance"),
        "stripe_angle": FactorSpec("continuous", tuple(c.stripe_angle_range), role="nuisance"),
        "stripe_phase": FactorSpec("continuous", tuple(c.stripe_phase_range), role="nuisance"),
    }


FACTORS: dict[str, FactorSpec] = factor_specs()
"""Factor metadata for the default config. Use :func:`factor_specs` for a custom config."""

# Stream ids of the hash: one independent uniform stream per drawn quantity. Never reorder
# (that would change every image of every seed); append new streams at the end. Streams are
# numbered by position, so renaming one (``null`` -> ``null_factor``) leaves every draw unchanged.
_STREAMS = ("shape", "obj_hue", "bg_hue", "obj_scale", "obj_x", "obj_y", "lighting", "bg_blur",
            "global_blur", "null_factor", "stripe_period", "stripe_angle", "stripe_phase")


# --------------------------------------------------------------------------- factor sampling
def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser on uint64 arrays (a fast, well-mixed counter hash)."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _uniform(seed: int, idx: np.ndarray, stream: int) -> np.ndarray:
    """Uniform [0, 1) float64 per index, a pure function of ``(seed, idx, stream)``."""
    with np.errstate(over="ignore"):
        key = _splitmix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64)
                          + np.uint64(stream) * np.uint64(0xD1B54A32D192ED03))
        h = _splitmix64(idx.astype(np.uint64) ^ key)
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def hash_uniform(seed: int, idx: np.ndarray, stream: int) -> np.ndarray:
    """Public counter-based uniforms (for other seeded, chunk-independent choices)."""
    return _uniform(seed, np.asarray(idx), stream)


def hash_int(seed: int, i: int, stream: int) -> int:
    """A 53-bit integer that depends only on ``(seed, i, stream)`` (e.g. a per-item RNG seed)."""
    return int(_uniform(seed, np.array([i]), stream)[0] * float(2**53))


def _bin(values: np.ndarray, lo: float, hi: float, n_bins: int) -> np.ndarray:
    """``values [n]`` in ``[lo, hi]`` -> equal-width bin ``0..n_bins-1`` (int64 ``[n]``; all 0 when the range is empty)."""
    if hi <= lo:
        return np.zeros(len(values), dtype=np.int64)
    b = np.floor((values - lo) / (hi - lo) * n_bins).astype(np.int64)
    return np.clip(b, 0, n_bins - 1)


def sample_factors(start: int, stop: int, *, seed: int = 0,
                   config: WorldConfig | None = None) -> pd.DataFrame:
    """Factors of images ``start .. stop-1`` (one row each, index ``idx``), with ``*_bin`` columns."""
    if start < 0 or stop < start:
        raise ValueError(f"sample_factors: need 0 <= start <= stop, got start={start}, stop={stop}")
    return factors_at(np.arange(start, stop, dtype=np.int64), seed=seed, config=config)


def factors_at(indices: np.ndarray | Sequence[int], *, seed: int = 0, config: WorldConfig | None = None) -> pd.DataFrame:
    """Factors of the images with the given (any order, any gaps) indices; see :func:`sample_factors`."""
    c = config or WorldConfig()
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if (idx < 0).any():
        raise ValueError("factors_at: indices must be >= 0")
    u = {name: _uniform(seed, idx, s) for s, name in enumerate(_STREAMS)}

    def lerp(name: str, rng: tuple[float, float]) -> np.ndarray:
        return rng[0] + (rng[1] - rng[0]) * u[name]

    shape_id = np.minimum((u["shape"] * len(c.shapes)).astype(np.int64), len(c.shapes) - 1)
    cols: dict[str, np.ndarray] = {
        "shape": np.asarray(c.shapes, dtype=object)[shape_id],
        "obj_hue": u["obj_hue"],
        "bg_hue": u["bg_hue"],
        "obj_scale": lerp("obj_scale", c.scale_range),
        "obj_x": lerp("obj_x", c.position_range),
        "obj_y": lerp("obj_y", c.position_range),
        "lighting": lerp("lighting", c.lighting_range),
        "bg_blur": lerp("bg_blur", c.bg_blur_range),
        "global_blur": lerp("global_blur", c.global_blur_range),
        "null_factor": u["null_factor"],
        # period sampled uniformly in "periods across the image", stored as a length
        "stripe_period": 1.0 / lerp("stripe_period", c.stripe_periods),
        # lerp over the default ranges (0, pi) and (0, 1) gives bit-identical values to u * pi and u
        "stripe_angle": lerp("stripe_angle", c.stripe_angle_range),
        "stripe_phase": lerp("stripe_phase", c.stripe_phase_range),
    }
    df = pd.DataFrame(cols, index=pd.Index(idx, name="idx"))
    for name, spec in factor_specs(c).items():
        if spec.kind == "continuous" and spec.role != "nuisance":
            df[f"{name}_bin"] = _bin(df[name].to_numpy(), *spec.range, c.n_bins)
    return df


# --------------------------------------------------------------------------- rendering
def _hsv_to_rgb(h: torch.Tensor, s: float, v: torch.Tensor | float) -> torch.Tensor:
    """``h [B]`` in [0,1) -> RGB ``[B, 3]`` (standard HSV cone formula, vectorised)."""
    v = torch.as_tensor(v, dtype=h.dtype).expand_as(h)
    k = torch.stack([(5.0 + h * 6.0) % 6.0, (3.0 + h * 6.0) % 6.0, (1.0 + h * 6.0) % 6.0], dim=1)
    ramp = torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)
    return v[:, None] - v[:, None] * s * ramp


def _shape_sdf(shape: str, px: torch.Tensor, py: torch.Tensor, r: torch.Tensor,
               star_inner: float) -> torch.Tensor:
    """Signed distance (negative inside) to ``shape`` centred at the origin.

    ``px, py [B, H, W]`` are offsets from the object centre (y down); ``r [B, 1, 1]`` the
    circumradius (every shape is inscribed in the circle of radius r). Polygon distances are
    max-of-half-planes: exact along edges, which is all the 1-pixel anti-aliasing needs.
    """
    if shape == "circle":
        return torch.sqrt(px * px + py * py) - r
    if shape == "square":  # half side r / sqrt(2)
        return torch.maximum(px.abs(), py.abs()) - r / math.sqrt(2.0)
    if shape == "triangle":  # equilateral, apex up (y down => apex at py = -r); inradius r / 2
        s3 = math.sqrt(3.0) / 2.0
        ax = s3 * px.abs()
        return torch.maximum(py, ax - 0.5 * py) - r / 2.0
    if shape == "star":
        # 5-point star, tip up: fold the angle into one 36-degree half-sector and take the
        # signed distance to the edge from the tip (r, 0) to the inner vertex (rho cos36, rho sin36)
        dist = torch.sqrt(px * px + py * py)
        sector = 2.0 * math.pi / 5.0
        a = (torch.remainder(torch.atan2(px, -py) + sector / 2.0, sector) - sector / 2.0).abs()
        qx, qy = dist * torch.cos(a), dist * torch.sin(a)
        c36, s36 = math.cos(math.pi / 5.0), math.sin(math.pi / 5.0)
        ex, ey = star_inner * c36 - 1.0, star_inner * s36  # edge direction / r
        elen = math.hypot(ex, ey)
        nx, ny = ey / elen, -ex / elen  # outward normal
        return (qx - r) * nx + qy * ny
    raise ValueError(f"unknown shape {shape!r}; choose from {SHAPES}")


_LUT_SIZE = 1024  # samples per stripe period; a period is >= ~10 px, so nearest lookup is exact enough


def _stripe_profile(rel_sigma: torch.Tensor, bound: float = 0.0) -> torch.Tensor:
    """One period of a Gaussian-blurred square wave, sampled: ``[B, _LUT_SIZE]``.

    The square wave is 1 on the first half period. Stripes vary along one direction only, and an
    isotropic Gaussian blur of such an image is the 1-D blur along that direction, so the exact
    result is a sum of erf edges; we tabulate it once per image (``rel_sigma [B]`` = sigma /
    period) and look pixels up, which is much cheaper than evaluating erfs per pixel and has
    no border artefacts (unlike a convolution).
    """
    p = (torch.arange(_LUT_SIZE, dtype=rel_sigma.dtype) + 0.5) / _LUT_SIZE  # [L] in period units
    # the number of edges summed comes from the config's bound (not the batch), so an image's
    # pixels do not depend on which other images share its batch
    top = max(bound, float(rel_sigma.max())) if len(rel_sigma) else bound
    m = math.ceil(4.0 * top) + 1
    inv = (1.0 / (rel_sigma * math.sqrt(2.0)))[:, None]
    out = torch.zeros(len(rel_sigma), _LUT_SIZE, dtype=rel_sigma.dtype)
    for k in range(-m, m + 1):
        e0 = (p - k)[None, :]
        out += 0.5 * (torch.erf(e0 * inv) - torch.erf((e0 - 0.5) * inv))
    return out.clamp_(0.0, 1.0)


def _render_chunk(df: pd.DataFrame, res: int, c: WorldConfig,
                  out_img: torch.Tensor, out_mask: torch.Tensor) -> None:
    """Render ``df`` into ``out_img [B, 3, R, R]`` and ``out_mask [B, 1, R, R]`` (views).

    Written for speed on one CPU core: per-pixel work stays on ``[B, R, R]`` tensors, colour
    mixing uses fused ``lerp`` on expanded (not materialised) operands, and the lighting gain
    is folded into the colours (every later step is linear and convex).
    """
    dt = torch.float32

    def col(name: str) -> torch.Tensor:
        return torch.tensor(df[name].to_numpy(dtype=np.float64), dtype=dt)

    b = len(df)
    shape_id = torch.as_tensor(
        pd.Categorical(df["shape"], categories=list(SHAPES)).codes.astype(np.int64))
    if (shape_id < 0).any():
        bad = sorted(set(df["shape"][shape_id.numpy() < 0]))
        raise ValueError(f"render: unknown shape(s) {bad}; choose from {SHAPES}")
    px_size = 1.0 / res
    coords = (torch.arange(res, dtype=dt) + 0.5) * px_size  # pixel centres in [0, 1]
    full = (b, 3, res, res)

    # background: stripes along the stripe angle, blurred analytically (see _stripe_profile); a
    # half-pixel floor on sigma anti-aliases crisp stripes (roughly models pixel integration)
    ang, period = col("stripe_angle"), col("stripe_period")
    ux = ((coords - 0.5)[None, :] * (torch.cos(ang) / period)[:, None])[:, None, :]  # [B, 1, W]
    uy = ((coords - 0.5)[None, :] * (torch.sin(ang) / period)[:, None]
          + col("stripe_phase")[:, None])[:, :, None]  # [B, H, 1]
    phase = torch.remainder(ux + uy, 1.0)  # position within the period, [B, H, W]
    sig_bg = torch.sqrt(col("bg_blur") ** 2 + (0.5 * px_size) ** 2)
    bound = math.hypot(c.bg_blur_range[1], 0.5 * px_size) * c.stripe_periods[1]
    lut = _stripe_profile(sig_bg / period, bound)  # [B, L]
    lut_idx = (phase.reshape(b, -1) * _LUT_SIZE).long().clamp_(0, _LUT_SIZE - 1)
    stripes = torch.gather(lut, 1, lut_idx).reshape(b, 1, res, res)

    gain = col("lighting")[:, None]
    lo_v, hi_v = c.bg_value_range
    dark = (_hsv_to_rgb(col("bg_hue"), c.bg_saturation, lo_v) * gain)[:, :, None, None]
    light = (_hsv_to_rgb(col("bg_hue"), c.bg_saturation, hi_v) * gain)[:, :, None, None]
    obj = (_hsv_to_rgb(col("obj_hue"), c.obj_saturation, c.obj_value) * gain)[:, :, None, None]

    # object coverage from the signed distance, 1-pixel linear ramp; each shape's distance
    # is computed only for the images that have that shape
    ox, oy, r = col("obj_x"), col("obj_y"), col("obj_scale")
    sdf = torch.empty(b, res, res, dtype=dt)
    for sid in torch.unique(shape_id).tolist():
        sel = (shape_id == sid).nonzero().squeeze(1)
        dx = (coords[None, :] - ox[sel, None])[:, None, :].expand(-1, res, -1)
        dy = (coords[None, :] - oy[sel, None])[:, :, None].expand(-1, -1, res)
        sdf[sel] = _shape_sdf(SHAPES[sid], dx, dy, r[sel, None, None], c.star_inner_ratio)
    mask = sdf.mul_(-1.0 / px_size).add_(0.5).clamp_(0.0, 1.0)[:, None]  # [B, 1, H, W]
    out_mask.copy_(mask)

    bg = torch.lerp(dark.expand(full), light.expand(full), stripes.expand(full))
    img = torch.lerp(bg, obj.expand(full), mask.expand(full))

    # whole-image blur: separable, per-image sigma (see filters.gaussian_blur)
    gaussian_blur(img, col("global_blur") * res, out=out_img)
    out_img.clamp_(0.0, 1.0)


def render(factors: pd.DataFrame, resolution: int | None = None,
           config: WorldConfig | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Render images from a factor table (as returned by :func:`sample_factors`, possibly edited).

    Args:
        factors: one row per image with the columns of :data:`FACTORS` (``null_factor`` and the
            ``*_bin`` columns are ignored).
        resolution: output side in pixels (default ``config.resolution``).
        config: rendering parameters (default ``WorldConfig()``).

    Returns:
        images ``[B, 3, H, W]`` float32 in [0, 1] and object masks ``[B, 1, H, W]`` float32 in
        [0, 1] (anti-aliased coverage of the sharp object, before global blur; 0 = background).
    """
    c = config or WorldConfig()
    res = int(resolution or c.resolution)
    if res < 4:
        raise ValueError(f"render: resolution must be >= 4, got {res}")
    need = [n for n, s in factor_specs(c).items() if s.role != "null"]
    missing = [n for n in need if n not in factors.columns]
    if missing:
        raise KeyError(f"render: factor table lacks column(s) {missing}")
    n = len(factors)
    images = torch.empty(n, 3, res, res)
    masks = torch.empty(n, 1, res, res)
    for s in range(0, n, c.chunk_size):
        e = min(n, s + c.chunk_size)
        _render_chunk(factors.iloc[s:e], res, c, images[s:e], masks[s:e])
    return images, masks


def sample_range(start: int, stop: int, *, seed: int = 0, resolution: int | None = None,
                 config: WorldConfig | None = None, return_masks: bool = False,
                 ) -> tuple[torch.Tensor, pd.DataFrame] | tuple[torch.Tensor, pd.DataFrame, torch.Tensor]:
    """Images ``start .. stop-1`` of world ``seed``: identical to those rows of a bigger call.

    Returns ``(images [n, 3, H, W], factors DataFrame)``, plus masks ``[n, 1, H, W]`` when
    ``return_masks``.
    """
    df = sample_factors(start, stop, seed=seed, config=config)
    images, masks = render(df, resolution, config)
    return (images, df, masks) if return_masks else (images, df)


def sample(n: int, *, seed: int = 0, resolution: int | None = None,
           config: WorldConfig | None = None, return_masks: bool = False,
           ) -> tuple[torch.Tensor, pd.DataFrame] | tuple[torch.Tensor, pd.DataFrame, torch.Tensor]:
    """``n`` world images and their factors: ``(images [n, 3, H, W] in [0,1], DataFrame)``.

    ``resolution`` defaults to ``config.resolution`` (64). With ``return_masks=True`` also the
    object masks ``[n, 1, H, W]`` (see :func:`render`). Image ``i`` depends only on
    ``(seed, i)``; see :func:`sample_range` for chunks.
    """
    return sample_range(0, n, seed=seed, resolution=resolution, config=config,
                        return_masks=return_masks)


def shape_renderings(factors: pd.DataFrame, resolution: int, config: WorldConfig | None = None) -> torch.Tensor:
    """Every row of ``factors`` rendered once per shape of ``config.shapes``, all other factors kept:
    ``[S, B, 3, H, W]`` (what :func:`nearest_shape` compares with; compute it once to read many image sets of
    the same rows)."""
    c = config or WorldConfig()
    return torch.stack([render(factors.assign(shape=shape), resolution=resolution, config=c)[0] for shape in c.shapes])


def nearest_shape(images: torch.Tensor, factors: pd.DataFrame, config: WorldConfig | None = None, *,
                  renderings: torch.Tensor | None = None) -> np.ndarray:
    """Shape of each image by analysis by synthesis: the image is rendered again once per shape of
    ``config.shapes`` with every other factor of its row in ``factors`` kept, and the shape whose rendering is
    nearest in mean squared error wins. A classifier with no learned part, for images whose factors are known
    (e.g. a tokenizer's reconstructions of world images): 1.0 on the world's own images.

    ``images [B,3,H,W]`` in [0, 1] -> ``[B]`` shape names (object array). ``renderings``: the
    :func:`shape_renderings` of ``factors`` at the images' resolution, if already made.
    """
    c = config or WorldConfig()
    if len(images) != len(factors):
        raise ValueError(f"nearest_shape: {len(images)} images but {len(factors)} factor rows")
    if renderings is None:
        renderings = shape_renderings(factors, images.shape[-1], c)
    dists = (images.float()[None] - renderings).pow(2).flatten(2).mean(2)  # [S, B]
    return np.asarray(c.shapes, dtype=object)[dists.argmin(0).numpy()]


def world_ref(seed: int, idx: int) -> str:
    """The stable reference string of world image ``idx`` (used by stores)."""
    return f"world:seed={seed}:idx={idx}"


__all__ = [
    "FACTORS",
    "SHAPES",
    "FactorSpec",
    "WorldConfig",
    "factor_specs",
    "factors_at",
    "nearest_shape",
    "render",
    "sample",
    "sample_factors",
    "sample_range",
    "shape_renderings",
    "world_ref",
]
