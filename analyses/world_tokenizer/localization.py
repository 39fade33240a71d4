"""Reconstruction quality and single-position swap localization of a world tokenizer (a table per factor).

Method, on a fresh held-out world set (default seed 2 000 003: never used for training):

1. Held-out PSNR of the reconstructions.
2. Per factor, eta-squared of every position's pre-quantization features between the factor's bins
   (multivariate: between-bin sum of squares over total, summed over the C feature dims;
   :func:`probe.probes.stats.group_permutation_stats`); the top position is the argmax, with the 95th percentile
   of the max over positions under 20 label permutations (``eta2_perm95``).
3. The swap engine's protocol (the one behind every swap number tokenprobe publishes): ``n_pairs`` (recipient,
   donor) pairs from opposite quartiles of the factor (:func:`probe.swap.sample_pairs`; hues: opposite sides of
   the circle), every single position pasted (:func:`probe.swap.sweep`, with the random-position control), the
   decoded images measured by the factor's default measurer (:func:`probe.measure.measurer_for`). ``transfer``
   = sum over pairs of the movement along each pair's recipient-to-donor gap / sum of the gaps, measured on
   reconstructions (:func:`probe.swap.movement`), with its bootstrap 95% interval.
4. ``gap_ratio``: the pairs' mean gap on the reconstructions over the same on the originals. Below
   :data:`MIN_GAP_RATIO` the decoder does not reproduce the factor at all and its transfers are NaN (a ratio
   of two numbers near zero).

The null factor (``null_factor``) is never rendered, so nothing measures it: it is reported by eta-squared only.

Usage:
    python analyses/world_tokenizer/localization.py --model world-32 --out runs/world-32/loc.csv
    python analyses/world_tokenizer/localization.py --model runs/world_tokenizer/main --out ...
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from probe import worlds
from probe.data.world import WorldConfig
from probe.measure import measurer_for
from probe.measure.world import load_world_tokenizer
from probe.swap import SwapConfig, SwapData, movement, sweep
from probe.tokenizers.base import Tokenizer, decode_batched, encode_batched

#: the factors with a pixel measurer (swapped and measured), then the never-rendered control (eta-squared only)
MEASURED = ("lighting", "bg_blur", "global_blur", "obj_hue")
FACTORS = (*MEASURED, "null_factor")
MIN_GAP_RATIO = 0.1
"""Below this decoded/original gap a factor counts as not reconstructed (transfers NaN)."""


def position_eta_squared(features: torch.Tensor, labelings: np.ndarray) -> np.ndarray:
    """Per-position multivariate eta-squared of ``features [M, N, C]`` for each labeling ``labelings [P, M]``
    (any values; groups = distinct values) -> ``[N, P]`` in [0, 1]."""
    from probe.probes.stats import GroupDesign, group_permutation_stats

    levels = np.unique(labelings[0])
    labp = np.searchsorted(levels, labelings)  # permutations hold the same values as labelings[0]
    design = GroupDesign.build({"features": features.detach().cpu().numpy()})
    return group_permutation_stats(design, labp.astype(np.int64), len(levels), blocks=("features",)).eta2["features"]


def _gap_ratio(meas, kind: str, recon: torch.Tensor, images: torch.Tensor, masks: torch.Tensor,
               pairs: pd.DataFrame) -> tuple[float, float]:
    """Mean recipient-to-donor gap of the pairs on the reconstructions and on the originals."""
    r, d = (torch.as_tensor(pairs[c].to_numpy().copy()) for c in ("recipient", "donor"))
    out = []
    for imgs in (recon, images):
        with torch.no_grad():
            mr, md = meas(imgs[r], masks=masks[r]), meas(imgs[d], masks=masks[d])
        out.append(float(movement(kind, mr, mr, toward=md)["gap"].mean()))
    return out[0], out[1]


@torch.no_grad()
def localization(model: Tokenizer, world_overrides: dict, *, n: int = 2000, seed: int = 2_000_003,
                 n_pairs: int = 200, rng_seed: int = 0, progress: bool = False) -> tuple[pd.DataFrame, dict]:
    """One row per factor (see the module docstring); extras: PSNR, the per-position eta-squared and transfer
    (``transfer_all``) of every factor."""
    from probe.tokenizers.world import psnr

    world = worlds.get("attribute")
    wcfg = WorldConfig.from_dict(world_overrides)
    images, df, masks = world.sample(n, seed=seed, resolution=model.image_size, config=wcfg, return_masks=True)
    enc = encode_batched(model, images)
    recon = decode_batched(model, enc.quantized)
    extras = {"psnr": float(psnr(recon, images).mean()), "n_images": n, "seed": seed, "n_pairs": n_pairs,
              "min_gap_ratio": MIN_GAP_RATIO, "protocol": "probe.swap.sweep (engine), controls none + random_position",
              "eta2": {}, "transfer_all": {}}
    kinds = {f: ("categorical" if k == "categorical" else "continuous") for f, k in world.factors.items()}
    data = SwapData(enc.quantized.float(), df, kinds, world.circular(), masks)
    measurers = {f: measurer_for(f, world=world) for f in MEASURED}
    cfg = SwapConfig(pairs=n_pairs, seed=rng_seed, controls=("none", "random_position"))
    res = sweep(model, data, measurers, attributes=list(MEASURED), config=cfg, progress=progress)
    gen = np.random.default_rng(rng_seed)
    rows = []
    for factor in FACTORS:
        labels = df[f"{factor}_bin"].to_numpy()
        perms = [gen.permutation(labels) for _ in range(20)]
        eta_all = position_eta_squared(enc.features, np.stack([labels, *perms]))  # [N, 21]
        eta = eta_all[:, 0]
        extras["eta2"][factor] = [round(float(v), 5) for v in eta]
        top = int(eta.argmax())
        row = {"factor": factor, "top_position": top, "top_eta2": float(eta[top]),
               "eta2_share": float(eta[top] / max(eta.sum(), 1e-12)),
               "eta2_perm95": float(np.quantile(eta_all[:, 1:].max(axis=0), 0.95))}
        if factor in measurers:
            s = res.summary[res.summary["attribute"] == factor].copy()
            s["position"] = s["positions"].astype(int)
            s = s.set_index("position").sort_index()
            transfer = s["transfer"].to_numpy()
            best = int(np.nanargmax(transfer))
            pairs = res.pairs[res.pairs["attribute"] == factor]
            gap_dec, gap_orig = _gap_ratio(measurers[factor], measurers[factor].kind, recon, images, masks, pairs)
            row.update(transfer_top=float(transfer[top]), best_position=best, best_transfer=float(transfer[best]),
                       best_ci_low=float(s.loc[best, "ci_low"]), best_ci_high=float(s.loc[best, "ci_high"]),
                       others_mean=float(np.delete(transfer, best).mean()), n_pairs=int(s["n_pairs"].iloc[0]),
                       gap_decoded=gap_dec, gap_original=gap_orig, gap_ratio=gap_dec / max(gap_orig, 1e-12))
            # a factor the decoder does not reproduce has no gap to move: its transfers are noise over ~0
            if row["gap_ratio"] < MIN_GAP_RATIO:
                transfer = np.full_like(transfer, np.nan)
                row.update(transfer_top=np.nan, best_transfer=np.nan, best_ci_low=np.nan, best_ci_high=np.nan,
                           others_mean=np.nan)
            extras["transfer_all"][factor] = [round(float(v), 4) for v in transfer]
        rows.append(row)
    return pd.DataFrame(rows), extras


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="zoo name, training run folder or zoo-style .json")
    ap.add_argument("--out", required=True, help="CSV of the per-factor table (a .json with extras goes next to it)")
    ap.add_argument("--n", type=int, default=2000, help="held-out images")
    ap.add_argument("--seed", type=int, default=2_000_003, help="world seed of the held-out set")
    ap.add_argument("--n-pairs", type=int, default=200, help="(recipient, donor) pairs per factor")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, world = load_world_tokenizer(args.model)
    table, extras = localization(model, world, n=args.n, seed=args.seed, n_pairs=args.n_pairs, progress=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    extras["model"] = args.model
    out.with_suffix(".json").write_text(json.dumps(extras, indent=1) + "\n")
    pd.set_option("display.width", 220)
    print(f"{args.model}: held-out PSNR {extras['psnr']:.2f} dB (n={args.n}, seed={args.seed})")
    print(table.round(4).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
