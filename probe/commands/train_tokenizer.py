"""``tokenprobe train-tokenizer``: train a small world tokenizer (or its continuous twin) on the attribute world."""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

NAME = "train-tokenizer"
HELP = "train a small TiTok-style tokenizer on the synthetic attribute world (CPU-friendly)"
DESCRIPTION = (
    "Train a WorldTokenizer (probe.tokenizers.world) on rendered attribute-world images. Writes config.json, "
    "log.jsonl, last.pt (resumable checkpoint) and model.json + model.safetensors (zoo format) to --out. "
    "Settings come from TrainConfig defaults, then --config (a JSON file of TrainConfig fields), then the "
    "flags below."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (e.g. runs/world_tokenizer/main)")
    parser.add_argument("--config", default=None, help="JSON file with TrainConfig fields (model, world, lr, ...)")
    parser.add_argument("--tokens", type=int, default=None, help="number of 1D tokens N (model.num_tokens)")
    parser.add_argument("--codebook", type=int, default=None, help="codebook size K (model.codebook_size)")
    parser.add_argument("--token-dim", type=int, default=None, help="token dimension C (model.token_dim)")
    parser.add_argument("--dec-patch", type=int, default=None,
                        help="decoder patch side (model.dec_patch_size; default: the encoder's patch_size)")
    parser.add_argument("--continuous", action="store_true", help="train the continuous twin (no quantizer)")
    parser.add_argument("--steps", type=int, default=None, help="step budget (TrainConfig.steps)")
    parser.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget; the schedule anneals within it")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--n-train", type=int, default=None, help="training images (TrainConfig.n_train)")
    parser.add_argument("--init", default=None,
                        help="start from these weights: a .safetensors, a run folder or a zoo name (TrainConfig.init)")
    parser.add_argument("--init-kmeans", action="store_true", default=None,
                        help="with --init: re-seed the codebook by k-means of the loaded encoder's features "
                             "(a VQ model from its continuous twin; TrainConfig.init_kmeans)")
    parser.add_argument("--warmup-steps", type=int, default=None, help="linear warm-up steps (TrainConfig.warmup_steps)")
    parser.add_argument("--pairs", choices=["", "ada", "swap", "exchange", "hoyer"], default=None,
                        help="train on one-factor image pairs (TrainConfig.pairs)")
    parser.add_argument("--pair-weight", type=float, default=None, help="weight of the 'hoyer' pair penalty")
    parser.add_argument("--pair-topk", type=int, default=None,
                        help="'ada' / 'swap' / 'exchange' pairs: positions per pair kept apart (TrainConfig.pair_topk; 0 = adaptive)")
    parser.add_argument("--nested-dropout", type=float, default=None,
                        help="fraction of each batch cut to a random token prefix (TrainConfig.nested_dropout)")
    parser.add_argument("--w-object", type=float, default=None,
                        help="weight of the reconstruction loss over the object's pixels (TrainConfig.w_object)")
    parser.add_argument("--w-perceptual", type=float, default=None,
                        help="weight of the perceptual loss on the frozen world-oracle (TrainConfig.w_perceptual)")
    parser.add_argument("--w-adversarial", type=float, default=None,
                        help="weight of the patch discriminator's hinge loss (TrainConfig.w_adversarial)")
    parser.add_argument("--adv-start-step", type=int, default=None,
                        help="steps that train only the discriminator first (TrainConfig.adv_start_step)")
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: the config's, cpu)")
    parser.add_argument("--no-resume", action="store_true", help="start over even if --out holds a checkpoint")
    parser.add_argument("--export", default=None,
                        help="also copy the result as NAME.json/NAME.safetensors into this path prefix "
                             "(e.g. probe/zoo/world-32)")


def build_config(args: argparse.Namespace):
    from probe.errors import UsageError
    from probe.training.tokenizer import TrainConfig

    raw: dict = {}
    if args.config:
        path = Path(args.config)
        try:
            raw = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UsageError(f"--config {path}: cannot read a JSON object ({exc})") from None
        if not isinstance(raw, dict):
            raise UsageError(f"--config {path}: expected a JSON object of TrainConfig fields")
    model = dict(raw.get("model", {}))
    for flag, key in (("tokens", "num_tokens"), ("codebook", "codebook_size"), ("token_dim", "token_dim"),
                      ("dec_patch", "dec_patch_size")):
        if getattr(args, flag) is not None:
            model[key] = getattr(args, flag)
    if args.continuous:
        model["quantize"] = False
    raw["model"] = model
    for flag in ("steps", "max_minutes", "batch_size", "n_train", "nested_dropout", "pairs", "pair_topk",
                 "pair_weight", "w_object", "w_perceptual", "w_adversarial", "adv_start_step", "init", "init_kmeans",
                 "warmup_steps", "lr", "seed", "threads", "device"):
        if getattr(args, flag) is not None:
            raw[flag] = getattr(args, flag)
    return TrainConfig.from_dict(raw)


def run(args: argparse.Namespace) -> int:
    import shutil

    from probe.training.tokenizer import train

    cfg = build_config(args)
    command = "tokenprobe " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    train(cfg, args.out, resume=not args.no_resume, command=command)
    out = Path(args.out)
    if args.export:
        prefix = Path(args.export)
        prefix.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / "model.json", prefix.with_suffix(".json"))
        shutil.copyfile(out / "model.safetensors", prefix.with_suffix(".safetensors"))
        print(f"exported {prefix.with_suffix('.json')} and {prefix.with_suffix('.safetensors')}")
    print(f"done: {out / 'model.safetensors'}")
    return 0
