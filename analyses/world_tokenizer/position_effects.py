"""Per-position swap effects of one or more tokenizers: a bar per token position, one row per model.

Reads the ``.json`` written by ``localization.py`` (its ``transfer_all``: for each factor the swap engine's
transfer, the fraction of each pair's recipient-to-donor gap moved by pasting the token at each position) and
draws every measured factor; a factor whose gap the decoder does not keep (``gap_ratio`` under the script's
``min_gap_ratio``) is marked "not reconstructed" (its transfers are ratios of two numbers near zero).

Usage (what produced figures/world32_position_effects.png; run folders as in README.md, "Reproduce"):
    python analyses/world_tokenizer/position_effects.py \
        --loc runs/world-32/loc.json runs/world-32-continuous/loc.json runs/world-32-previous/loc.json \
        --labels "world-32" "world-32-continuous" "world-32 (previous)" --out figures/world32_position_effects
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from probe.viz import save_figure


def effects_table(loc_json: Path, label: str) -> pd.DataFrame:
    """Tidy table: model, factor, position, transfer, reconstructed (gap kept >= ``min_gap_ratio``)."""
    extras = json.loads(loc_json.read_text())
    table = pd.read_csv(loc_json.with_suffix(".csv"), keep_default_na=False, na_values=[""])
    kept = dict(zip(table["factor"], table["gap_ratio"]))
    rows = []
    for factor, values in extras["transfer_all"].items():
        for pos, v in enumerate(values):
            rows.append({"model": label, "factor": factor, "position": pos, "transfer": v,
                         "reconstructed": bool(kept.get(factor, 0.0) >= extras["min_gap_ratio"])})
    return pd.DataFrame(rows)


def effects_figure(tidy: pd.DataFrame):
    models = list(dict.fromkeys(tidy["model"]))
    factors = list(dict.fromkeys(tidy["factor"]))
    fig, axes = plt.subplots(len(models), len(factors), figsize=(3.2 * len(factors), 2.0 * len(models)),
                             squeeze=False, sharex=True)
    for i, m in enumerate(models):
        for j, f in enumerate(factors):
            ax = axes[i, j]
            sub = tidy[(tidy.model == m) & (tidy.factor == f)]
            if not sub["reconstructed"].all():
                ax.text(0.5, 0.5, "not reconstructed", ha="center", va="center", transform=ax.transAxes,
                        fontsize=8, color="tab:red")
            else:
                v = sub["transfer"].to_numpy()
                colors = np.where(v >= 0.5, "tab:green", np.where(v > 0.1, "tab:blue", "tab:gray"))
                ax.bar(sub["position"], v, color=colors, width=0.8)
                ax.axhline(0.5, color="tab:green", lw=0.7, ls="--")
                ax.axhline(0.1, color="k", lw=0.5, ls=":")
                ax.set_ylim(min(-0.1, float(v.min()) - 0.05), max(1.0, float(v.max()) + 0.05))
            if i == 0:
                ax.set_title(f, fontsize=9)
            if j == 0:
                ax.set_ylabel(m, fontsize=7)
            if i == len(models) - 1:
                ax.set_xlabel("token position", fontsize=8)
    fig.suptitle("Single-position swaps: transfer, the fraction of each pair's gap moved (swap engine, 200 pairs, "
                 "held-out)", fontsize=9)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
    ap.add_argument("--loc", nargs="+", type=Path, required=True, help="localization.py .json files")
    ap.add_argument("--labels", nargs="+", required=True)
    ap.add_argument("--out", type=Path, required=True, help="path prefix: writes .png, .svg and .csv")
    args = ap.parse_args(argv)
    if len(args.labels) != len(args.loc):
        raise SystemExit("--labels: give one label per --loc file")
    tidy = pd.concat([effects_table(p, lab) for p, lab in zip(args.loc, args.labels)], ignore_index=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tidy.to_csv(args.out.with_suffix(".csv"), index=False)
    save_figure(effects_figure(tidy), args.out, dpi=120)
    print(f"wrote {args.out}.png/.svg/.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
