"""``tokenprobe generate``: text-to-image by test-time optimization of tokens from a seed image set."""
from __future__ import annotations

import argparse

NAME = "generate"
HELP = "generate images for text prompts by optimizing tokens from seed images or random tokens"
DESCRIPTION = (
    "For each prompt, start N samples from the CLIP top-1 image of a seed set (--init top1, the paper's "
    "protocol), from random images of the set (--init random) or from random tokens (--init tokens), "
    "and optimize the tokens towards the prompt. Writes images/, grid.png, trajectory.png, history.csv, config.json."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from probe.commands._optimize_args import add_loop_arguments, add_model_arguments
    from probe.optimize.tasks import GENERATE_DEFAULTS, GENERATE_VIEWS

    from probe.commands._args import non_empty_text, positive_int

    parser.add_argument("--prompt", action="append", required=True, type=non_empty_text,
                        help="a prompt (repeat for several)")
    parser.add_argument("-n", "--samples", type=positive_int, default=1, help="samples per prompt (default: 1)")
    parser.add_argument("--init", choices=("top1", "random", "tokens"), default="top1",
                        help="where samples start (default: top1)")
    parser.add_argument("--seed-images", nargs="+", default=["world:256"],
                        help="the seed image set: files, folders or world:N (default: world:256)")
    add_model_arguments(parser, views=GENERATE_VIEWS["n_views"], pad=GENERATE_VIEWS["pad"])
    add_loop_arguments(parser, GENERATE_DEFAULTS)


def run(args: argparse.Namespace) -> int:
    from probe.commands._optimize_args import (
        config_from_args,
        heldout_from_args,
        load_images,
        load_tok,
        settings_from_args,
    )
    from probe.optimize.objectives import load_clip
    from probe.optimize.tasks import generate, write_run
    from probe.tokenizers.base import module_device

    cfg = config_from_args(args)
    tok = load_tok(args)
    seeds = None if args.init == "tokens" else load_images(args.seed_images, tok.image_size, seed=args.seed)
    rows = [p for p in args.prompt for _ in range(args.samples)]
    clip = load_clip(args.clip, device=module_device(tok), antialias=args.antialias)
    res = generate(tok, args.prompt, args.samples, clip=clip, seed_images=seeds, init=args.init,
                   negative=args.negative, cfg=args.cfg, n_views=args.views, pad=args.pad, config=cfg,
                   heldout=heldout_from_args(args, rows, module_device(tok)))
    out = write_run(args.out, res, inputs=res.seed_images, labels=rows,
                    settings=settings_from_args(args))
    print(f"generated {len(rows)} image(s) in {res.steps} steps -> {out}")
    return 0
