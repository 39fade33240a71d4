"""Exhaustive code search at a few positions: the discrete counterpart of the gradient loop.

A straight-through gradient moves pre-quantization features, but the decoder only ever sees codes:
an edit restricted to one position may never leave its code's cell. With one position and ``K`` codes
the whole neighbourhood is small enough to try: decode the image with each code at that position
(in batches), score every candidate with the objective and keep the best. Several positions are
searched one at a time, in sweeps (coordinate descent), until a sweep improves nothing; with one
position a single sweep is the exact optimum over that position's codes.

    from probe.optimize.search import search_positions
    res = search_positions(tok, images, [26], MeasurerTarget(measurer, 0.8))
    res.indices[:, 26], res.images  # every other position keeps its code bitwise
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from probe.optimize.loop import HISTORY_COLUMNS, OptimizeResult

HISTORY = ("step", "row", *HISTORY_COLUMNS)
from probe.optimize.objectives import Objective


@torch.no_grad()
def candidate_losses(tok: Any, indices: torch.Tensor, position: int, objective: Objective, *,
                     batch: int = 512) -> torch.Tensor:
    """The objective of one image with every code at ``position``: ``indices [N]`` -> ``[K]``.

    Decodes ``K`` token sequences that differ from ``indices`` at ``position`` only, ``batch`` at a time.
    """
    codebook = tok.codebook.detach()
    k = codebook.shape[0]
    base = codebook[indices.to(codebook.device)]  # [N, C]
    out = []
    for s in range(0, k, batch):
        codes = torch.arange(s, min(s + batch, k), device=codebook.device)
        q = base[None].repeat(len(codes), 1, 1)
        q[:, position] = codebook[codes]
        out.append(objective(tok.decode(q, clamp=False).float()).float().cpu())
    return torch.cat(out)


def search_positions(tok: Any, images: torch.Tensor | None, positions: Sequence[int],
                     objective: Objective | Sequence[Objective], *, indices: torch.Tensor | None = None,
                     sweeps: int = 3, batch: int = 512, progress: bool = False) -> OptimizeResult:
    """Search all ``K`` codes at ``positions`` of each image for the lowest ``objective``.

    Args:
        tok: a discrete tokenizer (``codebook [K, C]``, ``decode``, ``encode``).
        images: ``[B, 3, H, W]`` in [0, 1] (encoded for the seed codes), or None with ``indices``.
        positions: the positions that may change; every other keeps its code (bitwise).
        objective: one objective that scores any batch of one image's candidates (e.g. a
            :class:`~probe.optimize.objectives.MeasurerTarget` with a scalar target), or one per image.
        indices: ``[B, N]`` seed codes instead of ``images``.
        sweeps: at most this many passes over ``positions`` (stops early when a pass changes nothing;
            one pass suffices for one position).
        batch: candidates decoded at a time.

    Returns:
        an :class:`~probe.optimize.loop.OptimizeResult`: ``indices`` the chosen codes, ``features`` and
        ``quantized`` their code vectors, the decoded result and seed, and a ``history`` with one row
        per (searched position, image) with the loop's columns (``step``: the search's count; ``loss`` =
        ``objective``: the best objective after it; ``changed``: positions whose code differs from the
        seed's) and ``position``, ``code``, ``seconds``, and a last row per image at ``step = steps`` (position
        -1) scoring the result; ``steps`` = position searches run.
    """
    if not getattr(tok, "is_discrete", False) or getattr(tok, "codebook_size", 0) <= 0:
        raise ValueError("search_positions needs a discrete tokenizer (a codebook); for continuous tokens "
                         "use the gradient loop (probe.optimize.optimize with frozen=)")
    dev = tok.codebook.device
    if indices is None:
        if images is None:
            raise ValueError("search_positions: give images or indices")
        with torch.no_grad():
            indices = tok.encode(images.to(dev)).indices
    idx = indices.detach().clone().long().to(dev)
    b, n = idx.shape
    pos = [int(p) for p in positions]
    bad = [p for p in pos if not 0 <= p < n]
    if bad or not pos:
        raise ValueError(f"search_positions: positions {bad or pos} must be a non-empty subset of 0..{n - 1}")
    objs = list(objective) if isinstance(objective, Sequence) else [objective] * b
    if len(objs) != b:
        raise ValueError(f"search_positions: {len(objs)} objectives for {b} images (give 1 or {b})")
    codebook = tok.codebook.detach()
    seed_idx = idx.clone()
    rows, step = [], 0
    with torch.no_grad():
        best = torch.stack([objs[r](tok.decode(codebook[idx[r:r + 1]], clamp=False).float()).float().cpu()[0]
                            for r in range(b)])
        for sweep in range(max(sweeps, 1)):
            changed = False
            for p in pos:
                for r in range(b):
                    t0 = time.perf_counter()
                    losses = candidate_losses(tok, idx[r], p, objs[r], batch=batch)
                    code = int(losses.argmin())
                    if float(losses[code]) < float(best[r]) and code != int(idx[r, p]):
                        idx[r, p], best[r], changed = code, losses[code], True
                    rows.append({"step": step, "row": r, "loss": float(best[r]), "objective": float(best[r]),
                                 "reg": np.nan, "heldout": np.nan, "changed": int((idx[r] != seed_idx[r]).sum()),
                                 "noise": 0.0, "position": p, "code": int(idx[r, p]),
                                 "seconds": time.perf_counter() - t0})
                step += 1
            if not changed or len(pos) == 1:
                break
        for r in range(b):  # a last row per image scores the result, as the loop's history does
            rows.append({"step": step, "row": r, "loss": float(best[r]), "objective": float(best[r]), "reg": np.nan,
                         "heldout": np.nan, "changed": int((idx[r] != seed_idx[r]).sum()), "noise": 0.0,
                         "position": -1, "code": -1, "seconds": 0.0})
        q = codebook[idx]
        images_out = tok.decode(q, clamp=True).float().cpu()
        seed_images = tok.decode(codebook[seed_idx], clamp=True).float().cpu()
    history = pd.DataFrame(rows, columns=[*HISTORY, "position", "code", "seconds"])
    return OptimizeResult(features=q, quantized=q, indices=idx, images=images_out, seed_images=seed_images,
                          history=history, milestones=[(0, seed_images), (max(step - 1, 0), images_out)],
                          steps=step, row_steps=np.full(b, step))
