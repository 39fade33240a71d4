"""The sprites world (:mod:`probe.data.sprites`: Infinite dSprites shapes) as a :class:`probe.worlds.World`.

What belongs to it, in one place: its factors and their kinds (``color`` and ``orientation`` circular, in
turns), the manifest source that renders it (``type: sprites``), and its default measurers, all analytic
readers of the pixels (no model). The measurers are objects (:class:`SpriteReader`: ``name``, ``kind``,
``__call__(images, *, masks=None)``, the measurer protocol of :mod:`probe.measure`, which accepts a measurer
object wherever it takes a spec) rather than ``family:name`` specs: a world module may not import
``probe.measure`` (which reaches the worlds through the registry), so it cannot register a family.

============  ==========  ===========================================================================
factor        kind        how its reader reads the image
============  ==========  ===========================================================================
position_x    continuous  centroid of the estimated sprite coverage (background = the per-channel
position_y    continuous  median; coverage = a pixel's largest channel difference over the image's)
scale         continuous  ``sqrt(coverage area / shape_area) / (0.45 * side)``
color         circular    hue of the mean colour of the sprite's interior (coverage >= 0.9)
orientation   circular    the coverage's second-moment axis (modulo a half-turn)
shape_id      categorical no reader (no closed form for a spline shape): untested unless one is named
null_factor   continuous  never rendered: no reader
============  ==========  ===========================================================================

The corruption severities of a manifest (``blur``, ``brightness``, ``contrast``) are not factors of the
world; the analytic measurers ``global_blur`` (gradient sharpness), ``luminance`` and ``contrast`` read them.

Examples:
    >>> from probe import worlds
    >>> world = worlds.get("sprites")
    >>> world.circular(), world.measurers["scale"].kind
    (('color', 'orientation'), 'continuous')
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from probe.data import sprites as _sprites
from probe.worlds import World, register

if TYPE_CHECKING:
    from probe.data.manifest import Manifest

# ---------------------------------------------------------------------------------------------- the readers
# Analytic readers of the factors from pixels alone (no factor is passed in). The background is the per-channel
# median of the image (a sprite covers well under half of it); the coverage of a pixel is its largest channel
# difference from the background over the image's largest one (exact on a clean rendering: a pixel is
# background * (1 - m) + colour * m). Written by hand (closed forms; image moments as in skimage.measure.moments,
# but in torch, batched and differentiable almost everywhere).
_MIN_COVER = 0.05  # coverage below this is treated as background (noise, faint blur tails)


def sprite_coverage(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Estimated sprite coverage ``[B, 1, H, W]`` in [0, 1] and background colour ``[B, 3, 1, 1]``."""
    bg = images.flatten(2).median(dim=2).values[:, :, None, None]
    d = (images - bg).abs().amax(dim=1, keepdim=True)
    peak = d.flatten(1).amax(dim=1).clamp_min(1e-6)[:, None, None, None]
    m = d / peak
    return torch.where(m >= _MIN_COVER, m, torch.zeros_like(m)), bg


