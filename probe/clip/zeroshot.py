"""Zero-shot classification of world factors with a CLIP (held-out evaluation)."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from probe.clip.captions import ZERO_SHOT_TASKS, ZeroShotTask

_SHAPES = ("circle", "square", "triangle", "star")


@torch.no_grad()
def class_embeddings(model: torch.nn.Module, tokenizer: Callable[..., torch.Tensor],
                     task: ZeroShotTask) -> torch.Tensor:
    """Unit text embeddings ``[n_classes, D]``: each class's prompts averaged over templates x shapes."""
    dev = next(model.parameters()).device
    out = []
    for cls in task.classes:
        prompts = sorted({t.format(c=cls, shape=s) for t in task.templates for s in _SHAPES})
        emb = model.encode_text(tokenizer(prompts).to(dev), normalize=True).mean(dim=0)
        out.append(emb / emb.norm())
    return torch.stack(out)


@torch.no_grad()
def image_embeddings(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Unit image embeddings ``[B, D]`` of ``images [B, 3, H, W]`` in [0, 1]."""
    dev = next(model.parameters()).device
    chunks = [model.encode_images01(images[i:i + batch_size].to(dev), normalize=True)
              for i in range(0, len(images), batch_size)]
    return torch.cat(chunks) if chunks else torch.zeros(0, model.embed_dim if hasattr(model, "embed_dim") else 0)


@torch.no_grad()
def zero_shot_eval(model: torch.nn.Module, tokenizer: Callable[..., torch.Tensor], images: torch.Tensor,
                   factors: pd.DataFrame, tasks: list[str] | None = None,
                   batch_size: int = 256) -> pd.DataFrame:
    """Zero-shot accuracy per task on ``images [B, 3, H, W]`` in [0, 1] with world ``factors``.

    Rows whose factor lies in the silent middle band of its word rule are left out of that
    task. Returns one row per task: ``task, accuracy, n, n_classes, majority`` (``majority``
    is the accuracy of always guessing the most common class: the chance level to beat).
    """
    was_training = model.training
    model.eval()
    img = image_embeddings(model, images, batch_size)
    rows = []
    for name in tasks or list(ZERO_SHOT_TASKS):
        if name not in ZERO_SHOT_TASKS:
            raise KeyError(f"unknown zero-shot task {name!r}; choose from {sorted(ZERO_SHOT_TASKS)}")
        task = ZERO_SHOT_TASKS[name]
        labels = task.labels(factors)
        keep = labels >= 0
        pred = (img @ class_embeddings(model, tokenizer, task).T).argmax(dim=1).cpu().numpy()
        n = int(keep.sum())
        acc = float((pred[keep] == labels[keep]).mean()) if n else float("nan")
        majority = float(np.bincount(labels[keep], minlength=len(task.classes)).max() / n) if n else float("nan")
        rows.append({"task": name, "accuracy": acc, "n": n, "n_classes": len(task.classes),
                     "majority": majority})
    model.train(was_training)
    return pd.DataFrame(rows)
