"""Does a single token position carry the object's shape? A copy-paste test read by analysis by synthesis.

For each held-out recipient image a donor is rendered with every factor equal except the shape (another shape,
drawn at random). The donor's token at one position is pasted into the recipient's tokens, the result is decoded,
and ``probe.data.world.nearest_shape`` (with the recipient's factors) reads its shape. Per position the table
gives the fraction of pairs read as the donor's shape; two reference rows bracket it:

- ``position = -1`` ("all"): the donor's own tokens decoded (the ceiling: how often the model draws the donor's
  shape at all);
- ``position = -2`` ("none"): the recipient's own tokens decoded, read as the donor's shape (the floor: how
  often the model draws a wrong shape that happens to be the donor's).

A factor "carried by one position" would have one position near the ceiling; the other four factors of the
issue are measured the same way by ``localization.py`` (fractions of a continuous gap instead of a shape read).

Writes a tidy CSV (model, position, fraction) and prints the top positions.

Usage:
    python analyses/world_tokenizer/shape_swap.py --models world-32 world-32-continuous --out runs/world-32/shape_swap.csv
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from probe.tokenizers.base import decode_batched, encode_batched
from probe.measure.world import load_world_tokenizer
from probe.tokenizers.base import paste_tokens


@torch.no_grad()
def shape_swap(model: torch.nn.Module, world: dict, *, n: int = 300, seed: int = 4242) -> pd.DataFrame:
    """Fraction of ``n`` recipient/donor pairs read as the donor's shape, per pasted position (see the module
    docstring; positions -1 and -2 are the all-tokens ceiling and the no-token floor)."""
    from probe.data import world as world_mod

    wcfg = world_mod.WorldConfig.from_dict(world)
    res = model.image_size
    x_rec, df = world_mod.sample(n, seed=seed, resolution=res, config=wcfg)
    rng = np.random.default_rng(seed)
    shapes = list(wcfg.shapes)
    donor_shape = np.array([rng.choice([s for s in shapes if s != t]) for t in df["shape"]], dtype=object)
    renderings = world_mod.shape_renderings(df, res, wcfg)  # [S, n, 3, H, W]: every shape of every recipient
    x_don = renderings[torch.as_tensor([shapes.index(s) for s in donor_shape]), torch.arange(n)]  # [n, 3, H, W]
    q_rec, q_don = encode_batched(model, x_rec).quantized, encode_batched(model, x_don).quantized

    def read_as_donor(q: torch.Tensor) -> float:
        read = world_mod.nearest_shape(decode_batched(model, q), df, wcfg, renderings=renderings)
        return float((read == donor_shape).mean())

    rows = [{"position": -1, "fraction": read_as_donor(q_don)}, {"position": -2, "fraction": read_as_donor(q_rec)}]
    rows += [{"position": p, "fraction": read_as_donor(paste_tokens(q_rec, q_don, p))} for p in range(model.num_tokens)]
    return pd.DataFrame(rows).assign(n_pairs=n, seed=seed)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", required=True, help="zoo names, training run folders or zoo-style .json")
    ap.add_argument("--out", type=Path, required=True, help="CSV path")
    ap.add_argument("--n", type=int, default=300, help="recipient/donor pairs")
    ap.add_argument("--seed", type=int, default=4242)
    args = ap.parse_args(argv)
    tables = []
    for spec in args.models:
        model, world = load_world_tokenizer(spec)
        t = shape_swap(model, world, n=args.n, seed=args.seed).assign(model=spec)
        tables.append(t)
        ref = t.set_index("position")["fraction"]
        top = t[t.position >= 0].nlargest(3, "fraction")
        others = t[t.position >= 0].nsmallest(model.num_tokens - 1, "fraction")["fraction"].mean()
        print(f"{spec}: all tokens {ref[-1]:.3f}, none {ref[-2]:.3f}; best positions "
              + ", ".join(f"{int(r.position)}: {r.fraction:.3f}" for r in top.itertuples())
              + f"; mean of the other {model.num_tokens - 1}: {others:.3f}")
    out = pd.concat(tables, ignore_index=True)[["model", "position", "fraction", "n_pairs", "seed"]]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(args.out, index=False)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
