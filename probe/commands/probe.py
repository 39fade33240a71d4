"""``tokenprobe probe``: statistical probes of a token store, with tables, semantic map and figures."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "probe"
HELP = "probe every token position x attribute of a token store (tables, semantic map, figures)"
DESCRIPTION = (
    "Runs the probe suite (MI / adjusted MI / Cramer's V of token ids, eta^2 of features and codebook "
    "embeddings, variance change per partition, rank correlations, cross-validated linear probes, "
    "permutation p-values with Benjamini-Hochberg q-values, disentanglement metrics) on a token store "
    "and writes probes.csv / probes.parquet, semantic_map.json|csv, summary.csv, disentanglement.csv, "
    "usage.csv, config.json and figures/*.png|svg under the output folder (default <store>/probes/)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from probe.commands._args import (
        add_overwrite_flag,
        comma_choices,
        non_negative_int,
        open_unit_interval,
        positive_int,
    )
    from probe.probes.config import ALL_PROBES

    parser.add_argument("--store", required=True, help="token store folder (e.g. runs/NAME)")
    parser.add_argument("--attributes", default=None, help="comma-separated attributes to probe (default: all)")
    parser.add_argument("--permutations", type=positive_int, default=200, help="label permutations for p-values (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="seed of permutations, subsamples and folds (default 0)")
    parser.add_argument("--out", default=None, help="output folder (default: <store>/probes)")
    parser.add_argument("--jobs", type=int, default=1, help="threads for the compiled loops and group-sum products (-1: all cores; default 1)")
    parser.add_argument("--probes", type=comma_choices(ALL_PROBES), default=None, help=f"comma-separated subset of: {','.join(ALL_PROBES)}")
    parser.add_argument("--alpha", type=open_unit_interval, default=0.05, help="q-value threshold for the semantic map (default 0.05)")
    parser.add_argument("--dci-importance", choices=("linear", "gbt"), default="linear",
                        help="DCI importance: |ridge weights| (fast, default) or disentanglement_lib's GBT (slow)")
    parser.add_argument("--umap-top", type=non_negative_int, default=2,
                        help="UMAP figures of each attribute's top-K positions (0: none; default 2)")
    parser.add_argument("--umap-points", type=positive_int, default=3000, help="rows embedded per UMAP (default 3000)")
    parser.add_argument("--no-figures", action="store_true", help="write the tables only")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    # checked by probe.cli before any work: the output folder must be writable
    add_overwrite_flag(parser, "the probe results in --out")
    # checked by probe.cli before any work: the output folder writable, its earlier results kept unless --overwrite
    parser.set_defaults(_writes=lambda a: [a.out or Path(a.store) / "probes"],
                        _results=lambda a: [Path(a.out or Path(a.store) / "probes") / "config.json"])


def run(args: argparse.Namespace) -> int:
    from probe.probes import ProbeConfig, run_probes
    from probe.store import TokenStore

    store_path = Path(args.store)
    if not store_path.exists():
        print(f"error: no token store at {store_path}", file=sys.stderr)
        return 2
    store = TokenStore.open(store_path)
    out = Path(args.out) if args.out else store_path / "probes"
    kw = {"permutations": args.permutations, "seed": args.seed, "alpha": args.alpha,
          "dci_importance": args.dci_importance}
    if args.probes:
        kw["probes"] = tuple(p.strip() for p in args.probes.split(",") if p.strip())
    cfg = ProbeConfig(**kw)
    subset = [a.strip() for a in args.attributes.split(",") if a.strip()] if args.attributes else None
    res = run_probes(store, attributes_subset=subset, n_jobs=args.jobs, progress=not args.quiet, config=cfg)
    extra = {"command": "tokenprobe probe", "argv": sys.argv[1:], "store": str(store_path),
             "store_header": {k: store.header.get(k) for k in ("config_hash", "layout")}}
    paths = res.save(out, figures=not args.no_figures, store=store, umap_top=args.umap_top,
                     umap_points=args.umap_points, title=f"token-position probes: {args.store}", extra_config=extra)
    print(f"wrote {len(res.table)} probe rows for {len(res.attributes)} attributes to {paths['table_csv'].parent}")
    if res.skipped:
        print("skipped attributes: " + "; ".join(f"{k} ({v})" for k, v in res.skipped.items()))
    print(res.semantic_map.summary_text())
    if not args.no_figures:
        print(f"figures in {paths['summary_page'].parent}")
    return 0

