"""Held-out evaluation of the shipped attribute oracle, with figures.

    python analyses/world_oracle/evaluate.py [--n 2000] [--seed 31337] [--tokenizer world-32]

Conditions: clean world images; degraded ones (probe.data.degrade, the training
augmentation, fixed seed); the dark (lighting < 0.45) and blurry (global_blur > 0.032) subsets
of the clean images (their R^2 divides by the variance of the full held-out set); and, with --tokenizer, that tokenizer's reconstructions. Writes
analyses/world_oracle/results/: scores.csv, scores.md, scatter.png/.svg, training.png/.svg.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import torch

from probe import zoo
from probe.data.degrade import degrade
from probe.data.world import sample
from probe.oracle import score_predictions
from probe.oracle.evaluate import shape_by_difficulty
from probe.report import markdown_table

HERE = Path(__file__).resolve().parent


def plot_scatter(pred: pd.DataFrame, factors: pd.DataFrame, names: list[str]) -> plt.Figure:
    cols = 4
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.8 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        ax.scatter(factors[name], pred[name], s=2, alpha=0.4)
        lo, hi = float(factors[name].min()), float(factors[name].max())
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("true", fontsize=8)
        ax.set_ylabel("predicted", fontsize=8)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_training(history: pd.DataFrame, evals: pd.DataFrame) -> plt.Figure:
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    a.plot(history["step"], history["loss"].rolling(20, min_periods=1).mean())
    a.set_yscale("log")
    a.set_xlabel("step")
    a.set_ylabel("loss (20-step mean)")
    for f, g in evals.groupby("factor"):
        b.plot(g["step"], g["score"], label=f)
    b.set_ylim(0, 1.02)
    b.set_xlabel("step")
    b.set_ylabel("held-out score (acc. / R^2)")
    b.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def save(fig: plt.Figure, path: Path, svg: bool = True) -> None:
    fig.savefig(path.with_suffix(".png"), dpi=120)
    if svg:  # scatter plots of thousands of points make multi-MB SVGs: PNG only for those
        fig.savefig(path.with_suffix(".svg"))
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="held-out images")
    ap.add_argument("--seed", type=int, default=31337, help="held-out world seed")
    ap.add_argument("--tokenizer", default=None, help="also score this tokenizer's reconstructions")
    ap.add_argument("--runs", nargs="*", default=["runs/world-oracle"], help="run folders for the curves")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--from-run", action="store_true", help="evaluate the last run folder's weights, not the zoo's")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if args.from_run:
        import json

        from probe.oracle import load_zoo_oracle

        cfg = json.loads((Path(args.runs[-1]) / "config.json").read_text())
        oracle = load_zoo_oracle({"model_cfg": cfg["model"]}, Path(args.runs[-1]) / "model.safetensors", device="cpu")
    else:
        oracle = zoo.load("world-oracle", device="cpu")
    images, factors = sample(args.n, seed=args.seed, resolution=32)
    sets = {"clean": (images, factors),
            "degraded": (degrade(images, torch.Generator().manual_seed(0)), factors)}
    dark = torch.from_numpy((factors["lighting"] < 0.45).to_numpy().copy())
    blurry = torch.from_numpy((factors["global_blur"] > 0.032).to_numpy().copy())
    sets["dark (lighting<0.45)"] = (images[dark], factors[dark.numpy()])
    sets["blurry (global_blur>0.032)"] = (images[blurry], factors[blurry.numpy()])
    if args.tokenizer:
        import probe
        from probe.data.world import factors_at, render
        from probe.training.oracle import reconstruct, tokenizer_world

        tok = probe.load_tokenizer(args.tokenizer, device="cpu").eval()
        # the same images rendered in the world the tokenizer was trained on (same factors), if it has its own
        tw = tokenizer_world(args.tokenizer)
        src = images if tw is None else render(factors_at(factors.index, seed=args.seed, config=tw), 32, tw)[0]
        sets[f"{args.tokenizer} reconstructions"] = (reconstruct(tok, src), factors)
    parts = []
    for name, (x, f) in sets.items():
        pred = oracle.predict(x)
        parts.append(score_predictions(pred, f, oracle, reference=factors).assign(images=name))
        if name == "clean":
            diff = shape_by_difficulty(pred["shape"].to_numpy() == f["shape"].to_numpy(), f)
            (out / "shape_by_difficulty.md").write_text(markdown_table(diff) + "\n")
            print(diff.to_string())
            save(plot_scatter(pred, f, [*oracle.config.hues, *oracle.config.ranges]), out / "scatter", svg=False)
    res = pd.concat(parts, ignore_index=True)
    res.to_csv(out / "scores.csv", index=False)
    table = res.pivot(index="factor", columns="images", values="score").loc[res["factor"].unique(), list(sets)]
    hue_acc = res.dropna(subset=["colour_accuracy"]).pivot(index="factor", columns="images",
                                                            values="colour_accuracy")[list(sets)]
    hue_acc.index = [f"{i} (colour-name acc.)" for i in hue_acc.index]
    table = pd.concat([table, hue_acc])
    table.insert(0, "metric", list(res[res["images"] == "clean"].set_index("factor")["metric"]) +
                 ["accuracy"] * len(hue_acc))
    n = {k: len(v[1]) for k, v in sets.items()}
    md = markdown_table(table) + "\n\nimages per condition: " + ", ".join(f"{k}: {v}" for k, v in n.items())
    (out / "scores.md").write_text(md + "\n")
    print(md)
    hist = [pd.read_csv(Path(r) / "history.csv") for r in args.runs if (Path(r) / "history.csv").exists()]
    evs = [pd.read_csv(Path(r) / "evals.csv") for r in args.runs if (Path(r) / "evals.csv").exists()]
    if hist and evs:
        offset, hs, es = 0, [], []
        for h, e in zip(hist, evs):  # chain runs (training, then fine-tuning) along one step axis
            hs.append(h.assign(step=h["step"] + offset))
            es.append(e.assign(step=e["step"] + offset))
            offset += int(h["step"].max())
        save(plot_training(pd.concat(hs), pd.concat(es)), out / "training")
    print(f"done in {time.time() - t0:.0f} s -> {out}")


if __name__ == "__main__":
    main()
