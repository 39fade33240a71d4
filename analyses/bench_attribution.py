"""How good is attribution patching as an estimate of the real single-position swaps, on world-32.

Method. Held-out world images (``--n``, world seed ``--seed``, never used in training) are encoded with
world-32. For every world attribute with a default measurer, ``--pairs`` (recipient, donor) pairs are drawn
from the attribute's two ends (:func:`probe.swap.sample_pairs`, as the engine draws them). On the same pairs:

- the real sweep: :func:`probe.swap.sweep_positions` (every position pasted and decoded; the tested swap
  only, no controls: only transfer is compared);
- the estimate: :func:`probe.swap.attribution.attribution_sweep` (one backward per batch and measurer), in each
  variant of ``--variants`` (``clamped``: gradient of the clamped decode the engine measures; ``raw``: of the
  unclamped decoder output; ``ig<k>``: integrated gradients over ``k`` midpoints of the path to the donor).

Per attribute and variant: Spearman between estimated and real transfer over the 32 positions, the swap-best
position and its rank under attribution, whether attribution's top 3 holds it, and the wall/CPU seconds of each
method. Writes ``<out>.csv`` (agreement), ``<out>_heatmaps.csv`` (both heatmaps, long) and per variant the
figure ``<out>_<variant>.png/.svg`` (real vs estimated heatmaps side by side, and the per-position scatter).

    python analyses/bench_attribution.py --pairs 64 --out figures/attribution_world32
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch


def heldout_data(n: int, seed: int, model: str = "world-32") -> tuple[torch.nn.Module, object]:
    """``(tokenizer, SwapData)`` of ``n`` held-out world images encoded with ``model``."""
    from probe.data.world import FACTORS, WorldConfig, sample
    from probe.measure.world import load_world_tokenizer
    from probe.swap import SwapData
    from probe.tokenizers.base import encode_batched

    tok, world = load_world_tokenizer(model)
    images, df, masks = sample(n, seed=seed, resolution=int(tok.image_size), config=WorldConfig.from_dict(world),
                               return_masks=True)
    q = encode_batched(tok, images).quantized.float()
    kinds = {a: ("categorical" if a == "shape" else "continuous") for a in FACTORS}
    circular = tuple(a for a in FACTORS if FACTORS[a].circular)
    return tok, SwapData(q, df.reset_index(drop=True), kinds, circular, masks)


def _variant(name: str):
    from probe.swap.attribution import AttributionConfig

    if name == "clamped":
        return AttributionConfig(clamp=True, steps=1)
    if name == "raw":
        return AttributionConfig(clamp=False, steps=1)
    if name.startswith("ig"):
        return AttributionConfig(clamp=True, steps=int(name[2:]))
    raise SystemExit(f"bench_attribution.py: --variants {name!r}: use clamped, raw or ig<k> (e.g. ig4)")


def run(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(agreement table, long table of both heatmaps)."""
    torch.set_num_threads(args.threads)
    from probe.measure import measurer_for
    from probe.swap import SwapConfig, sweep_positions
    from probe.swap.attribution import agreement, attribution_sweep
    from probe.swap.validated import causal_heatmap

    tok, data = heldout_data(args.n, args.seed)
    attrs = [a.strip() for a in args.attributes.split(",")]
    measurers = {a: measurer_for(a) for a in attrs}
    cfg = SwapConfig(pairs=args.pairs, controls=("none",), batch=256)
    t0, c0 = time.perf_counter(), time.process_time()
    sweep = sweep_positions(tok, data, measurers, attributes=attrs, config=cfg, progress=False)
    sweep_s, sweep_cpu = time.perf_counter() - t0, time.process_time() - c0
    causal = causal_heatmap(sweep.summary)
    rows, heats = [], [causal.stack().rename("transfer").reset_index().assign(method="swap")]
    for v in args.variants.split(","):
        t0, c0 = time.perf_counter(), time.process_time()
        est = attribution_sweep(tok, data, measurers, attributes=attrs, swap_config=cfg, config=_variant(v))
        att_s, att_cpu = time.perf_counter() - t0, time.process_time() - c0
        ag = agreement(est.heatmap, causal)
        ag.insert(1, "variant", v)
        ag["attribution_s"], ag["attribution_cpu_s"] = round(att_s, 1), round(att_cpu, 1)
        ag["sweep_s"], ag["sweep_cpu_s"] = round(sweep_s, 1), round(sweep_cpu, 1)
        rows.append(ag)
        heats.append(est.heatmap.stack().rename("transfer").reset_index().assign(method=v))
        print(f"{v}: {att_s:.1f} s (sweep {sweep_s:.1f} s)", flush=True)
    table = pd.concat(rows, ignore_index=True)
    table["pairs"], table["n_images"], table["threads"] = args.pairs, args.n, args.threads
    return table, pd.concat(heats, ignore_index=True)


