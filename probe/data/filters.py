"""Batched Gaussian blur with a different sigma per image (used by the world and corruptions)."""
from __future__ import annotations

import torch


def blur_matrices(sigma_px: torch.Tensor, size: int) -> torch.Tensor:
    """Per-image 1-D Gaussian blur matrices ``[B, size, size]`` with symmetric (reflect) borders.

    ``sigma_px [B]`` in pixels; sigma ~0 gives the identity. Blurring as two batched matmuls
    (rows, then columns) is BLAS-fast on CPU and lets every image have its own sigma without
    a per-image Python loop (a grouped convolution would need one kernel size for all).
    """
    sigma_px = sigma_px.to(torch.float32)
    b = sigma_px.shape[0]
    # a fixed pad (not one from the batch's largest sigma) keeps every image's matrix bitwise
    # independent of the other images in the batch; kernels are cut at 4 sigma or +-size
    pad = size
    j = torch.arange(-pad, size + pad)
    m = torch.remainder(j, 2 * size)
    src = torch.where(m >= size, 2 * size - 1 - m, m)  # symmetric reflection of index j
    i = torch.arange(size)
    d = (i[:, None] - j[None, :]).to(sigma_px.dtype)  # [size, size + 2 pad]
    s = sigma_px.clamp_min(1e-3)[:, None, None]
    z = (d[None] / s).square_()
    # cut the kernel at 4 sigma: the far tail would be denormal floats, which make exp and
    # matmul crawl on CPU
    w = torch.exp(z.clamp(max=16.0).mul_(-0.5)).masked_fill_(z >= 16.0, 0.0)
    w = w / w.sum(dim=2, keepdim=True)
    mat = torch.zeros(b, size, size, dtype=sigma_px.dtype)
    mat.index_add_(2, src, w)
    return mat


def gaussian_blur(images: torch.Tensor, sigma_px: torch.Tensor | float,
                  out: torch.Tensor | None = None) -> torch.Tensor:
    """Blur ``images [B, C, H, W]`` with per-image ``sigma_px [B]`` (pixels); returns ``[B, C, H, W]``.

    Borders are reflected. Written into ``out`` when given.
    """
    b, c, h, w = images.shape
    sig = torch.as_tensor(sigma_px, dtype=torch.float32).expand(b).contiguous()
    if out is None:
        out = torch.empty_like(images)
    if b == 0 or float(sig.max()) <= 1e-3:
        return out.copy_(images)
    x = images.reshape(b * c, h, w)
    mh = blur_matrices(sig, h).to(images.dtype).repeat_interleave(c, dim=0)  # [BC, H, H]
    mw = mh if h == w else blur_matrices(sig, w).to(images.dtype).repeat_interleave(c, dim=0)
    torch.bmm(torch.bmm(mh, x), mw.transpose(1, 2), out=out.view(b * c, h, w))
    return out
