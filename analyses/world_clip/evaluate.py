"""Held-out zero-shot evaluation of the shipped world CLIP, with figures.

    python analyses/world_clip/evaluate.py [--n 2000] [--seed 31337] [--run runs/world-clip]

Writes analyses/world_clip/results/: zero_shot.csv (per task, clean and degraded images),
zero_shot.md, confusion_<task>.png/.svg, training.png/.svg (from the run folder, if present).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from probe import zoo
from probe.clip.captions import ZERO_SHOT_TASKS
from probe.clip.zeroshot import class_embeddings, image_embeddings, zero_shot_eval
from probe.data.degrade import degrade
from probe.data.world import sample
from probe.oracle.evaluate import shape_by_difficulty
from probe.report import markdown_table

HERE = Path(__file__).resolve().parent


def confusion(model, tokenizer, images: torch.Tensor, factors: pd.DataFrame, task: str) -> pd.DataFrame:
    """Row-normalised confusion matrix (true class x predicted class) of one zero-shot task."""
    t = ZERO_SHOT_TASKS[task]
    labels = t.labels(factors)
    pred = (image_embeddings(model, images) @ class_embeddings(model, tokenizer, t).T).argmax(1).numpy()
    keep = labels >= 0
    m = pd.crosstab(pd.Categorical(np.asarray(t.classes)[labels[keep]], categories=t.classes),
                    pd.Categorical(np.asarray(t.classes)[pred[keep]], categories=t.classes), dropna=False)
    return m.div(m.sum(axis=1).replace(0, 1), axis=0)


def plot_confusion(m: pd.DataFrame, title: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * len(m), 1.0 + 0.6 * len(m)))
    ax.imshow(m.to_numpy(), vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(len(m)), m.columns, rotation=45, ha="right")
    ax.set_yticks(range(len(m)), m.index)
    for i in range(len(m)):
        for j in range(len(m)):
            v = m.iat[i, j]
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_training(history: pd.DataFrame, evals: pd.DataFrame) -> plt.Figure:
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    a.plot(history["step"], history["loss"].rolling(20, min_periods=1).mean())
    a.set_xlabel("step")
    a.set_ylabel("ClipLoss (20-step mean)")
    for task, g in evals.groupby("task"):
        b.plot(g["step"], g["accuracy"], label=task)
    b.set_xlabel("step")
    b.set_ylabel("held-out zero-shot accuracy")
    b.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def save(fig: plt.Figure, path: Path) -> None:
    fig.savefig(path.with_suffix(".png"), dpi=120)
    fig.savefig(path.with_suffix(".svg"))
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="held-out images")
    ap.add_argument("--seed", type=int, default=31337, help="held-out world seed")
    ap.add_argument("--run", default="runs/world-clip", help="training run folder for the curves")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--from-run", action="store_true", help="evaluate the run folder's weights, not the zoo's")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if args.from_run:
        import json

        from probe.clip import load_zoo_clip

        cfg = json.loads((Path(args.run) / "config.json").read_text())
        model, _, tokenizer = load_zoo_clip(cfg, Path(args.run) / "model.safetensors", device="cpu")
    else:
        model, _, tokenizer = zoo.load("world-clip", device="cpu")
    images, factors = sample(args.n, seed=args.seed, resolution=32)
    clean = zero_shot_eval(model, tokenizer, images, factors).assign(images="clean")
    deg = zero_shot_eval(model, tokenizer, degrade(images, torch.Generator().manual_seed(0)), factors)
    res = pd.concat([clean, deg.assign(images="degraded")], ignore_index=True)
    res.to_csv(out / "zero_shot.csv", index=False)
    table = res.pivot(index="task", columns="images", values="accuracy").loc[list(ZERO_SHOT_TASKS)]
    table["n (clean)"] = clean.set_index("task")["n"]
    table["classes"] = clean.set_index("task")["n_classes"]
    table["majority"] = clean.set_index("task")["majority"]
    (out / "zero_shot.md").write_text(markdown_table(table))
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    t = ZERO_SHOT_TASKS["shape"]
    pred = (image_embeddings(model, images) @ class_embeddings(model, tokenizer, t).T).argmax(1).numpy()
    diff = shape_by_difficulty(pred == t.labels(factors), factors)
    (out / "shape_by_difficulty.md").write_text(markdown_table(diff) + "\n")
    print(diff.to_string())
    for task in ("shape", "obj_colour", "bg_colour"):
        save(plot_confusion(confusion(model, tokenizer, images, factors, task), f"world-clip zero-shot: {task}"),
             out / f"confusion_{task}")
    run = Path(args.run)
    if (run / "history.csv").exists() and (run / "evals.csv").exists():
        save(plot_training(pd.read_csv(run / "history.csv"), pd.read_csv(run / "evals.csv")), out / "training")
    print(f"done in {time.time() - t0:.0f} s -> {out}")


if __name__ == "__main__":
    main()
