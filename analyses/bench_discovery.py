"""Discovery benchmark: are the pipeline's answers right? Scored against an exhaustive swap sweep, per world.

For each tokenizer (world-32 and world-32-continuous on the attribute world, sprites-32 on the sprites world):

- **the pipeline** is ``tokenprobe run`` at the demo's swap budget (16 pairs per attribute, every position swept,
  8 control pairs, greedy sets up to 4 where no single position is confirmed; seed 0);
- **the truth** is the same run on held-out images and pairs (seed 1) with ``--truth-pairs`` pairs per attribute
  (1,024 in the issue's protocol): every single position's transfer (the causal heatmap), and the greedy set
  where no single position is confirmed.

Per attribute that both measure and the truth finds reconstructed: the truth's answer is *confirmed* or not (the engine's verdict: transfer 95%
interval at or above 0.5 and beating a random-position paste). A pipeline answer is *correct* when the pipeline
confirmed it and the truth's transfer at the same positions is at or above the confirm threshold (single
positions: the truth's causal heatmap, so an echo position counts; sets: the set swapped on the truth's pairs).
precision = correct / pipeline-confirmed, recall = correct / truth-confirmed; ``transfer_error`` = |pipeline
transfer - truth transfer at the same positions| over every attribute the pipeline answered (confirmed or not).

    python analyses/bench_discovery.py --truth-pairs 1024 --out figures/bench_discovery       # the full protocol
    python analyses/bench_discovery.py --models world-32 --truth-pairs 128 --images 1000 --out runs/bench_small

Writes ``<out>.csv`` (one row per model x attribute), ``<out>_summary.csv`` (one row per model) and
``<out>.{png,svg}``; run folders under ``--runs``.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
#: model -> the run config of its world
CONFIGS = {"world-32": "analyses/demo.yaml", "world-32-continuous": "analyses/demo.yaml",
           "sprites-32": "analyses/sprites.yaml", "sprites-64": "analyses/sprites.yaml"}
#: the demo's swap budget (analyses/demo.yaml), what a user runs
PIPELINE = ["swap.pairs=16", "swap.candidates=3", "swap.sweep=true", "swap.control_pairs=8", "swap.max_set=4"]
CONFIRM = 0.5  # probe.swap.VerdictConfig.confirm
#: truth verdicts that leave nothing to score: no measurer, or a factor the decoder does not reconstruct (its
#: transfers divide by a gap the reconstructions do not have)
SKIP = ("untested", "not reconstructed")


def positions_of(label: Any) -> tuple[int, ...]:
    """``"9+21+23"`` / ``4`` / ``4.0`` -> ``(9, 21, 23)`` / ``(4,)``; empty for a missing answer."""
    if label is None or (isinstance(label, float) and math.isnan(label)) or str(label) == "":
        return ()
    return tuple(int(float(p)) for p in str(label).split("+"))


def score(truth: pd.DataFrame, truth_heatmap: pd.DataFrame, pipeline: pd.DataFrame,
          set_transfer: dict[tuple[str, tuple[int, ...]], float] | None = None) -> pd.DataFrame:
    """One row per attribute answered by both: the two answers and whether the pipeline's is right.

    ``truth`` / ``pipeline``: validated maps (``attribute, positions, transfer, verdict``); ``truth_heatmap``:
    the truth's causal heatmap (``position`` x attribute transfer); ``set_transfer``: the truth's transfer of
    the pipeline's multi-position answers, keyed by (attribute, positions).
    """
    set_transfer = set_transfer or {}
    heat = truth_heatmap.set_index("position")
    rows = []
    for p in pipeline.to_dict("records"):
        a = p["attribute"]
        t = truth[truth["attribute"] == a]
        if t.empty or a not in heat.columns or p.get("verdict") == "untested" or t.iloc[0]["verdict"] in SKIP:
            continue
        t = t.iloc[0]
        pos = positions_of(p["positions"])
        if not pos:
            continue
        if len(pos) == 1:
            truth_at = float(heat.loc[pos[0], a])
        elif tuple(sorted(pos)) == tuple(sorted(positions_of(t["positions"]))):
            truth_at = float(t["transfer"])  # the truth answered the same set: its own transfer on its pairs
        else:
            truth_at = set_transfer.get((a, pos), float("nan"))
        p_conf, t_conf = p["verdict"] == "confirmed", t["verdict"] == "confirmed"
        rows.append({"attribute": a, "pipeline_positions": "+".join(map(str, pos)),
                     "pipeline_transfer": float(p["transfer"]), "pipeline_verdict": p["verdict"],
                     "truth_positions": "+".join(map(str, positions_of(t["positions"]))),
                     "truth_transfer": float(t["transfer"]), "truth_verdict": t["verdict"],
                     "truth_at_pipeline": truth_at,
                     "correct": bool(p_conf and t_conf and truth_at >= CONFIRM),
                     "transfer_error": abs(float(p["transfer"]) - truth_at)})
    return pd.DataFrame(rows)


def summarize_scores(table: pd.DataFrame) -> dict[str, float]:
    """precision, recall, their counts and the mean transfer error of one model's scored answers."""
    n_p = int((table["pipeline_verdict"] == "confirmed").sum()) if len(table) else 0
    n_t = int((table["truth_verdict"] == "confirmed").sum()) if len(table) else 0
    n_c = int(table["correct"].sum()) if len(table) else 0
    return {"attributes": len(table), "pipeline_confirmed": n_p, "truth_confirmed": n_t, "correct": n_c,
            "precision": n_c / n_p if n_p else float("nan"), "recall": n_c / n_t if n_t else float("nan"),
            "transfer_error": float(table["transfer_error"].mean()) if len(table) else float("nan")}


