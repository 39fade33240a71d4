"""The compression sweep: same architecture and step budget, varying tokens N and codebook size K.

Each configuration ``NxK`` is trained with ``tokenprobe train-tokenizer``'s library call (base config from
``--base``, then ``model.num_tokens = N`` and ``model.codebook_size = K``), then measured with
``localization.py``'s :func:`localization` (held-out PSNR, top-position eta-squared, the swap engine's
single-position transfer), and the table and figure go to ``figures/compression_sweep.{csv,png,svg}``.
Tables measured before the swap engine was the one protocol (columns ``moved_top``, ``moved_random_mean``:
the group-mean fraction between the lowest and highest bin) are refused: re-measure them (``measure --force``).

Usage (what produced the shipped figure; see README.md):
    python analyses/world_tokenizer/sweep.py train   --configs 32x16 32x64 32x256 32x1024 16x64
    python analyses/world_tokenizer/sweep.py measure --configs 32x16 32x64 32x256 32x1024 16x64
    python analyses/world_tokenizer/sweep.py plot    --configs 32x16 32x64 32x256 32x1024 16x64
Runs already finished (``model.safetensors`` present) are skipped by ``train``; an interrupted one resumes.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from probe.measure.world import load_world_tokenizer
sys.path.insert(0, str(Path(__file__).resolve().parent))
from localization import localization  # noqa: E402  (the sibling script)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def parse(cfg: str) -> tuple[int, int]:
    try:
        n, k = cfg.lower().split("x")
        return int(n), int(k)
    except ValueError:
        raise SystemExit(f"--configs: {cfg!r} is not of the form NxK (tokens x codebook size), e.g. 32x256")


def run_dir(root: Path, cfg: str) -> Path:
    return root / f"n{parse(cfg)[0]}_k{parse(cfg)[1]}"


def cmd_train(args: argparse.Namespace) -> None:
    from probe.training.tokenizer import TrainConfig, train

    base = json.loads(Path(args.base).read_text())
    for cfg in args.configs:
        n, k = parse(cfg)
        out = run_dir(args.root, cfg)
        if (out / "model.safetensors").exists():
            print(f"{cfg}: done already ({out})")
            continue
        raw = dict(base, steps=args.steps, max_minutes=None, seed=args.seed)
        raw["model"] = dict(base.get("model", {}), num_tokens=n, codebook_size=k)
        command = f"python analyses/world_tokenizer/sweep.py train --configs {cfg} --steps {args.steps} --base {args.base}"
        train(TrainConfig.from_dict(raw), out, resume=True, command=command)


def cmd_measure(args: argparse.Namespace) -> None:
    for cfg in args.configs:
        out = run_dir(args.root, cfg)
        dest = out / "localization.csv"
        if dest.exists() and not args.force:
            print(f"{cfg}: measured already ({dest})")
            continue
        model, world = load_world_tokenizer(str(out))
        table, extras = localization(model, world, n=args.n, n_pairs=args.n_pairs)
        table.to_csv(dest, index=False)
        (out / "localization.json").write_text(json.dumps(extras, indent=1) + "\n")
        print(f"{cfg}: PSNR {extras['psnr']:.2f} dB")
        print(table.round(3).to_string(index=False))


def sweep_table(root: Path, configs: list[str]) -> pd.DataFrame:
    """One row per (config, factor): tokens, codebook, PSNR, steps, minutes, eta-squared and transfers."""
    rows = []
    for cfg in configs:
        out = run_dir(root, cfg)
        rec = json.loads((out / "model.json").read_text())
        extras = json.loads((out / "localization.json").read_text())
        loc = pd.read_csv(out / "localization.csv", keep_default_na=False, na_values=[""])  # older tables name a factor "null"
        n, k = parse(cfg)
        if "transfer_top" not in loc:  # a table of the retired group-mean protocol: one number, one protocol
            raise SystemExit(f"{out / 'localization.csv'} was measured with the retired protocol; re-measure it: "
                             f"python analyses/world_tokenizer/sweep.py measure --force --configs {cfg}")
        for r in loc.to_dict("records"):
            rows.append({"config": cfg, "tokens": n, "codebook": k, "psnr": round(extras["psnr"], 3),
                         "steps": rec["training"]["steps"], "train_minutes": rec["training"]["wall_minutes"],
                         "codes_used": rec["metrics"].get("codes_used"), **r})
    return pd.DataFrame(rows)


def sweep_figure(table: pd.DataFrame):
    """Held-out PSNR (x) against the transfer at the top position (y), one panel per measured factor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    factors = [f for f in table["factor"].unique() if f not in ("null", "null_factor")]  # "null": tables written before the rename
    fig, axes = plt.subplots(1, len(factors) + 1, figsize=(3.4 * (len(factors) + 1), 3.4))
    for ax, f in zip(axes, factors):
        sub = table[table.factor == f]
        vals = pd.concat([sub.transfer_top, sub.others_mean]).dropna()
        lo = min(-0.2, float(vals.min()) - 0.05) if len(vals) else -0.2
        hi = max(1.1, float(vals.max()) + 0.05) if len(vals) else 1.1
        ax.axhspan(0.5, hi, color="tab:green", alpha=0.08, lw=0)
        ax.set_ylim(lo, hi)
        ax.set_xlim(table.psnr.min() - 0.3, table.psnr.max() + 0.6)
        ax.scatter(sub.psnr, sub.transfer_top, c="tab:blue", label="top position")
        ax.scatter(sub.psnr, sub.others_mean, c="tab:gray", marker="x", label="other positions (mean)")
        for r in sub.itertuples():
            ax.annotate(r.config, (r.psnr, r.transfer_top), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.axhline(0.5, color="tab:green", lw=0.8, ls="--")
        missing = sub[sub.transfer_top.isna()]
        for r in missing.itertuples():
            ax.annotate(f"{r.config}: not reconstructed", (0.02, 0.95 - 0.07 * list(missing.index).index(r.Index)),
                        xycoords="axes fraction", fontsize=6, color="tab:red", va="top")
        ax.set_title(f"{f}")
        ax.set_xlabel("held-out PSNR (dB)")
        ax.set_ylabel("transfer (fraction of the gap)")
    axes[0].legend(fontsize=7, loc="upper left")
    ax = axes[-1]
    # top eta^2 over the mean over positions: 1 = spread evenly, N = all in one position
    conc = table.assign(conc=table.eta2_share * table.tokens)
    share = conc.pivot_table(index="config", columns="factor", values="conc", sort=False)
    for f in share.columns:
        ax.plot(range(len(share)), share[f], marker="o", label=f)
    ax.set_xticks(range(len(share)), share.index, rotation=45, fontsize=7)
    ax.axhline(1.0, color="k", lw=0.6, ls=":")
    ax.set_title("top eta$^2$ / mean over positions")
    ax.legend(fontsize=6)
    fig.suptitle("Compression sweep (N tokens x K codes, same training budget)", fontsize=10)
    fig.tight_layout()
    return fig


def cmd_plot(args: argparse.Namespace) -> None:
    table = sweep_table(args.root, args.configs)
    dest = ROOT / "figures" / "compression_sweep"
    dest.parent.mkdir(exist_ok=True)
    table.to_csv(dest.with_suffix(".csv"), index=False)
    fig = sweep_figure(table)
    fig.savefig(dest.with_suffix(".png"), dpi=130)
    fig.savefig(dest.with_suffix(".svg"))
    cols = ["config", "psnr", "factor", "top_position", "top_eta2", "eta2_share", "transfer_top", "others_mean"]
    print(table[cols].round(3).to_string(index=False))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(allow_abbrev=False, description="compression sweep of world tokenizers")
    ap.add_argument("what", choices=["train", "measure", "plot"])
    ap.add_argument("--configs", nargs="+", default=["32x16", "32x64", "32x256", "32x1024", "16x64"])
    ap.add_argument("--root", type=Path, default=ROOT / "runs" / "world_tokenizer" / "sweep")
    ap.add_argument("--base", default=str(HERE / "base_config.json"), help="TrainConfig JSON shared by all runs")
    ap.add_argument("--steps", type=int, default=1000, help="step budget of every configuration")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=2000, help="held-out images for measure")
    ap.add_argument("--n-pairs", type=int, default=200)
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    {"train": cmd_train, "measure": cmd_measure, "plot": cmd_plot}[args.what](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
