"""Benchmark: the full probe suite (UMAP excluded) on 50,000 images x 32 positions x 10 attributes.

Synthetic tokens (4096 codes, features of dim 12) with six planted position <- attribute links
and four null attributes; 200 permutations; ``n_jobs`` threads (default 2). Prints the wall time,
the process CPU time (all threads), the per-probe breakdown and whether the planted positions
came out on top.

    .venv/bin/python analyses/bench_probes.py [--images 50000] [--jobs 2] [--permutations 200]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import time


def main() -> None:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=50_000)
    ap.add_argument("--positions", type=int, default=32)
    ap.add_argument("--codes", type=int, default=4096)
    ap.add_argument("--dim", type=int, default=12)
    ap.add_argument("--permutations", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the timings as JSON here")
    args = ap.parse_args()
    report = measure(args.images, args.positions, args.codes, args.dim, args.permutations, args.jobs, args.seed)
    print(json.dumps(report, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


def bench_rows(quick: bool = True) -> list[dict[str, object]]:
    """Rows for analyses/bench.py: images probed per wall second over 32 positions x 10 attributes (quick: 5000
    images, 20 permutations; full: the issue's 50,000 and 200). No bare model: the probes are the computation."""
    images, perms = (5000, 20) if quick else (50_000, 200)
    r = measure(images, 32, 4096, 12, perms, 2, 0, progress=False)
    return [{"case": f"probe suite, 32 positions x {r['attributes']} attributes, {perms} perms, 2 jobs",
             "throughput": r["images"] / r["wall_s"], "unit": "images/s", "device": "cpu",
             "note": f"planted top-1 {sum(r['planted_top1_correct'].values())}/{len(r['planted_top1_correct'])}"}]


def measure(images: int, positions: int, codes: int, dim: int, permutations: int, jobs: int, seed: int,
            progress: bool = True) -> dict:
    """Time the probe suite on planted synthetic tokens; the report printed by ``main``."""
    import numpy as np

    from probe.probes import run_probes
    from probe.probes.synthetic import planted_tokens

    planted = {
        "shape": ("categorical", 4, 3),
        "blur": ("categorical", 2, 18),
        "hue": ("continuous", 8, 7),
        "size": ("continuous", 8, 25),
        "texture": ("categorical", 8, 12),
        "count": ("categorical", 5, 30),
    }
    null = {"null_cat2": ("categorical", 2), "null_cat6": ("categorical", 6),
            "null_cont_a": ("continuous", 4), "null_cont_b": ("continuous", 4)}
    t0 = time.perf_counter()
    data = planted_tokens(images, positions, codes, dim, planted=planted, null=null,
                          noise=0.8, seed=seed)
    gen_s = time.perf_counter() - t0

    # warm the compiled kernels (numba caches them on disk; the first ever run compiles)
    small = planted_tokens(500, 4, 64, 4, seed=1)
    run_probes(small.tokens, small.attributes, features=small.features, codebook=small.codebook,
               permutations=5, progress=False)

    cpu0 = time.process_time()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    res = run_probes(data.tokens, data.attributes, features=data.features, codebook=data.codebook,
                     permutations=permutations, seed=seed, n_jobs=jobs, progress=progress)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)

    hits = {a: res.semantic_map.top_positions(a, 1)[0] for a, p in data.truth.items() if p is not None}
    t = res.table
    null_hits = t[(t["q_value"] < 0.05) & t["attribute"].str.startswith("null")]
    null_discoveries = len(null_hits)
    report = {
        "images": images, "positions": positions, "codes": codes, "dim": dim,
        "attributes": len(data.truth), "permutations": permutations, "n_jobs": jobs,
        "cpu_count": os.cpu_count(), "load_avg_1min_at_end": os.getloadavg()[0],
        "generate_s": round(gen_s, 2), "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
        "user_s": round(ru1.ru_utime - ru0.ru_utime, 2), "sys_s": round(ru1.ru_stime - ru0.ru_stime, 2),
        "max_rss_mib": round(ru1.ru_maxrss / 1024, 1),
        "breakdown_wall_s": {k: round(v, 2) for k, v in sorted(res.timings.items(), key=lambda kv: -kv[1])},
        "breakdown_cpu_s": {k: round(v, 2) for k, v in sorted(res.cpu_timings.items(), key=lambda kv: -kv[1])},
        "table_rows": len(res.table),
        "planted_top1_correct": {a: hits[a] == data.truth[a] for a in hits},
        "discoveries_q05": int((t["q_value"] < 0.05).sum()),
        "null_discoveries_q05": null_discoveries,
        "null_discovery_cells": null_hits[["position", "attribute", "probe", "value", "null_mean", "p_value", "q_value"]]
        .to_dict("records"),
    }
    assert np.isfinite(wall)
    return report


if __name__ == "__main__":
    main()
