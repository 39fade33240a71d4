"""Save a grid of held-out world images (odd rows) and their reconstructions (even rows), upscaled 4x.

Usage: python analyses/world_tokenizer/grid.py --model world-32 --out runs/world_tokenizer/grid_world32.png
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str] | None = None) -> int:
    from torchvision.utils import save_image

    from localization import load_model
    from probe.data import world
    from probe.tokenizers.train import world_config
    from probe.tokenizers.world import psnr

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="zoo name, training run folder or zoo-style .json")
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=16, help="images (a multiple of 8)")
    ap.add_argument("--seed", type=int, default=2_000_003)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    model, overrides = load_model(args.model)
    x, _ = world.sample(args.n, seed=args.seed, resolution=model.image_size, config=world_config(overrides))
    with torch.no_grad():
        y = model.decode(model.encode(x))
    print(f"PSNR on these {args.n}: {float(psnr(y, x).mean()):.2f} dB")
    rows = [t for i in range(0, args.n, 8) for t in (x[i : i + 8], y[i : i + 8])]
    grid = F.interpolate(torch.cat(rows), scale_factor=4, mode="nearest")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, args.out, nrow=8, padding=2, pad_value=1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
