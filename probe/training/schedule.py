"""The learning-rate schedule shared by every trainer in tokenprobe (tokenizer, CLIP, oracle).

Training runs have a step budget and, optionally, a wall-clock budget; ``progress`` is the larger
of the two fractions, so a run stopped by its time limit still anneals fully.
"""
from __future__ import annotations

import math


def budget_progress(step: int, steps: int, elapsed_s: float, max_minutes: float | None) -> float:
    """``max(step / steps, elapsed / max_minutes)``; the time term is 0 when there is no time limit."""
    return max(step / steps, elapsed_s / (60.0 * max_minutes) if max_minutes else 0.0)


def warmup_cosine_lr(base_lr: float, step: int, progress: float, warmup_steps: int, min_ratio: float = 0.0) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine from ``base_lr`` to ``base_lr * min_ratio``
    as ``progress`` goes from 0 to 1 (clamped)."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    p = min(max(progress, 0.0), 1.0)
    return base_lr * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * p)))
