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
    "and writes probes.csv / probes.parquet, semantic_map.json, disentanglement.csv, usage.csv, "
    "config.json and figures/*.png|svg under the output folder (default <store>/probes/)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from probe.commands._args import (
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
    parser.set_defaults(_writes=lambda a: [a.out or Path(a.store) / "probes"])


def run(args: argparse.Namespace) -> int:
    from probe.probes import ProbeConfig, run_probes
    from probe.probes.usage import code_frequencies, codebook_usage
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
    usage = codebook_usage(store.tokens, res.config["num_codes"])
    extra = {"command": "tokenprobe probe", "argv": sys.argv[1:], "store": str(store_path),
             "store_header": {k: store.header.get(k) for k in ("config_hash", "layout")}}
    paths = res.save(out, extra_config=extra)
    usage.to_csv(out / "usage.csv", index=False)
    print(f"wrote {len(res.table)} probe rows for {len(res.attributes)} attributes to {paths['table_csv'].parent}")
    if res.skipped:
        print("skipped attributes: " + "; ".join(f"{k} ({v})" for k, v in res.skipped.items()))
    for attr, ranked in res.semantic_map.by_attribute.items():
        top = ranked[0] if ranked else None
        if top:
            mark = "*" if top["significant"] else " "
            print(f"  {mark} {attr:<24} top position {top['position']:>3}  {res.semantic_map.rank_by}={top['effect']:.4f}  q={top['q_value']:.2g}")
    if not args.no_figures:
        _figures(res, store, usage, code_frequencies(store.tokens, res.config["num_codes"]), out / "figures", args)
        print(f"figures in {out / 'figures'}")
    return 0


def _figures(res, store, usage, freqs, fig_dir: Path, args: argparse.Namespace) -> None:
    import numpy as np

    from probe.viz import (
        codebook_usage_figure,
        position_umap,
        probe_heatmap,
        save_figure,
        summary_figure,
    )

    per_position = sorted(set(res.table.loc[res.table.position >= 0, "probe"]))
    for probe in per_position:
        save_figure(probe_heatmap(res.table, probe, alpha=res.config["alpha"]), fig_dir / f"heatmap_{probe}")
    save_figure(codebook_usage_figure(usage, freqs), fig_dir / "codebook_usage")
    save_figure(summary_figure(res.table, res.semantic_map, res.disentanglement, usage, alpha=res.config["alpha"],
                               title=f"token-position probes: {args.store}"), fig_dir / "summary")
    rep = store.features if store.features is not None and len(store.features) else None
    if args.umap_top > 0 and rep is not None:
        attrs = store.attributes
        for attr, ranked in res.semantic_map.by_attribute.items():
            positions = [r["position"] for r in ranked[: args.umap_top]]
            if positions:
                fig = position_umap(np.asarray(rep), attrs[attr], positions, attribute=attr, seed=args.seed,
                                    max_points=args.umap_points)
                save_figure(fig, fig_dir / f"umap_{attr}")
