"""Benchmark: attribute-world generation speed on one CPU core.

Usage: python analyses/bench_world.py [--n 4096] [--resolution 64 32] [--repeats 3]
Prints images/s per resolution (best of ``--repeats``; the machine may be shared).
Target (issue 3): >= 2,000 images/s at 64x64 on one core.
"""
from __future__ import annotations

import argparse
import time

import torch

from probe.data import world


def bench(n: int, resolution: int, repeats: int) -> float:
    """Best images/s of ``repeats`` calls of ``world.sample(n, resolution=resolution)``."""
    world.sample(64, resolution=resolution)  # warm-up
    best = 0.0
    for r in range(repeats):
        t0 = time.perf_counter()
        world.sample(n, seed=r, resolution=resolution)
        best = max(best, n / (time.perf_counter() - t0))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--resolution", type=int, nargs="+", default=[64, 32, 128])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for res in args.resolution:
        print(f"resolution {res:4d}: {bench(args.n, res, args.repeats):8.0f} images/s "
              f"({args.threads} thread(s), n={args.n})")


if __name__ == "__main__":
    main()
