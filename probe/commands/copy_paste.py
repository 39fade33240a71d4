"""``tokenprobe copy-paste``: copy token positions from source images into target images."""
from __future__ import annotations

import argparse

NAME = "copy-paste"
HELP = "copy the tokens at some positions from source images into target images and decode"
DESCRIPTION = (
    "Positions are given (--positions 3,17) or looked up by attribute in a semantic map JSON "
    "(--attribute lighting --map runs/x/semantic_map.json, the top --k positions). Writes images/ and "
    "grid.png (target | source | result)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from probe.commands._optimize_args import add_model_arguments

    parser.add_argument("--target", nargs="+", required=True, help="target images: files, folders or world:N")
    parser.add_argument("--source", nargs="+", required=True, help="source images (one, or one per target)")
    parser.add_argument("--positions", default=None, help="comma-separated 0-based token positions")
    parser.add_argument("--attribute", default=None, help="look positions up for this attribute in --map")
    parser.add_argument("--map", default=None, help="semantic map JSON (validated map or probe map)")
    from probe.commands._args import positive_int

    parser.add_argument("--k", type=positive_int, default=1, help="positions taken from the map (default: 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of world:N images")
    add_model_arguments(parser, clip=False)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from probe.commands._optimize_args import load_images, load_tok, settings_from_args
    from probe.optimize.tasks import load_position_map, save_images
    from probe.swap import copy_paste, top_positions
    from probe.viz.optimize import optimization_grid
    from probe.viz.save import save_figure

    from probe.errors import UsageError

    if args.positions:
        try:
            positions = [int(p) for p in args.positions.split(",")]
        except ValueError:
            raise UsageError(f"--positions {args.positions!r}: expected comma-separated integers") from None
    elif args.attribute and args.map:
        positions = top_positions(load_position_map(args.map), args.attribute, args.k)
    else:
        raise UsageError("copy-paste: give --positions, or --attribute with --map")
    tok = load_tok(args)
    outside = [p for p in positions if not 0 <= p < tok.num_tokens]
    if outside:
        raise UsageError(f"--positions: {outside} outside 0..{tok.num_tokens - 1} (this tokenizer has "
                         f"{tok.num_tokens} token positions, counted from 0)")
    target = load_images(args.target, tok.image_size, seed=args.seed)
    source = load_images(args.source, tok.image_size, seed=args.seed + 1)
    res = copy_paste(tok, target, source, positions)
    out = Path(args.out)
    save_images(res["images"], out / "images")
    src = res["source"].expand_as(res["target"])
    save_figure(optimization_grid([(0, src), (1, res["images"])], inputs=res["target"],
                                  titles=["target", "source", f"positions {positions}"]), out / "grid")
    with open(out / "config.json", "w") as fh:
        json.dump({**settings_from_args(args), "positions_used": positions}, fh, indent=2)
    print(f"pasted positions {positions} into {len(target)} image(s) -> {out}")
    return 0
