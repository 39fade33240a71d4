"""One labelled bar per stage: the stage's total is planned, claimed and settled so that it ends equal to the
work done; a whole validation draws one bar, not one per batch of decodes."""
from __future__ import annotations

import io

import pytest
from _swap_toy import MEASURERS, ToyStore, ToyTokenizer

import probe.progress as progress
from probe.progress import StageBar, inner_bar
from probe.swap import SwapConfig, SwapData, VerdictConfig, validate


def test_expect_claim_settle_arithmetic() -> None:
    bar = StageBar("swap", enabled=False)
    bar.expect("discovery", 100)
    bar.expect("confirmation", 40)
    assert bar.total == 140
    bar.phase("discovery")
    bar.claim(60)
    bar.update(60)
    bar.claim(70)  # 30 more than expected: the total grows by the shortfall
    assert bar.total == 170
    bar.update(70)
    bar.phase("confirmation")
    bar.claim(10)
    bar.update(10)
    bar.settle()  # 30 of the confirmation's estimate never came
    assert (bar.done, bar.total) == (140, 140)
    bar.phase("extra")
    bar.claim(5)  # nothing expected for this phase
    assert bar.total == 145
    bar.close()


def test_inner_bar_feeds_the_stage_and_leaves_it_open() -> None:
    stage = StageBar("swap", enabled=False)
    inner = inner_bar(stage, 12, "swap decodes")
    inner.update(12)
    inner.close()
    assert (stage.done, stage.total) == (12, 12)
    own = inner_bar(False, 5, "alone")
    own.update(5)
    own.close()
    assert stage.done == 12


def test_the_label_names_stage_phase_and_detail() -> None:
    out = io.StringIO()
    bar = StageBar("swap", file=out)
    bar.phase("confirmation", "2/9 attributes")
    bar.expect("confirmation", 10)
    bar.update(4)
    line = str(bar)
    assert line.startswith("swap [confirmation 2/9 attributes]") and "4/10 decodes" in line, line
    bar.close()
    assert "swap [confirmation 2/9 attributes]" in out.getvalue()


def test_a_validation_draws_one_bar_whose_count_is_every_decode(monkeypatch) -> None:
    made = []

    class Counting(progress.tqdm):  # type: ignore[misc, name-defined]
        def __init__(self, *a, **k):
            made.append(k.get("desc"))
            k["disable"] = True
            super().__init__(*a, **k)

    monkeypatch.setattr(progress, "tqdm", Counting)
    tok, store = ToyTokenizer(), ToyStore()
    data = SwapData.from_store(store, tok)
    cfg = SwapConfig(pairs=12, discovery_pairs=12, control_pairs=4, max_set=2, target=1.5,
                     verdict=VerdictConfig(n_boot=50))
    stage = StageBar("swap", enabled=False)
    vmap = validate(tok, data, MEASURERS, None, config=cfg, progress=stage)  # greedy runs: the target is unreachable
    assert len(vmap.curves) and stage.done > 0
    decoded = vmap.sweep.table.attrs["decoded"] + vmap.confirmation.table.attrs["decoded"]
    assert stage.done > decoded  # the greedy steps decoded too, into the same bar
    stage.close()
    assert stage.total == stage.done  # every estimate was claimed or settled
    made.clear()
    validate(tok, data, MEASURERS, None, config=cfg, progress=True)
    assert made == ["swap"], made  # one bar for the whole validation


def test_the_optimization_loop_feeds_a_stage_bar_and_gives_back_steps_not_taken() -> None:
    """The optimize stage's one bar: each task's loop claims its iterations; a loop that stops early (every row
    stopped) releases the rest, so the stage ends with total == steps done."""
    import torch

    from probe.optimize import OptimizeConfig
    from probe.optimize.loop import optimize
    from probe.tokenizers.base import module_device  # noqa: F401  (the toy below is a plain nn.Module)

    class Toy(torch.nn.Module):
        is_discrete, num_tokens, token_dim, image_size = False, 4, 3, 4

        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def quantize(self, f):
            return f, None

        def decode(self, q, clamp=True):
            img = q.mean((1, 2)).view(-1, 1, 1, 1).expand(-1, 3, 4, 4) + self.w
            return img.clamp(0, 1) if clamp else img

    stage = StageBar("optimize", unit="steps", enabled=False)
    stage.expect("generate", 12)
    stage.phase("generate")
    cfg = OptimizeConfig(iterations=12, progress=stage, early_stop_patience=0)
    res = optimize(Toy(), lambda x: (x - 0.5).pow(2).mean((1, 2, 3)), torch.zeros(2, 4, 3), config=cfg)
    assert res.steps == 12 and stage.done == 12 and stage.total == 12
    assert cfg.to_dict()["progress"] is True  # the config's record stays plain data
