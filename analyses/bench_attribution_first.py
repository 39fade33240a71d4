"""The validated map of a world-32 store two ways: the exhaustive sweep, and attribution first.

Method. On a world-32 token store (default: the demo's; made here when missing), for every world attribute
with a default measurer:

- ``exhaustive``: :func:`probe.swap.validate` on a full single-position sweep (every position,
  ``--pairs`` pairs, the default controls on ``--control-pairs`` of them), greedy position sets (up to
  ``--max-set``, on ``min(64, --pairs)`` pairs, as the pipeline runs it) where no single position is confirmed;
- ``attribution``: the same, on :func:`probe.swap.attribution.attribution_first_sweep`: attribution
  (integrated gradients, 4 steps) ranks every position, real swaps with the same controls test the top ``--k``,
  and the greedy pool's worth where none of those is confirmed.

Writes ``<out>.csv`` (the two answer tables side by side: positions, transfer, interval, verdict,
specificity, and whether they agree) and ``<out>_timing.csv`` (wall and CPU seconds, decoded images, the load
average). On a shared machine read the CPU seconds: on two idle cores the wall time is at best CPU / 2.

    python analyses/bench_attribution_first.py --pairs 16 --control-pairs 8 --max-set 4 --out figures/attribution_first_demo
    python analyses/bench_attribution_first.py --pairs 256 --modes attribution --out runs/abf/attr256
"""
from __future__ import annotations

import argparse
import os
from dataclasses import replace
import time
from pathlib import Path

import pandas as pd
import torch

KEEP = ["positions", "transfer", "ci_low", "ci_high", "verdict", "specificity", "source"]


def _store(path: Path, images: int):
    import probe
    from probe.store import TokenStore

    if not (path / "header.json").exists():
        from probe.encode import tokenize_manifest
        from probe.worlds.attribute import default_manifest

        tok = probe.load_tokenizer("world-32")
        manifest = default_manifest("world-32", size=images, seed=0, resolution=int(tok.image_size))
        tokenize_manifest(manifest, tok, path, batch_size=256, num_workers=0)
    return TokenStore.open(path)


