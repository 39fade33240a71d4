"""Zero-shot classification with a CLIP: world factors (held-out evaluation) and any prompt sets.

The helpers take any open_clip model: the shipped ``world-clip`` (:class:`probe.clip.WorldCLIP`) or one from
``open_clip.create_model_and_transforms``; images are ``[B, 3, H, W]`` in [0, 1].
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from probe.clip.captions import ZERO_SHOT_TASKS, ZeroShotTask
from probe.errors import check_images

_SHAPES = ("circle", "square", "triangle", "star")


def normalize01(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """``images [B, 3, H, W]`` in [0, 1] -> what ``model.encode_image`` wants: resized (antialiased) to the
    vision tower's size and normalised with its preprocessing mean/std (``model.visual.preprocess_cfg``,
    set by open_clip; OpenAI's statistics when absent). Differentiable."""
    if hasattr(model, "normalize01"):
        return model.normalize01(images)
    check_images(images, "CLIP image input")
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    pp = getattr(model.visual, "preprocess_cfg", None) or {}
    size = model.visual.image_size
    size = tuple(size) if isinstance(size, (tuple, list)) else (int(size), int(size))
    if tuple(images.shape[-2:]) != size:
        images = F.interpolate(images, size=size, mode="bicubic", antialias=True, align_corners=False)
    mean = torch.tensor(pp.get("mean", OPENAI_DATASET_MEAN), dtype=images.dtype, device=images.device)
    std = torch.tensor(pp.get("std", OPENAI_DATASET_STD), dtype=images.dtype, device=images.device)
    return (images - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


def encode_images01(model: torch.nn.Module, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Image embeddings ``[B, D]`` (unit length when ``normalize``) of ``images [B, 3, H, W]`` in [0, 1],
    on the model's device. Differentiable."""
    dev = next(model.parameters()).device
    return model.encode_image(normalize01(model, images.to(dev)), normalize=normalize)


@torch.no_grad()
def prompt_embeddings(model: torch.nn.Module, tokenizer: Callable[..., torch.Tensor],
                      prompts: Sequence[Sequence[str]]) -> torch.Tensor:
    """Unit text embeddings ``[K, D]``: class k is the normalised mean of its prompts ``prompts[k]``'s
    embeddings (prompt ensembling, as in the CLIP paper)."""
    dev = next(model.parameters()).device
    out = []
    for group in prompts:
        if not group:
            raise ValueError("prompt_embeddings: every class needs at least one prompt")
        emb = model.encode_text(tokenizer(list(group)).to(dev), normalize=True).mean(dim=0)
        out.append(emb / emb.norm())
    return torch.stack(out)


def task_prompts(task: ZeroShotTask) -> list[list[str]]:
    """The world task's prompts per class: its templates x the four shapes."""
    return [sorted({t.format(c=cls, shape=s) for t in task.templates for s in _SHAPES}) for cls in task.classes]


def class_embeddings(model: torch.nn.Module, tokenizer: Callable[..., torch.Tensor],
                     task: ZeroShotTask) -> torch.Tensor:
    """Unit text embeddings ``[n_classes, D]``: each class's prompts averaged over templates x shapes."""
    return prompt_embeddings(model, tokenizer, task_prompts(task))


@torch.no_grad()
def image_embeddings(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Unit image embeddings ``[B, D]`` of ``images [B, 3, H, W]`` in [0, 1] (on the model's device)."""
    chunks = [encode_images01(model, images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
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