def figure(heats: pd.DataFrame, table: pd.DataFrame, variant: str):
    """Real (swap) and estimated heatmaps side by side, and estimated vs real transfer per position."""
    from probe.viz.attribution import attribution_vs_causal_figure

    swap = heats[heats["method"] == "swap"].pivot(index="position", columns="attribute", values="transfer")
    est = heats[heats["method"] == variant].pivot(index="position", columns="attribute", values="transfer")
    return attribution_vs_causal_figure(est, swap, table[table["variant"] == variant])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="held-out world images")
    ap.add_argument("--seed", type=int, default=2_000_003, help="world seed of the held-out images")
    ap.add_argument("--pairs", type=int, default=64, help="pairs per attribute")
    ap.add_argument("--attributes", default="lighting,bg_blur,global_blur,obj_hue,bg_hue,shape,obj_scale,obj_x,obj_y")
    ap.add_argument("--variants", default="clamped,raw,ig4", help="estimates to compare: clamped, raw, ig<k>")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="runs/bench_attribution/attribution_world32", help="path stem of the outputs")
    args = ap.parse_args(argv)
    table, heats = run(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out.with_suffix(".csv"), index=False)
    heats.to_csv(out.with_name(out.name + "_heatmaps.csv"), index=False)
    from probe.viz.save import save_figure

    for v in args.variants.split(","):
        save_figure(figure(heats, table, v), out.with_name(f"{out.name}_{v}"))
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.round(3).to_string(index=False))
    return 0


def bench_rows(quick: bool = True) -> list[dict[str, object]]:
    """Rows for analyses/bench.py: attribution vs the real sweep (seconds and agreement). Quick: 600 images,
    lighting and bg_blur, 16 pairs, one thread."""
    args = argparse.Namespace(n=600 if quick else 2000, seed=2_000_003, pairs=16 if quick else 64,
                              attributes="lighting,bg_blur" if quick else
                              "lighting,bg_blur,global_blur,obj_hue,bg_hue,shape,obj_scale,obj_x,obj_y",
                              variants="clamped", threads=1)
    table, _ = run(args)
    n_pos = 32
    n_attr = table["attribute"].nunique()
    sweep_cpu, att_cpu = float(table["sweep_cpu_s"].iloc[0]), float(table["attribution_cpu_s"].iloc[0])
    pairs = args.pairs * n_attr
    note = f"median Spearman vs real swaps {table['spearman'].median():.2f}; top-3 hits {int(table['top_hit'].sum())}/{n_attr}"
    return [{"case": f"world-32 exhaustive sweep, {n_attr} attributes x {n_pos} positions, {args.pairs} pairs",
             "throughput": pairs * n_pos / sweep_cpu, "unit": "positions x pairs / cpu-s", "device": "cpu"},
            {"case": f"world-32 attribution estimate, same cells", "throughput": pairs * n_pos / att_cpu,
             "unit": "positions x pairs / cpu-s", "vs_bare": att_cpu / sweep_cpu, "device": "cpu", "note": note}]


if __name__ == "__main__":
    raise SystemExit(main())
