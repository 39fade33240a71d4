"""``tokenprobe swap``: validate probe-found mappings with copy-paste token swaps, with controls."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

NAME = "swap"
HELP = "validate position -> attribute mappings by copy-paste token swaps (transfer, controls, side effects)"


def _description() -> str:
    from probe.swap.run import SwapConfig

    cfg = SwapConfig()
    return (
        "Pairs (recipient, donor) from opposite ends of each attribute (continuous: lower vs upper quartile; "
        "hues: opposite arcs; categorical: every ordered pair of categories), on two disjoint sets of images: "
        "discovery pairs (--discovery-pairs) select (the sweep of every single position, the greedy set search), "
        "confirmation pairs (--pairs) give every reported number. Pastes the donor's tokens into the recipient at "
        "each tested position set, decodes and measures every attribute; the attribute's own reading is measured "
        "along the direction its labels define (signed). Controls on the confirmation pairs: same-end donor, "
        "random other position, all positions except the tested ones; swap-back (re-encode) on request; a "
        "self-swap only for a stochastic decoder. Per (attribute, position set): transfer = sum(moved) / "
        "sum(gap) with its interval and family-wise bound, interchange-intervention accuracy, the controls' "
        "movements, the side effects on every other attribute. "
        f"Verdict rule: {cfg.verdict.text()} "
        f"Where the best single position moves less than {cfg.target}, a greedy search (discovery pairs) finds "
        "the smallest set reaching it. Which positions the discovery step swaps: every one (--sweep), or "
        "attribution first (--attribution: attribution patching ranks every position from one backward pass per "
        "batch, real swaps test the top --k, the greedy pool's worth where none of those reaches the target); the "
        "default is attribution first when every tested attribute's measurer is differentiable, else every "
        "position. Writes swaps.csv|parquet (one row per swap x measured attribute), "
        "mappings.csv (one row per attribute x set x split), validated_map.csv/.json (the rule and which numbers "
        "come from which pairs), causal_heatmap.csv, rank_agreement.csv, disagreements.csv, greedy_curves.csv, "
        "attribution_heatmap.csv (attribution first), spatial maps (--spatial), figures (PNG + SVG), image grids of the confirmed mappings and config.json (every seed) under --out "
        "(default <run>/swap). Under torchrun the discovery sweep's pairs are sharded over ranks (same table as "
        "one process)."
    )


DESCRIPTION = None  # filled lazily by add_arguments (keeps `tokenprobe --help` light)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from probe.commands._args import add_overwrite_flag, non_negative_int, positive_int

    parser.description = _description()
    parser.add_argument("--store", required=True, help="token store folder, or a run folder holding store/")
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--map", default=None, help="semantic_map.json of `tokenprobe probe`: test its candidates only")
    src.add_argument("--sweep", action="store_true",
                     help="every single position for every attribute (the full causal heatmap), compared with the "
                          "probes' map when one is found under the run folder (the default when a measurer is not "
                          "differentiable, and under torchrun)")
    src.add_argument("--attribution", action="store_true",
                     help="attribution patching ranks every position, real swaps test the top --k of each "
                          "attribute (the greedy pool's worth where none reaches the target); the default when "
                          "every tested measurer is differentiable")
    parser.add_argument("--attributes", default=None,
                        help="comma-separated attributes to draw pairs for (default: every one with a measurer); "
                             "every swap is measured on all attributes that have a measurer (side effects)")
    parser.add_argument("--measurer", action="append", default=[], metavar="ATTR=SPEC",
                        help="measurer of an attribute, e.g. lighting=analytic:luminance or shape=oracle:shape "
                             "(repeatable; default: probe.measure's default for the attribute)")
    parser.add_argument("--no-side-effects", action="store_true",
                        help="measure only the --attributes themselves (faster; no off-target table)")
    parser.add_argument("--tokenizer", default=None, help="tokenizer spec (default: the store's, by its config)")
    parser.add_argument("--pairs", type=positive_int, default=256,
                        help="confirmation pairs per attribute: every reported number (default 256)")
    parser.add_argument("--discovery-pairs", type=positive_int, default=64,
                        help="discovery pairs per attribute, on other images: every selection (default 64)")
    parser.add_argument("--control-pairs", type=positive_int, default=None,
                        help="run the decode-costly controls on only this many pairs per attribute (default: all)")
    parser.add_argument("--swap-back", action="store_true", help="also the swap-back control (re-encodes)")
    parser.add_argument("--k", type=positive_int, default=3,
                        help="with --map: candidate positions per attribute; attribution first: positions swapped "
                             "first per attribute (default 3)")
    parser.add_argument("--spatial", type=non_negative_int, default=0, metavar="N",
                        help="also per-position contribution maps over N images: spatial_maps.csv/.npz and figures")
    parser.add_argument("--target", type=float, default=0.8, help="transfer the greedy set search must reach (0.8)")
    parser.add_argument("--no-greedy", action="store_true", help="skip the greedy set search")
    parser.add_argument("--confirm", type=float, default=0.5,
                        help="confirmed: the transfer's family-wise lower bound >= this (0.5)")
    parser.add_argument("--weak", type=float, default=0.15, help="weak: the family-wise lower bound >= this (0.15)")
    parser.add_argument("--min-effect", type=float, default=0.25,
                        help="the margin (transfer units) by which the transfer must beat every control (0.25)")
    parser.add_argument("--alpha", type=float, default=0.05,
                        help="family-wise error rate of 'confirmed' per attribute (0.05)")
    parser.add_argument("--specific", type=float, default=0.25, help="max side effect of a specific mapping (0.25)")
    parser.add_argument("--traverse", type=non_negative_int, default=None, metavar="POS",
                        help="also traverse position POS through the codes the store uses there")
    parser.add_argument("--traverse-images", type=positive_int, default=8, help="images per traversal (default 8)")
    parser.add_argument("--grids", type=non_negative_int, default=6, help="pairs per image grid of a confirmed mapping (0: none)")
    parser.add_argument("--batch", type=positive_int, default=256, help="images per decode (default 256)")
    parser.add_argument("--device", default=None, help="cpu / cuda / mps (default: automatic)")
    parser.add_argument("--bf16", action="store_true", help="decode under bf16 autocast on CUDA")
    parser.add_argument("--format", choices=("csv", "parquet"), default="parquet",
                        help="format of the large per-swap table (default parquet)")
    parser.add_argument("--seed", type=int, default=0, help="seed of pairs, controls and bootstrap (default 0)")
    parser.add_argument("--out", default=None, help="output folder (default <run>/swap)")
    parser.add_argument("--no-figures", action="store_true", help="tables only")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_overwrite_flag(parser, "the swap results in --out")
    # checked by probe.cli before any work: --out writable, its earlier results kept unless --overwrite
    parser.set_defaults(_writes=lambda a: [_out(a)], _results=lambda a: [_out(a) / "config.json"])


def _out(args: argparse.Namespace) -> Path:
    """--out, else <run>/swap beside the store."""
    if args.out:
        return Path(args.out)
    store = _store_path(Path(args.store)) or Path(args.store)
    return (store.parent if store.name == "store" else store) / "swap"


def _store_path(p: Path) -> Path | None:
    if (p / "header.json").exists():
        return p
    if (p / "store" / "header.json").exists():
        return p / "store"
    return None


def _find_map(store_path: Path) -> Path | None:
    for cand in (store_path / "probes" / "semantic_map.json", store_path.parent / "probes" / "semantic_map.json"):
        if cand.exists():
            return cand
    return None


def load_semantic_map(path: Path):
    """A ``semantic_map.json`` as a SemanticMap (or, failing that, its raw dict's ranking table)."""
    from probe.probes.semantic_map import SemanticMap

    d = json.loads(path.read_text())
    try:
        return SemanticMap.from_dict(d)
    except (KeyError, TypeError, ValueError):
        import pandas as pd

        rows = [{"attribute": a, "position": r["position"], "effect": r.get("effect")}
                for a, ranked in d.get("by_attribute", {}).items() for r in ranked]
        return pd.DataFrame(rows, columns=["attribute", "position", "effect"])


def run(args: argparse.Namespace) -> int:
    store_path = _store_path(Path(args.store))
    if store_path is None:
        print(f"error: no token store at {args.store} (expected header.json there or in store/); "
              f"make one with `tokenprobe tokenize` or `tokenprobe demo`", file=sys.stderr)
        return 2
    if args.map and not Path(args.map).exists():
        print(f"error: --map {args.map}: file not found (run `tokenprobe probe` first)", file=sys.stderr)
        return 2
    out = _out(args)
    try:
        return _run(args, store_path, out)
    except ValueError as exc:  # bad attribute / measurer / map: one line
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, store_path: Path, out: Path) -> int:
    from probe.store import TokenStore
    from probe.swap.distributed import validate_and_write

    store = TokenStore.open(store_path)
    tok = _tokenizer(args, store)
    attrs = _attributes(args, store, store_path)
    measurers = _measurers(args, store, attrs)
    data = _swap_data(store, tok)
    cfg = _config(args)
    attrs = attrs or [a for a in measurers if a in data.attributes.columns]
    smap_path = Path(args.map) if args.map else _find_map(store_path)
    smap = load_semantic_map(smap_path) if smap_path else None
    res = validate_and_write(tok, data, measurers, smap, out, attributes=attrs, config=cfg,
                             candidates=args.k if args.map else None, greedy=not args.no_greedy,
                             figures=not args.no_figures, grids=args.grids, tables_format=args.format,
                             progress=not args.quiet,
                             record={"command": "tokenprobe swap", "argv": sys.argv[1:], "store": str(store_path),
                                     "semantic_map": str(smap_path) if smap_path else None})
    if res is None:  # a rank > 0 of torchrun: rank 0 writes
        return 0
    _print(res, args, attrs, smap_path)
    if args.traverse is not None:
        _traverse(args, tok, store, data, measurers, out, res.paths)
    if args.spatial > 0:
        from probe.swap.spatial import spatial_maps

        maps = spatial_maps(tok, data.quantized, masks=data.masks, n=args.spatial, seed=args.seed, batch=args.batch)
        res.paths |= maps.save(out, figures=not args.no_figures)
    print(f"\nwrote {out}")
    return 0


