"""Turning any decoded image into the tokenizer's input: RGB, shorter side resized, centre crop.

The resize follows TiTok's evaluation transform (``Resize(res, bicubic, antialias=True)`` then
``CenterCrop(res)`` then ``ToTensor``). Odd inputs are converted where that is meaningful
(grayscale, palette, alpha, 16-bit, float, CMYK) and refused otherwise with a
:class:`SkipImage` that carries a human-readable reason.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image, UnidentifiedImageError
from torchvision.transforms import InterpolationMode

DEFAULT_MIN_SIZE = 16
"""Images whose shorter side is below this many pixels are skipped (upsampling them to the
tokenizer's resolution would only produce blur). Manifests can change it (``source.min_size``)."""

ALPHA_BACKGROUND = (255, 255, 255)
"""Transparent pixels are composited over white (the usual viewer convention)."""


class SkipImage(Exception):
    """An image that cannot be used; ``str(exc)`` is the reason that goes in the log."""


def open_image(source: str | Path | bytes) -> Image.Image:
    """Open and fully decode an image file or encoded bytes (raises :class:`SkipImage`)."""
    try:
        img = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        img.load()  # decode now: truncated files fail here, not later in a worker
        return img
    except FileNotFoundError as e:
        raise SkipImage(f"file not found: {e}") from None
    except UnidentifiedImageError:
        raise SkipImage("not a readable image (unknown format or not an image)") from None
    except Image.DecompressionBombError as e:
        raise SkipImage(f"refused as a decompression bomb: {e}") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise SkipImage(f"cannot decode ({type(e).__name__}: {e})") from None


def _array_to_uint8(a: np.ndarray) -> np.ndarray:
    """Scale integer (e.g. 16-bit) or float arrays to uint8 by their dtype's or data's range."""
    if a.dtype == np.uint8:
        return a
    if a.dtype == bool:
        return a.astype(np.uint8) * 255
    if np.issubdtype(a.dtype, np.integer):
        # 8-bit data in a wide container stays as is; 16-bit data (PNG "I;16", or "I" mode holding
        # 16-bit values) is scaled by 65535; anything wider by its dtype's maximum
        top = int(a.max()) if a.size else 0
        hi = 255.0 if top <= 255 else 65535.0 if top <= 65535 else float(np.iinfo(a.dtype).max)
        return np.clip(a.astype(np.float64) / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise SkipImage("image holds NaN or infinite values")
    lo, hi = (0.0, 1.0) if a.min() >= 0.0 and a.max() <= 1.0 else (float(a.min()), float(a.max()))
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return np.clip((a - lo) * scale + 0.5, 0, 255).astype(np.uint8)


def to_rgb(img: Image.Image | np.ndarray) -> Image.Image:
    """Any PIL image or ``[H, W]`` / ``[H, W, C]`` array -> an 8-bit RGB PIL image.

    Grayscale is replicated, palette images are expanded, alpha is composited over
    :data:`ALPHA_BACKGROUND`, 16-bit / 32-bit / float data are rescaled to 8 bits.
    """
    if isinstance(img, np.ndarray):
        a = img
        if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
            a = np.moveaxis(a, 0, -1)  # channels-first -> channels-last
        if a.ndim == 3 and a.shape[-1] == 1:
            a = a[..., 0]
        if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
            raise SkipImage(f"array of shape {tuple(img.shape)} is not an image")
        img = Image.fromarray(np.ascontiguousarray(_array_to_uint8(a)))  # L, RGB or RGBA
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return to_rgb(np.asarray(img))
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        base = Image.new("RGBA", rgba.size, ALPHA_BACKGROUND + (255,))
        return Image.alpha_composite(base, rgba).convert("RGB")
    try:
        return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV
    except (ValueError, OSError) as e:
        raise SkipImage(f"cannot convert mode {mode!r} to RGB: {e}") from None


def resize_center_crop(img: Image.Image, resolution: int, *,
                       min_size: int = DEFAULT_MIN_SIZE) -> torch.Tensor:
    """RGB PIL image -> ``[3, resolution, resolution]`` float32 in [0, 1] (TiTok eval transform).

    Raises :class:`SkipImage` when the shorter side is below ``min_size``.
    """
    w, h = img.size
    if min(w, h) < min_size:
        raise SkipImage(f"too small ({w}x{h}; shorter side < min_size {min_size})")
    img = TF.resize(img, resolution, interpolation=InterpolationMode.BICUBIC, antialias=True)
    img = TF.center_crop(img, [resolution, resolution])
    return TF.to_tensor(img)  # PIL -> uint8 -> [0, 1]: bicubic overshoot is already clipped


def load_as_tensor(source: str | Path | bytes | Image.Image | np.ndarray, resolution: int, *,
                   min_size: int = DEFAULT_MIN_SIZE) -> torch.Tensor:
    """Decode (if needed), convert to RGB, resize and crop: ``[3, R, R]`` or :class:`SkipImage`."""
    if isinstance(source, (str, Path, bytes)):
        source = open_image(source)
    return resize_center_crop(to_rgb(source), resolution, min_size=min_size)
