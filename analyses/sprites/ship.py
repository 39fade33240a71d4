"""Ship a sprites tokenizer into probe/zoo/ as NAME.json + NAME.safetensors, with its measured metrics.

    python analyses/sprites/ship.py --run runs/sprites-32/main --name sprites-32 \
        --fidelity runs/sprites-32/fidelity.json [--swap runs/sprites/swap/validated_map.csv] \
        [--notes analyses/sprites/sprites-32.notes.json] [--from-checkpoint]

``--from-checkpoint`` exports ``last.pt`` (a run stopped before its end; the schedule had not annealed);
otherwise the run's ``model.safetensors``. The record is the run's zoo record (``zoo_record``: config, the
manifest it was trained on, the training command and settings) plus ``training_chain`` (one stage from
scratch), ``metrics`` (``fidelity.py``'s held-out PSNR, code use and gap kept per factor; with ``--swap`` the
swap engine's validated map: the best single position or set per attribute and its verdict) and the
hand-written fields of ``--notes`` (``caveats``, ...).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]


def swap_metrics(path: Path) -> dict:
    """attribute -> {positions, set_size, transfer, ci, verdict, source} from a validated-map CSV."""
    table = pd.read_csv(path)
    out = {}
    for r in table.to_dict("records"):
        out[r["attribute"]] = {k: (None if pd.isna(r.get(k)) else (round(r[k], 3) if isinstance(r[k], float) else r[k]))
                               for k in ("positions", "set_size", "transfer", "ci_low", "ci_high", "verdict",
                                         "source", "best_single", "best_single_transfer") if k in r}
    return out


def main(argv: list[str] | None = None) -> int:
    from safetensors.torch import save_file

    from probe.training.loop import load_checkpoint
    from probe.training.tokenizer import TrainConfig, load_trained, zoo_record

    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
    ap.add_argument("--run", required=True, type=Path)
    ap.add_argument("--name", required=True)
    ap.add_argument("--fidelity", type=Path, default=None, help="JSON written by fidelity.py")
    ap.add_argument("--swap", type=Path, default=None, help="validated-map CSV of a `tokenprobe run` of the model")
    ap.add_argument("--notes", type=Path, default=None, help="JSON of hand-written record fields (caveats, ...)")
    ap.add_argument("--from-checkpoint", action="store_true")
    args = ap.parse_args(argv)

    cfg = TrainConfig.from_dict(json.loads((args.run / "config.json").read_text()))
    model = load_trained(args.run, from_checkpoint=args.from_checkpoint)
    old = json.loads((args.run / "model.json").read_text()) if (args.run / "model.json").exists() else {}
    if args.from_checkpoint or not old:
        state = load_checkpoint(args.run / "last.pt")["state"]
        state["stopped_by"] = "checkpoint (exported before the schedule's end)"
        command = None
    else:
        tr = old["training"]
        state = {"step": tr["steps"], "elapsed": tr["wall_minutes"] * 60, "stopped_by": tr.get("stopped_by")}
        command = tr.get("command")
    metrics = dict(old.get("metrics", {}))
    if args.fidelity:
        fid = json.loads(args.fidelity.read_text())
        metrics.update(next(iter(fid.values())) if len(fid) == 1 else fid[str(args.run)])
        metrics["measured_by"] = "analyses/sprites/fidelity.py"
    if args.swap:
        metrics["swap"] = swap_metrics(args.swap)
        metrics["swap_measured_by"] = f"tokenprobe run analyses/sprites.yaml ({args.swap})"
    record = zoo_record(model, cfg, state, metrics, command)
    record["training_chain"] = [{
        "stage": "reconstruction", "from": "scratch (random init)",
        "recipe": "analyses/sprites/train_config.json: reconstruction losses only (L1, L2, image gradients, the "
                  "same L1 + L2 over a soft foreground each image gives by itself (w_salient), VQ codebook and "
                  "commitment); no pairs, no generator mask, no factor or attribute of any kind; continuous for "
                  "the first 30% of the schedule, then the codebook seeded by k-means",
        "device": "CPU, one thread (a 2-core machine shared with other jobs)",
        "steps": state["step"], "batch_size": cfg.batch_size, "wall_minutes": round(state["elapsed"] / 60, 1),
        "command": command,
    }]
    if args.notes:
        record.update(json.loads(args.notes.read_text()))
    zoo = ROOT / "probe" / "zoo"
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(zoo / f"{args.name}.safetensors"))
    (zoo / f"{args.name}.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"shipped {args.name}: steps {state['step']}, metrics {sorted(metrics)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
