"""Reconstruction quality and single-position swap localization of a world tokenizer.

A compact stand-in for the future swap engine (probe/swap), written for issue 4:

1. Encode a fresh held-out world set (``--seed``, default 2_000_003: never used for training).
2. Per factor, eta-squared of every position's pre-quantization features between the factor's bins
   (multivariate: between-bin sum of squares over total, summed over the C feature dims); the top
   position is the argmax.
3. Take images at one end of the factor (lowest bin) and at the other (highest bin; for the circular
   hue: the opposite quarter of the hue circle), pair them, copy the token at the top position from the
   high-end image into the low-end image, decode, and measure the attribute on pixels.
   moved = (mean measured after swap - mean low decoded) / (mean high decoded - mean low decoded).
   The same for random other positions (mean over ``--n-random``). When the decoded images keep less than
   10% of the factor's end-to-end gap measured on the originals, the factor is not reconstructed at all and
   the fractions are reported as NaN (a ratio of two numbers near zero).

Measurers: pixels only, from :mod:`probe.swap.measurers` (lighting: mean luminance; the blurs: Laplacian /
gradient energy over variance; obj_hue: mean object hue as a unit vector, where "moved" is the projection of
(swap - low) on (high - low)). The null factor is never rendered, so there is nothing to measure: it is
reported by eta-squared only, against a permutation threshold (95th percentile of the max over positions
with shuffled labels).

Usage:
    python analyses/world_tokenizer/localization.py --model world-32 --out runs/wt/loc_world32.csv
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

from probe.swap.measurers import MEASURERS
from probe.swap.paste import decode, end_groups, moved_by_paste

FACTORS = ("lighting", "bg_blur", "global_blur", "obj_hue", "null_factor")
# below this decoded/original end-to-end gap the factor counts as not reconstructed (moved fractions NaN)
MIN_GAP_RATIO = 0.1


def load_model(spec: str) -> tuple[torch.nn.Module, dict]:
    """A zoo name (``world-32``), a training run folder, or a zoo-style ``.json`` -> (model, world overrides)."""
    from safetensors.torch import load_file

    from probe.tokenizers.world import WorldTokenizer

    p = Path(spec)
    if p.is_dir():
        rec = json.loads((p / "model.json").read_text())
        weights = p / "model.safetensors"
    elif p.suffix == ".json":
        rec, weights = json.loads(p.read_text()), p.with_suffix(".safetensors")
    else:
        from probe import zoo

        rec, weights = zoo.config(spec), zoo.weights_path(spec)
    model = WorldTokenizer.from_config(rec["config"])
    model.load_state_dict(load_file(str(weights)))
    return model.eval(), rec.get("world_overrides", {})


# ------------------------------------------------------------------------------------------ statistics
def eta_squared(features: torch.Tensor, labels: np.ndarray) -> torch.Tensor:
    """Per-position eta-squared. ``features [M,N,C]``, ``labels [M]`` (ints) -> ``[N]`` in [0, 1].

    Between-group over total sum of squares, summed over the C dims (a closed form; no probe needed).
    """
    x = features.double()
    mu = x.mean(0, keepdim=True)
    total = ((x - mu) ** 2).sum(dim=(0, 2))
    between = torch.zeros_like(total)
    for g in np.unique(labels):
        sel = torch.as_tensor(labels == g)
        between += sel.sum() * ((x[sel].mean(0) - mu[0]) ** 2).sum(-1)
    return (between / total.clamp_min(1e-12)).float()


# ------------------------------------------------------------------------------------------ the measurement
@torch.no_grad()
def localization(model: torch.nn.Module, world: dict, *, n: int = 2000, seed: int = 2_000_003,
                 n_pairs: int = 200, n_random: int = 8, rng_seed: int = 0,
                 all_positions: bool = False) -> tuple[pd.DataFrame, dict]:
    """One row per factor: top position, eta-squared, its share, moved fractions (top, random others).

    Returns (table, extras) where extras holds PSNR and the per-position eta-squared of every factor.
    """
    from probe.data import world as world_mod
    from probe.tokenizers.train import world_config
    from probe.tokenizers.world import psnr

    wcfg = world_config(world)
    res = model.config.image_size
    images, df, masks = world_mod.sample(n, seed=seed, resolution=res, config=wcfg, return_masks=True)
    feats, quant = [], []
    for s in range(0, n, 256):
        enc = model.encode(images[s : s + 256])
        feats.append(enc.features)
        quant.append(enc.quantized)
    feats, quant = torch.cat(feats), torch.cat(quant)
    recon = decode(model, quant)
    extras = {"psnr": float(psnr(recon, images).mean()), "n_images": n, "seed": seed, "eta2": {}}
    gen = np.random.default_rng(rng_seed)
    rows = []
    n_tok = quant.shape[1]
    for factor in FACTORS:
        labels = df[f"{factor}_bin"].to_numpy()
        eta = eta_squared(feats, labels)
        extras["eta2"][factor] = [round(float(v), 5) for v in eta]
        top = int(eta.argmax())
        perm_max = [float(eta_squared(feats, gen.permutation(labels)).max()) for _ in range(20)]
        row = {"factor": factor, "top_position": top, "top_eta2": float(eta[top]),
               "eta2_share": float(eta[top] / eta.sum().clamp_min(1e-12)),
               "eta2_perm95": float(np.quantile(perm_max, 0.95))}
        if factor in MEASURERS:
            lo_idx, hi_idx = end_groups(factor, df, wcfg.n_bins)
            k = min(n_pairs, len(lo_idx), len(hi_idx))
            lo_idx = gen.choice(lo_idx, k, replace=False)
            hi_idx = gen.choice(hi_idx, k, replace=False)
            meas = MEASURERS[factor]
            m_lo = meas(recon[lo_idx], masks[lo_idx])
            m_hi = meas(recon[hi_idx], masks[hi_idx])

            def moved_at(pos: int) -> float:
                return moved_by_paste(model, quant[lo_idx], quant[hi_idx], pos, meas, masks[lo_idx], m_lo, m_hi)

            others = [p for p in range(n_tok) if p != top]
            rand = gen.choice(others, min(n_random, len(others)), replace=False)
            row.update(moved_top=moved_at(top), moved_random_mean=float(np.mean([moved_at(int(p)) for p in rand])),
                       n_pairs=k)
            # ground truth on the originals, so the measurer's own gap is visible
            row["gap_decoded"] = float((m_hi.double().mean(0) - m_lo.double().mean(0)).norm())
            row["gap_original"] = float((meas(images[hi_idx], masks[hi_idx]).double().mean(0)
                                         - meas(images[lo_idx], masks[lo_idx]).double().mean(0)).norm())
            # a factor the decoder does not reproduce has no gap to move: its fractions are noise over ~0
            row["gap_ratio"] = row["gap_decoded"] / max(row["gap_original"], 1e-12)
            if row["gap_ratio"] < MIN_GAP_RATIO:
                row.update(moved_top=float("nan"), moved_random_mean=float("nan"))
            if all_positions:
                extras.setdefault("moved_all", {})[factor] = [round(moved_at(p), 4) for p in range(n_tok)]
        rows.append(row)
    return pd.DataFrame(rows), extras


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="zoo name, training run folder or zoo-style .json")
    ap.add_argument("--out", required=True, help="CSV of the per-factor table (a .json with extras goes next to it)")
    ap.add_argument("--n", type=int, default=2000, help="held-out images")
    ap.add_argument("--seed", type=int, default=2_000_003, help="world seed of the held-out set")
    ap.add_argument("--n-pairs", type=int, default=200)
    ap.add_argument("--n-random", type=int, default=8)
    ap.add_argument("--all-positions", action="store_true", help="also swap at every position (slow)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, world = load_model(args.model)
    table, extras = localization(model, world, n=args.n, seed=args.seed, n_pairs=args.n_pairs,
                                 n_random=args.n_random, all_positions=args.all_positions)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    extras["model"] = args.model
    out.with_suffix(".json").write_text(json.dumps(extras, indent=1) + "\n")
    pd.set_option("display.width", 200)
    print(f"{args.model}: held-out PSNR {extras['psnr']:.2f} dB (n={args.n}, seed={args.seed})")
    print(table.round(4).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
