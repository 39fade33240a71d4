"""Calibration of the swap verdict on planted tokenizers: false confirmations, power, interval coverage.

Every case is :func:`probe.swap.calibration.simulate` on fresh planted worlds
(:mod:`probe.tokenizers.planted`, 16 positions): discovery sweep and confirmation on disjoint images, the
visibility gate, the family-wise bound and the controls of :class:`probe.swap.verdict.VerdictConfig`.

- ``single`` / ``a``: position 0 carries 0.7 of the attribute, positions 1-3 0.1 each: power (position 0
  confirmed), false confirmations (a 0.1 or null position confirmed), coverage; noise SD 0.1, 0.3, 0.6 of
  the mean gap (Gaussian), 0.3 with Student-t (3 df) tails;
- ``redundant`` / ``a``: two positions move 0.4 each (a single one confirmed is false; their set is 0.8);
- ``single`` / ``coin`` and ``shuffled``: labels that carry no information, read with the real measurer;
- ``entangled`` / ``b``: ``b``'s reading also reads ``a``'s position 0;
- ``lost`` / ``a``: the decoder keeps 5% of the gap (must come out "not reconstructed"; at 16 pairs).

Targets (per attribute, family-wise): false confirmation <= 5%; power >= 90% at 64 pairs (a single position
moving 0.7); coverage of the 95% interval >= 93% at 16 pairs and >= 94% at 64 and above (all interval methods
are reported; the verdict uses :data:`probe.swap.intervals.DEFAULT_METHOD`).

    python analyses/bench_verdicts.py                      # full: 60 replicates per case, 30 at 256 pairs (~1 h on a busy core)
    python analyses/bench_verdicts.py --sizes 16 --out runs/v16.csv --figure ''    # or split over processes,
    python analyses/bench_verdicts.py --merge runs/v16.csv runs/v64.csv runs/v256.csv  # then joined
    python analyses/bench_verdicts.py --reps 20 --quick    # a few cases
Writes ``figures/verdict_calibration.csv`` (one row per case) and ``figures/verdict_calibration.{png,svg}``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
FIGURES = HERE.parent / "figures"


def cases(quick: bool, sizes: tuple[int, ...] | None = None) -> list:
    """The benchmark's cases (quick: the three targets at 16 and 64 pairs, noise 0.3; ``sizes``: only these)."""
    from probe.swap.calibration import Case

    sizes = sizes or ((16, 64) if quick else (16, 64, 256))
    out = []
    for n in sizes:
        for noise, tails in ([(0.3, "normal")] if quick else
                             [(0.1, "normal"), (0.3, "normal"), (0.6, "normal"), (0.3, "t3")]):
            out.append(Case("single", "a", n, noise, tails))
        out.append(Case("single", "coin", n))
        if quick:
            continue
        out += [Case("redundant", "a", n), Case("entangled", "b", n)]
        if n < 256:
            out.append(Case("single", "shuffled", n))
        if n == 16:
            out.append(Case("lost", "a", n))
    return out


def run(reps: int, quick: bool, out_csv: Path | None, log=print, sizes: tuple[int, ...] | None = None) -> pd.DataFrame:
    """One row per case with its rates (see :func:`probe.swap.calibration.rates`) and seconds."""
    import torch

    from probe.swap.calibration import rates, simulate

    torch.set_num_threads(1)
    rows = []
    for i, case in enumerate(cases(quick)):
        if sizes and case.pairs not in sizes:
            continue
        t0 = time.perf_counter()
        # 256 pairs cost about twice as much per replicate: half the replicates
        res = simulate(case, reps if case.pairs < 256 else max(1, reps // 2), seed=1000 * i)
        row = {**case.__dict__, **rates(res), "seconds": time.perf_counter() - t0}
        rows.append(row)
        log(f"[verdicts] {case.scenario}/{case.label} n={case.pairs} noise={case.noise} {case.tails}: "
            f"false {row['false_confirmation']:.3f} power {row['power']:.3f} cover_t {row.get('coverage_t', float('nan')):.3f} "
            f"untestable {row['untestable']:.2f} ({row['seconds']:.0f} s)")
        if out_csv is not None:  # finished cases survive an interruption
            out_csv.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame(rows).to_csv(out_csv, index=False)
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """The targets, each with the worst case measured: pooled false confirmation, power at 64 pairs, coverage."""
    from probe.swap.intervals import DEFAULT_METHOD

    cov = f"coverage_{DEFAULT_METHOD}"
    real = table[~table["label"].isin(["coin", "shuffled"])]
    power64 = table[(table["scenario"] == "single") & (table["label"] == "a") & (table["pairs"] == 64)]
    rows = [{"target": "false confirmation per attribute <= 0.05", "worst": table["false_confirmation"].max(),
             "mean": table["false_confirmation"].mean()},
            {"target": "power at 64 pairs >= 0.90 (one position moving 0.7)", "worst": power64["power"].min(),
             "mean": power64["power"].mean()}]
    for n, floor in ((16, 0.93), (64, 0.94), (256, 0.94)):
        g = real[real["pairs"] == n]
        if len(g):
            rows.append({"target": f"coverage ({DEFAULT_METHOD}) at {n} pairs >= {floor}", "worst": g[cov].min(),
                         "mean": g[cov].mean()})
    return pd.DataFrame(rows)


def bench_rows(quick: bool = True) -> list[dict[str, object]]:
    """Rows for analyses/bench.py: the calibration's rates against their targets (unit ``rate``, the target in
    the note). Quick: 20 replicates of the quick cases."""
    table = run(20 if quick else 200, quick, None, log=lambda *_: None)
    return [{"case": f"verdict calibration: {r['target']}", "throughput": r["worst"], "unit": "rate (worst case)",
             "device": "cpu", "note": f"mean over cases {r['mean']:.3f}"} for _, r in summary(table).iterrows()]


def main() -> None:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=60,
                    help="replicates (fresh planted worlds) per case; half as many at 256 pairs")
    ap.add_argument("--quick", action="store_true", help="only the quick cases (16 and 64 pairs, noise 0.3)")
    ap.add_argument("--sizes", default=None, help="comma-separated pair counts to run (default: all; e.g. 256)")
    ap.add_argument("--merge", nargs="+", default=None, metavar="CSV",
                    help="no simulation: join the CSVs of runs split by --sizes (same --reps) into --out and the figure")
    ap.add_argument("--out", default=str(FIGURES / "verdict_calibration.csv"), help="CSV, one row per case")
    ap.add_argument("--figure", default=str(FIGURES / "verdict_calibration"), help="figure path stem ('' for none)")
    args = ap.parse_args()
    sizes = tuple(int(x) for x in args.sizes.split(",")) if args.sizes else None
    if args.merge:  # the seeds depend on the case, not on the process: split runs join into the full table
        table = pd.concat([pd.read_csv(p) for p in args.merge], ignore_index=True)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, index=False)
    else:
        table = run(args.reps, args.quick, Path(args.out), sizes=sizes)
    print(summary(table).to_string(index=False))
    if args.figure:
        from probe.viz.save import save_figure
        from probe.viz.verdicts import calibration_figure

        print("wrote", *save_figure(calibration_figure(table), args.figure))


if __name__ == "__main__":
    main()
