"""Where in the image each token position of a world tokenizer acts (per-position contribution maps).

Method: :func:`probe.swap.spatial.spatial_maps` on ``--n`` held-out world images (world seed ``--seed``): each
position's token replaced by another image's (``donor``) or by a uniformly drawn code (``random``), decoded, and
compared with the image's own reconstruction; mean absolute pixel change and mean signed luminance change per
pixel, and the share of the change that falls on the object (its anti-aliased mask) against the object's share
of the image (``object_ratio`` > 1: the position acts on the object; < 1: on the background).

Writes ``<out>_<replace>.csv`` (one row per position) and the figures ``<out>_<replace>_abs`` /
``<out>_<replace>_luminance`` (PNG + SVG).

    python analyses/spatial_maps.py --model world-32 --n 256 --out figures/spatial_world32
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="world-32", help="a world tokenizer (zoo name, run folder, .json)")
    ap.add_argument("--n", type=int, default=256, help="held-out images")
    ap.add_argument("--seed", type=int, default=2_000_003, help="world seed of the held-out images")
    ap.add_argument("--replace", default="donor,random", help="comma-separated: donor, random")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="runs/spatial/spatial_world32", help="path stem of the outputs")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from probe.data.world import WorldConfig, sample
    from probe.measure.world import load_world_tokenizer
    from probe.swap.spatial import spatial_maps
    from probe.tokenizers.base import encode_batched
    from probe.viz.save import save_figure
    from probe.viz.spatial import spatial_maps_figure

    tok, world = load_world_tokenizer(args.model)
    images, _, masks = sample(args.n, seed=args.seed, resolution=int(tok.image_size),
                              config=WorldConfig.from_dict(world), return_masks=True)
    q = encode_batched(tok, images).quantized
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for replace in args.replace.split(","):
        maps = spatial_maps(tok, q, masks=masks, replace=replace, n=args.n)
        maps.table.to_csv(out.with_name(f"{out.name}_{replace}.csv"), index=False)
        what = f"{args.model}, {maps.n_images} held-out images, token replaced by {replace}"
        save_figure(spatial_maps_figure(maps.abs_change, table=maps.table, cols=11, title=f"mean |pixel change| ({what})",
                                        image=images[0]), out.with_name(f"{out.name}_{replace}_abs"))
        save_figure(spatial_maps_figure(maps.luminance, signed=True, cols=11, title=f"mean luminance change ({what})",
                                        image=images[0]), out.with_name(f"{out.name}_{replace}_luminance"))
        with pd.option_context("display.width", 200):
            print(f"== {replace}")
            print(maps.table.round(4).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
