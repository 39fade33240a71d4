"""The test-time optimization loop: optimize a tokenizer's tokens for an objective.

One step, in the order of the authors' released loop (token-opt, ``tto/test_time_opt.py``,
``TestTimeOpt.forward``): token noise added to the optimized tokens -> quantize (straight-through)
unless post-quantization tokens are optimized -> decode with ``clamp=False`` -> objective ``[B]``
+ L2 regularizer -> Adam step on the tokens -> token reset (callback) -> EMA update -> (tokenprobe
only) frozen positions restored, held-out score, per-image stopping rule. The result is decoded
from the EMA (from the tokens themselves when ``ema_decay = 0``) and clamped to [0, 1].

Rows of the batch are independent (the summed loss gives each row its own gradient and Adam is
elementwise; each row draws noise and views from its own generator), so a batch of prompts gives
what the prompts give one by one.

Options and their reference counterparts (``TestTimeOptConfig`` unless said otherwise):

=====================================  ==============================================  =====================
tokenprobe (:class:`OptimizeConfig`)   reference                                       default (both)
=====================================  ==============================================  =====================
``iterations``                         ``num_iter``                                    600
``lr``                                 ``lr`` (``torch.optim.Adam``)                   0.1
``betas``                              Adam's own default                              (0.9, 0.999)
``ema_decay``                          ``ema_decay`` (``EMAModel`` with                0 (off)
                                       ``min_decay = decay``: decay 0 at the first
                                       update, ``ema_decay`` after)
``noise``                              ``token_noise`` (None = off)                    0 (off)
``reg_weight``                         ``reg_weight`` (None = off)                     0 (off)
``reg_target``                         ``reg_type`` (``"seed"`` / ``"zero"``)          ``"seed"``
``post_quantization``                  ``optimize_post_quantization_tokens``           False
``amp`` / ``amp_dtype``                ``enable_amp`` (float16 autocast + GradScaler)  False / ``"float16"``
reset callback (``reset=``)            ``token_reset_callback``                        none
``seed`` / ``seeds=``                  torch's global generator                        0
=====================================  ==============================================  =====================

Deliberate differences, each an option or an extension that is off by default:

- the reference draws noise with ``torch.randn_like`` from torch's global generator; here each row
  draws from its own ``torch.Generator`` (seeded ``seed + row``) so that a row's result does not
  depend on its batch. The values of the update rules are the same given the same draws.
- ``amp`` applies on CUDA only (the reference would autocast on any device); ``amp_dtype="bfloat16"``
  is offered because bf16 needs no loss scaling and is safe on Ampere+ GPUs; the reference's float16
  goes with a ``GradScaler``, as there.
- VAE tokenizers are optimized at the posterior mean (the reference's default
  ``vae_deterministic_sampling=True``); posterior sampling is not offered.
- ``frozen`` positions (kept bitwise at the seed), the held-out score and the per-image stopping rule
  (``early_stop_patience``, on the held-out score, never on the objective) are tokenprobe's; with their
  defaults the loop is the reference's.
- the reference's ``callback`` (which may break the loop) has no counterpart: the history, the
  milestones and the stopping rule cover its uses.

Tested against an independent re-implementation of these update rules, option by option, in
``tests/test_optimize_reference.py``.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
from probe.progress import StageBar, inner_bar, stage_of

from probe.optimize.objectives import HeldOut, Lambda, Objective

HISTORY_COLUMNS = ("loss", "objective", "reg", "heldout", "changed", "noise")


@dataclass
class OptimizeConfig:
    """Settings of :func:`optimize`; defaults are the reference's (see the module docstring's table).

    Attributes:
        iterations: optimizer steps (reference ``num_iter``).
        lr: Adam learning rate.
        betas: Adam betas.
        ema_decay: EMA decay of the tokens, 0 = off (the result is the EMA when on). As in the
            reference, the first update uses decay 0 (the average starts at the tokens after the first
            step; the seed never enters it), every later update ``ema_decay``.
        noise: token noise scale ``s`` (0 = off); schedule in :func:`noise_scale`.
        reg_weight: weight of the L2 regularizer ``w * mean((z - z_seed)^2)`` (0 = off).
        reg_target: ``"seed"`` (towards the starting tokens) or ``"zero"``.
        post_quantization: optimize the quantized tokens (the codes of the seed) and decode them
            without quantizing (reference ``optimize_post_quantization_tokens``; for the paper's
            VQ-vs-continuous ablation). Token resets are quantized too.
        amp: autocast on CUDA (ignored elsewhere); reference ``enable_amp``.
        amp_dtype: ``"float16"`` (the reference's, with a GradScaler) or ``"bfloat16"`` (no scaler).
        early_stop_patience: the stopping rule: a row stops when its held-out score has not improved
            by ``early_stop_min_delta`` for this many held-out evaluations (0 = never; needs
            ``heldout=``). A stopped row keeps the tokens it had when it stopped; the run ends when
            every row has stopped.
        early_stop_min_delta: the improvement of the held-out score that counts.
        heldout_every: score with the held-out scorer every this many steps (and at the end).
        milestones: images kept for the grid (decoded at evenly spaced steps, first and last included).
        seed: base seed; row ``b`` draws from a generator seeded ``seed + b`` unless seeds are given.
        progress: a progress bar of its own (``True``), none, or a stage's :class:`probe.progress.StageBar`.
    """

    iterations: int = 600
    lr: float = 0.1
    betas: tuple[float, float] = (0.9, 0.999)
    ema_decay: float = 0.0
    noise: float = 0.0
    reg_weight: float = 0.0
    reg_target: str = "seed"
    post_quantization: bool = False
    amp: bool = False
    amp_dtype: str = "float16"
    early_stop_patience: int = 0
    early_stop_min_delta: float = 1e-4
    heldout_every: int = 10
    milestones: int = 5
    seed: int = 0
    progress: bool | StageBar = True

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ValueError(f"OptimizeConfig.iterations must be >= 1, got {self.iterations}")
        if self.reg_target not in ("seed", "zero"):
            raise ValueError(f"OptimizeConfig.reg_target must be 'seed' or 'zero', got {self.reg_target!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"OptimizeConfig.ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.amp_dtype not in ("float16", "bfloat16"):
            raise ValueError(f"OptimizeConfig.amp_dtype must be 'float16' or 'bfloat16', got {self.amp_dtype!r}")
        if self.early_stop_patience < 0:
            raise ValueError(f"OptimizeConfig.early_stop_patience must be >= 0, got {self.early_stop_patience}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(replace(self, progress=True)), "progress": bool(self.progress)}


def noise_scale(i: int, iterations: int, s: float) -> float:
    """The token-noise standard deviation at step ``i``: ``s * 0.5 * (1 + cos(pi * t))``,
    ``t = min(1, 1.5 i / (iterations - 1))`` (reaches 0 at two thirds of the run)."""
    t = min(1.0, 1.5 * i / max(iterations - 1, 1))
    return s * 0.5 * (1.0 + math.cos(math.pi * t))


def ema_decay_at(update: int, decay: float) -> float:
    """The EMA decay of the ``update``-th update (1-based): 0 for the first, ``decay`` after (the
    reference's ``EMAModel`` with ``min_decay = decay``)."""
    return 0.0 if update <= 1 else decay


@dataclass
class StepInfo:
    """What a token-reset callback sees after the optimizer step ``step``.

    Attributes:
        step: 0-based step.
        features: ``[B, N, C]`` the optimized tokens after the step (read only).
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
    features: ``[B, N, C]`` final tokens (the EMA when on; post-quantization tokens when optimized).
    quantized: ``[B, N, C]`` what was decoded (their quantization; the tokens themselves with
        ``post_quantization``).
    indices: ``[B, N]`` token ids of the nearest codes (None for continuous tokenizers).
    images: ``[B, 3, H, W]`` decoded result, clamped to [0, 1].
    seed_images: ``[B, 3, H, W]`` the seed decoded (clamped).
    history: one row per (step, row): ``step, row, loss, objective, reg, heldout, changed, noise``
        (``heldout`` NaN between scoring steps; ``changed`` = tokens whose index differs from the
        seed's, NaN for continuous tokenizers; every value NaN after the row stopped); a last row per
        image at ``step = steps`` scores the result.
    milestones: ``[(step, images [B, 3, H, W])]`` for the grid (CPU).
    steps: steps run (the longest row's).
    row_steps: ``[B]`` steps each row ran before it stopped (``steps`` without a stopping rule).
    """

    features: torch.Tensor
    quantized: torch.Tensor
    indices: torch.Tensor | None
    images: torch.Tensor
    seed_images: torch.Tensor
    history: pd.DataFrame
    milestones: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    steps: int = 0
    row_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))


