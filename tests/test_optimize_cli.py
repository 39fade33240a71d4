"""The optimize commands on the shipped world tokenizer, the real-model checks of the loop, and the
ImageNet protocol script in its smoke mode."""
from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from probe.cli import main
from probe.optimize import OptimizeConfig, optimize

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world32():
    from probe import zoo

    return zoo.load("world-32", device="cpu")


def test_world_tokenizer_gradients_reach_the_features_and_frozen_positions_hold(world32) -> None:
    from probe.data.world import sample

    images, _ = sample(2, seed=3, resolution=32)
    seed = world32.encode(images).features
    target = images.flip(-1)  # a different image: every token has somewhere to go
    frozen = torch.zeros(32, dtype=torch.bool)
    frozen[::3] = True
    res = optimize(world32, lambda x: (x - target).pow(2).flatten(1).mean(1), seed,
                   config=OptimizeConfig(iterations=15, lr=0.05, progress=False, noise=0.05, ema_decay=0.5),
                   frozen=frozen)
    h = res.history
    assert h[h.step == res.steps].loss.mean() < h[h.step == 0].loss.mean()
    assert torch.equal(res.features[:, frozen], seed[:, frozen])
    assert h[h.step == res.steps].changed.min() > 0  # codes moved at free positions
    assert torch.equal(res.indices[:, frozen], world32.encode(images).indices[:, frozen])


def test_commands(tmp_path) -> None:
    common = ["--iterations", "3", "--no-progress"]
    assert main(["edit", "world:2", "--prompt", "a photo of a red star.", "--views", "2", "--pad", "2",
                 "--out", str(tmp_path / "edit"), *common]) == 0
    for name in ("grid.png", "trajectory.png", "history.csv", "images/0001.png"):
        assert (tmp_path / "edit" / name).exists()
    cfg = json.loads((tmp_path / "edit" / "config.json").read_text())
    assert cfg["command"] == "edit" and cfg["iterations"] == 3 and cfg["prompt"] == ["a photo of a red star."]
    assert main(["generate", "--prompt", "a photo of a blue square.", "--prompt", "a photo of a star.", "-n", "2",
                 "--seed-images", "world:8", "--out", str(tmp_path / "gen"), *common]) == 0
    h = pd.read_csv(tmp_path / "gen" / "history.csv")
    assert sorted(h.row.unique()) == [0, 1, 2, 3]
    assert main(["inpaint", "world:2", "--box", "0.1,0.1,0.5,0.5", "--reset-every", "2",
                 "--out", str(tmp_path / "inp"), *common]) == 0
    assert len(list((tmp_path / "inp" / "images").glob("*.png"))) == 2
    assert main(["copy-paste", "--target", "world:2", "--source", "world:1", "--positions", "3,26",
                 "--out", str(tmp_path / "cp")]) == 0
    assert json.loads((tmp_path / "cp" / "config.json").read_text())["positions_used"] == [3, 26]


def test_command_errors_are_one_line_naming_the_flag(tmp_path, capsys) -> None:
    cases = [(["inpaint", "world:1", "--box", "0.5,0.5,0.2", "--out", tmp_path / "x", "--iterations", "1"], "--box"),
             (["edit", "world:3", "--prompt", "a", "--prompt", "b", "--out", tmp_path / "y", "--iterations", "1"],
              "--prompt: 2 prompts for 3 images"),
             (["edit", tmp_path / "nothing.png", "--prompt", "a", "--out", tmp_path / "z"], "nothing.png"),
             (["edit", "world:1", "--prompt", " ", "--out", tmp_path / "z"], "--prompt: must not be empty"),
             (["generate", "--prompt", "a", "--iterations", "0", "--out", tmp_path / "z"], "--iterations"),
             (["copy-paste", "--target", "world:1", "--source", "world:1", "--positions", "32", "--out",
               tmp_path / "z"], "--positions: [32] outside 0..31"),
             (["copy-paste", "--target", "world:1", "--source", "world:1", "--positions", "-1", "--out",
               tmp_path / "z"], "--positions: [-1] outside 0..31")]
    for argv, says in cases:
        assert main([str(a) for a in argv]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0], (argv, err)
    assert not (tmp_path / "z").exists()  # refused before any work


def test_earlier_results_are_kept_unless_overwrite(tmp_path, capsys) -> None:
    out = tmp_path / "cp"
    argv = ["copy-paste", "--target", "world:1", "--source", "world:1", "--positions", "3", "--out", str(out)]
    assert main(argv) == 0
    first = (out / "config.json").read_text()
    assert main(argv[:-3] + ["5", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err and (out / "config.json").read_text() == first
    assert main(argv[:-3] + ["5", "--out", str(out), "--overwrite"]) == 0
    assert json.loads((out / "config.json").read_text())["positions_used"] == [5]


def test_imagenet_protocol_smoke(tmp_path, monkeypatch) -> None:
    out = tmp_path / "imnet"
    script = ROOT / "analyses/imagenet_generate/generate.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--smoke", "--out", str(out)])
    runpy.run_path(str(script), run_name="__main__")
    data = np.load(out / "samples.npz")
    assert data["arr_0"].dtype == np.uint8 and data["arr_0"].shape == (6, 64, 64, 3)
    assert data["labels"].tolist() == [0, 0, 1, 1, 2, 2]
    table = pd.read_csv(out / "samples.csv")
    assert list(table["class"].unique()) == ["tench", "goldfish", "great white shark"]
    assert table.prompt.iloc[0] == "a photo of a tench."
