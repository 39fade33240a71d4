"""Shape fidelity of world tokenizers: does the object keep its outline through encode -> decode?

For each model (zoo name, training run folder or zoo-style .json), on a fresh held-out set of the model's
own world (``--seed``, default 31337, the world-oracle's held-out seed; never used for tokenizer training):

- ``psnr``: mean per-image PSNR (dB) of the reconstructions;
- ``object_psnr``: PSNR over the object's pixels only (mask dilated by one pixel,
  ``probe.tokenizers.train.object_weight``), pooled over the set;
- ``shape_acc_recon``: the shipped world-oracle's shape accuracy on the reconstructions (chance 0.25), and
  ``shape_acc_clean`` on the originals, so the oracle's own ceiling is in the same table;
- ``shape_acc_recon_<shape>``: the same per true shape;
- ``shape_acc_synth``: analysis by synthesis, without the oracle. Every factor of a held-out image is known, so
  the image is rendered again once per shape with all other factors equal; the reconstruction is classified as
  the shape whose rendering is nearest in mean squared error (``probe.data.world.nearest_shape``; 1.0 on clean images; chance 0.25). It matters for
  a tokenizer trained with the oracle's perceptual loss (``probe.tokenizers.perceptual``), whose oracle scores
  are biased upwards. (A linear probe of shape is no such check: it reads 0.45 even from the raw pixels, since
  shape is not a linear function of pixels when the object moves.)

Writes a CSV (one row per model) and prints it as markdown.

Usage:
    python analyses/world_tokenizer/shape_fidelity.py --models world-32 world-32-continuous --out runs/world-32/shape.csv
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


@torch.no_grad()
def shape_fidelity(model: torch.nn.Module, world: dict, oracle: torch.nn.Module, *, n: int = 2000,
                   seed: int = 31337) -> dict[str, float]:
    """One row of the table for ``model`` on ``n`` held-out images of its world ``world`` (overrides)."""
    from probe.data import world as world_mod
    from probe.swap.paste import decode
    from probe.tokenizers.train import object_squared_error, world_config
    from probe.tokenizers.world import psnr

    wcfg = world_config(world)
    images, df, masks = world_mod.sample(n, seed=seed, resolution=model.config.image_size, config=wcfg,
                                         return_masks=True)
    quant = torch.cat([model.encode(images[s : s + 256]).quantized for s in range(0, n, 256)])
    recon = decode(model, quant)  # VQ and continuous models alike
    sse, count = object_squared_error(recon, images, masks)
    true = df["shape"].to_numpy()
    renderings = world_mod.shape_renderings(df, images.shape[-1], wcfg)  # both readings below compare with these
    pred_recon = oracle.predict(recon)["shape"].to_numpy()
    pred_clean = oracle.predict(images)["shape"].to_numpy()
    row = {"n_images": n, "seed": seed, "psnr": float(psnr(recon, images).mean()),
           "object_psnr": float(-10 * torch.log10(torch.tensor(sse / count))),
           "shape_acc_clean": float((pred_clean == true).mean()),
           "shape_acc_recon": float((pred_recon == true).mean()),
           "shape_acc_synth": float((world_mod.nearest_shape(recon, df, wcfg, renderings=renderings) == true).mean()),
           "shape_acc_synth_clean": float((world_mod.nearest_shape(images, df, wcfg, renderings=renderings) == true).mean())}
    for s in wcfg.shapes:
        sel = true == s
        row[f"shape_acc_recon_{s}"] = float((pred_recon[sel] == s).mean())
    return row


def main(argv: list[str] | None = None) -> int:
    from localization import load_model

    from probe import zoo
    from probe.report import markdown_table

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", required=True, help="zoo names, run folders or zoo-style .json files")
    ap.add_argument("--out", required=True, help="CSV, one row per model")
    ap.add_argument("--n", type=int, default=2000, help="held-out images")
    ap.add_argument("--seed", type=int, default=31337, help="world seed of the held-out set")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    oracle = zoo.load("world-oracle", device="cpu").eval()
    rows = []
    for spec in args.models:
        model, world = load_model(spec)
        rows.append({"model": spec, **shape_fidelity(model, world, oracle, n=args.n, seed=args.seed)})
        print(f"{spec}: shape accuracy {rows[-1]['shape_acc_recon']:.3f}", file=sys.stderr)
    table = pd.DataFrame(rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    print(markdown_table(table.set_index("model")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
