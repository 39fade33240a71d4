"""The shared warm-up + cosine schedule and the step/time budget."""
import math

import pytest

from probe.training.schedule import budget_progress, warmup_cosine_lr


def test_warmup_is_linear_then_cosine_reaches_the_floor():
    assert warmup_cosine_lr(2.0, 0, 0.0, 4) == pytest.approx(0.5)
    assert warmup_cosine_lr(2.0, 3, 0.0, 4) == pytest.approx(2.0)
    assert warmup_cosine_lr(2.0, 10, 0.0, 4) == pytest.approx(2.0)
    assert warmup_cosine_lr(2.0, 10, 0.5, 4, min_ratio=0.1) == pytest.approx(2.0 * (0.1 + 0.9 * 0.5))
    assert warmup_cosine_lr(2.0, 10, 1.0, 4, min_ratio=0.1) == pytest.approx(0.2)
    assert warmup_cosine_lr(2.0, 10, 3.0, 4) == pytest.approx(0.0, abs=1e-12)  # clamped past the end


def test_budget_progress_takes_the_tighter_budget():
    assert budget_progress(10, 100, 0.0, None) == pytest.approx(0.1)
    assert budget_progress(10, 100, 30.0, 1.0) == pytest.approx(0.5)  # half the minute spent
    assert budget_progress(90, 100, 30.0, 1.0) == pytest.approx(0.9)
    assert math.isclose(budget_progress(0, 100, 120.0, 1.0), 2.0)
