"""How good is attribution patching as an estimate of the real single-position swaps, on world-32.

Method. Held-out world images (``--n``, world seed ``--seed``, never used in training) are encoded with
world-32. For every world attribute with a default measurer, ``--pairs`` discovery (recipient, donor) pairs
are drawn from the attribute's two ends as the engine draws them (:mod:`probe.swap.split`), and each pair's
reading is taken along its labels' direction as the engine takes it. On the same pairs:

- the real sweep: :func:`probe.swap.sweep` (every position pasted and decoded; the tested swap
  only, no controls: only transfer is compared);
- the estimate: :func:`probe.swap.attribution.attribution_sweep` (one backward per batch and measurer), in each
  variant of ``--variants`` (``clamped``: gradient of the clamped decode the engine measures; ``raw``: of the
  unclamped decoder output; ``ig<k>``: integrated gradients over ``k`` midpoints of the path to the donor).

Per attribute and variant: Spearman (and Pearson) between estimated and real transfer over the 32 positions,
Spearman over the active positions only (either moves >= 0.05 of the gap), the swap-best position and its rank
under attribution, whether attribution's top 3 holds it, the wall/CPU seconds of each method, and the real
sweep's own split-half Spearman (even vs odd pairs: the ceiling of any agreement with it). ``--paths``: the
real transfer along the straight path of one position's token from the recipient's to the donor's (alpha 0 to
1), written to ``<out>_paths.csv``: a response flat at alpha 0 is where the gradient there cannot see the paste. Writes ``<out>.csv`` (agreement), ``<out>_heatmaps.csv`` (both heatmaps, long) and per variant the
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


def split_half(table: pd.DataFrame) -> pd.DataFrame:
    """Per attribute: Spearman over positions between the real transfer on the even and on the odd pairs (the
    real sweep's own reliability at half the pairs: no estimate can agree with the sweep better than the sweep
    agrees with itself)."""
    from scipy.stats import spearmanr

    own = table[(table["measurer"] == table["attribute"]) & (table["control"] == "none")].copy()
    own["half"] = own.groupby("attribute")["pair"].rank(method="dense").astype(int) % 2
    g = own.groupby(["attribute", "half", "positions"])[["moved", "gap"]].sum()
    t = (g["moved"] / g["gap"]).unstack("half")
    rows = [{"attribute": a, "swap_split_half_spearman": float(spearmanr(d[0], d[1]).statistic)}
            for a, d in t.groupby(level="attribute")]
    return pd.DataFrame(rows)


def path_response(tok: torch.nn.Module, data, attribute: str, position: int, *, pairs: int, steps: int = 10,
                  seed: int = 0) -> pd.DataFrame:
    """Transfer along the straight path of one position's token from the recipient's (alpha 0) to the donor's
    (alpha 1), all other tokens kept: where the response is flat at alpha 0, the gradient there cannot see the
    paste (the first-order estimate's failure mode)."""
    from probe.measure import measurer_for
    from probe.measure.shared import measure_all
    from probe.swap.pairs import PairConfig, sample_pairs

    m = measurer_for(attribute)
    pr = sample_pairs(data.attributes, attribute, data.kinds.get(attribute, "continuous"),
                      PairConfig(n=pairs, seed=seed), circular=attribute in data.circular)
    rec, don = (torch.as_tensor(pr[c].to_numpy().copy()) for c in ("recipient", "donor"))
    qr, qd = data.quantized[rec], data.quantized[don]
    mr = None if data.masks is None else data.masks[rec]
    md = None if data.masks is None else data.masks[don]
    rows = []
    with torch.no_grad():
        vr = measure_all([m], tok.decode(qr), mr)[0].reshape(len(rec), -1)
        vd = measure_all([m], tok.decode(qd), md)[0].reshape(len(rec), -1)
        gap = (vd - vr).norm(dim=1)
        u = (vd - vr) / gap.clamp_min(1e-9)[:, None]
        for a in np.linspace(0.0, 1.0, steps + 1):
            q = qr.clone()
            q[:, position] = qr[:, position] + float(a) * (qd[:, position] - qr[:, position])
            v = measure_all([m], tok.decode(q), mr)[0].reshape(len(rec), -1)
            rows.append({"attribute": attribute, "position": position, "alpha": round(float(a), 3),
                         "transfer": float(((v - vr) * u).sum() / gap.sum())})
    return pd.DataFrame(rows)


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
    from probe.swap import SwapConfig, sweep
    from probe.swap.attribution import agreement, attribution_sweep
    from probe.swap.validated import causal_heatmap

    tok, data = heldout_data(args.n, args.seed)
    attrs = [a.strip() for a in args.attributes.split(",")]
    measurers = {a: measurer_for(a) for a in attrs}
    # the estimate ranks on discovery pairs: the real sweep it is compared with runs on the same pairs
    cfg = SwapConfig(pairs=args.pairs, discovery_pairs=args.pairs, controls=("none",), batch=256)
    t0, c0 = time.perf_counter(), time.process_time()
    swept = sweep(tok, data, measurers, attributes=attrs, config=cfg, progress=False, split="discovery")
    sweep_s, sweep_cpu = time.perf_counter() - t0, time.process_time() - c0
    causal = causal_heatmap(swept.summary)
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
    table = pd.concat(rows, ignore_index=True).merge(split_half(swept.table), on="attribute", how="left")
    table["pairs"], table["n_images"], table["threads"] = args.pairs, args.n, args.threads
    return table, pd.concat(heats, ignore_index=True)


def figure(heats: pd.DataFrame, table: pd.DataFrame, variant: str):
    """Real (swap) and estimated heatmaps side by side, and estimated vs real transfer per position."""
    from probe.viz.attribution import attribution_vs_causal_figure

    swap = heats[heats["method"] == "swap"].pivot(index="position", columns="attribute", values="transfer")
    est = heats[heats["method"] == variant].pivot(index="position", columns="attribute", values="transfer")
    label = {"clamped": "attribution patching (gradient at the recipient)",
             "raw": "attribution patching, unclamped decode"}.get(variant, f"integrated gradients, {variant[2:]} steps")
    return attribution_vs_causal_figure(est, swap, table[table["variant"] == variant], label=label)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="held-out world images")
    ap.add_argument("--seed", type=int, default=2_000_003, help="world seed of the held-out images")
    ap.add_argument("--pairs", type=int, default=64, help="pairs per attribute")
    ap.add_argument("--attributes", default="lighting,bg_blur,global_blur,obj_hue,bg_hue,shape,obj_scale,obj_x,obj_y")
    ap.add_argument("--variants", default="clamped,raw,ig4", help="estimates to compare: clamped, raw, ig<k>")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--paths", default="lighting:26,bg_blur:4,global_blur:4,bg_hue:7,obj_hue:21",
                    help="attribute:position pairs whose single-position path response is written (<out>_paths.csv)")
    ap.add_argument("--paths-only", action="store_true", help="only the path responses (no sweep)")
    ap.add_argument("--out", default="runs/bench_attribution/attribution_world32", help="path stem of the outputs")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.paths:
        torch.set_num_threads(args.threads)
        tok, data = heldout_data(args.n, args.seed)
        paths = pd.concat([path_response(tok, data, a, int(p), pairs=args.pairs)
                           for a, p in (x.split(":") for x in args.paths.split(","))], ignore_index=True)
        paths.to_csv(out.with_name(out.name + "_paths.csv"), index=False)
        print(paths.pivot(index=["attribute", "position"], columns="alpha", values="transfer").round(2).to_string())
    if args.paths_only:
        return 0
    table, heats = run(args)
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
