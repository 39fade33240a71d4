"""Where in the image each token position acts: per-position contribution maps.

After One-D-Piece's per-position contribution maps (replace one token, look at which pixels change), for any
tokenizer: for each position ``p`` and each of ``n`` images, the token at ``p`` is replaced by another image's
token at ``p`` (``replace="donor"``: a derangement of the images, so every image gets a real token from another
image) or by a code drawn uniformly from the codebook (``replace="random"``, discrete tokenizers only); the
image is decoded and compared with its own reconstruction. Averaged over the images:

- ``abs_change [N, H, W]``: mean absolute pixel change (mean over the RGB channels), in pixel units [0, 1];
- ``luminance [N, H, W]``: mean signed change of the Rec. 601 luma (positive: brighter);
- with object masks ``[M, 1, H, W]``, the table's ``object_share``: the fraction of a position's absolute change
  that falls on object pixels, beside ``object_area`` (the objects' mean share of the image), so
  ``object_share / object_area`` above 1 means the position acts on the object and below 1 on the background.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from probe.measure.analytic import luminance
from probe.swap.engine import as_quantized

REPLACEMENTS = ("donor", "random")


@dataclass
class SpatialMaps:
    """Per-position contribution maps (see the module docstring).

    Attributes:
        abs_change: ``[N, H, W]`` mean absolute pixel change when the position is replaced.
        luminance: ``[N, H, W]`` mean signed luma change.
        table: one row per position: ``position, mean_abs, max_abs, object_share, object_area, object_ratio``
            (the last three NaN without masks).
        replace: ``"donor"`` or ``"random"``; ``n_images``: images averaged over.
    """

    abs_change: torch.Tensor
    luminance: torch.Tensor
    table: pd.DataFrame
    replace: str
    n_images: int

    def save(self, folder: str | Path, *, figures: bool = True, stem: str = "spatial") -> dict[str, Path]:
        """Write ``<stem>_maps.csv`` (the table), ``<stem>_maps.npz`` (``abs_change``, ``luminance``) and the
        figures ``<stem>_abs`` / ``<stem>_luminance`` (PNG + SVG) under ``folder``."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"spatial_table": out / f"{stem}_maps.csv", "spatial_arrays": out / f"{stem}_maps.npz"}
        self.table.to_csv(paths["spatial_table"], index=False)
        np.savez_compressed(paths["spatial_arrays"], abs_change=self.abs_change.numpy(),
                            luminance=self.luminance.numpy())
        if figures:
            from probe.viz.save import save_figure
            from probe.viz.spatial import spatial_maps_figure

            what = f"{self.n_images} images, token replaced by {self.replace}"
            cols = 11 if len(self.abs_change) > 24 else 8
            paths["spatial_abs_figure"] = save_figure(spatial_maps_figure(
                self.abs_change, table=self.table, cols=cols, title=f"mean |pixel change| ({what})"),
                out / f"{stem}_abs")[0]
            paths["spatial_luminance_figure"] = save_figure(spatial_maps_figure(
                self.luminance, signed=True, cols=cols, title=f"mean luminance change ({what})"),
                out / f"{stem}_luminance")[0]
        return paths


def spatial_maps(tokenizer: object, tokens: torch.Tensor | np.ndarray, *, masks: torch.Tensor | None = None,
                 replace: str = "donor", n: int = 64, seed: int = 0, batch: int = 256) -> SpatialMaps:
    """Per-position contribution maps over ``n`` images of ``tokens``.

    Args:
        tokenizer: a :class:`probe.tokenizers.base.Tokenizer`.
        tokens: ``[M, N]`` ids or ``[M, N, C]`` code vectors (e.g. a store's tokens).
        masks: optional object masks ``[M, 1, H, W]`` (the table's object / background split).
        replace: ``"donor"`` (another image's token) or ``"random"`` (a uniformly drawn code).
        n: images (the first ``n`` of a seeded shuffle of the ``M``).
        seed: seed of the image choice, the donors and the random codes.
        batch: images per decode.

    Examples:
        >>> maps = spatial_maps(tok, store.tokens, masks=world_masks(store), n=64)   # doctest: +SKIP
        >>> maps.table.sort_values("mean_abs", ascending=False).head()              # doctest: +SKIP
    """
    if replace not in REPLACEMENTS:
        raise ValueError(f"spatial_maps: replace must be one of {REPLACEMENTS}, got {replace!r}")
    q_all = as_quantized(tokenizer, tokens)
    m_all, n_tok = int(q_all.shape[0]), int(q_all.shape[1])
    if m_all < 2:
        raise ValueError(f"spatial_maps: need at least 2 images, got {m_all}")
    rng = np.random.default_rng(seed)
    rows = rng.permutation(m_all)[: min(n, m_all)]
    q = q_all[torch.as_tensor(rows)]
    k = len(rows)
    mk = None if masks is None else masks[torch.as_tensor(rows)].float()
    if replace == "random":
        book = tokenizer.codebook.detach().to(q.device).float()
        if len(book) == 0:
            raise ValueError("spatial_maps: replace='random' needs a codebook; this tokenizer is continuous: "
                             "use replace='donor'")
        subst = book[torch.as_tensor(rng.integers(0, len(book), size=(k, n_tok)), device=q.device)]
    else:  # a derangement: image perm[i] receives the tokens of image perm[i - 1], never its own
        perm = rng.permutation(k)
        donor = np.empty(k, dtype=np.int64)
        donor[perm] = np.roll(perm, 1)
        subst = q[torch.as_tensor(donor)]

    with torch.no_grad():
        base = torch.cat([tokenizer.decode(q[s : s + batch]) for s in range(0, k, batch)]).float()
        h, w = base.shape[-2:]
        abs_maps = torch.zeros(n_tok, h, w)
        lum_maps = torch.zeros(n_tok, h, w)
        stats = []
        per = max(1, batch // k) if k <= batch else 1
        for p0 in range(0, n_tok, per):
            ps = list(range(p0, min(n_tok, p0 + per)))
            qq = q.repeat(len(ps), 1, 1)
            for j, p in enumerate(ps):
                qq[j * k : (j + 1) * k, p] = subst[:, p]
            out = torch.cat([tokenizer.decode(qq[s : s + batch]) for s in range(0, len(qq), batch)]).float()
            for j, p in enumerate(ps):
                diff = (out[j * k : (j + 1) * k] - base).cpu()
                a = diff.abs().mean(1)  # [k, H, W]
                abs_maps[p] = a.mean(0)
                lum_maps[p] = luminance(diff).mean(0)
                row = {"position": p, "mean_abs": float(a.mean()), "max_abs": float(abs_maps[p].max())}
                if mk is not None:
                    obj = mk[:, 0].cpu()
                    total = float(a.sum())
                    row["object_share"] = float((a * obj).sum()) / total if total > 0 else np.nan
                    row["object_area"] = float(obj.mean())
                    row["object_ratio"] = row["object_share"] / row["object_area"] if row["object_area"] > 0 else np.nan
                stats.append(row)
    table = pd.DataFrame(stats).reindex(columns=["position", "mean_abs", "max_abs", "object_share", "object_area",
                                                 "object_ratio"])
    return SpatialMaps(abs_maps, lum_maps, table, replace, k)
