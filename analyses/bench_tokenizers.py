"""Encode / decode throughput (images/s) of TiTok presets on the current device (random weights).

Example (CPU, one thread, small batches):

    python analyses/bench_tokenizers.py --presets titok-s128 titok-b64 titok-l32 --batch-sizes 1 8

Each (preset, batch) cell runs ``--warmup`` untimed calls, then times ``--repeats`` calls and
reports images / median seconds. A cell whose predicted time (from the previous batch size) would
exceed ``--max-cell-seconds`` is skipped and marked "skipped". ``--csv`` also writes the table.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch

from probe.device import resolve_device
from probe.tokenizers import build_tokenizer, list_presets

DEFAULT_PRESETS = ["titok-s128", "titok-b64", "titok-l32"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def time_call(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> float:
    """Median wall seconds of ``fn`` over ``repeats`` calls after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_preset(name: str, batch_sizes: list[int], device: torch.device, *, warmup: int, repeats: int,
                 max_cell_seconds: float, dtype: torch.dtype = torch.float32, seed: int = 0
                 ) -> list[dict[str, object]]:
    """Rows ``{preset, batch, encode_img_s, decode_img_s, ...}`` for one preset."""
    model = build_tokenizer(name, seed=seed, device=device).to(dtype)
    params_m = sum(p.numel() for p in model.parameters()) / 1e6
    size = model.image_size
    gen = torch.Generator().manual_seed(seed)
    rows: list[dict[str, object]] = []
    per_image_s: float | None = None  # from the previous batch size, to predict the next cell
    for b in sorted(batch_sizes):
        row: dict[str, object] = {"preset": name, "params_M": round(params_m, 2), "batch": b, "device": str(device)}
        predicted = None if per_image_s is None else per_image_s * b * (warmup + repeats)
        if predicted is not None and predicted > max_cell_seconds:
            row.update(encode_img_s="skipped", decode_img_s="skipped",
                       note=f"predicted {predicted:.0f}s > --max-cell-seconds {max_cell_seconds:.0f}")
            rows.append(row)
            print(f"  {name} batch {b}: skipped (predicted {predicted:.0f}s)", file=sys.stderr, flush=True)
            continue
        x = torch.rand(b, 3, size, size, generator=gen).to(device)
        enc = model.encode(x)
        if model.is_discrete:
            def decode() -> object:
                return model.decode_indices(enc.indices)
        else:
            def decode() -> object:
                with torch.inference_mode():
                    return model.decode(model.quantize(enc.features)[0])
        t_enc = time_call(lambda: model.encode(x), device, warmup, repeats)
        t_dec = time_call(decode, device, warmup, repeats)
        per_image_s = (t_enc + t_dec) / b
        row.update(encode_img_s=round(b / t_enc, 3), decode_img_s=round(b / t_dec, 3), note="")
        rows.append(row)
        print(f"  {name} batch {b}: encode {b / t_enc:.3f} img/s, decode {b / t_dec:.3f} img/s",
              file=sys.stderr, flush=True)
    del model
    return rows


def bench_rows(quick: bool = True) -> list[dict[str, object]]:
    """Rows for analyses/bench.py: encode and decode images/s per preset (random weights) on the default device;
    quick: titok-tiny at batch 8, one repeat (titok-l32 takes minutes per cell on a shared CPU; --full runs the
    default presets). The reference implementation is not installed here, so there is no ratio against it."""
    torch.set_num_threads(1)
    device = resolve_device(None)
    presets = ["titok-tiny"] if quick else DEFAULT_PRESETS
    rows = []
    for name in presets:
        for r in bench_preset(name, [8], device, warmup=1, repeats=1 if quick else 3, max_cell_seconds=600.0):
            for op in ("encode", "decode"):
                rows.append({"case": f"{name} {op} batch {r['batch']}", "throughput": r[f"{op}_img_s"],
                             "unit": "images/s", "device": r["device"]})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", nargs="+", default=DEFAULT_PRESETS, choices=list_presets(), metavar="PRESET",
                    help=f"presets to run (default: {' '.join(DEFAULT_PRESETS)}; any of {', '.join(list_presets())})")
    ap.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8, 32])
    ap.add_argument("--device", default=None, help="force a device (default: cuda, then mps, then cpu)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for torch (default 1: a shared machine)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-cell-seconds", type=float, default=600.0,
                    help="skip a cell predicted (from the previous batch size) to take longer than this")
    ap.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    ap.add_argument("--csv", type=Path, default=None, help="also write the table here")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    dtype = getattr(torch, args.dtype)  # models cast their inputs to the parameter dtype
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, dtype {args.dtype}",
          file=sys.stderr)
    rows = []
    for name in args.presets:
        rows += bench_preset(name, args.batch_sizes, device, warmup=args.warmup, repeats=args.repeats,
                             max_cell_seconds=args.max_cell_seconds, dtype=dtype)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    if args.csv is not None:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
