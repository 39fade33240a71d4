"""Copy a trained world tokenizer into probe/zoo/ as NAME.json + NAME.safetensors, with its measured metrics.

Usage:
    python analyses/world_tokenizer/ship.py --run runs/world_tokenizer/world-32 --name world-32 \
        --localization runs/world_tokenizer/loc_world-32.csv [--from-checkpoint]
    python analyses/world_tokenizer/ship.py --name world-32 --localization runs/world-32/loc.csv   # re-measured
        # metrics of a shipped model: only ``metrics`` (held-out PSNR, localization) of its JSON are rewritten

``--from-checkpoint`` exports ``last.pt`` (a run stopped before its end); otherwise ``model.safetensors``.
The JSON is the run's ``model.json`` (zoo format, see probe/zoo/__init__.py) plus, under ``metrics``,
the held-out PSNR and the per-factor localization figures of ``localization.py``. The record's
hand-written fields (``training_chain``, ``caveats``, ``declared_semantics``) come from ``--chain-from`` (a shipped
name, default: the name being replaced) with this run appended to the chain as its last stage; the
declared positions and floors are carried over and must be re-measured (the zoo consistency tests in
tests/test_world_tokenizer.py do that).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]


def localization_metrics(metrics: dict, localization: Path) -> dict:
    """``metrics`` with the held-out PSNR and the per-factor table of ``localization.py`` (CSV + its .json)."""
    extras = json.loads(localization.with_suffix(".json").read_text())
    table = pd.read_csv(localization, keep_default_na=False, na_values=[""])  # older tables name a factor "null"
    metrics["heldout_psnr_db"] = round(extras["psnr"], 3)
    metrics["heldout"] = {"n_images": extras["n_images"], "world_seed": extras["seed"],
                          "pairs_per_factor": extras.get("n_pairs")}
    counts = ("top_position", "best_position", "n_pairs")  # read back as floats where a factor has NaNs

    def value(k: str, v: object) -> object:
        if pd.isna(v):
            return None
        return int(v) if k in counts else (round(v, 4) if isinstance(v, float) else v)

    metrics["localization"] = {r["factor"]: {k: value(k, v) for k, v in r.items() if k != "factor"}
                               for r in table.to_dict("records")}
    metrics["measured_by"] = "analyses/world_tokenizer/localization.py (the swap engine's protocol)"
    return metrics


def main(argv: list[str] | None = None) -> int:
    from safetensors.torch import save_file

    from probe.training.tokenizer import TrainConfig, load_trained, load_checkpoint, zoo_record

    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, default=None,
                    help="the training run to ship (without it: rewrite the shipped model's metrics only)")
    ap.add_argument("--name", required=True)
    ap.add_argument("--localization", type=Path, default=None, help="CSV written by localization.py (its .json next to it)")
    ap.add_argument("--from-checkpoint", action="store_true")
    ap.add_argument("--command", default=None, help="the training command, if the run's record lacks it")
    ap.add_argument("--chain-from", default=None,
                    help="shipped model whose training_chain this run continues (default: --name, if shipped)")
    ap.add_argument("--stage", default=None, help="name of this run's stage in the training chain (default: the run folder's)")
    args = ap.parse_args(argv)
    if args.run is None:
        if args.localization is None:
            raise SystemExit("without --run, give --localization (the shipped model's metrics are rewritten)")
        path = ROOT / "probe" / "zoo" / f"{args.name}.json"
        record = json.loads(path.read_text())
        record["metrics"] = localization_metrics(dict(record.get("metrics", {})), args.localization)
        path.write_text(json.dumps(record, indent=2) + "\n")
        print(f"rewrote the metrics of {path.name} from {args.localization}")
        return 0

    cfg = TrainConfig.from_dict(json.loads((args.run / "config.json").read_text()))
    model = load_trained(args.run, from_checkpoint=args.from_checkpoint)
    old = json.loads((args.run / "model.json").read_text()) if (args.run / "model.json").exists() else {}
    if (args.run / "last.pt").exists():
        state = load_checkpoint(args.run / "last.pt")["state"]
    else:  # a run brought back without its checkpoint (e.g. from a GPU machine): the record has the state
        tr = old["training"]
        state = {"step": tr["steps"], "elapsed": tr["wall_minutes"] * 60, "stopped_by": tr.get("stopped_by")}
    command = args.command or old.get("training", {}).get("command")
    metrics = dict(old.get("metrics", {}))
    if args.localization:
        metrics = localization_metrics(metrics, args.localization)
    state.setdefault("stopped_by", "checkpoint" if args.from_checkpoint else None)
    record = zoo_record(model, cfg, state, metrics, command)
    zoo = ROOT / "probe" / "zoo"
    prior_path = zoo / f"{args.chain_from or args.name}.json"
    if prior_path.exists():  # keep the hand-written record fields; zoo_record only knows this run
        prior = json.loads(prior_path.read_text())
        stage = {"stage": args.stage or args.run.name, "from": prior_path.stem, "command": command,
                 "steps": state["step"], "wall_minutes": round(state.get("elapsed", 0.0) / 60, 1)}
        record["training_chain"] = list(prior.get("training_chain", [])) + [stage]
        if "caveats" in prior:
            record["caveats"] = prior["caveats"]
        if "declared_semantics" in prior:
            record["declared_semantics"] = prior["declared_semantics"]
            print(f"declared_semantics carried over from {prior_path.name}: re-measure them "
                  "(pytest tests/test_world_tokenizer.py -k declared)")
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(zoo / f"{args.name}.safetensors"))
    (zoo / f"{args.name}.json").write_text(json.dumps(record, indent=2) + "\n")
    size = (zoo / f"{args.name}.safetensors").stat().st_size / 1e6
    print(f"shipped {args.name}: {size:.2f} MB, steps {state['step']}, metrics {list(metrics)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
