"""Shape fidelity of world tokenizers: does the object keep its outline through encode -> decode?

For each model (zoo name, training run folder or zoo-style .json), on a fresh held-out set of the model's
own world (``--seed``, default 31337, the world-oracle's held-out seed; never used for tokenizer training),
the columns of :func:`probe.measure.fidelity.shape_fidelity` (PSNR, object PSNR, the world-oracle's shape
accuracy on reconstructions and originals, nearest-shape accuracy by analysis by synthesis).

Writes a CSV (one row per model) and prints it as markdown.

Usage:
    python analyses/world_tokenizer/shape_fidelity.py --models world-32 world-32-continuous --out runs/world-32/shape.csv
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch

from probe import zoo
from probe.measure.fidelity import shape_fidelity
from probe.measure.world import load_world_tokenizer
from probe.report import markdown_table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", required=True, help="zoo names, run folders or zoo-style .json files")
    ap.add_argument("--out", required=True, help="CSV, one row per model")
    ap.add_argument("--n", type=int, default=2000, help="held-out images")
    ap.add_argument("--seed", type=int, default=31337, help="world seed of the held-out set")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    oracle = zoo.load("world-oracle", device="cpu").eval()
    rows = []
    for spec in args.models:
        model, world = load_world_tokenizer(spec)
        rows.append({"model": spec, **shape_fidelity(model, world, oracle, n=args.n, seed=args.seed)})
        print(f"{spec}: shape accuracy {rows[-1]['shape_acc_recon']:.3f}", file=sys.stderr)
    table = pd.DataFrame(rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    print(markdown_table(table.set_index("model")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
