"""``tokenprobe inpaint``: fill a hole by optimizing the tokens to fit the known pixels."""
from __future__ import annotations

import argparse

NAME = "inpaint"
HELP = "fill a hole in images by optimizing their tokens on the known pixels (with token reset)"
DESCRIPTION = (
    "Seed with the masked image (hole painted grey), minimize the L2 (or L1) error on the known pixels, "
    "and every --reset-every steps paste the known pixels back and re-encode the composite. The hole is "
    "--box x0,y0,x1,y1 (fractions of the side) or a mask image (white = hole). Writes images/, grid.png, "
    "trajectory.png, history.csv, config.json."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from probe.commands._optimize_args import add_loop_arguments, add_model_arguments

    parser.add_argument("images", nargs="+", help="image files, folders, or world:N")
    hole = parser.add_mutually_exclusive_group()
    hole.add_argument("--box", default="0.25,0.25,0.75,0.75", help="the hole as x0,y0,x1,y1 fractions (default: centre)")
    hole.add_argument("--mask", default=None, help="a mask image, white = hole (one for all images)")
    parser.add_argument("--loss", choices=("l1", "l2"), default="l2", help="error on the known pixels (default: l2)")
    from probe.commands._args import non_negative_int

    parser.add_argument("--reset-every", type=non_negative_int, default=50, help="token reset period in steps (0: off; default: 50)")
    add_model_arguments(parser, clip=False)
    add_loop_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from probe.commands._optimize_args import box_mask, config_from_args, load_images, load_tok, settings_from_args
    from probe.optimize.tasks import inpaint, masked_images, write_run

    cfg = config_from_args(args)
    tok = load_tok(args)
    images = load_images(args.images, tok.image_size, seed=args.seed)
    if args.mask:
        from probe.data.transforms import load_as_tensor

        known = (load_as_tensor(args.mask, tok.image_size).mean(0, keepdim=True) < 0.5).float()
        known = known[None].expand(len(images), -1, -1, -1)
    else:
        known = box_mask(len(images), tok.image_size, args.box)
    res = inpaint(tok, images, known, p=1 if args.loss == "l1" else 2, reset_every=args.reset_every, config=cfg)
    out = write_run(args.out, res, inputs=masked_images(images, known),
                    settings=settings_from_args(args))
    print(f"inpainted {len(images)} image(s) in {res.steps} steps -> {out}")
    return 0
