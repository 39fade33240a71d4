"""Benchmark of the swap engine: a full single-position sweep on world-32, and its overhead over bare decoding.

Measures, on a world-32 token store (default: the demo's, made here when missing):

1. ``sweep``: :func:`probe.swap.sweep` over every position x every world factor with a default
   measurer x ``--pairs`` pairs, with the controls (same-end donor, random position, all-except on
   ``--control-pairs`` pairs; self-swap and ceiling), measuring every factor on every swap;
2. ``bare``: batched decoding alone (``tokenizer.decode`` in batches of ``--batch``) of exactly as many
   images as the sweep decoded;
3. ``engine (no measurers)``: the same sweep with one trivial measurer, so ``engine - bare`` is the engine's
   own overhead (pairing, pasting, queueing, tables);
4. ``measurers``: the measurers alone on that many images (the rest of the sweep's time);
5. ``in_run_*``: the sweep of 1. split from the inside (seconds in ``tokenizer.decode``, in the measurers,
   in the statistics, and the rest): the engine's overhead ``in_run_engine_overhead`` = (sweep - decode -
   measurers) / decode, measured under one and the same load.

Prints and writes a one-row CSV with wall and CPU seconds (this process, all threads) and the load average.
Wall times depend on what else runs on the machine: on a shared machine read the CPU seconds (on an idle
machine with ``--threads 2`` the wall time is about the CPU time over 2 at best) and say so when reporting.

    python analyses/bench_swap.py --threads 2 --pairs 256 --out runs/bench_swap.csv
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd
import torch


class _Zero:
    """A trivial measurer (the engine's own cost without measurement)."""

    name, kind = "zero", "continuous"

    def __call__(self, images: torch.Tensor, *, masks: torch.Tensor | None = None) -> torch.Tensor:
        return images[:, 0, 0, 0]


def main() -> None:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default="runs/demo/store", help="world-32 token store (made when missing)")
    ap.add_argument("--images", type=int, default=4000, help="images of the store made when missing")
    ap.add_argument("--pairs", type=int, default=256, help="pairs per attribute")
    ap.add_argument("--control-pairs", type=int, default=64, help="pairs per attribute for the decode-costly controls")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the 2-core target)")
    ap.add_argument("--attributes", default=None, help="comma-separated (default: every world factor with a measurer)")
    ap.add_argument("--skip-engine-only", action="store_true", help="skip run 3 (engine with a trivial measurer)")
    ap.add_argument("--skip-bare", action="store_true", help="skip runs 2 and 4 (the in-run split remains)")
    ap.add_argument("--out", default=None, help="CSV of the numbers")
    args = ap.parse_args()
    row = measure(args)
    print(pd.Series(row).to_string())
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame([row]).to_csv(args.out, index=False)


