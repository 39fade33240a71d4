"""Exhaustive code search at given positions, and position edits that use it, on the hand-built tokenizer."""
from __future__ import annotations

import pytest
import torch
from test_optimize_toy import ToyTokenizer, quadrant_images

from probe.optimize import Lambda, OptimizeConfig
from probe.optimize.search import candidate_losses, search_positions
from probe.optimize.tasks import position_edit


def _codes(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows)


def test_search_finds_the_best_code_and_touches_nothing_else() -> None:
    tok = ToyTokenizer(discrete=True, blur=0.1)
    seed_idx = _codes([[0, 5, 13, 26], [3, 3, 3, 3]])
    want = _codes([[0, 21, 13, 26], [3, 9, 3, 3]])  # position 1 differs
    target = tok.decode(tok.codes[want], clamp=False)
    # candidates are scored one image at a time: an objective per image that takes any batch
    objs = [Lambda(lambda x, t=target[r]: (x - t).pow(2).flatten(1).mean(1)) for r in range(2)]
    res = search_positions(tok, None, [1], objs, indices=seed_idx)
    assert torch.equal(res.indices, want)
    assert torch.equal(res.indices[:, [0, 2, 3]], seed_idx[:, [0, 2, 3]])
    torch.testing.assert_close(res.images, target.clamp(0, 1))
    # the candidate losses are those of decoding each code at the position
    losses = candidate_losses(tok, seed_idx[0], 1, objs[0])
    assert losses.shape == (27,) and int(losses.argmin()) == 21 and float(losses[21]) == pytest.approx(0.0, abs=1e-12)


def test_search_over_two_positions_sweeps_until_nothing_improves() -> None:
    tok = ToyTokenizer(discrete=True)
    seed_idx = _codes([[0, 0, 0, 0]])
    want = _codes([[0, 7, 19, 0]])
    target = tok.decode(tok.codes[want])
    obj = Lambda(lambda x: (x - target).pow(2).flatten(1).mean(1))
    res = search_positions(tok, None, [1, 2], obj, indices=seed_idx, sweeps=5)
    assert torch.equal(res.indices, want)
    assert res.steps == 4  # one improving sweep over 2 positions, then one that changes nothing


def test_a_flat_objective_changes_nothing() -> None:
    """The null: no candidate is strictly better, so the search keeps the seed codes."""
    tok = ToyTokenizer(discrete=True)
    seed_idx = _codes([[1, 2, 3, 4], [26, 25, 24, 23]])
    res = search_positions(tok, None, [0, 3], Lambda(lambda x: x.sum(dim=(1, 2, 3)) * 0.0), indices=seed_idx)
    assert torch.equal(res.indices, seed_idx)


def test_search_refuses_continuous_tokens_and_bad_positions() -> None:
    with pytest.raises(ValueError, match="discrete"):
        search_positions(ToyTokenizer(discrete=False), torch.rand(1, 3, 8, 8), [0], Lambda(lambda x: x.mean((1, 2, 3))))
    with pytest.raises(ValueError, match="positions"):
        search_positions(ToyTokenizer(), None, [4], Lambda(lambda x: x.mean((1, 2, 3))), indices=_codes([[0, 0, 0, 0]]))


class RedOfQuadrant:
    """A measurer: the red channel of the top-right quadrant (token 1)."""

    name, kind = "red1", "continuous"

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return images[:, 0, :4, 4:].mean(dim=(1, 2))


class GreenOfQuadrant:
    name, kind = "green0", "continuous"

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return images[:, 1, :4, :4].mean(dim=(1, 2))


@pytest.mark.parametrize("method", ["search", "search+gradient"])
def test_position_edit_reaches_a_target_the_gradient_cannot(method: str) -> None:
    """Token 1 sits well inside its code's cell (red 0.1 -> code red 0): a small-lr straight-through
    gradient restricted to it does not leave the cell in a few steps; the search does, and the other
    positions keep their codes bitwise (and their attribute does not move)."""
    tok = ToyTokenizer(discrete=True)
    images = quadrant_images(torch.tensor([[[0.9, 0.1, 0.1], [0.1, 0.1, 0.1], [0.5, 0.5, 0.5], [0.0, 1.0, 0.0]]]))
    cfg = OptimizeConfig(iterations=5, lr=0.01, progress=False)
    kw = dict(measurer=RedOfQuadrant(), positions=[1], others={"green0": GreenOfQuadrant()}, config=cfg)
    grad, gdrift = position_edit(tok, images, "red1", 1.0, method="gradient", **kw)
    res, drift = position_edit(tok, images, "red1", 1.0, method=method, **kw)
    seed_idx = tok.encode(images).indices
    assert torch.equal(res.indices[:, [0, 2, 3]], seed_idx[:, [0, 2, 3]])
    red = drift[drift.attribute == "red1"].iloc[0]
    assert red.before == pytest.approx(0.0) and red.after == pytest.approx(1.0)
    assert gdrift[gdrift.attribute == "red1"].iloc[0].after == pytest.approx(0.0)  # stuck in its cell
    assert drift[drift.attribute == "green0"].drift.max() == 0.0
    with pytest.raises(ValueError, match="positions"):
        position_edit(tok, images, "red1", 1.0, method="search", measurer=RedOfQuadrant())
