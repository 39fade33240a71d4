"""How much of the object's shape do a tokenizer's tokens carry? Two diagnostics.

1. ``probe``: a one-hidden-layer MLP (scikit-learn, 256 units) reads the shape from a model's 32 tokens
   (``encode(...).quantized`` flattened to ``[B, N*C]``) on ``--n-train`` images and is scored on ``--n-test``
   others (world seed ``--seed``; chance 0.25). A decoder could do better than this probe; it is a comparison
   between models, not a ceiling.
2. ``kmeans`` (``--kmeans K [K ...]``, continuous models only): quantize the model's features with a codebook of
   K spherical k-means centroids (``WorldTokenizer.init_codes_kmeans``, what ``--init-kmeans`` uses) of
   ``--kmeans-images`` images' features, with no training, and read the reconstructions with
   ``probe.measure.fidelity.shape_fidelity`` (PSNR, object PSNR, nearest-shape accuracy). This is where a VQ
   model started with ``--init world-32-continuous --init-kmeans`` begins.

Writes a tidy CSV (one row per model x diagnostic) and prints it as markdown.

Usage:
    python analyses/world_tokenizer/shape_in_tokens.py --models world-32 world-32-continuous \
        --kmeans 1024 4096 --out runs/world-32/shape_in_tokens.csv
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch

from probe import zoo
from probe.tokenizers.base import encode_batched
from probe.measure.fidelity import shape_fidelity
from probe.measure.world import load_world_tokenizer
from probe.report import markdown_table


def shape_probe(model: torch.nn.Module, world: dict, *, n_train: int, n_test: int, seed: int) -> float:
    """Held-out accuracy of an MLP reading the shape from the tokens (chance 0.25)."""
    from sklearn.neural_network import MLPClassifier

    from probe.data import world as world_mod

    images, df = world_mod.sample(n_train + n_test, seed=seed, resolution=model.config.image_size,
                                  config=world_mod.WorldConfig.from_dict(world))
    x = encode_batched(model, images, batch=512).quantized.flatten(1).numpy()  # the decoder's input tokens
    y = df["shape"].to_numpy()
    clf = MLPClassifier((256,), max_iter=60, random_state=0).fit(x[:n_train], y[:n_train])
    return float(clf.score(x[n_train:], y[n_train:]))


@torch.no_grad()
def kmeans_quantized(model: torch.nn.Module, world: dict, k: int, *, n_images: int, seed: int) -> torch.nn.Module:
    """A VQ copy of the continuous ``model`` whose codebook is ``k`` spherical k-means centroids of its features."""
    from probe.data import world as world_mod
    from probe.tokenizers.world import WorldTokenizer

    if model.is_discrete:
        raise ValueError("shape_in_tokens --kmeans: needs a continuous model (quantize false)")
    images, _ = world_mod.sample(n_images, seed=seed, resolution=model.config.image_size,
                                 config=world_mod.WorldConfig.from_dict(world))
    feats = encode_batched(model, images, batch=512).features
    cfg = {**model.config_dict(), "quantize": True, "codebook_size": k}
    vq = WorldTokenizer.from_config(cfg)
    vq.load_state_dict({**model.state_dict(), "codes": vq.codes.detach().clone()})
    vq.init_codes_kmeans(feats.reshape(-1, feats.shape[-1]), generator=torch.Generator().manual_seed(seed))
    return vq.eval()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", required=True, help="zoo names, run folders or zoo-style .json files")
    ap.add_argument("--out", required=True, help="CSV, one row per model x diagnostic")
    ap.add_argument("--n-train", type=int, default=20000)
    ap.add_argument("--n-test", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=99, help="world seed of the probe's images and of the k-means")
    ap.add_argument("--kmeans", type=int, nargs="*", default=[], help="codebook sizes for the k-means diagnostic")
    ap.add_argument("--kmeans-images", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    oracle = zoo.load("world-oracle", device="cpu").eval() if args.kmeans else None
    for spec in args.models:
        model, world = load_world_tokenizer(spec)
        acc = shape_probe(model, world, n_train=args.n_train, n_test=args.n_test, seed=args.seed)
        rows.append({"model": spec, "diagnostic": "mlp_probe", "codes": model.codebook_size, "shape_acc": acc})
        print(f"{spec}: MLP shape probe {acc:.3f}", file=sys.stderr)
        if model.is_discrete:
            continue
        for k in args.kmeans:
            vq = kmeans_quantized(model, world, k, n_images=args.kmeans_images, seed=args.seed)
            fid = shape_fidelity(vq, world, oracle)
            rows.append({"model": spec, "diagnostic": "kmeans_no_training", "codes": k,
                         "shape_acc": fid["shape_acc_synth"], "psnr": fid["psnr"], "object_psnr": fid["object_psnr"]})
            print(f"{spec} + k-means {k}: nearest-shape {fid['shape_acc_synth']:.3f}", file=sys.stderr)
    table = pd.DataFrame(rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    print(markdown_table(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
