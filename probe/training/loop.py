"""The one training loop of every recipe in tokenprobe (tokenizer, CLIP, oracle).

A recipe builds its model, optimizer and data, then hands :class:`TrainLoop` a *step function* (one batch
in, the scalar loss and its detached parts out) and, optionally, an *after-step hook* (evaluation, logging,
whatever else the recipe updates once the optimizer has stepped). The loop owns what every recipe shares:

- the budget: ``steps`` and, optionally, a wall-clock ``max_minutes``; progress is the larger fraction
  (:func:`probe.training.schedule.budget_progress`), so a run stopped by its time limit still anneals;
- the learning rate: linear warm-up, then cosine to ``lr * min_lr_ratio`` over the progress, set on every
  parameter group before each step;
- the optimizer step: ``zero_grad``, ``backward``, optional global-norm gradient clipping, ``step``;
- checkpoints (:class:`Checkpoint`): every ``every_minutes`` of wall clock and at the end, atomically;
  resuming restores the state dicts and the loop's step and elapsed time;
- logging: a progress bar, :class:`History` (one row per step, read from the device in batches) and
  :class:`JsonlLog` (one JSON line per logged step);
- set-up: :func:`setup` (threads, device, seed).

With a step budget a run is deterministic given its seeds: the loop draws no random numbers itself.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from probe.training.schedule import budget_progress, warmup_cosine_lr


def setup(*, device: str | None = None, threads: int | None = None, seed: int | None = None,
          tf32: bool = False) -> torch.device:
    """Torch CPU ``threads`` (None: torch's choice), the resolved ``device`` (``probe.device``), TF32 matmuls on
    CUDA when ``tf32`` (ample for 8-bit images), and the global torch seed when ``seed`` is given."""
    from probe.device import resolve_device

    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    if tf32 and dev.type == "cuda":
        torch.set_float32_matmul_precision("high")
    if seed is not None:
        torch.manual_seed(seed)
    return dev


def param_groups(model: torch.nn.Module, weight_decay: float,
                 no_decay: Callable[[str, torch.nn.Parameter], bool]) -> list[dict[str, Any]]:
    """AdamW parameter groups: parameters for which ``no_decay(name, p)`` is true get no weight decay, the
    others ``weight_decay`` (both in ``named_parameters`` order)."""
    decay, plain = [], []
    for name, p in model.named_parameters():
        (plain if no_decay(name, p) else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


# ---------------------------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: str | Path, state: dict[str, Any], **objects: Any) -> None:
    """Write ``{name: obj.state_dict() for objects} | {"state": state}`` to ``path`` atomically (a run killed
    mid-write keeps its previous checkpoint)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({**{k: v.state_dict() for k, v in objects.items()}, "state": state}, tmp)
    tmp.replace(path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint written by :func:`save_checkpoint` (tensors and plain containers only)."""
    return torch.load(path, map_location="cpu", weights_only=True)


class Checkpoint:
    """The resumable checkpoint of a run: the state dicts of ``objects`` (model, optimizer, ...) and a state
    dict (the loop's ``step`` and ``elapsed`` seconds plus what the recipe adds), in one file ``path``.

    Args:
        path: the checkpoint file (e.g. ``run/last.pt``).
        objects: name -> object with ``state_dict`` / ``load_state_dict``; an object whose name is missing from
            a file being restored keeps its state (e.g. a discriminator added to an older run).
        every_minutes: wall-clock minutes between saves during training (the loop also saves at the end).
        state: called at each save; the recipe's own resumable state (e.g. its generator's state).
    """

    def __init__(self, path: str | Path, objects: dict[str, Any], *, every_minutes: float = 3.0,
                 state: Callable[[], dict[str, Any]] | None = None) -> None:
        self.path = Path(path)
        self.objects = objects
        self.every_minutes = every_minutes
        self.state = state or dict
        self.last_save = time.time()

    def due(self) -> bool:
        return time.time() - self.last_save > self.every_minutes * 60

    def save(self, **loop_state: Any) -> None:
        save_checkpoint(self.path, {**self.state(), **loop_state}, **self.objects)
        self.last_save = time.time()

    def restore(self) -> dict[str, Any]:
        """Load every object found in the file; returns the saved state dict."""
        ck = load_checkpoint(self.path)
        for name, obj in self.objects.items():
            if name in ck:
                obj.load_state_dict(ck[name])
        return dict(ck["state"])


# ---------------------------------------------------------------------------------------------- logging
class History:
    """One row per step. Tensor values stay where they are (e.g. on the GPU) until :meth:`flush`, which reads
    them all in one transfer, so the loop does not wait for the device every step."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self._pending: list[dict[str, Any]] = []

    def add(self, **row: Any) -> None:
        self._pending.append(row)

    def flush(self) -> None:
        if not self._pending:
            return
        tensors = [v for row in self._pending for v in row.values() if isinstance(v, torch.Tensor)]
        values = iter(torch.stack(tensors).cpu().tolist() if tensors else [])
        for row in self._pending:
            self.rows.append({k: next(values) if isinstance(v, torch.Tensor) else v for k, v in row.items()})
        self._pending.clear()

    def frame(self) -> pd.DataFrame:
        self.flush()
        return pd.DataFrame(self.rows)


class JsonlLog:
    """Appends one JSON object per line to ``path`` (flushed each line); ``on_log`` sees every record."""

    def __init__(self, path: str | Path, on_log: Callable[[dict[str, Any]], None] | None = None) -> None:
        self._file = open(path, "a")
        self.on_log = on_log

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self.on_log:
            self.on_log(record)

    def close(self) -> None:
        self._file.close()


def scalars(parts: dict[str, Any], digits: int = 5) -> dict[str, Any]:
    """The loggable entries of a step's ``parts``: 0-d tensors as rounded floats, other non-tensors as they are
    (tensors with dimensions are left out)."""
    return {k: (round(float(v), digits) if isinstance(v, torch.Tensor) and v.ndim == 0 else v)
            for k, v in parts.items() if not (isinstance(v, torch.Tensor) and v.ndim > 0)}


# ---------------------------------------------------------------------------------------------- the loop
@dataclass(frozen=True)
class Step:
    """The step being taken: ``index`` optimizer steps are done before it (0-based), at budget ``progress``
    in [0, 1) with learning rate ``lr``. After the step, ``index + 1`` steps are done."""

    index: int
    progress: float
    lr: float


StepFn = Callable[[Step], tuple[torch.Tensor, dict[str, Any]]]
AfterStep = Callable[[Step, dict[str, Any]], None]


class TrainLoop:
    """Runs optimizer steps until the step or time budget is spent.

    Args:
        optimizer: its parameter groups get the scheduled learning rate before every step.
        steps: the step budget (and the schedule's length when no time budget binds first).
        lr, warmup_steps, min_lr_ratio: the schedule (:func:`probe.training.schedule.warmup_cosine_lr`).
        max_minutes: optional wall-clock budget.
        grad_clip: max global gradient norm over ``clip_params`` (0: no clipping).
        clip_params: the parameters clipped (needed when ``grad_clip`` > 0).
        checkpoint: saved when due and at the end; with ``resume``, restored first if its file exists.
        resume: continue from ``checkpoint``'s file when it exists.
        desc, progress_bar: the progress bar's label and whether it shows.

    After a run, ``step`` is the number of steps done, ``stopped_by`` is "steps" or "max_minutes" and
    ``final_elapsed`` the training seconds. With ``resume``, ``resumed_state`` is the restored state dict (None
    when nothing was resumed).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, *, steps: int, lr: float, warmup_steps: int,
                 min_lr_ratio: float = 0.0, max_minutes: float | None = None, grad_clip: float = 0.0,
                 clip_params: Iterable[torch.nn.Parameter] | None = None, checkpoint: Checkpoint | None = None,
                 resume: bool = False, desc: str = "train", progress_bar: bool = True) -> None:
        self.optimizer = optimizer
        self.steps, self.max_minutes = steps, max_minutes
        self.lr, self.warmup_steps, self.min_lr_ratio = lr, warmup_steps, min_lr_ratio
        self.grad_clip = grad_clip
        self.clip_params = list(clip_params) if clip_params is not None else None
        if grad_clip > 0 and not self.clip_params:
            raise ValueError("TrainLoop: grad_clip > 0 needs clip_params")
        self.checkpoint = checkpoint
        self.desc, self.progress_bar = desc, progress_bar
        self.step = 0
        self.stopped_by = "steps"
        self.final_elapsed = 0.0  # set by run(): the elapsed seconds recorded in the last checkpoint
        self.resumed_state: dict[str, Any] | None = None
        if resume and checkpoint is not None and checkpoint.path.exists():
            self.resumed_state = checkpoint.restore()
            self.step = int(self.resumed_state["step"])
            print(f"resumed from {checkpoint.path} at step {self.step} "
                  f"({self.resumed_state['elapsed'] / 60:.1f} min)")
        self._t0 = time.time() - (self.resumed_state["elapsed"] if self.resumed_state else 0.0)
        self.bar: tqdm | None = None

    def elapsed(self) -> float:
        """Seconds of training so far, including those before a resume."""
        return time.time() - self._t0

    def lr_at(self, step: int, progress: float) -> float:
        return warmup_cosine_lr(self.lr, step, progress, self.warmup_steps, self.min_lr_ratio)

    def run(self, step_fn: StepFn, after_step: AfterStep | None = None) -> TrainLoop:
        """Take steps until the budget is spent: ``loss, parts = step_fn(step)``, the optimizer step, then
        ``after_step(step, parts)``; a due checkpoint is saved after the hook, and a last one at the end."""
        self.bar = tqdm(total=self.steps, initial=self.step, desc=self.desc, disable=not self.progress_bar)
        while True:
            progress = budget_progress(self.step, self.steps, self.elapsed(), self.max_minutes)
            if progress >= 1.0:
                self.stopped_by = "steps" if self.step >= self.steps else "max_minutes"
                break
            lr = self.lr_at(self.step, progress)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            step = Step(self.step, progress, lr)
            loss, parts = step_fn(step)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.clip_params, self.grad_clip)
            self.optimizer.step()
            self.step += 1
            self.bar.update(1)
            if after_step is not None:
                after_step(step, parts)
            if self.checkpoint is not None and self.checkpoint.due():
                self.checkpoint.save(step=self.step, elapsed=self.elapsed())
        self.bar.close()
        self.final_elapsed = self.elapsed()
        if self.checkpoint is not None:
            self.checkpoint.save(step=self.step, elapsed=self.final_elapsed, stopped_by=self.stopped_by)
        return self
