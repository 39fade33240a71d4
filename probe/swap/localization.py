"""Reconstruction quality and single-position swap localization of a world tokenizer.

1. Encode a fresh held-out world set (default seed 2_000_003: never used for training).
2. Per factor, eta-squared of every position's pre-quantization features between the factor's bins
   (multivariate: between-bin sum of squares over total, summed over the C feature dims;
   :func:`probe.probes.stats.group_permutation_stats`); the top position is the argmax.
3. Take images at one end of the factor (lowest bin) and at the other (highest bin; for the circular hue: the
   opposite quarter of the hue circle), pair them, copy the token at the top position from the high-end image
   into the low-end image, decode, and measure the attribute on pixels (:func:`probe.measure.world_measurers`).
   moved = (mean measured after swap - mean low decoded) / (mean high decoded - mean low decoded). The same for
   random other positions (mean over ``n_random``). When the decoded images keep less than
   :data:`MIN_GAP_RATIO` of the factor's end-to-end gap measured on the originals, the factor is not
   reconstructed at all and the fractions are reported as NaN (a ratio of two numbers near zero).

The null factor (``null_factor``) is never rendered, so there is nothing to measure: it is reported by
eta-squared only, against a permutation threshold (95th percentile of the max over positions with shuffled labels).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from probe.measure import world_measurers
from probe.tokenizers.base import decode_batched, encode_batched
from probe.swap.paste import end_groups, moved_by_paste

FACTORS = ("lighting", "bg_blur", "global_blur", "obj_hue", "null_factor")
MIN_GAP_RATIO = 0.1
"""Below this decoded/original end-to-end gap a factor counts as not reconstructed (moved fractions NaN)."""


def position_eta_squared(features: torch.Tensor, labelings: np.ndarray) -> np.ndarray:
    """Per-position multivariate eta-squared of ``features [M, N, C]`` for each labeling ``labelings [P, M]``
    (any values; groups = distinct values) -> ``[N, P]`` in [0, 1]."""
    from probe.probes.stats import GroupDesign, group_permutation_stats

    levels = np.unique(labelings[0])
    labp = np.searchsorted(levels, labelings)  # permutations hold the same values as labelings[0]
    design = GroupDesign.build({"features": features.detach().cpu().numpy()})
    return group_permutation_stats(design, labp.astype(np.int64), len(levels), blocks=("features",)).eta2["features"]


@torch.no_grad()
def localization(model: torch.nn.Module, world: dict, *, n: int = 2000, seed: int = 2_000_003,
                 n_pairs: int = 200, n_random: int = 8, rng_seed: int = 0,
                 all_positions: bool = False) -> tuple[pd.DataFrame, dict]:
    """One row per factor: top position, eta-squared, its share, moved fractions (top, random others).

    Returns (table, extras) where extras holds PSNR and the per-position eta-squared of every factor (and with
    ``all_positions`` the moved fraction of every position, ``moved_all``).
    """
    from probe.data import world as world_mod
    from probe.data.world import WorldConfig
    from probe.tokenizers.world import psnr

    wcfg = WorldConfig.from_dict(world)
    images, df, masks = world_mod.sample(n, seed=seed, resolution=model.image_size, config=wcfg, return_masks=True)
    enc = encode_batched(model, images)
    feats, quant = enc.features, enc.quantized
    recon = decode_batched(model, quant)
    extras = {"psnr": float(psnr(recon, images).mean()), "n_images": n, "seed": seed, "eta2": {}}
    gen = np.random.default_rng(rng_seed)
    measurers = world_measurers()
    rows = []
    n_tok = quant.shape[1]
    for factor in FACTORS:
        labels = df[f"{factor}_bin"].to_numpy()
        perms = [gen.permutation(labels) for _ in range(20)]
        eta_all = position_eta_squared(feats, np.stack([labels, *perms]))  # [N, 21]
        eta = torch.from_numpy(eta_all[:, 0])
        extras["eta2"][factor] = [round(float(v), 5) for v in eta]
        top = int(eta.argmax())
        perm_max = eta_all[:, 1:].max(axis=0)
        row = {"factor": factor, "top_position": top, "top_eta2": float(eta[top]),
               "eta2_share": float(eta[top] / eta.sum().clamp_min(1e-12)),
               "eta2_perm95": float(np.quantile(perm_max, 0.95))}
        if factor in measurers:
            lo_idx, hi_idx = end_groups(factor, df, wcfg.n_bins)
            k = min(n_pairs, len(lo_idx), len(hi_idx))
            lo_idx = gen.choice(lo_idx, k, replace=False)
            hi_idx = gen.choice(hi_idx, k, replace=False)
            meas = measurers[factor]
            m_lo = meas(recon[lo_idx], masks=masks[lo_idx])
            m_hi = meas(recon[hi_idx], masks=masks[hi_idx])

            def moved_at(pos: int) -> float:
                return moved_by_paste(model, quant[lo_idx], quant[hi_idx], pos, meas, masks[lo_idx], m_lo, m_hi)

            others = [p for p in range(n_tok) if p != top]
            rand = gen.choice(others, min(n_random, len(others)), replace=False)
            row.update(moved_top=moved_at(top), moved_random_mean=float(np.mean([moved_at(int(p)) for p in rand])),
                       n_pairs=k)
            # ground truth on the originals, so the measurer's own gap is visible
            row["gap_decoded"] = float((m_hi.double().mean(0) - m_lo.double().mean(0)).norm())
            row["gap_original"] = float((meas(images[hi_idx], masks=masks[hi_idx]).double().mean(0)
                                         - meas(images[lo_idx], masks=masks[lo_idx]).double().mean(0)).norm())
            # a factor the decoder does not reproduce has no gap to move: its fractions are noise over ~0
            row["gap_ratio"] = row["gap_decoded"] / max(row["gap_original"], 1e-12)
            if row["gap_ratio"] < MIN_GAP_RATIO:
                row.update(moved_top=float("nan"), moved_random_mean=float("nan"))
            if all_positions:
                extras.setdefault("moved_all", {})[factor] = [round(moved_at(p), 4) for p in range(n_tok)]
        rows.append(row)
    return pd.DataFrame(rows), extras
