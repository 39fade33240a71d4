"""The paper's ImageNet generation protocol: class-name prompts, CLIP top-1 seed images, test-time
token optimization, samples written as an ``.npz`` for the ADM FID / IS evaluator.

For users with the TiTok-L-32 and CLIP weights and a GPU (``config.yaml`` beside this file holds the
protocol's settings)::

    python analyses/imagenet_generate/generate.py --config analyses/imagenet_generate/config.yaml \\
        --set seed_images=/data/imagenet/val
    # then, with the evaluator of openai/guided-diffusion:
    python evaluator.py VIRTUAL_imagenet256_labeled.npz runs/imagenet_generate/samples.npz

``--smoke`` runs the same code with random-weight presets (``titok-tiny``), the shipped ``world-clip``,
world seed images and a handful of classes, in seconds on a CPU.

Writes ``samples.npz`` (``arr_0``: uint8 ``[M, H, W, 3]``, ``labels``: class index ``[M]``),
``samples.csv`` (class, prompt, seed image, CLIP loss, held-out score per sample), ``config.json``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from tqdm.auto import tqdm

SMOKE = {"tokenizer": "titok-tiny", "random_init": True, "clip": "world-clip", "heldout_clip": None,
         "seed_images": "world:8", "seed_set_size": 8, "classes": "imagenet:3", "samples_per_class": 2,
         "views": 2, "pad": 2, "batch_size": 4, "device": "cpu",
         "optimize": {"iterations": 3, "lr": 0.1, "ema_decay": 0.5, "noise": 0.1, "reg_weight": 0.1,
                      "reg_target": "seed", "amp": True}}


def _set(cfg: dict, item: str) -> None:
    key, _, value = item.partition("=")
    if not _:
        raise SystemExit(f"--set {item!r}: expected KEY=VALUE (e.g. optimize.iterations=300)")
    *path, last = key.split(".")
    d = cfg
    for k in path:
        d = d.setdefault(k, {})
    d[last] = yaml.safe_load(value)


def class_names(spec) -> list[str]:
    import open_clip

    if isinstance(spec, list):
        return [str(c) for c in spec]
    if isinstance(spec, str) and spec.startswith("imagenet"):
        n = int(spec.split(":")[1]) if ":" in spec else 1000
        return list(open_clip.IMAGENET_CLASSNAMES[:n])
    raise SystemExit(f"classes: expected 'imagenet', 'imagenet:N' or a list of names, got {spec!r}")


def seed_set(spec: str, n: int, resolution: int, seed: int) -> torch.Tensor:
    from probe.commands._optimize_args import load_images

    if spec.startswith("world:"):
        return load_images([spec], resolution, seed=seed)[:n]
    from probe.data.sources import FolderSource

    src = FolderSource(spec)
    pick = np.sort(np.random.default_rng(seed).choice(len(src), size=min(n, len(src)), replace=False))
    return torch.stack([src.item(int(i), resolution)[0] for i in tqdm(pick, desc="seed images")])


def main() -> None:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(Path(__file__).with_name("config.yaml")))
    ap.add_argument("--set", action="append", default=[], help="override a config key: KEY=VALUE (dots for nesting)")
    ap.add_argument("--smoke", action="store_true", help="random-weight presets, world seeds, 3 classes x 2 samples")
    ap.add_argument("--out", default=None, help="output folder (default: the config's out)")
    args = ap.parse_args()
    with open(args.config) as fh:
        cfg = yaml.safe_load(fh)
    if args.smoke:
        cfg.update(SMOKE)
    for item in args.set:
        _set(cfg, item)
    out = Path(args.out or cfg["out"])
    out.mkdir(parents=True, exist_ok=True)

    from probe import load_tokenizer
    from probe.optimize import ClipText, HeldOut, OptimizeConfig, load_clip
    from probe.optimize.tasks import clip_top1, generate

    torch.manual_seed(cfg["seed"])
    tok = load_tokenizer(cfg["tokenizer"], device=cfg["device"], random_init=bool(cfg.get("random_init", False)))
    clip = load_clip(cfg["clip"], device=cfg["device"])
    held = load_clip(cfg["heldout_clip"], device=cfg["device"]) if cfg.get("heldout_clip") else None
    names = class_names(cfg["classes"])
    prompts = [cfg["template"].format(c) for c in names]
    seeds = None
    rows = [(k, s) for k in range(len(names)) for s in range(cfg["samples_per_class"])]
    if cfg["init"] in ("top1", "random"):
        seeds = seed_set(cfg["seed_images"], cfg["seed_set_size"], tok.image_size, cfg["seed"])
        if cfg["init"] == "top1":
            top = clip_top1(clip, seeds, prompts)
            index = [int(top[k]) for k, _ in rows]
        else:
            index = np.random.default_rng(cfg["seed"]).integers(0, len(seeds), len(rows)).tolist()
    opt_cfg = dict(cfg["optimize"])
    images, records = [], []
    bs = cfg["batch_size"]
    for start in tqdm(range(0, len(rows), bs), desc="batches"):
        chunk = rows[start:start + bs]
        chunk_prompts = [prompts[k] for k, _ in chunk]
        # one seed per sample: samples differ by their noise and views, and runs are reproducible
        config = OptimizeConfig(**opt_cfg, seed=cfg["seed"] + start, progress=False)
        heldout = HeldOut(ClipText(held, chunk_prompts)) if held is not None else None
        res = generate(tok, chunk_prompts, 1, clip=clip, seed_images=seeds, init=cfg["init"],
                       negative=cfg.get("negative"), cfg=cfg["cfg"], n_views=cfg["views"], pad=cfg["pad"],
                       config=config, heldout=heldout,
                       seed_index=None if seeds is None else index[start:start + bs])
        images.append((res.images.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8))
        last = res.history[res.history.step == res.steps].set_index("row")
        for r, (k, s) in enumerate(chunk):
            records.append({"class_index": k, "class": names[k], "sample": s, "prompt": prompts[k],
                            "seed_image": None if seeds is None else index[start + r],
                            "clip_loss": float(last.objective.iloc[r]), "heldout": float(last.heldout.iloc[r])})
    arr = np.concatenate(images)
    np.savez(out / "samples.npz", arr_0=arr, labels=np.array([k for k, _ in rows], dtype=np.int64))
    pd.DataFrame(records).to_csv(out / "samples.csv", index=False)
    with open(out / "config.json", "w") as fh:
        json.dump(cfg, fh, indent=2)
    print(f"{len(arr)} samples {arr.shape[1]}x{arr.shape[2]} -> {out / 'samples.npz'}")


if __name__ == "__main__":
    main()