def _grid(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    h, w = images.shape[-2:]
    ys = (torch.arange(h, device=images.device, dtype=images.dtype) + 0.5)[:, None].expand(h, w)
    xs = (torch.arange(w, device=images.device, dtype=images.dtype) + 0.5)[None, :].expand(h, w)
    return xs, ys


def read_position(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(position_x, position_y)`` ``[B]`` each, from the coverage centroid, in the factors' units."""
    m, _ = sprite_coverage(images)
    m = m[:, 0]
    xs, ys = _grid(images)
    mass = m.sum(dim=(1, 2)).clamp_min(1e-6)
    side_x, side_y = images.shape[-1], images.shape[-2]
    cx = (m * xs).sum(dim=(1, 2)) / mass / side_x
    cy = (m * ys).sum(dim=(1, 2)) / mass / side_y
    return (cx - 0.25) / 0.5, (cy - 0.25) / 0.5


def read_scale(images: torch.Tensor, config: _sprites.SpritesConfig | None = None) -> torch.Tensor:
    """``scale`` ``[B]`` from the coverage area: ``sqrt(area / shape_area) / (0.45 * side)``."""
    c = config or _sprites.SpritesConfig()
    m, _ = sprite_coverage(images)
    area = m.sum(dim=(1, 2, 3))
    side = math.sqrt(images.shape[-1] * images.shape[-2])
    return torch.sqrt(area / c.shape_area) / (_sprites._EXTENT * side)


def read_color(images: torch.Tensor) -> torch.Tensor:
    """``color`` (the sprite's hue) as unit vectors ``[B, 2]`` (angle ``2 pi color``): the hue of the mean colour of the pixels the
    sprite covers at least 90% (its interior, free of the anti-aliased rim)."""
    m, _ = sprite_coverage(images)
    w = (m >= 0.9).to(images.dtype)
    rgb = (images * w).sum(dim=(2, 3)) / w.sum(dim=(2, 3)).clamp_min(1.0)  # [B, 3]
    r, g, b = rgb.unbind(1)
    # the hue angle in the opponent-colour plane, atan2(sqrt(3)(g - b), 2r - g - b): equal to the HSV hue at the
    # primaries and secondaries, within ~1 degree of it between them (our colours: saturation 0.8)
    x = 2 * r - g - b
    y = math.sqrt(3) * (g - b)
    return torch.nn.functional.normalize(torch.stack([x, y], dim=1), dim=1, eps=1e-8)


def read_orientation(images: torch.Tensor) -> torch.Tensor:
    """``orientation`` as unit vectors ``[B, 2]`` at angle ``2 pi orientation`` (= twice the angle in radians),
    from the coverage's central second moments: the major axis is at ``phi = atan2(2 mu11, mu20 - mu02) / 2``
    from the x axis (y down), and a bank shape's major axis is vertical at orientation 0, so the angle is
    ``phi - pi/2``."""
    m, _ = sprite_coverage(images)
    m = m[:, 0]
    xs, ys = _grid(images)
    mass = m.sum(dim=(1, 2)).clamp_min(1e-6)
    cx = (m * xs).sum(dim=(1, 2)) / mass
    cy = (m * ys).sum(dim=(1, 2)) / mass
    dx = xs[None] - cx[:, None, None]
    dy = ys[None] - cy[:, None, None]
    mu20 = (m * dx * dx).sum(dim=(1, 2))
    mu02 = (m * dy * dy).sum(dim=(1, 2))
    mu11 = (m * dx * dy).sum(dim=(1, 2))
    # angle 2 phi = atan2(2 mu11, mu20 - mu02); 2 * orientation = 2 phi - pi, i.e. the vector negated
    v = torch.stack([-(mu20 - mu02), -2 * mu11], dim=1)
    return torch.nn.functional.normalize(v, dim=1, eps=1e-8)


def turns(vectors: torch.Tensor) -> torch.Tensor:
    """Unit vectors ``[B, 2]`` of a circular reading -> its value in turns, ``[0, 1)``."""
    return (torch.atan2(vectors[:, 1], vectors[:, 0]) / (2 * math.pi)) % 1.0


# ---------------------------------------------------------------------------------------------- the bundle
#: factor -> kind (circular: values in turns)
FACTORS: dict[str, str] = {n: ("circular" if n in _sprites.CIRCULAR else kind)
                           for n, (kind, _) in _sprites.FACTORS.items()}


@dataclass(frozen=True)
class SpriteReader:
    """One factor's analytic reader as a measurer: ``images [B, 3, H, W]`` -> ``[B]`` (continuous) or unit
    vectors ``[B, 2]`` (circular, angle = 2 pi x the value in turns). Differentiable almost everywhere."""

    name: str
    kind: str
    read: Callable[[torch.Tensor], torch.Tensor]
    classes: None = None
    differentiable: bool = True  # torch all the way: attribution patching can estimate swaps on it

    def __call__(self, images: torch.Tensor, *, masks: torch.Tensor | None = None) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"measurer {self.name!r}: expected images [B, 3, H, W] in [0, 1], "
                             f"got shape {tuple(images.shape)}")
        return self.read(images)

    def __repr__(self) -> str:
        return f"SpriteReader(name={self.name!r}, kind={self.kind!r})"


MEASURERS: dict[str, SpriteReader] = {
    "position_x": SpriteReader("position_x", "continuous", lambda x: read_position(x)[0]),
    "position_y": SpriteReader("position_y", "continuous", lambda x: read_position(x)[1]),
    "scale": SpriteReader("scale", "continuous", read_scale),
    "color": SpriteReader("color", "circular", read_color),
    "orientation": SpriteReader("orientation", "circular", read_orientation),
}
"""The default measurer of each factor that a closed form reads."""

def masks(manifest: Manifest, index: np.ndarray, resolution: int) -> torch.Tensor | None:
    """The sprites' coverage ``[n, 1, R, R]`` in the manifest's images ``index`` (None when they are corrupted:
    a blurred sprite has no exact coverage)."""
    if manifest.corruptions:
        return None
    cfg = _sprites.SpritesConfig.from_dict(manifest.source_options.get("config", {}))
    df = _sprites.factors_at([int(i) for i in np.asarray(index).reshape(-1)], seed=manifest.seed, config=cfg)
    return _sprites.render(df, int(resolution), cfg)[1]


WORLD = World(
    name="sprites",
    source_type="sprites",
    factors=FACTORS,
    measurers=MEASURERS,
    sample=_sprites.sample,
    masks=masks,
    description="Infinite dSprites shapes on a grey canvas: shape, colour, scale, orientation, position, a null",
)
register(WORLD)
