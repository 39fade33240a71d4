"""Save a grid of held-out world images and their reconstructions, upscaled 4x.

Each block of 8 images is a row of originals followed by one row of reconstructions per model (with one model:
originals on odd rows, reconstructions on even rows). Several models must share their world.

Usage: python analyses/world_tokenizer/grid.py --model world-32 --out runs/world_tokenizer/grid_world32.png
       python analyses/world_tokenizer/grid.py --model runs/old world-32 --out figures/compare.png
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.utils import save_image

from probe.data import world
from probe.measure.fidelity import psnr
from probe.measure.world import load_world_tokenizer
from probe.tokenizers.base import decode_batched, encode_batched


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, nargs="+", help="zoo names, training run folders or zoo-style .json files")
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=16, help="images (a multiple of 8)")
    ap.add_argument("--seed", type=int, default=2_000_003)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    loaded = [load_world_tokenizer(m) for m in args.model]
    overrides = loaded[0][1]
    for spec, (_, other) in zip(args.model, loaded):
        if other != overrides:
            raise ValueError(f"{spec}: its world {other} differs from {args.model[0]}'s {overrides}")
    x, _ = world.sample(args.n, seed=args.seed, resolution=loaded[0][0].image_size,
                        config=world.WorldConfig.from_dict(overrides))
    recons = []
    for spec, (model, _) in zip(args.model, loaded):
        recons.append(decode_batched(model, encode_batched(model, x).quantized))
        print(f"{spec}: PSNR on these {args.n}: {float(psnr(recons[-1], x).mean()):.2f} dB")
    rows = [t for i in range(0, args.n, 8) for t in (x[i : i + 8], *(y[i : i + 8] for y in recons))]
    grid = F.interpolate(torch.cat(rows), scale_factor=4, mode="nearest")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, args.out, nrow=8, padding=2, pad_value=1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