def _tokenizer(args: argparse.Namespace, store):
    """--tokenizer, else the store's own, on --device (under torchrun: each rank on its own GPU)."""
    import probe
    from probe.swap.distributed import rank_device
    from probe.swap.validated import tokenizer_of

    device = rank_device(args.device)
    if args.tokenizer:
        return probe.load_tokenizer(args.tokenizer, device=device)
    tok = tokenizer_of(store)
    return tok.to(device) if device else tok


def _attributes(args: argparse.Namespace, store, store_path: Path) -> list[str] | None:
    """--attributes as a list (``None``: every attribute with a measurer); unknown names are an error."""
    attrs = [a.strip() for a in args.attributes.split(",") if a.strip()] if args.attributes else None
    unknown = [a for a in attrs or [] if a not in store.attributes.columns]
    if unknown:
        raise ValueError(f"--attributes: {unknown} not in the store {store_path} "
                         f"(it has {[c for c in store.attributes.columns if c not in ('index', 'ref')]})")
    return attrs


def _measurers(args: argparse.Namespace, store, attrs: list[str] | None) -> dict:
    """attribute -> measurer: --measurer ATTR=SPEC, else the default. Every swap is measured on every attribute
    that has one (the side effects) unless --no-side-effects; pairs are drawn only for ``attrs``."""
    from probe.measure import get_measurer
    from probe.swap.validated import default_measurers

    given = {}
    for item in args.measurer:
        if "=" not in item:
            raise ValueError(f"--measurer {item!r}: expected ATTR=SPEC, e.g. lighting=analytic:luminance")
        a, spec = item.split("=", 1)
        try:
            given[a.strip()] = get_measurer(spec.strip())
        except KeyError as exc:
            raise ValueError(f"--measurer {item!r}: {exc.args[0] if exc.args else exc}") from exc
    from probe.data.manifest import declared_measurers

    declared = {a: get_measurer(spec) for a, spec in declared_measurers(store.manifest).items()
                if a in store.attributes.columns and a not in given}
    wanted = [a for a in attrs if a not in given and a not in declared] if args.no_side_effects and attrs else None
    if args.no_side_effects and attrs:
        declared = {a: m for a, m in declared.items() if a in attrs}
    measurers = default_measurers(store, wanted) | declared | given
    lacking = [a for a in attrs or [] if a not in measurers]
    if lacking:
        default_measurers(store, lacking)  # raises the measure package's one-line reason
    if not measurers:
        raise ValueError("no attribute has a measurer: give --measurer ATTR=SPEC")
    return measurers