def bench_rows(quick: bool = True) -> list[dict[str, object]]:
    """Rows for analyses/bench.py: swapped images per CPU second of the sweep, of the engine with a trivial
    measurer and of bare batched decoding, each against bare decoding. Quick: a 1000-image world-32 store in a
    temporary folder, lighting and bg_blur, 16 pairs (controls on 8), one thread."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench_swap_") as d:
        args = argparse.Namespace(store=str(Path(d) / "store"), images=1000 if quick else 4000,
                                  pairs=16 if quick else 256, control_pairs=8 if quick else 64, batch=256,
                                  threads=1, attributes="lighting,bg_blur" if quick else None,
                                  skip_engine_only=False, skip_bare=False)
        r = measure(args)
    n, bare = r["decoded_images"], r["bare_decode_cpu_s"]
    return [{"case": f"world-32 {name}, {r['attributes']} attributes x 32 positions, {r['pairs']} pairs",
             "throughput": n / cpu, "unit": "swaps/cpu-s", "vs_bare": cpu / bare, "device": "cpu"}
            for name, cpu in (("bare decode", bare), ("engine, trivial measurer", r["engine_no_measurers_cpu_s"]),
                              ("sweep with measurers", r["sweep_cpu_s"]))]


def measure(args: argparse.Namespace) -> dict[str, object]:
    """The numbers of one benchmark run (``args``: the command's options)."""
    torch.set_num_threads(args.threads)

    import probe
    from probe.store import TokenStore
    from probe.swap import SwapConfig, SwapData, sweep
    from probe.swap.engine import _measure_all
    from probe.swap.validated import default_measurers

    store_path = Path(args.store)
    if not (store_path / "header.json").exists():
        from probe.worlds.attribute import default_manifest
        from probe.encode import tokenize_manifest

        tok = probe.load_tokenizer("world-32")
        manifest = default_manifest("world-32", size=args.images, seed=0, resolution=int(tok.image_size))
        tokenize_manifest(manifest, tok, store_path, batch_size=256, num_workers=0)
    store = TokenStore.open(store_path)
    tok = probe.load_tokenizer("world-32")
    attrs = [a.strip() for a in args.attributes.split(",")] if args.attributes else None
    measurers = default_measurers(store, attrs)
    data = SwapData.from_store(store, tok)
    cfg = SwapConfig(pairs=args.pairs, control_pairs=args.control_pairs, batch=args.batch)
    names = list(measurers)

    t0, c0 = time.perf_counter(), time.process_time()
    swept = sweep(tok, data, measurers, attributes=names, config=cfg, progress=False)
    t_sweep, c_sweep = time.perf_counter() - t0, time.process_time() - c0
    decoded = int(swept.table.attrs.get("decoded", 0)) or _count_decodes(swept.table)
    # inside the same run (the same load): seconds in tokenizer.decode, in the measurers, and the rest
    in_decode = float(swept.table.attrs.get("decode_s", float("nan")))
    in_measure = float(swept.table.attrs.get("measure_s", float("nan")))
    in_summary = float(swept.table.attrs.get("summary_s", float("nan")))

    q = data.quantized[torch.randint(0, len(data.quantized), (decoded,), generator=torch.Generator().manual_seed(0))]
    t_bare = c_bare = float("nan")
    if not args.skip_bare:
        t0, c0 = time.perf_counter(), time.process_time()
        with torch.no_grad():
            for s in range(0, decoded, args.batch):
                tok.decode(q[s : s + args.batch])
        t_bare, c_bare = time.perf_counter() - t0, time.process_time() - c0

    t_engine = c_engine = float("nan")
    if not args.skip_engine_only:
        zero = {a: _Zero() for a in names}
        t0, c0 = time.perf_counter(), time.process_time()
        sweep(tok, data, zero, attributes=names, config=cfg, progress=False)
        t_engine, c_engine = time.perf_counter() - t0, time.process_time() - c0

    with torch.no_grad():
        imgs = tok.decode(q[: args.batch])
    masks = data.masks[: args.batch] if data.masks is not None else None
    t0, c0 = time.perf_counter(), time.process_time()
    _measure_all([measurers[a] for a in names], imgs, masks)
    t_meas = (time.perf_counter() - t0) * decoded / len(imgs)
    c_meas = (time.process_time() - c0) * decoded / len(imgs)

    row = {"attributes": len(names), "positions": int(data.quantized.shape[1]), "pairs": args.pairs,
           "control_pairs": args.control_pairs, "threads": args.threads, "decoded_images": decoded,
           "swap_rows": len(swept.table), "sweep_s": round(t_sweep, 1), "bare_decode_s": round(t_bare, 1),
           "engine_no_measurers_s": round(t_engine, 1), "measurers_s_est": round(t_meas, 1),
           "engine_overhead": round((t_engine - t_bare) / t_bare, 3),
           "overhead_incl_measurers": round((t_sweep - t_bare) / t_bare, 3),
           # CPU seconds of this process (both threads): what the work costs whatever else runs
           "sweep_cpu_s": round(c_sweep, 1), "bare_decode_cpu_s": round(c_bare, 1),
           "engine_no_measurers_cpu_s": round(c_engine, 1), "measurers_cpu_s_est": round(c_meas, 1),
           "engine_overhead_cpu": round((c_engine - c_bare) / c_bare, 3),
           "overhead_incl_measurers_cpu": round((c_sweep - c_bare) / c_bare, 3),
           "load_average_1min": round(os.getloadavg()[0], 1),
           # the same sweep split from the inside: robust to the load changing between runs
           "in_run_decode_s": round(in_decode, 1), "in_run_measure_s": round(in_measure, 1),
           "in_run_summary_s": round(in_summary, 1),
           "in_run_engine_s": round(t_sweep - in_decode - in_measure, 1),
           "in_run_engine_overhead": round((t_sweep - in_decode - in_measure) / in_decode, 3)}
    return row


def _count_decodes(table: pd.DataFrame) -> int:
    one = table[table["measurer"] == table["measurer"].iloc[0]]
    decoded = one[one["control"].isin(["none", "same_end", "all_except"])]
    return int(len(decoded))


if __name__ == "__main__":
    main()
