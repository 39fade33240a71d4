"""Reconstruction quality and single-position swap localization of a world tokenizer (a table per factor).

Runs :func:`probe.swap.localization.localization` (see its docstring for the method): held-out PSNR, per factor
the position whose features differ most between the factor's bins (eta-squared) and the fraction of the factor's
low-to-high gap that copying that token (and random others) moves, measured on pixels by
:func:`probe.measure.world_measurers`.

Usage:
    python analyses/world_tokenizer/localization.py --model world-32 --out runs/wt/loc_world32.csv
    python analyses/world_tokenizer/localization.py --model runs/world_tokenizer/main --out ...
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import torch

from probe.measure.world import load_world_tokenizer
from probe.swap.localization import localization


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
    model, world = load_world_tokenizer(args.model)
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
