"""The test-time optimization loop: optimize a tokenizer's pre-quantization features for an objective.

Every step: (noise) -> quantize with a straight-through estimator -> decode with ``clamp=False`` ->
objective ``[B]`` (+ L2 regularizer) -> Adam step on the features -> (token reset) -> (EMA) ->
frozen positions restored. Rows of the batch are independent (the summed loss gives each row its
own gradient and Adam is elementwise; each row draws noise and views from its own generator), so a
batch of prompts gives what the prompts give one by one.

Matches the paper's released loop (token-opt ``tto/test_time_opt.py``): Adam lr 0.1, 600 steps,
noise added to the optimized tensor before each forward with the schedule
``s * 0.5 * (1 + cos(pi * t))``, ``t = min(1, 1.5 i / (iters - 1))``, the regularizer
``w * mean((z - z_seed)^2)`` or ``w * mean(z^2)``, the EMA ``e <- d e + (1 - d) z`` after each step
(the result is decoded from the EMA).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from probe.optimize.objectives import HeldOut, Lambda, Objective


@dataclass
class OptimizeConfig:
    """Settings of :func:`optimize` (defaults: the paper's, with EMA, noise and regularizer off).

    Attributes:
        iterations: optimizer steps.
        lr: Adam learning rate.
        betas: Adam betas.
        ema_decay: EMA decay of the features (0 = off; the result is the EMA when on).
        noise: token noise scale ``s`` (0 = off); schedule in :func:`noise_scale`.
        reg_weight: weight of the L2 regularizer (0 = off).
        reg_target: ``"seed"`` (towards the starting features) or ``"zero"``.
        amp: bf16 autocast on CUDA (ignored elsewhere).
        early_stop_patience: stop when the mean loss has not improved by ``early_stop_min_delta``
            for this many steps (0 = never).
        early_stop_min_delta: the improvement that counts.
        heldout_every: score with the held-out scorer every this many steps (and at the end).
        milestones: images kept for the grid (decoded at evenly spaced steps, first and last included).
        seed: base seed; row ``b`` draws from a generator seeded ``seed + b`` unless seeds are given.
        progress: show a tqdm progress bar.
    """

    iterations: int = 600
    lr: float = 0.1
    betas: tuple[float, float] = (0.9, 0.999)
    ema_decay: float = 0.0
    noise: float = 0.0
    reg_weight: float = 0.0
    reg_target: str = "seed"
    amp: bool = True
    early_stop_patience: int = 0
    early_stop_min_delta: float = 1e-4
    heldout_every: int = 10
    milestones: int = 5
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ValueError(f"OptimizeConfig.iterations must be >= 1, got {self.iterations}")
        if self.reg_target not in ("seed", "zero"):
            raise ValueError(f"OptimizeConfig.reg_target must be 'seed' or 'zero', got {self.reg_target!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"OptimizeConfig.ema_decay must be in [0, 1), got {self.ema_decay}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def noise_scale(i: int, iterations: int, s: float) -> float:
    """The token-noise standard deviation at step ``i``: ``s * 0.5 * (1 + cos(pi * t))``,
    ``t = min(1, 1.5 i / (iterations - 1))`` (reaches 0 at two thirds of the run)."""
    t = min(1.0, 1.5 * i / max(iterations - 1, 1))
    return s * 0.5 * (1.0 + math.cos(math.pi * t))


@dataclass
class StepInfo:
    """What a token-reset callback sees after the optimizer step ``step``.

    Attributes:
        step: 0-based step.
        features: ``[B, N, C]`` the optimized features after the step (read only).
        images: ``[B, 3, H, W]`` this step's raw decoded images (before the step; detached).
        loss: ``[B]`` this step's objective.
    """

    step: int
    features: torch.Tensor
    images: torch.Tensor
    loss: torch.Tensor


ResetFn = Callable[[StepInfo], torch.Tensor | None]


@dataclass
class OptimizeResult:
    """Attributes:
    features: ``[B, N, C]`` final features (the EMA when on).
    quantized: ``[B, N, C]`` their quantization.
    indices: ``[B, N]`` token ids (None for continuous tokenizers).
    images: ``[B, 3, H, W]`` decoded result, clamped to [0, 1].
    seed_images: ``[B, 3, H, W]`` the seed features decoded (clamped).
    history: one row per (step, row): ``step, row, loss, objective, reg, heldout, changed, noise``
        (``heldout`` NaN between scoring steps; ``changed`` = tokens whose index differs from the
        seed's, NaN for continuous tokenizers); a last row per image at ``step = steps`` scores the result.
    milestones: ``[(step, images [B, 3, H, W])]`` for the grid (CPU).
    steps: steps actually run (< iterations after an early stop).
    """

    features: torch.Tensor
    quantized: torch.Tensor
    indices: torch.Tensor | None
    images: torch.Tensor
    seed_images: torch.Tensor
    history: pd.DataFrame
    milestones: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    steps: int = 0


def _frozen_mask(frozen: torch.Tensor | None, b: int, n: int, device: torch.device) -> torch.Tensor | None:
    if frozen is None:
        return None
    f = torch.as_tensor(frozen, device=device).bool()
    if f.ndim == 1:
        f = f[None].expand(b, -1)
    if f.shape != (b, n):
        raise ValueError(f"frozen mask must be [N] = [{n}] or [B, N] = [{b}, {n}], got {tuple(f.shape)}")
    return f[..., None]


def optimize(tok: Any, objective: Objective | Callable[..., torch.Tensor], seed_features: torch.Tensor, *,
             config: OptimizeConfig | None = None, frozen: torch.Tensor | None = None,
             heldout: HeldOut | None = None, reset: ResetFn | None = None,
             seeds: Sequence[int] | None = None) -> OptimizeResult:
    """Optimize ``seed_features [B, N, C]`` (pre-quantization; VAE: posterior mean) for ``objective``.

    Args:
        tok: a tokenizer (``quantize``, ``decode(q, clamp=False)``).
        objective: images ``[B, 3, H, W]`` (raw decoder output) -> loss ``[B]``.
        frozen: ``[N]`` or ``[B, N]`` bool, True where a position may not move (kept bitwise equal to
            the seed, EMA included).
        heldout: a scorer reported in the history, never optimized.
        reset: called after every step with a :class:`StepInfo`; returning features ``[B, N, C]``
            replaces the optimized ones (and restarts nothing else: Adam moments and EMA go on).
        seeds: one seed per row (default ``config.seed + row``).
    """
    cfg = config or OptimizeConfig()
    if not isinstance(objective, Objective):
        objective = Lambda(objective)
    dev = seed_features.device
    b, n, _ = seed_features.shape
    seed = seed_features.detach().float().clone()
    row_seeds = list(seeds) if seeds is not None else [cfg.seed + i for i in range(b)]
    if len(row_seeds) != b:
        raise ValueError(f"optimize: {len(row_seeds)} seeds for a batch of {b}")
    gens = [torch.Generator().manual_seed(int(s)) for s in row_seeds]
    fmask = _frozen_mask(frozen, b, n, dev)

    z = seed.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=cfg.lr, betas=cfg.betas)
    ema = seed.clone() if cfg.ema_decay > 0 else None
    amp = cfg.amp and dev.type == "cuda"
    with torch.no_grad():
        q0, idx0 = tok.quantize(seed)
        seed_images = tok.decode(q0, clamp=True).float().cpu()
    marks = sorted({int(round(x)) for x in np.linspace(0, cfg.iterations - 1, max(cfg.milestones, 2))})

    def current() -> torch.Tensor:
        return ema if ema is not None else z.detach()

    def keep_frozen(t: torch.Tensor) -> None:
        if fmask is not None:
            t.copy_(torch.where(fmask, seed, t))

    rec: dict[str, list] = {k: [] for k in ("step", "loss", "objective", "reg", "heldout", "changed", "noise")}
    milestones: list[tuple[int, torch.Tensor]] = []
    best, since_best, steps = math.inf, 0, 0
    bar = tqdm(range(cfg.iterations), disable=not cfg.progress, desc="optimize", leave=False)
    for i in bar:
        sigma = noise_scale(i, cfg.iterations, cfg.noise) if cfg.noise > 0 else 0.0
        if sigma > 0:
            with torch.no_grad():
                eps = torch.stack([torch.randn(z.shape[1:], generator=g) for g in gens]).to(dev)
                z.add_(sigma * eps)
                keep_frozen(z)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            q, idx = tok.quantize(z)
            images = tok.decode(q, clamp=False)
            obj = objective(images, generators=gens).float()
            if cfg.reg_weight > 0:
                ref = seed if cfg.reg_target == "seed" else torch.zeros_like(seed)
                reg = cfg.reg_weight * (z - ref).pow(2).flatten(1).mean(1)
            else:
                reg = torch.zeros_like(obj)
            loss = obj + reg
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        if fmask is not None and z.grad is not None:
            z.grad.masked_fill_(fmask, 0.0)
        opt.step()
        with torch.no_grad():
            keep_frozen(z)
            if reset is not None:
                new = reset(StepInfo(i, z.detach(), images.detach(), obj.detach()))
                if new is not None:
                    z.copy_(new.to(z.dtype))
                    keep_frozen(z)
            if ema is not None:
                ema.mul_(cfg.ema_decay).add_(z.detach(), alpha=1.0 - cfg.ema_decay)
                keep_frozen(ema)
            score = None
            if heldout is not None and (i % max(cfg.heldout_every, 1) == 0):
                shown = images if ema is None else tok.decode(tok.quantize(ema)[0], clamp=False)
                score = heldout(shown.float()).float().cpu()
            if i in marks:
                milestones.append((i, tok.decode(tok.quantize(current())[0], clamp=True).float().cpu()))
        steps = i + 1
        rec["step"].append(i)
        rec["loss"].append(loss.detach().float().cpu())
        rec["objective"].append(obj.detach().cpu())
        rec["reg"].append(reg.detach().float().cpu())
        rec["heldout"].append(score if score is not None else torch.full((b,), float("nan")))
        rec["changed"].append((idx != idx0).sum(1).float().cpu() if idx is not None and idx0 is not None
                              else torch.full((b,), float("nan")))
        rec["noise"].append(torch.full((b,), sigma))
        mean_loss = float(loss.detach().mean())
        if cfg.progress:
            bar.set_postfix(loss=f"{mean_loss:.4f}")
        if cfg.early_stop_patience > 0:
            if mean_loss < best - cfg.early_stop_min_delta:
                best, since_best = mean_loss, 0
            else:
                since_best += 1
                if since_best >= cfg.early_stop_patience:
                    break
    bar.close()

    with torch.no_grad():
        final = current().clone()
        q, idx = tok.quantize(final)
        raw = tok.decode(q, clamp=False)
        obj = objective(raw.float(), generators=[torch.Generator().manual_seed(int(s)) for s in row_seeds]).float()
        images = raw.float().clamp(0, 1)
        if not milestones or milestones[-1][0] != steps - 1:
            milestones.append((steps - 1, images.cpu()))
        else:  # the last milestone shows the result itself
            milestones[-1] = (steps - 1, images.cpu())
        rec["step"].append(steps)
        rec["loss"].append(obj.cpu())
        rec["objective"].append(obj.cpu())
        rec["reg"].append(torch.full((b,), float("nan")))
        rec["heldout"].append(heldout(raw).float().cpu() if heldout is not None else torch.full((b,), float("nan")))
        rec["changed"].append((idx != idx0).sum(1).float().cpu() if idx is not None and idx0 is not None
                              else torch.full((b,), float("nan")))
        rec["noise"].append(torch.zeros(b))
    history = pd.DataFrame({
        "step": np.repeat(np.asarray(rec["step"]), b),
        "row": np.tile(np.arange(b), len(rec["step"])),
        **{k: torch.stack(rec[k]).reshape(-1).numpy()
           for k in ("loss", "objective", "reg", "heldout", "changed", "noise")},
    })
    return OptimizeResult(features=final, quantized=q.detach(), indices=None if idx is None else idx.detach(),
                          images=images.cpu(), seed_images=seed_images, history=history,
                          milestones=milestones, steps=steps)
