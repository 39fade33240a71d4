"""Every benchmark under analyses/ in a quick mode, in one table: throughput, time against the bare model, peak
memory, device.

Each ``analyses/bench_*.py`` that defines ``bench_rows(quick: bool) -> list[dict]`` is imported and called in a
fresh process of its own (so its peak memory is its own, and one failure does not stop the others). A row holds
``case``, ``throughput``, ``unit`` and, where the benchmark has one, ``vs_bare``: its time divided by the time of
the bare model on the same work (1.10 = 10% overhead); ``device`` and ``note`` are optional. Peak memory is the
process's peak resident set (CPU) or the peak CUDA allocation, added here. A benchmark without ``bench_rows``
is listed with a note, so a new one shows up until it gets one.

    python analyses/bench.py                 # quick mode (a few minutes on 2 shared CPU cores)
    python analyses/bench.py --full          # each benchmark's own default sizes
    python analyses/bench.py --only encode world --csv runs/bench.csv
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import importlib.util
import multiprocessing as mp
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import pandas as pd

HERE = Path(__file__).resolve().parent
COLUMNS = ["benchmark", "case", "throughput", "unit", "vs_bare", "peak_mib", "device", "seconds", "note"]


def benchmarks() -> dict[str, Path]:
    """name -> file of every ``analyses/bench_*.py`` (``bench_encode.py`` -> ``encode``)."""
    return {p.stem.removeprefix("bench_"): p for p in sorted(HERE.glob("bench_*.py"))}


def _load(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"_bench_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run_one(path: str, quick: bool) -> tuple[list[dict[str, Any]], float, float | None]:
    """In a child process: the benchmark's rows, its peak RSS (MiB) and peak CUDA allocation (MiB or None)."""
    import torch

    torch.set_num_threads(1)
    mod = _load(Path(path))
    if not hasattr(mod, "bench_rows"):
        return [{"case": "-", "note": "no bench_rows(quick) function: not run"}], 0.0, None
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    rows = list(mod.bench_rows(quick=quick))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    cuda = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    return rows, rss, cuda


def run_all(names: list[str] | None = None, *, quick: bool = True, log=print) -> pd.DataFrame:
    """One row per benchmark case (see the module docstring)."""
    found = benchmarks()
    unknown = sorted(set(names or []) - set(found))
    if unknown:
        raise SystemExit(f"bench.py: --only {' '.join(unknown)}: no such benchmark; have {', '.join(found)}")
    rows: list[dict[str, Any]] = []
    ctx = mp.get_context("spawn")  # a clean interpreter per benchmark: its own peak memory
    for name, path in found.items():
        if names and name not in names:
            continue
        log(f"[bench] {name} ...")
        t0 = time.perf_counter()
        try:
            with cf.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
                got, rss, cuda = pool.submit(_run_one, str(path), quick).result()
        except Exception:  # noqa: BLE001 - one failing benchmark is a row, not the end of the table
            last = traceback.format_exc().strip().splitlines()[-1]
            got, rss, cuda = [{"case": "-", "note": f"failed: {last}"}], 0.0, None
        seconds = time.perf_counter() - t0
        for r in got:
            peak = cuda if cuda is not None and str(r.get("device", "")).startswith("cuda") else rss
            rows.append({"benchmark": name, "peak_mib": round(peak, 1) if peak else None,
                         "seconds": round(seconds, 1), **r})
    df = pd.DataFrame(rows)
    return df.reindex(columns=COLUMNS + [c for c in df.columns if c not in COLUMNS])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true", help="each benchmark's full sizes instead of the quick mode")
    ap.add_argument("--only", nargs="+", default=None, metavar="NAME",
                    help=f"run only these (of: {', '.join(benchmarks())})")
    ap.add_argument("--csv", type=Path, default=None, help="also write the table here")
    args = ap.parse_args(argv)
    table = run_all(args.only, quick=not args.full, log=lambda s: print(s, file=sys.stderr, flush=True))
    with pd.option_context("display.width", 200, "display.max_colwidth", 70, "display.float_format", "{:.4g}".format):
        print(table.astype(object).where(table.notna(), "").to_string(index=False))
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
