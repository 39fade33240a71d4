"""Training of the attribute oracle on fresh world images (clean, degraded, reconstructed).

Every step renders a new batch of world images of the training seed; a fraction is passed
through :func:`probe.data.degrade.degrade` (reconstruction-like errors) and, when a
tokenizer is given, a fraction is replaced by that tokenizer's reconstructions. Labels are
always the factors the image was rendered from. The loss is cross-entropy for the shape plus,
for every regression target, its mean squared error divided by the target's variance (so each
term reads as ``1 - R^2`` and no factor dominates by its units).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm

from probe.data.degrade import degrade
from probe.oracle.model import OracleConfig, WorldOracle
from probe.training.loop import History, Step, TrainLoop, setup
from probe.training.losses import oracle_loss, oracle_targets


@dataclass
class OracleTrainConfig:
    """Every setting of an oracle training run (defaults: the shipped ``world-oracle``)."""

    steps: int = 3000
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    seed: int = 0  # world seed of the training images (also init, degradations)
    first_index: int = 0  # world index of the first training image (fine-tuning continues past a run)
    eval_seed: int = 2_000_003  # world seed of the held-out images
    eval_size: int = 1000
    eval_every: int = 250
    degrade_fraction: float = 0.5  # fraction of training images passed through degrade()
    tokenizer: str | None = None  # e.g. "world-32": train on its reconstructions too
    recon_fraction: float = 0.0  # fraction of training images replaced by reconstructions
    init_weights: str | None = None  # start from these weights (fine-tuning)
    max_minutes: float | None = None  # wall-clock limit; the cosine LR anneals by then
    resolution: int = 32
    device: str | None = None
    model: dict[str, Any] = field(default_factory=lambda: OracleConfig().to_dict())


def reconstruct(tokenizer: torch.nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Tokenizer reconstructions ``[B, 3, H, W]`` in [0, 1] (encode -> quantize -> decode), on the CPU."""
    from probe.tokenizers.base import decode_batched, encode_batched

    return decode_batched(tokenizer, encode_batched(tokenizer, images, batch_size).quantized, batch_size).float()


def tokenizer_world(name: str | None) -> Any:
    """The ``WorldConfig`` a world tokenizer (shipped name or training run folder) was trained on, when it differs
    from the default world (its record's ``world_overrides``); ``None`` otherwise (not a world tokenizer, no
    overrides)."""
    from probe.data.world import WorldConfig
    from probe.measure.world import tokenizer_world as world_overrides

    overrides = world_overrides(name) if name else {}
    return WorldConfig.from_dict(overrides) if overrides else None


