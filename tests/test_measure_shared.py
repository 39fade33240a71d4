"""One oracle forward for every attribute: OracleReadings and measure_all."""
from __future__ import annotations

import pytest
import torch

from probe.data import world
from probe.measure import analytic, get_measurer
from probe.measure.oracle import OracleMeasurer, OracleReadings, load_oracle, oracle_attributes
from probe.measure.shared import measure_all


class _Renamed:
    """A renaming wrapper, as the swap runner wraps measurers."""

    def __init__(self, name: str, inner: object) -> None:
        self.name, self.inner = name, inner
        self.kind = inner.kind

    def __call__(self, images: torch.Tensor, *, masks: torch.Tensor | None = None) -> torch.Tensor:
        return self.inner(images, masks=masks)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return world.sample(12, seed=5, resolution=32)[0]


def test_readings_hold_every_attribute_as_each_measurer_reads_it(images: torch.Tensor) -> None:
    oracle = load_oracle("cpu")
    readings = OracleReadings.of(oracle)
    assert readings.reads == tuple(oracle_attributes(oracle))
    with torch.no_grad():
        got = readings(images)
        direct = oracle(images)
    assert set(got) == set(readings.reads)
    torch.testing.assert_close(got["shape"], direct["shape_probs"])
    torch.testing.assert_close(got["lighting"], direct["lighting"])
    torch.testing.assert_close(got["bg_hue"], torch.nn.functional.normalize(direct["bg_hue_vec"], dim=1))
    for a, m in readings.measurers().items():
        assert m.source is readings and m.kind == readings.kinds[a]
        with torch.no_grad():
            torch.testing.assert_close(m(images), got[a])


def test_measure_all_runs_the_oracle_once_per_batch(images: torch.Tensor) -> None:
    oracle = load_oracle("cpu")
    calls = []
    hook = oracle.register_forward_hook(lambda *a: calls.append(1))
    try:
        meas = [get_measurer("oracle:shape", device="cpu"), _Renamed("hue_of_bg", OracleMeasurer("bg_hue")),
                analytic("lighting"), get_measurer("oracle:obj_x", device="cpu")]
        with torch.no_grad():
            out = measure_all(meas, images)
            assert len(calls) == 1
            alone = [m(images) for m in meas]
        assert len(calls) == 1 + 3  # each oracle measurer alone runs its own forward
    finally:
        hook.remove()
    for a, b in zip(out, alone):
        torch.testing.assert_close(a, b)


def test_oracle_readings_are_differentiable(images: torch.Tensor) -> None:
    x = images.clone().requires_grad_(True)
    m = OracleMeasurer("lighting")
    assert m.differentiable
    (g,) = torch.autograd.grad(measure_all([m], x)[0].sum(), x)
    assert g.abs().sum() > 0
