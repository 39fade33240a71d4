"""CLIP zero-shot measurers: class probabilities over prompt pairs or prompt sets, with any open_clip model.

``ClipMeasurer(prompts, model=...)`` gives ``softmax(logit_scale * cos(image, class))`` ``[B, K]`` (categorical;
``classes`` are the class names). Each class is a prompt or a list of prompts (averaged, as in the CLIP paper).
The model is

- ``"world-clip"`` (default): the shipped world CLIP, with the world's zero-shot tasks as ready-made prompt
  sets (:func:`world_clip_measurer`: ``shape``, ``obj_colour`` / ``obj_hue``, ``bg_colour`` / ``bg_hue``,
  ``lighting``, ``global_blur``, ``bg_blur``, ``obj_scale``, ``obj_x``, ``obj_y``);
- any open_clip architecture name with ``pretrained`` = an open_clip tag (``"openai"``, ...; downloaded by
  open_clip on first use) or a local weights file, or ``pretrained=None`` for random weights;
- or an already built ``(model, tokenizer)`` pair (``model=..., tokenizer=...``).

Text embeddings are computed once, at construction; images are embedded on the model's device.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any

import torch

from probe.measure.base import Measurer, check_images

# world attribute -> the world CLIP's zero-shot task that names it
WORLD_TASK_OF = {"obj_hue": "obj_colour", "bg_hue": "bg_colour"}


@cache
def _zoo_clip(device: str) -> tuple[torch.nn.Module, Callable[..., torch.Tensor]]:
    from probe import zoo

    model, _, tokenizer = zoo.load("world-clip", device=device)
    return model.eval(), tokenizer


@cache
def _open_clip(name: str, pretrained: str | None, device: str) -> tuple[torch.nn.Module, Callable[..., torch.Tensor]]:
    import open_clip

    try:
        model = open_clip.create_model(name, pretrained=pretrained, device=device)
    except RuntimeError as exc:
        raise RuntimeError(f"CLIP measurer: could not build open_clip model {name!r} with pretrained="
                           f"{pretrained!r} ({exc}); check open_clip.list_models() / list_pretrained(), "
                           "or pass a local weights file") from exc
    return model.eval(), open_clip.get_tokenizer(name)


def load_clip(model: str = "world-clip", pretrained: str | None = None,
              device: str | torch.device | None = None) -> tuple[torch.nn.Module, Callable[..., torch.Tensor]]:
    """``(model, tokenizer)`` in eval mode, cached per (model, pretrained, device)."""
    from probe.device import resolve_device

    dev = str(resolve_device(device))
    if model == "world-clip" and pretrained is None:
        return _zoo_clip(dev)
    return _open_clip(model, pretrained, dev)


class ClipMeasurer(Measurer):
    """Zero-shot class probabilities ``[B, K]`` over prompt sets (see the module docstring).

    Args:
        prompts: ``{class name: prompt or [prompts]}``, or a sequence of prompts (each its own class, named by
            itself), e.g. ``["a dark photo", "a bright photo"]``.
        name: the measured attribute's name (default: the class names joined by ``|``).
        model, pretrained, device: which CLIP (see :func:`load_clip`); ignored when ``clip`` is given.
        clip: an already built ``(model, tokenizer)`` (any open_clip model).
        batch_size: images per forward pass.
    """

    kind = "categorical"
    differentiable = True

    def __init__(self, prompts: Mapping[str, str | Sequence[str]] | Sequence[str], *, name: str | None = None,
                 model: str = "world-clip", pretrained: str | None = None, device: str | torch.device | None = None,
                 clip: tuple[torch.nn.Module, Callable[..., torch.Tensor]] | None = None,
                 batch_size: int = 256) -> None:
        from probe.clip.zeroshot import prompt_embeddings

        if isinstance(prompts, str):
            raise TypeError("ClipMeasurer: prompts must be a list of prompts or a {class: prompts} mapping, "
                            "not one string")
        groups = ({k: [v] if isinstance(v, str) else list(v) for k, v in prompts.items()}
                  if isinstance(prompts, Mapping) else {p: [p] for p in prompts})
        if len(groups) < 2:
            raise ValueError(f"ClipMeasurer: needs at least two classes, got {list(groups)}")
        self.model, self.tokenizer = clip if clip is not None else load_clip(model, pretrained, device)
        self.classes = list(groups)
        self.name = name or "|".join(self.classes)
        self.batch_size = batch_size
        self.text = prompt_embeddings(self.model, self.tokenizer, list(groups.values()))  # [K, D]

    def __call__(self, images: torch.Tensor, *, masks: torch.Tensor | None = None) -> torch.Tensor:
        from probe.clip.zeroshot import encode_images01

        check_images(images, f"CLIP measurer {self.name!r}")
        scale = self.model.logit_scale.exp()
        parts = [encode_images01(self.model, images[s : s + self.batch_size]) @ self.text.T
                 for s in range(0, len(images), self.batch_size)]
        if not parts:
            return images.new_zeros(0, len(self.classes))
        return (scale * torch.cat(parts)).softmax(dim=1).to(images.device)


def world_clip_measurer(attribute: str, **kw: Any) -> ClipMeasurer:
    """The world CLIP's zero-shot task for ``attribute`` as a measurer (its classes and prompt ensemble)."""
    from probe.clip.captions import ZERO_SHOT_TASKS
    from probe.clip.zeroshot import task_prompts

    task_name = WORLD_TASK_OF.get(attribute, attribute)
    if task_name not in ZERO_SHOT_TASKS:
        raise KeyError(f"no world CLIP task for {attribute!r}; known: "
                       f"{', '.join(sorted({*ZERO_SHOT_TASKS, *WORLD_TASK_OF}))}")
    task = ZERO_SHOT_TASKS[task_name]
    return ClipMeasurer(dict(zip(task.classes, task_prompts(task))), name=attribute, **kw)
