"""``tokenprobe demo``: the main job on the embedded default (world -> tokens -> probes -> map)."""
from __future__ import annotations

import argparse
from pathlib import Path

NAME = "demo"
HELP = "run the whole loop on the embedded default: world images -> world-32 tokens -> probes -> semantic map"
DESCRIPTION = (
    "Render labelled images of the synthetic attribute world, tokenize them with the shipped "
    "tokenizer, probe every token position x attribute, and print which position carries which "
    "attribute. Outputs (store, tables, semantic map, figures, config.json) go under --out."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from probe.commands._args import add_resume_flags, positive_int
    from probe.demo import DemoConfig

    d = DemoConfig()
    parser.add_argument("--out", type=Path, default=d.out, help=f"run folder (default {d.out})")
    parser.add_argument("--tokenizer", default=d.tokenizer, help=f"tokenizer spec (default {d.tokenizer})")
    parser.add_argument("--images", type=positive_int, default=d.images, help=f"world images (default {d.images})")
    parser.add_argument("--permutations", type=positive_int, default=d.permutations,
                        help=f"permutations per test (default {d.permutations})")
    parser.add_argument("--seed", type=int, default=d.seed, help=f"seed (default {d.seed})")
    parser.add_argument("--device", default=d.device, help="force a device (default: cuda, then mps, then cpu)")
    parser.add_argument("--batch-size", type=positive_int, default=d.batch_size, help=f"batch size (default {d.batch_size})")
    parser.add_argument("--no-figures", action="store_true", help="skip the figures")
    parser.add_argument("--random-init", action="store_true",
                        help="random tokenizer weights (plumbing checks only; they carry no semantics)")
    add_resume_flags(parser, "the store in --out/store")
    # checked by probe.cli before the run: --out writable; --no-resume removes --out/store
    parser.set_defaults(_writes=lambda a: [a.out], _store=lambda a: Path(a.out) / "store")


def run(args: argparse.Namespace) -> int:
    from probe.demo import READING_NOTE, DemoConfig, run_demo

    cfg = DemoConfig(out=args.out, tokenizer=args.tokenizer, images=args.images, permutations=args.permutations,
                     seed=args.seed, device=args.device, batch_size=args.batch_size, figures=not args.no_figures,
                     random_init=args.random_init)
    res = run_demo(cfg)
    smap = res.probes.semantic_map
    print(f"\nTop token position per attribute ({smap.rank_by}, {len(res.store)} images, {cfg.permutations} permutations;"
          f" significant: carried by some position, family-wise p < {smap.alpha:g}):")
    print(smap.summary_text())
    if cfg.tokenizer == "world-32" and not cfg.random_init:
        print("\n" + READING_NOTE)
    print("\nwritten:")
    for name, path in res.paths.items():
        if not name.startswith("heatmap_"):  # the other probes' heatmaps sit beside "heatmap"
            print(f"  {name:<16} {path}")
    return 0
