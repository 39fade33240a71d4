"""``tokenprobe demo``: the whole pipeline on the embedded default (``tokenprobe run`` of the shipped demo config)."""
from __future__ import annotations

import argparse
from pathlib import Path

#: Printed with the demo's table: what the shipped world-32 was trained to do, and so how to read it
#: (analyses/world_tokenizer/README.md; figures/compression_sweep.csv).
READING_NOTE = (
    "Note: world-32's single-position semantics were encouraged in training by one-factor image pairs (weak\n"
    "supervision after Locatello et al. 2020); in the compression sweep, compression alone did not localize\n"
    "lighting within its budget (~4,000 steps per model; analyses/world_tokenizer/README.md). Read this map as\n"
    "the probes finding what that training put there, not as 1D tokens localizing attributes on their own."
)

NAME = "demo"
HELP = ("the whole pipeline on the embedded default (world images -> world-32 tokens -> probes -> swap validation "
        "-> edits -> report.html), offline")
DESCRIPTION = (
    "Run `tokenprobe run` on the embedded default (probe/configs/demo.yaml, the same as analyses/demo.yaml): "
    "render labelled images of the synthetic attribute world, tokenize them with the shipped world-32, probe "
    "every token position x attribute, validate the probes' map by copy-paste token swaps, make a copy-paste edit "
    "per confirmed mapping, a text-guided generation and an inpainting, and write a self-contained report.html. "
    "Prints the semantic map and where the report is. A second run reuses every finished stage. The flags below "
    "replace the config's values; --set KEY=VALUE replaces any other."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from probe.commands._args import positive_int
    from probe.commands.run import add_common_arguments

    add_common_arguments(parser)
    parser.set_defaults(out=Path("runs/demo"))
    parser.add_argument("--tokenizer", default=None, help="tokenizer spec (default: the config's, world-32)")
    parser.add_argument("--images", type=positive_int, default=None, help="world images (default: the config's, 4000)")
    parser.add_argument("--permutations", type=positive_int, default=None,
                        help="permutations per test (default: the config's, 200)")
    parser.add_argument("--seed", type=int, default=None, help="seed (default: the config's, 0)")
    parser.add_argument("--batch-size", type=positive_int, default=None, help="batch size (default: the config's)")
    parser.add_argument("--no-figures", action="store_true", help="skip the probe figures")
    parser.add_argument("--no-swap", action="store_true", help="skip the swap validation (the map stays unvalidated)")
    parser.add_argument("--no-optimize", action="store_true", help="skip the edits, generation and inpainting")
    parser.add_argument("--random-init", action="store_true",
                        help="random tokenizer weights (plumbing checks only; they carry no semantics)")
    # checked by probe.cli before the run: --out writable
    parser.set_defaults(_writes=lambda a: [a.out])


def settings(args: argparse.Namespace) -> list[str]:
    """The demo's flags as ``KEY=VALUE`` settings of the run config (given flags only), then ``--set`` ones."""
    flags = {"tokenizer": args.tokenizer, "data.images": args.images, "probes.permutations": args.permutations,
             "seed": args.seed, "data.batch_size": args.batch_size}
    out = [f"{k}={v}" for k, v in flags.items() if v is not None]
    out += ["probes.figures=false"] * args.no_figures + ["swap.enabled=false"] * args.no_swap
    out += ["optimize.enabled=false"] * args.no_optimize + ["random_init=true"] * args.random_init
    return out + list(args.settings)


def run(args: argparse.Namespace) -> int:
    from probe.commands.run import run_config
    from probe.pipeline import default_config_path

    args.settings = settings(args)
    code = run_config(default_config_path(), args, command="demo")
    if code == 0 and (args.tokenizer or "world-32") == "world-32" and not args.random_init:
        print("\n" + READING_NOTE)
    return code
