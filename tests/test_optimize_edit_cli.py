"""``tokenprobe edit --attribute A --target V --positions validated``: a position edit at the positions a run's
swap validation confirmed, and its one-line errors."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from probe.cli import main
from probe.errors import UsageError
from probe.optimize.tasks import validated_positions


def _run_folder(tmp_path):
    swap = tmp_path / "run" / "swap"
    swap.mkdir(parents=True)
    pd.DataFrame({"attribute": ["lighting", "bg_hue", "obj_hue"], "positions": ["26", "7", "9+21"],
                  "verdict": ["confirmed", "rejected", "confirmed"]}).to_csv(swap / "validated_map.csv", index=False)
    return tmp_path / "run"


def test_validated_positions_reads_a_run_a_folder_or_a_file(tmp_path) -> None:
    run = _run_folder(tmp_path)
    assert validated_positions(run, "lighting") == [26]
    assert validated_positions(run / "swap", "obj_hue") == [9, 21]
    assert validated_positions(run / "swap" / "validated_map.csv", "lighting") == [26]
    (tmp_path / "validated_map.json").write_text(json.dumps({"answers": [
        {"attribute": "lighting", "positions": "17+26", "verdict": "confirmed"}]}))
    assert validated_positions(tmp_path / "validated_map.json", "lighting") == [17, 26]
    with pytest.raises(UsageError, match="not confirmed"):
        validated_positions(run, "bg_hue")
    with pytest.raises(UsageError, match="no row for 'shape'"):
        validated_positions(run, "shape")
    with pytest.raises(UsageError, match="no validated map"):
        validated_positions(tmp_path / "nowhere", "lighting")


def test_edit_an_attribute_at_its_validated_positions(tmp_path) -> None:
    run = _run_folder(tmp_path)
    out = tmp_path / "edit"
    assert main(["edit", "world:1:5", "--attribute", "lighting", "--target", "0.9", "--positions", "validated",
                 "--map", str(run), "--out", str(out), "--no-progress"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["positions_used"] == [26] and cfg["attribute"] == "lighting"
    drift = pd.read_csv(out / "drift.csv")
    light = drift[drift.attribute == "lighting"]
    assert ((light.after - 0.9).abs() < (light.before - 0.9).abs()).all()
    assert len(list((out / "images").glob("*.png"))) == 1


def test_edit_errors_are_one_line_naming_what_to_give(tmp_path, capsys) -> None:
    run = _run_folder(tmp_path)
    base = ["edit", "world:1", "--out", str(tmp_path / "x"), "--no-progress"]
    cases = [
        ([], "--prompt TEXT .* or --attribute"),
        (["--prompt", "a red star", "--attribute", "lighting", "--target", "0.5"], "--prompt TEXT .* or --attribute"),
        (["--attribute", "lighting"], "--target"),
        (["--attribute", "lighting", "--target", "0.5"], "--map"),
        (["--attribute", "bg_hue", "--target", "0.5", "--map", str(run)], "not confirmed"),
        (["--attribute", "lighting", "--target", "0.5", "--positions", "x,y"], "--positions"),
    ]
    import re

    for extra, pattern in cases:
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and re.search(pattern, err), (extra, err)