def _swap_data(store, tok):
    """The store's tokens as code vectors, with the object masks its measurers read."""
    from probe.swap.run import SwapData

    return SwapData.from_store(store, tok)


def _config(args: argparse.Namespace):
    """The SwapConfig of the flags."""
    from probe.swap.run import DEFAULT_CONTROLS, SwapConfig
    from probe.swap.stats import VerdictConfig

    controls = DEFAULT_CONTROLS + (("swap_back",) if args.swap_back else ())
    mode = "exhaustive" if args.sweep else "attribution" if args.attribution else "auto"
    return SwapConfig(pairs=args.pairs, discovery_pairs=args.discovery_pairs, seed=args.seed, controls=controls,
                      control_pairs=args.control_pairs, batch=args.batch, target=args.target, autocast=args.bf16,
                      mode=mode, first_k=args.k,
                      verdict=VerdictConfig(confirm=args.confirm, weak=args.weak, min_effect=args.min_effect,
                                            alpha=args.alpha, specific=args.specific, seed=args.seed))


def _print(res, args: argparse.Namespace, attrs: list[str], smap_path: Path | None) -> None:
    """The answers (and, for a sweep, where the probes' top position is not the causal top)."""
    if args.map:
        if res.result.summary.empty:
            print(f"no candidate position in {smap_path} for {attrs}: nothing to test")
        else:
            print(res.result.summary[["attribute", "positions", "transfer", "ci_low", "ci_high", "ci_low_adj", "iia",
                                      "verdict", "failed", "visibility", "specificity"]].to_string(index=False))
            print(f"\n{res.result.config.verdict.text()}")
        return
    vmap = res.vmap
    print(vmap.answers[[c for c in ("attribute", "positions", "transfer", "ci_low", "ci_high", "ci_low_adj", "verdict",
                                    "failed", "visibility", "specificity", "probe_rank") if c in vmap.answers]]
          .to_string(index=False))
    print(f"\n{vmap.sweep.config.verdict.text()}")
    if len(vmap.disagreements):
        print("\nprobe top != causal top:")
        print(vmap.disagreements[["attribute", "probe_top", "probe_top_transfer", "causal_top",
                                  "causal_top_transfer", "causal_top_probe_rank"]].to_string(index=False))