def run(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(answers side by side, timing rows)."""
    torch.set_num_threads(args.threads)
    import probe
    from probe.swap import SwapConfig, SwapData
    from probe.swap.attribution import attribution_first_sweep
    from probe.swap.validated import default_measurers, validate

    store = _store(Path(args.store), args.images)
    tok = probe.load_tokenizer("world-32")
    attrs = [a.strip() for a in args.attributes.split(",")] if args.attributes else None
    measurers = default_measurers(store, attrs)
    attrs = list(measurers)
    data = SwapData.from_store(store, tok)
    cfg = SwapConfig(pairs=args.pairs, control_pairs=args.control_pairs, greedy_pairs=min(64, args.pairs),
                     max_set=args.max_set)
    maps, timing = {}, []
    for mode in args.modes.split(","):
        t0, c0 = time.perf_counter(), time.process_time()
        if mode == "exhaustive":
            vm = validate(tok, data, measurers, None, attributes=attrs, config=replace(cfg, mode="exhaustive"),
                          progress=False)
        elif mode == "attribution":
            sw, est = attribution_first_sweep(tok, data, measurers, attributes=attrs, config=cfg, k=args.k)
            vm = validate(tok, data, measurers, None, attributes=attrs, config=cfg, progress=False, sweep_result=sw,
                          attribution=est)
        else:
            raise SystemExit(f"bench_attribution_first.py: --modes {mode!r}: use exhaustive, attribution")
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        maps[mode] = vm
        if getattr(args, "out", None):  # each mode's answers as soon as it is done (runs in parallel can be joined)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            vm.answers.to_csv(Path(args.out).with_name(f"{Path(args.out).name}_{mode}_answers.csv"), index=False)
        timing.append({"mode": mode, "attributes": len(attrs), "pairs": args.pairs,
                       "control_pairs": args.control_pairs, "k": args.k if mode == "attribution" else None,
                       "threads": args.threads, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
                       "idle_2core_s_est": round(cpu / 2, 1),
                       "sweep_cells_tested": int(len(vm.sweep.summary)),
                       "decoded": int(vm.sweep.table.attrs.get("decoded", 0)),
                       "load_average_1min": round(os.getloadavg()[0], 1)})
        print(pd.Series(timing[-1]).to_string(), flush=True)
    return side_by_side({m: vm.answers for m, vm in maps.items()}), pd.DataFrame(timing)


def side_by_side(answers: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """mode -> answers table, as one row per attribute with each mode's columns and whether they agree."""
    frames = [a.set_index("attribute").reindex(columns=KEEP).add_prefix(f"{m}_") for m, a in answers.items()]
    side = pd.concat(frames, axis=1).reset_index()
    if {"exhaustive", "attribution"} <= set(answers):
        side["same_answer"] = side["exhaustive_positions"].astype(str) == side["attribution_positions"].astype(str)
        side["same_verdict"] = ((side["exhaustive_verdict"] == side["attribution_verdict"])
                                & (side["exhaustive_specificity"] == side["attribution_specificity"]))
    return side


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default="runs/demo/store", help="world-32 token store (made when missing)")
    ap.add_argument("--images", type=int, default=4000, help="images of the store made when missing")
    ap.add_argument("--attributes", default=None, help="comma-separated (default: every one with a default measurer)")
    ap.add_argument("--pairs", type=int, default=256)
    ap.add_argument("--control-pairs", type=int, default=64)
    ap.add_argument("--k", type=int, default=3, help="positions per attribute the real swaps test first")
    ap.add_argument("--max-set", type=int, default=8, help="largest greedy position set (the demo: 4)")
    ap.add_argument("--modes", default="exhaustive,attribution")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="runs/bench_attribution_first/demo", help="path stem of the outputs")
    ap.add_argument("--join", nargs=2, metavar=("EXHAUSTIVE_STEM", "ATTRIBUTION_STEM"), default=None,
                    help="only join two runs' answers and timing (each made with one of --modes) into --out")
    args = ap.parse_args(argv)
    if args.join:
        stems = dict(zip(("exhaustive", "attribution"), (Path(x) for x in args.join)))
        side = side_by_side({m: pd.read_csv(st.with_name(f"{st.name}_{m}_answers.csv"), dtype={"positions": str})
                             for m, st in stems.items()})
        timing = pd.concat([pd.read_csv(st.with_name(st.name + "_timing.csv")) for st in stems.values()])
    else:
        side, timing = run(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    side.to_csv(out.with_suffix(".csv"), index=False)
    timing.to_csv(out.with_name(out.name + "_timing.csv"), index=False)
    with pd.option_context("display.width", 250, "display.max_columns", 40):
        print(side.round(3).to_string(index=False))
        print(timing.to_string(index=False))
    return 0


def bench_rows(quick: bool = True) -> list[dict[str, object]]:
    """Rows for analyses/bench.py: the validated map exhaustively and attribution first (CPU seconds, whether
    the answers agree). Quick: a 1000-image world-32 store in a temporary folder, lighting and bg_hue, 32 pairs
    (controls on 16), one thread. Full: the demo store, every attribute, 256 pairs (controls on 64)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench_attr_first_") as d:
        args = argparse.Namespace(store=str(Path(d) / "store") if quick else "runs/demo/store",
                                  images=1000 if quick else 4000, attributes="lighting,bg_hue" if quick else None,
                                  pairs=32 if quick else 256, control_pairs=16 if quick else 64, k=3, max_set=8,
                                  modes="exhaustive,attribution", threads=1)
        side, timing = run(args)
    t = timing.set_index("mode")
    same = f"same answers {int(side['same_answer'].sum())}/{len(side)}, same verdicts {int(side['same_verdict'].sum())}/{len(side)}"
    what = f"{int(t.loc['exhaustive', 'attributes'])} attributes, {args.pairs} pairs"
    return [{"case": f"world-32 validated map, exhaustive sweep, {what}", "throughput": 1 / t.loc["exhaustive", "cpu_s"],
             "unit": "maps/cpu-s", "device": "cpu", "note": f"{t.loc['exhaustive', 'cpu_s']} cpu-s"},
            {"case": f"world-32 validated map, attribution first (k={args.k}), {what}",
             "throughput": 1 / t.loc["attribution", "cpu_s"], "unit": "maps/cpu-s",
             "vs_bare": t.loc["attribution", "cpu_s"] / t.loc["exhaustive", "cpu_s"], "device": "cpu",
             "note": f"{t.loc['attribution', 'cpu_s']} cpu-s; {same}"}]


if __name__ == "__main__":
    raise SystemExit(main())
