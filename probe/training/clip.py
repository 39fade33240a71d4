"""Contrastive training of the world CLIP on fresh world images and generated captions.

Every step renders a new batch of world images (``probe.data.world.sample_range`` over the
next block of indices of the training seed) and a random caption for each, and takes one
AdamW step on open_clip's ``ClipLoss``. Held-out zero-shot accuracy is measured on a separate
world seed. The learning rate follows a cosine over the run's *progress*, the larger of
``step / steps`` and ``elapsed / max_minutes``, so a run with a time limit still anneals fully.
Batches are produced by ``cfg.num_workers`` DataLoader workers (``probe.training.clip_data``); batch ``k``
depends only on ``(cfg, k)``, so the worker count does not change the run.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import open_clip
import pandas as pd
import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm

from probe.clip.model import (
    IMAGE_SIZE,
    WORLD_CLIP_MODEL_CFG,
    WORLD_CLIP_PREPROCESS_CFG,
    WorldCLIP,
    build_model,
    get_tokenizer,
    sparse_state_dict,
)
from probe.clip.zeroshot import zero_shot_eval
from probe.training.clip_data import clip_loader
from probe.training.loop import History, Step, TrainLoop, param_groups, setup


@dataclass
class ClipTrainConfig:
    """Every setting of a CLIP training run (defaults: the shipped ``world-clip``)."""

    steps: int = 3000  # optimizer steps (the run may stop earlier at max_minutes)
    batch_size: int = 128
    lr: float = 7e-4
    weight_decay: float = 0.1  # not applied to gains, biases, embeddings, logit_scale
    warmup_steps: int = 100
    seed: int = 0  # world seed of the training images; also seeds init and captions
    eval_seed: int = 1_000_003  # world seed of the held-out images
    eval_size: int = 1000
    eval_every: int = 250  # steps between held-out evaluations (0: only at the end)
    degrade_fraction: float = 0.25  # fraction of training images passed through degrade()
    max_minutes: float | None = None  # wall-clock limit; the LR schedule anneals by then
    resolution: int = IMAGE_SIZE  # world render resolution
    device: str | None = None
    num_workers: int = 0  # DataLoader processes rendering batches (0: in the training process)
    model_cfg: dict[str, Any] = field(default_factory=lambda: json.loads(json.dumps(WORLD_CLIP_MODEL_CFG)))
    preprocess_cfg: dict[str, Any] = field(default_factory=lambda: dict(WORLD_CLIP_PREPROCESS_CFG))


def _no_decay(name: str, p: torch.nn.Parameter) -> bool:
    # as in open_clip's training script, but embeddings are not decayed either: rows of tokens
    # that never occur must stay as initialised (see probe.clip.model.sparse_state_dict)
    return p.ndim < 2 or "ln" in name or "bias" in name or "logit_scale" in name or "embedding" in name


def train_clip(cfg: ClipTrainConfig, out_dir: str | Path | None = None,
               progress_bar: bool = True) -> tuple[WorldCLIP, torch.Tensor, pd.DataFrame, pd.DataFrame]:
    """Train a world CLIP.

    Returns ``(model, seen_tokens [V] bool, history, evals)``: ``history`` has one row per step
    (``step, loss, lr, logit_scale, seconds``), ``evals`` one row per (evaluation step, task).
    With ``out_dir``, writes ``config.json``, ``history.csv``, ``evals.csv`` and the weights
    (``model.safetensors``, sparse embedding) at every evaluation, so an interrupted run keeps
    its last evaluated weights.
    """
    from probe.data.world import sample_range

    dev = setup(device=cfg.device, seed=cfg.seed)
    model = build_model(cfg.model_cfg, cfg.preprocess_cfg).to(dev).train()
    tokenizer = get_tokenizer(cfg.model_cfg)  # for evaluation; the loader has its own
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay, _no_decay), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
    loss_fn = open_clip.ClipLoss()
    eval_images, eval_factors = sample_range(0, cfg.eval_size, seed=cfg.eval_seed, resolution=cfg.resolution)
    seen = torch.zeros(int(cfg.model_cfg["text_cfg"]["vocab_size"]), dtype=torch.bool)
    out = Path(out_dir) if out_dir else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    history = History()  # loss and logit_scale stay device tensors until flushed: no GPU wait every step
    evals: list[pd.DataFrame] = []
    loop = TrainLoop(opt, steps=cfg.steps, lr=cfg.lr, warmup_steps=cfg.warmup_steps, max_minutes=cfg.max_minutes,
                     desc="train-clip", progress_bar=progress_bar)

    def evaluate(step: int) -> None:
        ev = zero_shot_eval(model, tokenizer, eval_images, eval_factors)
        ev.insert(0, "step", step)
        evals.append(ev)
        if out:
            save_file(sparse_state_dict(model, seen), str(out / "model.safetensors"))
            history.frame().to_csv(out / "history.csv", index=False)
            pd.concat(evals).to_csv(out / "evals.csv", index=False)
            summary = {**asdict(cfg), "steps_done": step, "minutes": loop.elapsed() / 60}
            (out / "config.json").write_text(json.dumps(summary, indent=2))
        tqdm.write(f"step {step}: " + ", ".join(f"{r.task}={r.accuracy:.3f}" for r in ev.itertuples()))

    batches = iter(clip_loader(cfg, pin_memory=dev.type == "cuda"))

    def step_fn(s: Step) -> tuple[torch.Tensor, dict[str, Any]]:
        images, text, k = next(batches)
        assert k == s.index, f"loader returned step {k}, expected {s.index}"  # worker order must hold
        seen[text.flatten()] = True  # on the CPU copy: no device round trip
        images = images.to(dev, non_blocking=True)
        text = text.to(dev, non_blocking=True)
        img_f, txt_f, scale = model(model.normalize01(images), text)
        loss = loss_fn(img_f, txt_f, scale)
        return loss, {"loss": loss.detach(), "logit_scale": scale.detach()}

    def after_step(s: Step, parts: dict[str, Any]) -> None:
        with torch.no_grad():  # as in CLIP: clamp the temperature to at most 100
            model.logit_scale.clamp_(0, math.log(100))
        step = s.index + 1
        history.add(step=step, loss=parts["loss"], lr=s.lr, logit_scale=parts["logit_scale"], seconds=loop.elapsed())
        if step % 25 == 0:  # one GPU sync per 25 steps for the progress bar
            history.flush()
            loop.bar.set_postfix(loss=f"{history.rows[-1]['loss']:.3f}")
        if cfg.eval_every and step % cfg.eval_every == 0:
            evaluate(step)

    loop.run(step_fn, after_step)
    batches = None  # drops the loader's iterator, which stops its workers (they may prefetch past a time limit)
    if not evals or int(evals[-1]["step"].iloc[0]) != loop.step:
        evaluate(loop.step)
    return model, seen, history.frame(), pd.concat(evals, ignore_index=True)


def zoo_entry(cfg: ClipTrainConfig, evals: pd.DataFrame, history: pd.DataFrame,
              command: str) -> dict[str, Any]:
    """The ``world-clip.json`` content: open_clip config + how it was made + held-out numbers."""
    last = evals[evals["step"] == evals["step"].max()]
    return {
        "kind": "clip",
        "model_cfg": cfg.model_cfg,
        "preprocess_cfg": cfg.preprocess_cfg,
        "description": "tiny open_clip CLIP trained contrastively on 32x32 attribute-world images "
                       "and captions generated from their factors (probe.clip.captions)",
        "train": {**{k: v for k, v in asdict(cfg).items() if k not in ("model_cfg", "preprocess_cfg")},
                  "steps_done": int(history["step"].max()) if len(history) else 0,
                  "minutes": round(float(history["seconds"].max()) / 60, 1) if len(history) else 0.0,
                  "command": command},
        "zero_shot_heldout": {r.task: round(float(r.accuracy), 4) for r in last.itertuples()},
        "weights_note": "token_embedding stored sparsely (rows of tokens seen in training; "
                        "others zero): keys sparse.token_embedding.rows / .values",
    }
