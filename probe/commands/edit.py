"""``tokenprobe edit``: text-guided editing by test-time optimization of the tokens."""
from __future__ import annotations

import argparse

NAME = "edit"
HELP = "edit images towards a text prompt by optimizing their tokens (CLIP-guided)"
DESCRIPTION = (
    "Encode the images, then optimize their pre-quantization tokens (straight-through quantizer, "
    "unclamped decode, Adam) so that a CLIP finds the decoded image closer to the prompt. Writes "
    "images/, grid.png (input | milestones | result), trajectory.png, history.csv and config.json."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from probe.commands._optimize_args import add_loop_arguments, add_model_arguments

    parser.add_argument("images", nargs="+", help="image files, folders, or world:N (N world images)")
    from probe.commands._args import non_empty_text

    parser.add_argument("--prompt", action="append", required=True, type=non_empty_text,
                        help="the text; repeat once per image for one prompt per image")
    add_model_arguments(parser)
    add_loop_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from probe.commands._optimize_args import (
        config_from_args,
        settings_from_args,
        heldout_from_args,
        load_images,
        load_tok,
        prompts_arg,
    )
    from probe.tokenizers.base import module_device
    from probe.optimize.tasks import edit, write_run

    cfg = config_from_args(args)
    tok = load_tok(args)
    images = load_images(args.images, tok.image_size, seed=args.seed)
    prompts = prompts_arg(args.prompt, len(images))
    res = edit(tok, images, prompts, clip=args.clip, negative=args.negative, cfg=args.cfg, n_views=args.views,
               pad=args.pad, config=cfg, heldout=heldout_from_args(args, prompts, module_device(tok)))
    labels = [prompts] * len(images) if isinstance(prompts, str) else prompts
    out = write_run(args.out, res, inputs=images, labels=labels,
                    settings=settings_from_args(args))
    print(f"edited {len(images)} image(s) in {res.steps} steps -> {out}")
    return 0
