"""Reconstruction fidelity of a sprites tokenizer: held-out PSNR, codes in use, and each factor's gap kept.

For every factor with a measurer (the sprites world's readers, and the analytic measurers of the corruption
severities), pairs are drawn from the factor's two ends (the swap engine's pairs: quartiles, or opposite arcs
for circular factors) on held-out manifest images. ``gap_kept`` = how far apart the reconstructions of the two
ends read (their mean readings), along the direction in which the originals' ends differ, over how far apart the
originals' ends read: ``probe.swap.visibility.kept_gap``, the swap verdict's own measure, so a reading that only
varies at random, e.g. the axis of a round blob, averages to 0. A factor the
decoder drops keeps ~0 of its gap; below 0.1 it counts as not reconstructed (as
analyses/world_tokenizer/README.md does). ``corr_original`` /
``corr_recon``: how well the reading tracks the true value over all images (Pearson r; circular: the mean
cosine of the reading's angle error), on originals and on reconstructions.

    python analyses/sprites/fidelity.py --model sprites-32 --out runs/sprites-32/fidelity.csv \
        --grid figures/sprites32_reconstructions.png

``--grid``: 16 held-out images (top row) above each model's reconstructions.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

MEASURERS = {"blur": "analytic:global_blur", "brightness": "analytic:luminance", "contrast": "analytic:contrast"}


def tracking(reading: torch.Tensor, truth: np.ndarray, kind: str) -> float:
    if kind == "circular":
        angle = torch.atan2(reading[:, 1], reading[:, 0]).numpy()
        return float(np.cos(angle - 2 * np.pi * truth).mean())
    return float(np.corrcoef(reading.numpy(), truth)[0, 1])


def measure(model_spec: str, *, n: int, seed: int, pairs: int) -> tuple[pd.DataFrame, dict, torch.Tensor, torch.Tensor]:
    from probe import load_tokenizer, worlds
    from probe.data.dataset import collate_skip_none, dataset_from_manifest
    from probe.data.manifest import load_manifest
    from probe.measure import get_measurer
    from probe.measure.fidelity import psnr
    from probe.swap.pairs import PairConfig, sample_pairs
    from probe.swap.visibility import kept_gap, mean_gap
    from probe.tokenizers.base import decode_batched, encode_batched

    import dataclasses

    tok = load_tokenizer(model_spec).eval()
    manifest = dataclasses.replace(load_manifest("sprites"), seed=seed, size=n)
    ds = dataset_from_manifest(manifest, resolution=tok.image_size)
    batch = collate_skip_none(ds.__getitems__(list(range(len(ds)))))
    images, attrs = batch.images, pd.DataFrame(batch.attrs)
    with torch.no_grad():
        enc = encode_batched(tok, images, batch=256)
        recon = decode_batched(tok, enc.quantized, batch=256)
    summary: dict = {"heldout_psnr_db": round(float(psnr(recon, images).mean()), 3),
                     "heldout": {"n_images": n, "manifest": "sprites", "seed": seed}}
    if enc.indices is not None:
        counts = torch.bincount(enc.indices.flatten(), minlength=tok.codebook_size).float()
        p = counts[counts > 0] / counts.sum()
        summary.update(codes_used=int((counts > 0).sum()), perplexity=round(float(torch.exp(-(p * p.log()).sum())), 1))
    world = worlds.get("sprites")
    specs = {**world.measurers, **MEASURERS}
    rows = []
    for name, spec in specs.items():
        m = get_measurer(spec)
        circular = m.kind == "circular"
        with torch.no_grad():
            r_orig, r_rec = m(images), m(recon)
        pr = sample_pairs(attrs, name, "continuous", PairConfig(n=pairs, seed=seed), circular=circular)
        # the pairs' images with their end labels, measured as the swap verdict does (one definition)
        idx = np.concatenate([pr.recipient.to_numpy(), pr.donor.to_numpy()])
        ends = np.concatenate([pr.recipient_end.to_numpy(object), pr.donor_end.to_numpy(object)])
        o, r = r_orig.numpy()[idx], r_rec.numpy()[idx]
        gap_o, kept = mean_gap(o, ends), kept_gap(r, o, ends)
        truth = attrs[name].to_numpy(dtype=np.float64)
        rows.append({"model": model_spec, "factor": name, "measurer": getattr(m, "name", str(spec)), "kind": m.kind,
                     "pairs": len(pr), "gap_original": gap_o, "gap_recon": kept * gap_o, "gap_kept": kept,
                     "corr_original": tracking(r_orig, truth, m.kind), "corr_recon": tracking(r_rec, truth, m.kind)})
    table = pd.DataFrame(rows)
    summary["gap_kept"] = {r.factor: round(r.gap_kept, 3) for r in table.itertuples()}
    return table, summary, images[:16], recon[:16]


def main() -> None:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", nargs="+", required=True, help="tokenizer specs (zoo names or run folders)")
    ap.add_argument("--images", type=int, default=2000, help="held-out manifest images")
    ap.add_argument("--seed", type=int, default=2_000_003, help="seed of the held-out images (training used 1)")
    ap.add_argument("--pairs", type=int, default=256, help="end pairs per factor")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True, help="CSV; a JSON of the summaries is written beside it")
    ap.add_argument("--grid", type=Path, default=None, help="PNG of originals above reconstructions")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tables, summaries, rows = [], {}, []
    for spec in args.model:
        t, s, originals, recon = measure(spec, n=args.images, seed=args.seed, pairs=args.pairs)
        rows = rows or [originals]
        rows.append(recon)
        tables.append(t)
        summaries[spec] = s
        print(spec, json.dumps(s))
        print(t.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pd.concat(tables).to_csv(out, index=False)
    out.with_suffix(".json").write_text(json.dumps(summaries, indent=2) + "\n")
    if args.grid:
        from torchvision.utils import save_image

        args.grid.parent.mkdir(parents=True, exist_ok=True)
        save_image(torch.cat(rows), str(args.grid), nrow=16, padding=1)


if __name__ == "__main__":
    main()
