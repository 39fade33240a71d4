"""Benchmark: attribute-world generation speed on one CPU core.

Usage: python analyses/bench_world.py [--n 4096] [--resolution 64 32] [--repeats 3]
Prints images/s per resolution (best of ``--repeats``), by wall clock and per CPU second.
Target (issue 3): >= 2,000 images/s at 64x64 on one core.
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from probe.data import world


def bench(n: int, resolution: int, repeats: int) -> tuple[float, float]:
    """Best images/s of ``repeats`` calls of ``world.sample(n, resolution=resolution)``, by wall
    clock and by this process's CPU time (the latter is steadier on a shared machine)."""
    world.sample(64, resolution=resolution)  # warm-up
    best_wall = best_cpu = 0.0
    for r in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        world.sample(n, seed=r, resolution=resolution)
        best_wall = max(best_wall, n / (time.perf_counter() - t0))
        best_cpu = max(best_cpu, n / (time.process_time() - c0))
    return best_wall, best_cpu


def bench_rows(quick: bool = True) -> list[dict[str, object]]:
    """Rows for analyses/bench.py: world images/s per CPU second at 32 and 64 px (quick: 1024 images, one
    repeat). There is no bare model to compare with: rendering is the model."""
    torch.set_num_threads(1)
    n, repeats = (1024, 1) if quick else (4096, 3)
    return [{"case": f"world.sample {res}px", "throughput": bench(n, res, repeats)[1], "unit": "images/cpu-s",
             "device": "cpu"} for res in (32, 64)]


def main() -> None:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--resolution", type=int, nargs="+", default=[64, 32, 128])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for res in args.resolution:
        wall, cpu = bench(args.n, res, args.repeats)
        print(f"resolution {res:4d}: {wall:8.0f} images/s wall, {cpu:8.0f} images/s per CPU "
              f"second ({args.threads} thread(s), n={args.n})")


if __name__ == "__main__":
    main()
