"""Training batches of the world CLIP, produced by DataLoader workers.

Rendering, degrading, captioning and tokenizing a batch costs ~0.2 s of CPU at batch 512, which
leaves a GPU idle if done in the training process. :class:`ClipBatches` makes batch ``k`` a pure
function of ``(cfg, k)``, so any number of workers can produce steps in parallel and the run is
the same batch for batch whatever ``num_workers`` is.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from probe.clip.captions import captions
from probe.clip.model import get_tokenizer
from probe.data.degrade import degrade

if TYPE_CHECKING:
    from probe.training.clip import ClipTrainConfig

# multiplier mixing the world seed and the step into one per-step seed (as the captions always did)
STEP_SEED_MULT = 1_000_003


def step_seed(seed: int, step: int) -> int:
    """The seed of everything random in batch ``step`` of a run with world seed ``seed``."""
    return seed * STEP_SEED_MULT + step


def make_batch(cfg: ClipTrainConfig, step: int, tokenizer=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch ``step`` of a run: ``(images [B, 3, H, W] float in [0, 1], text [B, ctx] int64)``.

    Images are world indices ``step*B .. (step+1)*B - 1`` of ``cfg.seed``; a random
    ``cfg.degrade_fraction`` of them goes through :func:`degrade`. All randomness is seeded by
    :func:`step_seed`, so the batch depends only on ``(cfg, step)``.
    """
    from probe.data.world import sample_range

    b = cfg.batch_size
    images, factors = sample_range(step * b, (step + 1) * b, seed=cfg.seed, resolution=cfg.resolution)
    if cfg.degrade_fraction > 0:
        # a per-step generator (not one shared sequential stream), so workers need no shared state
        gen = torch.Generator().manual_seed(step_seed(cfg.seed, step))
        pick = torch.rand(b, generator=gen) < cfg.degrade_fraction
        if pick.any():
            images[pick] = degrade(images[pick], gen)
    tokenizer = tokenizer or get_tokenizer(cfg.model_cfg)
    text = tokenizer(captions(factors, seed=step_seed(cfg.seed, step))).to(torch.int64)
    return images, text


class ClipBatches(IterableDataset):
    """Steps ``start .. stop-1`` as ``(images [B, 3, H, W], text [B, ctx] int64, step)``.

    Already batched: use it with ``DataLoader(batch_size=None)``. Worker ``w`` of ``W`` yields
    the steps ``k`` with ``k - start ≡ w (mod W)``; the DataLoader takes one item from each worker
    in turn, so the steps come back in order.
    """

    def __init__(self, cfg: ClipTrainConfig, start: int = 0, stop: int | None = None) -> None:
        self.cfg = cfg
        self.start = start
        self.stop = cfg.steps if stop is None else stop

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        info = get_worker_info()
        wid, nw = (0, 1) if info is None else (info.id, info.num_workers)
        tokenizer = get_tokenizer(self.cfg.model_cfg)  # built here: one per worker, nothing pickled
        for k in range(self.start + wid, self.stop, nw):
            images, text = make_batch(self.cfg, k, tokenizer)
            yield images, text, k


def clip_loader(cfg: ClipTrainConfig, start: int = 0, stop: int | None = None,
                pin_memory: bool = False, prefetch_factor: int = 4) -> DataLoader:
    """DataLoader over :class:`ClipBatches` with ``cfg.num_workers`` workers (0: in-process).

    Not ``persistent_workers``: the loader is iterated once per run, and persistent workers would
    only outlive the training loop (they exist for reuse across epochs).
    """
    w = cfg.num_workers
    return DataLoader(ClipBatches(cfg, start, stop), batch_size=None, num_workers=w,
                      pin_memory=pin_memory, prefetch_factor=prefetch_factor if w > 0 else None)