def _frozen_mask(frozen: torch.Tensor | None, b: int, n: int, device: torch.device) -> torch.Tensor | None:
    if frozen is None:
        return None
    f = torch.as_tensor(frozen, device=device).bool()
    if f.ndim == 1:
        f = f[None].expand(b, -1)
    if f.shape != (b, n):
        raise ValueError(f"frozen mask must be [N] = [{n}] or [B, N] = [{b}, {n}], got {tuple(f.shape)}")
    return f[..., None]


# ---------------------------------------------------------------------------------------- state
@dataclass
class _Run:
    """The loop's state between steps."""

    tok: Any
    cfg: OptimizeConfig
    seed: torch.Tensor  # [B, N, C] the starting tokens (post-quantization ones when those are optimized)
    idx0: torch.Tensor | None  # [B, N] the seed's code ids
    z: torch.Tensor  # [B, N, C] the optimized tokens (requires grad)
    opt: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    gens: list[torch.Generator]
    fmask: torch.Tensor | None  # [B, N, 1] True where frozen
    ema: torch.Tensor | None = None
    ema_updates: int = 0
    active: torch.Tensor | None = None  # [B] rows still running
    stopped: torch.Tensor | None = None  # [B, N, C] tokens kept by rows that stopped
    row_steps: np.ndarray | None = None
    best: np.ndarray | None = None
    since_best: np.ndarray | None = None

    def tokens(self, features: torch.Tensor) -> torch.Tensor:
        """What is optimized for these pre-quantization features: themselves, or their codes."""
        return self.tok.quantize(features)[0].detach() if self.cfg.post_quantization else features

    def decodable(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Tokens -> (what the decoder gets ``[B, N, C]``, code ids ``[B, N]`` or None)."""
        if self.cfg.post_quantization:
            with torch.no_grad():
                _, idx = self.tok.quantize(z.detach())
            return z, idx
        return self.tok.quantize(z)

    def current(self) -> torch.Tensor:
        """The tokens the result would be made of now: the EMA when on; rows that stopped keep theirs."""
        cur = self.ema if self.ema is not None else self.z.detach()
        if self.stopped is not None and self.active is not None and not bool(self.active.all()):
            cur = torch.where(self.active[:, None, None], cur, self.stopped)
        return cur

    def keep_frozen(self, t: torch.Tensor) -> None:
        if self.fmask is not None:
            t.copy_(torch.where(self.fmask, self.seed, t))

    def decode(self, z: torch.Tensor, *, clamp: bool) -> torch.Tensor:
        return self.tok.decode(self.decodable(z)[0], clamp=clamp).float()


def _start(tok: Any, seed_features: torch.Tensor, cfg: OptimizeConfig, frozen: torch.Tensor | None,
           seeds: Sequence[int] | None) -> _Run:
    dev = seed_features.device
    b, n, _ = seed_features.shape
    row_seeds = list(seeds) if seeds is not None else [cfg.seed + i for i in range(b)]
    if len(row_seeds) != b:
        raise ValueError(f"optimize: {len(row_seeds)} seeds for a batch of {b}")
    with torch.no_grad():
        feats = seed_features.detach().float().clone()
        seed = tok.quantize(feats)[0].detach().float().clone() if cfg.post_quantization else feats
        _, idx0 = tok.quantize(feats)
    z = seed.clone().requires_grad_(True)
    amp = cfg.amp and dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if amp and cfg.amp_dtype == "float16" else None
    return _Run(tok=tok, cfg=cfg, seed=seed, idx0=idx0, z=z,
                opt=torch.optim.Adam([z], lr=cfg.lr, betas=cfg.betas), scaler=scaler,
                gens=[torch.Generator().manual_seed(int(s)) for s in row_seeds],
                fmask=_frozen_mask(frozen, b, n, dev), active=torch.ones(b, dtype=torch.bool, device=dev),
                row_steps=np.zeros(b, dtype=int), best=np.full(b, -np.inf), since_best=np.zeros(b, dtype=int))


# ---------------------------------------------------------------------------------------- steps
@torch.no_grad()
def _add_noise(run: _Run, i: int) -> float:
    """Token noise: ``z += sigma_i * eps`` before the forward pass, each row from its own generator."""
    sigma = noise_scale(i, run.cfg.iterations, run.cfg.noise) if run.cfg.noise > 0 else 0.0
    if sigma > 0:
        eps = torch.stack([torch.randn(run.z.shape[1:], generator=g) for g in run.gens]).to(run.z.device)
        run.z.add_(sigma * eps)
        run.keep_frozen(run.z)
    return sigma


def _regularizer(run: _Run) -> torch.Tensor:
    """``[B]``: ``w * mean((z - ref)^2)`` over each row's tokens (ref: the seed tokens or zero)."""
    cfg = run.cfg
    if cfg.reg_weight <= 0:
        return torch.zeros(run.z.shape[0], device=run.z.device)
    ref = run.seed if cfg.reg_target == "seed" else torch.zeros_like(run.seed)
    return cfg.reg_weight * (run.z - ref).pow(2).flatten(1).mean(1)


def _forward(run: _Run, objective: Objective) -> tuple[torch.Tensor, ...]:
    """Decode the tokens (unclamped) and score them: -> images, objective ``[B]``, reg ``[B]``,
    loss ``[B]``, code ids."""
    cfg, dev = run.cfg, run.z.device
    amp = cfg.amp and dev.type == "cuda"
    dtype = torch.float16 if cfg.amp_dtype == "float16" else torch.bfloat16
    with torch.autocast(dev.type, dtype=dtype, enabled=amp):
        q, idx = run.decodable(run.z)
        images = run.tok.decode(q, clamp=False)
        obj = objective(images, generators=run.gens).float()
        reg = _regularizer(run).float()
        loss = obj + reg
    return images, obj, reg, loss, idx


def _descend(run: _Run, loss: torch.Tensor) -> None:
    """Backward of the summed loss and one Adam step (frozen positions get no gradient and are restored)."""
    run.opt.zero_grad(set_to_none=True)
    total = loss.sum()
    if run.scaler is not None:
        run.scaler.scale(total).backward()
    else:
        total.backward()
    if run.fmask is not None and run.z.grad is not None:
        run.z.grad.masked_fill_(run.fmask, 0.0)
    if run.scaler is not None:
        run.scaler.step(run.opt)
        run.scaler.update()
    else:
        run.opt.step()
    with torch.no_grad():
        run.keep_frozen(run.z)


@torch.no_grad()
def _token_reset(run: _Run, reset: ResetFn | None, i: int, images: torch.Tensor, obj: torch.Tensor) -> None:
    """The reset callback's features (pre-quantization; quantized when post-quantization tokens are
    optimized) replace the tokens; Adam's moments and the EMA go on, as in the reference."""
    if reset is None:
        return
    new = reset(StepInfo(i, run.z.detach(), images.detach(), obj.detach()))
    if new is not None:
        run.z.copy_(run.tokens(new.float()).to(run.z.dtype))
        run.keep_frozen(run.z)


@torch.no_grad()
def _update_ema(run: _Run) -> None:
    """``e <- e - (1 - d_k) (e - z)`` with ``d_1 = 0`` (the reference's EMAModel.step)."""
    if run.cfg.ema_decay <= 0:
        return
    run.ema_updates += 1
    d = ema_decay_at(run.ema_updates, run.cfg.ema_decay)
    if run.ema is None:
        run.ema = run.z.detach().clone()
    else:
        run.ema.sub_((1.0 - d) * (run.ema - run.z.detach()))
    run.keep_frozen(run.ema)


@torch.no_grad()
def _heldout_and_stop(run: _Run, heldout: HeldOut | None, i: int) -> torch.Tensor | None:
    """Score the current result with the held-out scorer every ``heldout_every`` steps; apply the
    per-row stopping rule. -> ``[B]`` scores (CPU) or None on steps without scoring."""
    cfg = run.cfg
    if heldout is None or i % max(cfg.heldout_every, 1) != 0:
        return None
    score = heldout(run.decode(run.current(), clamp=False)).float().cpu()
    if cfg.early_stop_patience > 0:
        s = score.numpy()
        act = run.active.cpu().numpy()
        better = s > run.best + cfg.early_stop_min_delta
        run.best = np.where(better & act, s, run.best)
        run.since_best = np.where(act, np.where(better, 0, run.since_best + 1), run.since_best)
        stop = act & (run.since_best >= cfg.early_stop_patience)
        if stop.any():
            if run.stopped is None:
                run.stopped = torch.zeros_like(run.seed)
            rows = torch.as_tensor(np.flatnonzero(stop), device=run.seed.device)
            run.stopped[rows] = run.current()[rows]
            run.active[rows] = False
    return score


def _record(rec: dict[str, list], run: _Run, i: int, loss, obj, reg, score, idx, sigma) -> None:
    b = run.z.shape[0]
    was = torch.as_tensor(run.row_steps > i)  # rows that ran this step (still active before it)
    nan = torch.full((b,), float("nan"))

    def keep(v: torch.Tensor) -> torch.Tensor:
        return torch.where(was, v.detach().float().cpu(), nan)

    rec["step"].append(i)
    rec["loss"].append(keep(loss))
    rec["objective"].append(keep(obj))
    rec["reg"].append(keep(reg))
    rec["heldout"].append(score if score is not None else nan)
    rec["changed"].append(keep((idx != run.idx0).sum(1).float()) if idx is not None and run.idx0 is not None else nan)
    rec["noise"].append(keep(torch.full((b,), sigma)))


def _finish(run: _Run, objective: Objective, heldout: HeldOut | None, rec: dict[str, list],
            milestones: list[tuple[int, torch.Tensor]], steps: int, seeds: list[int], seed_images: torch.Tensor
            ) -> OptimizeResult:
    """Decode the result, score it once more (a last history row per image at ``step = steps``)."""
    b = run.z.shape[0]
    with torch.no_grad():
        final = run.current().clone()
        q, idx = run.decodable(final)
        raw = run.tok.decode(q, clamp=False).float()
        obj = objective(raw, generators=[torch.Generator().manual_seed(int(s)) for s in seeds]).float()
        images = raw.clamp(0, 1)
    if milestones and milestones[-1][0] == steps - 1:
        milestones[-1] = (steps - 1, images.cpu())  # the last milestone shows the result itself
    else:
        milestones.append((steps - 1, images.cpu()))
    nan = torch.full((b,), float("nan"))
    rec["step"].append(steps)
    rec["loss"].append(obj.cpu())
    rec["objective"].append(obj.cpu())
    rec["reg"].append(nan)
    rec["heldout"].append(heldout(raw).float().cpu() if heldout is not None else nan)
    rec["changed"].append((idx != run.idx0).sum(1).float().cpu() if idx is not None and run.idx0 is not None else nan)
    rec["noise"].append(torch.zeros(b))
    history = pd.DataFrame({
        "step": np.repeat(np.asarray(rec["step"]), b),
        "row": np.tile(np.arange(b), len(rec["step"])),
        **{k: torch.stack(rec[k]).reshape(-1).numpy() for k in HISTORY_COLUMNS},
    })
    return OptimizeResult(features=final, quantized=q.detach(), indices=None if idx is None else idx.detach(),
                          images=images.cpu(), seed_images=seed_images, history=history,
                          milestones=milestones, steps=steps, row_steps=run.row_steps.copy())


# ---------------------------------------------------------------------------------------- loop
def optimize(tok: Any, objective: Objective | Callable[..., torch.Tensor], seed_features: torch.Tensor, *,
             config: OptimizeConfig | None = None, frozen: torch.Tensor | None = None,
             heldout: HeldOut | None = None, reset: ResetFn | None = None,
             seeds: Sequence[int] | None = None) -> OptimizeResult:
    """Optimize the tokens of ``seed_features [B, N, C]`` (pre-quantization; VAE: posterior mean) for ``objective``.

    Args:
        tok: a tokenizer (``quantize``, ``decode(q, clamp=False)``).
        objective: images ``[B, 3, H, W]`` (raw decoder output) -> loss ``[B]``.
        config: the settings (:class:`OptimizeConfig`; defaults are the reference's).
        frozen: ``[N]`` or ``[B, N]`` bool, True where a position may not move (kept bitwise equal to
            the seed, EMA included).
        heldout: a scorer of the current result (decoded after the step, from the EMA when on), reported
            in the history every ``heldout_every`` steps and read by the stopping rule; never optimized.
        reset: called after every step with a :class:`StepInfo`; returning features ``[B, N, C]``
            replaces the optimized tokens (and restarts nothing else: Adam moments and EMA go on).
        seeds: one seed per row (default ``config.seed + row``).
    """
    cfg = config or OptimizeConfig()
    if not isinstance(objective, Objective):
        objective = Lambda(objective)
    if cfg.early_stop_patience > 0 and heldout is None:
        raise ValueError("optimize: the stopping rule (early_stop_patience > 0) reads a held-out score; "
                         "pass heldout= (e.g. a second CLIP), or set early_stop_patience=0")
    b = seed_features.shape[0]
    row_seeds = list(seeds) if seeds is not None else [cfg.seed + i for i in range(b)]
    run = _start(tok, seed_features, cfg, frozen, row_seeds)
    with torch.no_grad():
        seed_images = run.decode(run.seed, clamp=True).cpu()
    marks = set(int(round(x)) for x in np.linspace(0, cfg.iterations - 1, max(cfg.milestones, 2)))
    rec: dict[str, list] = {k: [] for k in ("step", *HISTORY_COLUMNS)}
    milestones: list[tuple[int, torch.Tensor]] = []
    steps = 0
    bar = inner_bar(cfg.progress, cfg.iterations, "optimize", unit="step")
    for i in range(cfg.iterations):
        run.row_steps[run.active.cpu().numpy()] = i + 1
        sigma = _add_noise(run, i)
        images, obj, reg, loss, idx = _forward(run, objective)
        _descend(run, loss)
        _token_reset(run, reset, i, images, obj)
        _update_ema(run)
        score = _heldout_and_stop(run, heldout, i)
        if i in marks:
            with torch.no_grad():
                milestones.append((i, run.decode(run.current(), clamp=True).cpu()))
        _record(rec, run, i, loss, obj, reg, score, idx, sigma)
        steps = i + 1
        bar.update(1)
        if cfg.progress is True:
            bar.set_postfix(loss=f"{float(loss.detach().mean()):.4f}")
        if not bool(run.active.any()):
            break
    if stage_of(cfg.progress) is not None:  # stopped early: the steps not taken leave the stage's total
        stage_of(cfg.progress).release(cfg.iterations - steps)
    bar.close()
    return _finish(run, objective, heldout, rec, milestones, steps, row_seeds, seed_images)