def _run(config: str, model: str, out: Path, settings: list[str], seed: int) -> Path:
    from probe.pipeline import load_run_config, run_pipeline

    cfg = load_run_config(ROOT / config, [*settings, "optimize.enabled=false", "swap.traversals=false",
                                          "swap.grids=0", "probes.figures=false"],
                          tokenizer=model, out=str(out), seed=seed)
    # the benchmark's own run folders: results of other settings (or weights) there are replaced, same ones reused
    run_pipeline(cfg, overwrite=True, log=lambda m: print(f"  {model} {out.name}: {m}"))
    return out / "swap"


def _set_transfers(model: str, truth_run: Path, answers: pd.DataFrame, pairs: int) -> dict:
    """The truth's transfer of the pipeline's multi-position answers, swapped on the truth run's store."""
    sets = [(r["attribute"], positions_of(r["positions"])) for r in answers.to_dict("records")
            if r.get("verdict") != "untested" and len(positions_of(r["positions"])) > 1]
    if not sets:
        return {}
    from probe import load_tokenizer
    from probe.measure import get_measurer, measurer_for
    from probe.store import TokenStore
    from probe.swap import SwapConfig, SwapData, sweep

    import json

    tok = load_tokenizer(model).eval()
    store = TokenStore.open(truth_run / "store")
    swap_cfg = json.loads((truth_run / "swap" / "config.json").read_text())
    specs = swap_cfg.get("measurers", {})
    data = SwapData.from_store(store, tok)
    out = {}
    for a, pos in sets:
        try:
            m = get_measurer(specs[a]) if ":" in str(specs.get(a, "")) else measurer_for(a)
        except (KeyError, ValueError):
            continue
        res = sweep(tok, data, {a: m}, [list(pos)], attributes=[a], config=SwapConfig(pairs=pairs, seed=1),
                    progress=False)
        out[(a, pos)] = float(res.summary["transfer"].iloc[0])
    return out


def bench(models: list[str], *, truth_pairs: int, images: int | None, runs: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    tables, summaries = [], []
    for model in models:
        config = CONFIGS.get(model, "analyses/demo.yaml")
        size = [f"data.images={images}"] if images else []
        pipe = _run(config, model, runs / model / "pipeline", [*PIPELINE, *size], seed=0)
        truth = _run(config, model, runs / model / "truth",
                     [f"swap.pairs={truth_pairs}", "swap.sweep=true", "swap.control_pairs=64", "swap.max_set=4",
                      *size], seed=1)
        answers = pd.read_csv(pipe / "validated_map.csv")
        table = score(pd.read_csv(truth / "validated_map.csv"), pd.read_csv(truth / "causal_heatmap.csv"), answers,
                      _set_transfers(model, runs / model / "truth", answers, truth_pairs))
        table.insert(0, "model", model)
        tables.append(table)
        summaries.append({"model": model, "truth_pairs": truth_pairs, **summarize_scores(table)})
    return pd.concat(tables, ignore_index=True), pd.DataFrame(summaries)


def plot(table: pd.DataFrame, summary: pd.DataFrame, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 4))
    x = np.arange(len(summary))
    ax0.bar(x - 0.2, summary["precision"], 0.4, label="precision")
    ax0.bar(x + 0.2, summary["recall"], 0.4, label="recall")
    ax0.set_xticks(x, summary["model"], rotation=15)
    ax0.set_ylim(0, 1.05)
    ax0.set_title("confirmed mappings vs the exhaustive sweep")
    ax0.legend()
    for model, g in table.groupby("model", sort=False):
        ax1.scatter(g["truth_at_pipeline"], g["pipeline_transfer"], label=model)
    lim = [min(-0.1, float(table[["truth_at_pipeline", "pipeline_transfer"]].min().min())), 1.2]
    ax1.plot(lim, lim, color="grey", lw=0.8)
    ax1.set_xlabel("truth transfer at the pipeline's positions")
    ax1.set_ylabel("pipeline transfer (16 pairs)")
    ax1.legend(fontsize=8)
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(out.with_suffix(f".{ext}"), dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["world-32", "world-32-continuous", "sprites-32"])
    ap.add_argument("--truth-pairs", type=int, default=1024, help="pairs per attribute of the truth sweep")
    ap.add_argument("--images", type=int, default=None, help="images per run (default: the run config's)")
    ap.add_argument("--runs", type=Path, default=Path("runs/bench_discovery"))
    ap.add_argument("--out", type=Path, default=Path("figures/bench_discovery"))
    args = ap.parse_args()
    table, summary = bench(args.models, truth_pairs=args.truth_pairs, images=args.images, runs=args.runs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out.with_suffix(".csv"), index=False)
    summary.to_csv(args.out.parent / f"{args.out.name}_summary.csv", index=False)
    plot(table, summary, args.out)
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
