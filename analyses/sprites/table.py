"""The sprites answer table: per tokenizer and factor, is it carried by a single position, a set, or none?

Reads each run's validated map (``tokenprobe run analyses/sprites.yaml``: the swap engine's verdicts) and each
model's reconstruction gaps (``fidelity.py``), and classifies every factor:

- ``not reconstructed``: the decoder keeps under 0.1 of the factor's gap (nothing for a swap to move);
- ``single position``: a single-position mapping is confirmed (transfer 95% interval >= 0.5, beating a
  random-position paste);
- ``set of k``: no single position is confirmed but a greedy set of k positions is;
- ``none``: neither (the best single position and its transfer are given).

    python analyses/sprites/table.py --runs runs/sprites runs/sprites-64-run --models sprites-32 sprites-64 \
        --fidelity runs/sprites-32/fidelity.csv runs/sprites-64/fidelity.csv --out figures/sprites_semantics.csv

Also writes ``<out stem>_compression.csv``: one row per model (:func:`compression_rows`).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

NOT_RECONSTRUCTED = 0.1


def classify(row: dict, gap_kept: float | None) -> str:
    if gap_kept is not None and gap_kept < NOT_RECONSTRUCTED:
        return "not reconstructed"
    if row.get("verdict") != "confirmed":
        return "none"
    size = int(row.get("set_size") or 1)
    return "single position" if size == 1 else f"set of {size}"


def answer_table(run: Path, model: str, fidelity: pd.DataFrame | None) -> pd.DataFrame:
    vmap = pd.read_csv(run / "swap" / "validated_map.csv")
    gaps = {} if fidelity is None else dict(zip(fidelity["factor"], fidelity["gap_kept"]))
    rows = []
    for r in vmap.to_dict("records"):
        if r.get("verdict") == "untested" or str(r["attribute"]).endswith("_bin"):
            continue
        gap = gaps.get(r["attribute"])
        rows.append({"model": model, "factor": r["attribute"], "gap_kept": gap,
                     "answer": classify(r, gap), "positions": str(r["positions"]).replace(".0", ""),
                     "transfer": r["transfer"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
                     "specificity": r.get("specificity"), "entangled_with": r.get("entangled_with"),
                     "best_single": r.get("best_single"), "best_single_transfer": r.get("best_single_transfer")})
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    lines = ["| model | factor | gap kept | answer | positions | transfer [95% CI] | best single (transfer) | side effects |",
             "|---|---|---|---|---|---|---|---|"]
    for r in table.to_dict("records"):
        gap = "-" if pd.isna(r["gap_kept"]) else f"{r['gap_kept']:.2f}"
        best = "-" if pd.isna(r["best_single"]) else f"{int(r['best_single'])} ({r['best_single_transfer']:.2f})"
        side = "" if pd.isna(r["entangled_with"]) else str(r["entangled_with"])
        lines.append(f"| {r['model']} | {r['factor']} | {gap} | {r['answer']} | {r['positions']} | "
                     f"{r['transfer']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}] | {best} | {side} |")
    return "\n".join(lines)


def compression_rows(table: pd.DataFrame, psnr: dict[str, float]) -> pd.DataFrame:
    """One row per model (the compression question): held-out PSNR, factors reconstructed, how many of them a
    single position / a set / nothing carries, and the mean best single-position transfer over the reconstructed
    factors (higher: sharper localization)."""
    rows = []
    for model, g in table.groupby("model", sort=False):
        rec = g[g["answer"] != "not reconstructed"]
        rows.append({"model": model, "heldout_psnr_db": psnr.get(model), "factors": len(g),
                     "reconstructed": len(rec), "single": int((rec["answer"] == "single position").sum()),
                     "set": int(rec["answer"].str.startswith("set").sum()), "none": int((rec["answer"] == "none").sum()),
                     "mean_best_single_transfer": float(rec["best_single_transfer"].mean()) if len(rec) else float("nan")})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="+", type=Path, required=True, help="run folders of tokenprobe run")
    ap.add_argument("--models", nargs="+", required=True, help="a label per run")
    ap.add_argument("--fidelity", nargs="*", type=Path, default=[], help="fidelity.py CSV per run (same order)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    fids = [pd.read_csv(p) for p in args.fidelity] + [None] * (len(args.runs) - len(args.fidelity))
    table = pd.concat([answer_table(r, m, f) for r, m, f in zip(args.runs, args.models, fids)], ignore_index=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(markdown(table))
    psnr = {}
    for model, f in zip(args.models, args.fidelity):
        summary = f.with_suffix(".json")
        if summary.exists():
            import json

            record = json.loads(summary.read_text())  # fidelity.py: {model: {heldout_psnr_db, ...}}
            psnr[model] = record.get(model, next(iter(record.values()), {})).get("heldout_psnr_db")
    rows = compression_rows(table, psnr)
    rows.to_csv(args.out.with_name(args.out.stem + "_compression.csv"), index=False)
    print()
    print(rows.to_string(index=False, float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    main()
