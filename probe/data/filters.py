"""The one Gaussian blur: batched, a different sigma per image (used by the world, the corruptions and the
oracle's training degradations)."""
from __future__ import annotations

import torch


def blur_matrices(sigma_px: torch.Tensor, size: int) -> torch.Tensor:
    """Per-image 1-D Gaussian blur matrices ``[B, size, size]`` with symmetric (reflect) borders.

    ``sigma_px [B]`` in pixels; sigma ~0 gives the identity. Blurring as two batched matmuls
    (rows, then columns) is BLAS-fast on CPU and lets every image have its own sigma without
    a per-image Python loop (a grouped convolution would need one kernel size for all).
    """
    sigma_px = sigma_px.to(torch.float32)
    dev = sigma_px.device
    r = size
    # 1-D kernel g[b, t] at offsets d = t - 2r, cut at 4 sigma (the far tail would be denormal
    # floats, which make exp and matmul crawl) and at |d| <= r; every row of the matrix sees all
    # of it, so one normalisation serves all rows. Nothing depends on the other images in the
    # batch, so each image's result is bitwise independent of its batch.
    d = torch.arange(-2 * r, 2 * r + 1, dtype=torch.float32, device=dev)
    z = (d[None, :] / sigma_px.clamp_min(1e-3)[:, None]).square_()
    g = torch.exp(z.clamp(max=16.0).mul_(-0.5)).masked_fill_((z >= 16.0) | (d.abs() > r), 0.0)
    g = g / g.sum(dim=1, keepdim=True)
    # symmetric borders (x[-1 - k] = x[k], x[r + k] = x[r - 1 - k]): matrix = direct taps plus
    # the taps reflected at each edge
    i, k = torch.arange(r, device=dev)[:, None], torch.arange(r, device=dev)[None, :]
    taps = torch.stack([i - k + 2 * r, i + k + 1 + 2 * r, i + k + 1]).reshape(-1)  # [3 r r]
    return g.index_select(1, taps).view(-1, 3, r, r).sum(dim=1)


def gaussian_blur(images: torch.Tensor, sigma_px: torch.Tensor | float,
                  out: torch.Tensor | None = None) -> torch.Tensor:
    """Blur ``images [B, C, H, W]`` with per-image ``sigma_px [B]`` (pixels); returns ``[B, C, H, W]``.

    Borders are reflected (symmetric: the edge pixel repeats). Written into ``out`` when given. Runs on the
    images' device.
    """
    b, c, h, w = images.shape
    sig = torch.as_tensor(sigma_px, dtype=torch.float32, device=images.device).expand(b).contiguous()
    if out is None:
        out = torch.empty_like(images, memory_format=torch.contiguous_format)
    if b == 0 or float(sig.max()) <= 1e-3:
        return out.copy_(images)
    x = images.reshape(b * c, h, w)
    mh = blur_matrices(sig, h).to(images.dtype).repeat_interleave(c, dim=0)  # [BC, H, H]
    mw = mh if h == w else blur_matrices(sig, w).to(images.dtype).repeat_interleave(c, dim=0)
    blurred = torch.bmm(torch.bmm(mh, x), mw.transpose(1, 2))
    # ``out`` may be a strided view (a slice, channels-last): copy_ honours any layout, view() does not.
    return out.copy_(blurred.view(b, c, h, w))
