"""``tokenprobe edit``: text-guided editing, or an attribute edit at the positions tied to it, by test-time
optimization of the tokens."""
from __future__ import annotations

import argparse

NAME = "edit"
HELP = "edit images towards a text prompt (CLIP-guided) or an attribute towards a value at its positions"
DESCRIPTION = (
    "With --prompt: encode the images, then optimize their pre-quantization tokens (straight-through "
    "quantizer, unclamped decode, Adam) so that a CLIP finds the decoded image closer to the prompt. "
    "With --attribute and --target: move a measured attribute to the target by changing only the positions "
    "tied to it (--positions validated reads the confirmed positions of a run's swap validation, --map), by "
    "exhaustive search over the codes there (discrete tokenizers) or by the gradient loop; every other "
    "position keeps its token. Writes images/, grid.png (input | milestones | result), trajectory.png, "
    "history.csv and config.json (and drift.csv for attribute edits)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from probe.commands._optimize_args import add_loop_arguments, add_model_arguments
    from probe.optimize.tasks import GENERATE_DEFAULTS, GENERATE_VIEWS, POSITION_EDIT_METHODS

    parser.add_argument("images", nargs="+", help="image files, folders, or world:N (N world images)")
    from probe.commands._args import non_empty_text

    parser.add_argument("--prompt", action="append", default=None, type=non_empty_text,
                        help="the text; repeat once per image for one prompt per image")
    attr = parser.add_argument_group("attribute edits (instead of --prompt)")
    attr.add_argument("--attribute", default=None, help="the attribute to move, e.g. lighting")
    attr.add_argument("--target", type=float, default=None,
                      help="its target value, in the measurer's units (a hue in [0, 1) for circular attributes)")
    attr.add_argument("--measurer", default=None,
                      help="measurer spec reading the attribute (default: oracle:ATTRIBUTE, the world-oracle)")
    attr.add_argument("--positions", default="validated",
                      help="'validated' (the confirmed positions of --map), 'all' (no restriction), or a "
                           "comma-separated list such as 26 or 4,7 (default: validated)")
    attr.add_argument("--map", default=None,
                      help="where the validated positions are: a run folder (its swap/validated_map.csv), a swap "
                           "output folder, or a validated_map.csv / .json file")
    attr.add_argument("--method", choices=POSITION_EDIT_METHODS, default="auto",
                      help="search (every code at the positions), gradient, search+gradient, or auto: search "
                           "for a restricted edit of a discrete tokenizer, else gradient (default: auto)")
    add_model_arguments(parser, views=GENERATE_VIEWS["n_views"], pad=GENERATE_VIEWS["pad"])
    add_loop_arguments(parser, GENERATE_DEFAULTS)


def _attribute_edit(args: argparse.Namespace, tok, images, cfg) -> int:
    from probe.commands._optimize_args import settings_from_args
    from probe.errors import UsageError
    from probe.measure import get_measurer
    from probe.optimize.tasks import position_edit, validated_positions, write_run

    if args.target is None:
        raise UsageError("edit --attribute needs --target VALUE (in the measurer's units)")
    spec = args.positions.strip().lower()
    if spec == "all":
        positions = None
    elif spec == "validated":
        if not args.map:
            raise UsageError("edit --positions validated needs --map RUN_FOLDER (or a validated_map.csv); "
                             "or give positions, e.g. --positions 26")
        positions = validated_positions(args.map, args.attribute)
    else:
        try:
            positions = [int(p) for p in spec.split(",") if p]
        except ValueError:
            raise UsageError(f"--positions {args.positions!r}: expected 'validated', 'all' or positions such as "
                             "26 or 4,7") from None
    measurer = get_measurer(args.measurer or f"oracle:{args.attribute}")
    res, drift = position_edit(tok, images, args.attribute, args.target, measurer=measurer, positions=positions,
                               config=cfg, method=args.method)
    out = write_run(args.out, res, inputs=images, labels=[f"{args.attribute} -> {args.target:g}"] * len(images),
                    settings={**settings_from_args(args), "positions_used": positions})
    drift.to_csv(out / "drift.csv", index=False)
    mine = drift[drift.attribute == args.attribute]
    where = "all positions" if positions is None else f"positions {positions}"
    print(f"edited {args.attribute} of {len(images)} image(s) at {where}: {mine.before.mean():.3f} -> "
          f"{mine.after.mean():.3f} (target {args.target:g}) -> {out}")
    return 0


def run(args: argparse.Namespace) -> int:
    from probe.commands._optimize_args import (
        config_from_args,
        heldout_from_args,
        load_images,
        load_tok,
        prompts_arg,
        settings_from_args,
    )
    from probe.errors import UsageError
    from probe.optimize.objectives import load_clip
    from probe.optimize.tasks import edit, write_run
    from probe.tokenizers.base import module_device

    if (args.prompt is None) == (args.attribute is None):
        raise UsageError("edit: give --prompt TEXT (text-guided) or --attribute NAME --target VALUE (one of the two)")
    cfg = config_from_args(args)
    tok = load_tok(args)
    images = load_images(args.images, tok.image_size, seed=args.seed)
    if args.attribute is not None:
        return _attribute_edit(args, tok, images, cfg)
    prompts = prompts_arg(args.prompt, len(images))
    clip = load_clip(args.clip, device=module_device(tok), antialias=args.antialias)
    res = edit(tok, images, prompts, clip=clip, negative=args.negative, cfg=args.cfg, n_views=args.views,
               pad=args.pad, config=cfg, heldout=heldout_from_args(args, prompts, module_device(tok)))
    labels = [prompts] * len(images) if isinstance(prompts, str) else prompts
    out = write_run(args.out, res, inputs=images, labels=labels,
                    settings=settings_from_args(args))
    print(f"edited {len(images)} image(s) in {res.steps} steps -> {out}")
    return 0
