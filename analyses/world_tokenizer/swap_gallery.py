"""Copy-paste edits by a single token, as pictures: per factor, recipients from one end of the factor, donors
from the other (the swap engine's pairs), and the recipients with the token at the factor's position pasted.

The position per factor is the one that transfers the factor most (``localization.py``'s ``transfer_all``), or
given with ``--positions factor=pos ...``.

Usage (what produced figures/world32_swap_gallery.png):
    python analyses/world_tokenizer/swap_gallery.py --model world-32 --loc runs/world-32/loc.json \
        --out figures/world32_swap_gallery
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from probe.tokenizers.base import decode_batched, encode_batched
from probe.measure.world import load_world_tokenizer
from probe import worlds
from probe.swap import sample_pairs
from probe.swap.pairs import PairConfig
from probe.tokenizers.base import paste_tokens
from probe.viz import save_figure

FACTORS = ("lighting", "bg_blur", "global_blur", "obj_hue")


@torch.no_grad()
def gallery(model: torch.nn.Module, world: dict, positions: dict[str, int], *, n: int = 6, seed: int = 2_000_003,
            pool: int = 800) -> dict[str, torch.Tensor]:
    """Per factor: ``[3, n, 3, H, W]`` (recipient reconstructions, donor reconstructions, recipients with the token
    at ``positions[factor]`` pasted from their donors), from a pool of ``pool`` held-out images of world ``seed``;
    the first ``n`` pairs the swap engine draws from the factor's opposite quartiles (:func:`probe.swap.sample_pairs`,
    as in localization.py)."""
    from probe.data import world as world_mod

    wcfg = world_mod.WorldConfig.from_dict(world)
    images, df = world_mod.sample(pool, seed=seed, resolution=model.image_size, config=wcfg)
    q = encode_batched(model, images).quantized
    kinds = worlds.get("attribute").factors
    out = {}
    for factor, pos in positions.items():
        pairs = sample_pairs(df, factor, "continuous", PairConfig(n=n), circular=kinds[factor] == "circular")
        lo, hi = (torch.as_tensor(pairs[c].to_numpy()[:n].copy()) for c in ("recipient", "donor"))
        out[factor] = torch.stack([decode_batched(model, x) for x in (q[lo], q[hi], paste_tokens(q[lo], q[hi], pos))])
    return out


def draw(panels: dict[str, torch.Tensor], positions: dict[str, int]) -> plt.Figure:
    """One block of three rows per factor: recipients, donors, recipients with the donor's token pasted."""
    n = next(iter(panels.values())).shape[1]
    fig, axes = plt.subplots(3 * len(panels), n, figsize=(1.1 * n, 1.15 * 3 * len(panels)), squeeze=False)
    labels = ("recipient", "donor", "recipient + 1 token")
    for b, (factor, block) in enumerate(panels.items()):
        for r in range(3):
            for c in range(n):
                ax = axes[3 * b + r, c]
                ax.imshow(np.clip(block[r, c].permute(1, 2, 0).numpy(), 0, 1), interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
            axes[3 * b + r, 0].set_ylabel(labels[r], fontsize=7)
        axes[3 * b, 0].set_title(f"{factor}: token {positions[factor]}", fontsize=8, loc="left")
    fig.tight_layout(pad=0.3)
    return fig


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="zoo name, training run folder or zoo-style .json")
    ap.add_argument("--loc", type=Path, default=None, help=".json of localization.py (the best position per factor)")
    ap.add_argument("--positions", nargs="*", default=[], help="factor=position overrides")
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--out", required=True, help="output path without suffix (.png and .svg are written)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    model, world = load_world_tokenizer(args.model)
    positions: dict[str, int] = {}
    if args.loc:
        moved = json.loads(args.loc.read_text()).get("transfer_all", {})
        positions = {f: int(np.argmax(moved[f])) for f in FACTORS if f in moved}
    for item in args.positions:
        factor, _, pos = item.partition("=")
        if factor not in FACTORS or not pos.isdigit():
            raise SystemExit(f"--positions {item!r}: expected factor=position with factor in {FACTORS}")
        positions[factor] = int(pos)
    if not positions:
        raise SystemExit("no positions: pass --loc (from localization.py) or --positions")
    fig = draw(gallery(model, world, positions, n=args.n), positions)
    save_figure(fig, args.out)
    print(f"wrote {args.out}.png / .svg; positions {positions}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
