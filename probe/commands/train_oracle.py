"""``tokenprobe train-oracle``: train the attribute oracle (reproduces ``world-oracle``)."""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path

NAME = "train-oracle"
HELP = "train the attribute oracle (a small CNN reading every world factor)"
DESCRIPTION = (HELP + ". Writes runs/<name>/ (config.json, history.csv, evals.csv, model.safetensors, "
               "zoo.json); --tokenizer/--recon-fraction mixes in that tokenizer's reconstructions; "
               "--init fine-tunes existing weights; --ship copies the result into probe/zoo/ as world-oracle.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from probe.training.oracle import OracleTrainConfig

    d = OracleTrainConfig()
    parser.add_argument("--out", default="runs/world-oracle", help="run folder (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=d.steps, help="optimizer steps (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help="default: %(default)s")
    parser.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (default: %(default)s)")
    parser.add_argument("--warmup-steps", type=int, default=d.warmup_steps, help="default: %(default)s")
    parser.add_argument("--seed", type=int, default=d.seed, help="training world seed (default: %(default)s)")
    parser.add_argument("--first-index", type=int, default=d.first_index,
                        help="world index of the first training image (default: %(default)s)")
    parser.add_argument("--eval-seed", type=int, default=d.eval_seed, help="held-out world seed (default: %(default)s)")
    parser.add_argument("--eval-size", type=int, default=d.eval_size, help="default: %(default)s")
    parser.add_argument("--eval-every", type=int, default=d.eval_every, help="default: %(default)s")
    parser.add_argument("--degrade-fraction", type=float, default=d.degrade_fraction, help="default: %(default)s")
    parser.add_argument("--tokenizer", default=None, help="tokenizer spec whose reconstructions to train on")
    parser.add_argument("--recon-fraction", type=float, default=d.recon_fraction,
                        help="fraction of images replaced by reconstructions (default: %(default)s)")
    parser.add_argument("--init", default=None, help="safetensors weights to start from (fine-tuning)")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="wall-clock limit; the cosine LR schedule anneals by then (default: none)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default=None, help="force a device (default: cuda, then mps, then cpu)")
    parser.add_argument("--ship", action="store_true", help="copy the result to probe/zoo/world-oracle.*")


def run(args: argparse.Namespace) -> int:
    import torch

    from probe.training.oracle import OracleTrainConfig, train_oracle, zoo_entry
    from probe.zoo import ZOO_DIR

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = OracleTrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                            warmup_steps=args.warmup_steps, seed=args.seed, first_index=args.first_index,
                            eval_seed=args.eval_seed, eval_size=args.eval_size, eval_every=args.eval_every,
                            degrade_fraction=args.degrade_fraction, tokenizer=args.tokenizer,
                            recon_fraction=args.recon_fraction, init_weights=args.init,
                            max_minutes=args.max_minutes, device=args.device)
    out = Path(args.out)
    _, history, evals = train_oracle(cfg, out)
    command = "tokenprobe " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    (out / "zoo.json").write_text(json.dumps(zoo_entry(cfg, evals, history, command), indent=2))
    print(evals[evals["step"] == evals["step"].max()].to_string(index=False))
    if args.ship:
        shutil.copyfile(out / "model.safetensors", ZOO_DIR / "world-oracle.safetensors")
        shutil.copyfile(out / "zoo.json", ZOO_DIR / "world-oracle.json")
        print(f"shipped to {ZOO_DIR / 'world-oracle.*'}")
    return 0