def train_oracle(cfg: OracleTrainConfig, out_dir: str | Path | None = None,
                 progress_bar: bool = True) -> tuple[WorldOracle, pd.DataFrame, pd.DataFrame]:
    """Train an oracle; returns ``(model, history, evals)``.

    ``history``: one row per step (``step, loss, lr, seconds``); ``evals``: the held-out
    evaluation (:func:`probe.oracle.evaluate.evaluate_oracle`, clean images) at each
    evaluation step. With ``out_dir``: ``config.json``, ``history.csv``, ``evals.csv`` and
    ``model.safetensors`` are (re)written at every evaluation.
    """
    from probe.data.world import sample_range
    from probe.oracle.evaluate import evaluate_oracle

    dev = setup(device=cfg.device, seed=cfg.seed)
    model = WorldOracle(OracleConfig.from_dict(cfg.model)).to(dev)
    if cfg.init_weights:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(cfg.init_weights))
    model.train()
    tok = None
    if cfg.tokenizer and cfg.recon_fraction > 0:
        import probe

        tok = probe.load_tokenizer(cfg.tokenizer, device=dev).eval()
    tok_world = tokenizer_world(cfg.tokenizer) if tok is not None else None
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    eval_images, eval_factors = sample_range(0, cfg.eval_size, seed=cfg.eval_seed, resolution=cfg.resolution)
    out = Path(out_dir) if out_dir else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    history = History()
    evals: list[pd.DataFrame] = []
    loop = TrainLoop(opt, steps=cfg.steps, lr=cfg.lr, warmup_steps=cfg.warmup_steps, max_minutes=cfg.max_minutes,
                     desc="train-oracle", progress_bar=progress_bar)

    def evaluate(step: int) -> None:
        ev = evaluate_oracle(model, eval_images, eval_factors)
        ev.insert(0, "step", step)
        evals.append(ev)
        if out:
            save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                      str(out / "model.safetensors"))
            history.frame().to_csv(out / "history.csv", index=False)
            pd.concat(evals).to_csv(out / "evals.csv", index=False)
            (out / "config.json").write_text(json.dumps(
                {**asdict(cfg), "steps_done": step, "minutes": loop.elapsed() / 60}, indent=2))
        model.train()
        tqdm.write(f"step {step}: " + ", ".join(f"{r.factor}={r.score:.3f}" for r in ev.itertuples()))

    def step_fn(s: Step) -> tuple[torch.Tensor, dict[str, Any]]:
        b = cfg.batch_size
        start = cfg.first_index + s.index * b
        images, factors = sample_range(start, start + b, seed=cfg.seed, resolution=cfg.resolution)
        u = torch.rand(b, generator=gen)
        if tok is not None:
            pick = u < cfg.recon_fraction
            if pick.any():
                src = images[pick]
                if tok_world is not None:
                    # the same world images (same factors, hence the same targets) rendered in the sub-world the
                    # tokenizer was trained on, so the oracle learns its reconstructions of what it can encode
                    from probe.data.world import factors_at, render

                    idx = start + pick.nonzero().squeeze(1).numpy()
                    src, _ = render(factors_at(idx, seed=cfg.seed, config=tok_world), cfg.resolution, tok_world)
                images[pick] = reconstruct(tok, src.to(dev)).cpu()
        pick = (u >= cfg.recon_fraction) & (u < cfg.recon_fraction + cfg.degrade_fraction)
        if pick.any():
            images[pick] = degrade(images[pick], gen)
        loss = oracle_loss(model, images.to(dev), {k: v.to(dev) for k, v in oracle_targets(model, factors).items()})
        return loss, {"loss": loss.detach()}

    def after_step(s: Step, parts: dict[str, Any]) -> None:
        step = s.index + 1
        history.add(step=step, loss=parts["loss"], lr=s.lr, seconds=loop.elapsed())
        if step % 25 == 0:  # one device sync per 25 steps for the progress bar
            history.flush()
            loop.bar.set_postfix(loss=f"{history.rows[-1]['loss']:.3f}")
        if cfg.eval_every and step % cfg.eval_every == 0:
            evaluate(step)

    loop.run(step_fn, after_step)
    if not evals or int(evals[-1]["step"].iloc[0]) != loop.step:
        evaluate(loop.step)
    model.eval()
    return model, history.frame(), pd.concat(evals, ignore_index=True)


def zoo_entry(cfg: OracleTrainConfig, evals: pd.DataFrame, history: pd.DataFrame,
              command: str) -> dict[str, Any]:
    """The ``world-oracle.json`` content: model config + how it was made + held-out scores."""
    last = evals[evals["step"] == evals["step"].max()]
    return {
        "kind": "oracle",
        "model_cfg": cfg.model,
        "description": "attribute oracle: small CNN predicting every attribute-world factor from a "
                       "32x32 image (inputs of other sizes are resized); probe.oracle.WorldOracle",
        "train": {**{k: v for k, v in asdict(cfg).items() if k != "model"},
                  "steps_done": int(history["step"].max()) if len(history) else 0,
                  "minutes": round(float(history["seconds"].max()) / 60, 1) if len(history) else 0.0,
                  "command": command},
        "heldout_clean": {r.factor: round(float(r.score), 4) for r in last.itertuples()},
        "heldout_metric": {r.factor: r.metric for r in last.itertuples()},
    }