def _traverse(args, tok, store, data, measurers, out, paths) -> None:
    """Position --traverse through the codes the store uses there: the table, its curve and the figure."""
    import matplotlib.pyplot as plt
    import torch

    from probe.swap.traverse import codes_used, response_curve, traverse
    from probe.tokenizers.base import paste_tokens
    from probe.viz.save import save_figure
    from probe.viz.swap import traversal_figure

    pos = int(args.traverse)
    n = min(args.traverse_images, len(store))
    rows = torch.arange(n)
    codes = codes_used(store.tokens, pos)
    masks = None if data.masks is None else data.masks[rows]
    table = traverse(tok, data.quantized[rows], pos, measurers, codes=codes, masks=masks, batch=args.batch,
                     progress=not args.quiet)
    curve = response_curve(table)
    table.to_csv(out / f"traversal_{pos}.csv", index=False)
    curve.to_csv(out / f"traversal_{pos}_curve.csv", index=False)
    if not args.no_figures:
        # the first image with position `pos` set to each code, ordered by the first measured attribute
        first = list(measurers)[0]
        order = curve[curve["measured"] == first].sort_values("mean")["code"].to_numpy()
        q = data.quantized[:1]
        donors = torch.zeros(len(order), *q.shape[1:], dtype=q.dtype, device=q.device)
        donors[:, pos] = tok.codebook.detach()[torch.as_tensor(order.copy())].to(q.device)
        with torch.no_grad():
            imgs = tok.decode(paste_tokens(q.expand_as(donors), donors, [pos]))
        paths["traversal"] = save_figure(traversal_figure(curve, images=imgs), out / f"traversal_{pos}")[0]
        plt.close("all")
