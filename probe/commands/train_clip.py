"""``tokenprobe train-clip``: train the tiny world CLIP (reproduces ``world-clip``)."""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path

NAME = "train-clip"
HELP = "train the tiny open_clip CLIP on attribute-world images and generated captions"
DESCRIPTION = (HELP + ". Writes runs/<name>/ (config.json, history.csv, evals.csv, model.safetensors, "
               "zoo.json); --ship copies the result into probe/zoo/ as world-clip.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from probe.training.clip import ClipTrainConfig

    d = ClipTrainConfig()
    parser.add_argument("--out", default="runs/world-clip", help="run folder (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=d.steps, help="optimizer steps (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help="default: %(default)s")
    parser.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (default: %(default)s)")
    parser.add_argument("--warmup-steps", type=int, default=d.warmup_steps, help="default: %(default)s")
    parser.add_argument("--seed", type=int, default=d.seed, help="training world seed (default: %(default)s)")
    parser.add_argument("--eval-seed", type=int, default=d.eval_seed, help="held-out world seed (default: %(default)s)")
    parser.add_argument("--eval-size", type=int, default=d.eval_size, help="held-out images (default: %(default)s)")
    parser.add_argument("--eval-every", type=int, default=d.eval_every, help="default: %(default)s")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="wall-clock limit; the cosine LR schedule anneals by then (default: none)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--workers", type=int, default=d.num_workers,
                        help="DataLoader processes rendering training batches; the batches do not "
                             "depend on it (default: %(default)s, i.e. in the training process)")
    parser.add_argument("--device", default=None, help="force a device (default: cuda, then mps, then cpu)")
    parser.add_argument("--vision-cfg", default=None,
                        help="JSON replacing the open_clip vision_cfg (default: the shipped ModifiedResNet, "
                             "probe.clip.WORLD_CLIP_MODEL_CFG), e.g. the ViT tried first: '{\"image_size\": 32, "
                             "\"patch_size\": 8, \"width\": 128, \"layers\": 4, \"head_width\": 32}'")
    parser.add_argument("--ship", action="store_true", help="copy the result to probe/zoo/world-clip.*")


def run(args: argparse.Namespace) -> int:
    import torch

    from probe.training.clip import ClipTrainConfig, train_clip, zoo_entry
    from probe.zoo import ZOO_DIR

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = ClipTrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                          warmup_steps=args.warmup_steps, seed=args.seed, eval_seed=args.eval_seed,
                          eval_size=args.eval_size, eval_every=args.eval_every,
                          max_minutes=args.max_minutes, device=args.device,
                          num_workers=args.workers)
    if args.vision_cfg:
        cfg.model_cfg["vision_cfg"] = json.loads(args.vision_cfg)
    out = Path(args.out)
    _, _, history, evals = train_clip(cfg, out)
    command = "tokenprobe " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    entry = zoo_entry(cfg, evals, history, command)
    (out / "zoo.json").write_text(json.dumps(entry, indent=2))
    print(evals[evals["step"] == evals["step"].max()].to_string(index=False))
    if args.ship:
        shutil.copyfile(out / "model.safetensors", ZOO_DIR / "world-clip.safetensors")
        shutil.copyfile(out / "zoo.json", ZOO_DIR / "world-clip.json")
        print(f"shipped to {ZOO_DIR / 'world-clip.*'}")
    return 0
