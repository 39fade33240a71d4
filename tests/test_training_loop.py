"""The shared training loop (probe.training.loop) on a toy regression: budget, schedule, clipping, resume, logs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from probe.training.loop import Checkpoint, History, JsonlLog, Step, TrainLoop, param_groups, scalars
from probe.training.schedule import warmup_cosine_lr


def _toy(seed: int = 0) -> tuple[torch.nn.Linear, torch.optim.Optimizer, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 1)
    x = torch.randn(64, 4)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.3
    return model, torch.optim.AdamW(model.parameters(), lr=0.1), x, y


def _step_fn(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator):
    def step(s: Step) -> tuple[torch.Tensor, dict]:
        idx = torch.randint(0, len(x), (16,), generator=gen)
        loss = torch.nn.functional.mse_loss(model(x[idx]), y[idx])
        return loss, {"loss": loss.detach()}

    return step


def test_loop_takes_the_step_budget_on_the_schedule_and_learns() -> None:
    model, opt, x, y = _toy()
    seen: list[Step] = []
    losses: list[float] = []
    loop = TrainLoop(opt, steps=30, lr=0.1, warmup_steps=5, min_lr_ratio=0.1, progress_bar=False)
    loop.run(_step_fn(model, x, y, torch.Generator().manual_seed(1)),
             lambda s, parts: (seen.append(s), losses.append(float(parts["loss"]))))
    assert loop.step == 30 and loop.stopped_by == "steps"
    assert [s.index for s in seen] == list(range(30))
    assert [s.lr for s in seen] == [warmup_cosine_lr(0.1, i, i / 30, 5, 0.1) for i in range(30)]
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5])


def test_loop_clips_the_gradient_norm() -> None:
    model, _, x, y = _toy()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    before = [p.detach().clone() for p in model.parameters()]
    loop = TrainLoop(opt, steps=1, lr=1.0, warmup_steps=0, grad_clip=0.01, clip_params=model.parameters(),
                     progress_bar=False)
    loop.run(lambda s: (1000 * torch.nn.functional.mse_loss(model(x), y), {}))
    moved = torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before)])
    torch.testing.assert_close(moved.norm(), torch.tensor(0.01))  # SGD at lr 1 moves by the clipped gradient
    with pytest.raises(ValueError, match="clip_params"):
        TrainLoop(opt, steps=1, lr=1.0, warmup_steps=0, grad_clip=1.0)


def test_resume_continues_as_if_never_interrupted(tmp_path: Path) -> None:
    def run(out: Path, stop_at: int | None = None) -> torch.nn.Module:
        model, opt, x, y = _toy()
        gen = torch.Generator().manual_seed(1)
        ck = Checkpoint(out / "last.pt", {"model": model, "optimizer": opt}, every_minutes=0.0,
                        state=lambda: {"generator": gen.get_state()})
        loop = TrainLoop(opt, steps=20, lr=0.05, warmup_steps=3, checkpoint=ck, resume=True, progress_bar=False)
        if loop.resumed_state is not None:
            gen.set_state(loop.resumed_state["generator"])

        def after(s: Step, parts: dict) -> None:
            if s.index + 1 == stop_at:
                raise KeyboardInterrupt  # killed after this step; the checkpoint of the step before survives

        loop.run(_step_fn(model, x, y, gen), after)
        return model

    straight = run(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b", stop_at=12)
    assert torch.load(tmp_path / "b" / "last.pt", weights_only=True)["state"]["step"] == 11
    resumed = run(tmp_path / "b")
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    final = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["state"]
    assert final["step"] == 20 and final["stopped_by"] == "steps"


def test_a_time_budget_stops_the_loop_annealed() -> None:
    model, opt, x, y = _toy()
    seen: list[Step] = []
    loop = TrainLoop(opt, steps=10**9, lr=0.1, warmup_steps=0, max_minutes=1e-4, progress_bar=False)  # 6 ms
    loop.run(_step_fn(model, x, y, torch.Generator().manual_seed(1)), lambda s, parts: seen.append(s))
    assert loop.stopped_by == "max_minutes" and 0 < loop.step < 10**9
    assert all(0 <= s.progress < 1 for s in seen)
    assert all(s.lr == warmup_cosine_lr(0.1, s.index, s.progress, 0) for s in seen)  # the schedule runs on time


def test_history_reads_tensors_once_and_keeps_columns(tmp_path: Path) -> None:
    h = History()
    h.add(step=1, loss=torch.tensor(0.5), lr=0.1, scale=torch.tensor(2.0))
    h.add(step=2, loss=torch.tensor(0.25), lr=0.1, scale=torch.tensor(3.0))
    df = h.frame()
    assert list(df.columns) == ["step", "loss", "lr", "scale"]
    assert df["loss"].tolist() == [0.5, 0.25] and df["scale"].tolist() == [2.0, 3.0]
    seen = []
    log = JsonlLog(tmp_path / "log.jsonl", seen.append)
    log.write(scalars({"loss": torch.tensor(1 / 3), "indices": torch.zeros(3), "restarted": 2}))
    log.close()
    assert json.loads((tmp_path / "log.jsonl").read_text()) == {"loss": 0.33333, "restarted": 2} == seen[0]


def test_param_groups_split_by_the_rule() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2))
    groups = param_groups(model, 0.1, lambda name, p: p.ndim < 2)
    assert [len(g["params"]) for g in groups] == [1, 3]
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
