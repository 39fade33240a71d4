"""analyses/bench_discovery.py: the scoring against the exhaustive sweep (known answers, a truth of "nothing"),
and a small instance end to end on the shipped world-32."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analyses"))
import bench_discovery as bd  # noqa: E402


def _vmap(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["attribute", "positions", "transfer", "verdict"])


HEAT = pd.DataFrame({"position": [0, 1, 2, 3], "a": [0.9, 0.7, 0.0, 0.1], "b": [0.0, 0.1, 0.05, 0.0],
                     "c": [0.0, 0.2, 0.3, 0.2]})


def test_score_known_answers() -> None:
    truth = _vmap([("a", "0", 0.9, "confirmed"), ("b", "1", 0.1, "rejected"), ("c", "1+2+3", 0.8, "confirmed")])
    pipe = _vmap([("a", "1", 0.75, "confirmed"),      # an echo position: the truth moves 0.7 there -> correct
                  ("b", "1", 0.6, "confirmed"),       # the truth moves 0.1: a false discovery
                  ("c", "2", 0.2, "rejected")])       # missed the set
    t = bd.score(truth, HEAT, pipe)
    assert list(t["correct"]) == [True, False, False]
    assert t["transfer_error"].tolist() == pytest.approx([0.05, 0.5, 0.1])
    s = bd.summarize_scores(t)
    assert (s["pipeline_confirmed"], s["truth_confirmed"], s["correct"]) == (2, 2, 1)
    assert s["precision"] == 0.5 and s["recall"] == 0.5
    # a set answer is scored by the truth's transfer of that very set
    t2 = bd.score(truth, HEAT, _vmap([("c", "1+2", 0.7, "confirmed")]), {("c", (1, 2)): 0.65})
    assert t2["correct"].tolist() == [True] and t2["truth_at_pipeline"].tolist() == [0.65]
    # the same set as the truth's answer (in any order): the truth's own transfer, no extra sweep needed
    t3 = bd.score(truth, HEAT, _vmap([("c", "3+1+2", 0.85, "confirmed")]))
    assert t3["correct"].tolist() == [True] and t3["truth_at_pipeline"].tolist() == [0.8]


def test_score_when_the_truth_is_nothing() -> None:
    truth = _vmap([("a", "2", 0.05, "rejected"), ("b", "0", 0.0, "rejected")])
    heat = HEAT.assign(a=0.0)
    claims = bd.summarize_scores(bd.score(truth, heat, _vmap([("a", "0", 0.8, "confirmed"), ("b", "0", 0.1, "rejected")])))
    assert claims["precision"] == 0.0 and math.isnan(claims["recall"])
    quiet = bd.summarize_scores(bd.score(truth, heat, _vmap([("a", "0", 0.1, "rejected")])))
    assert math.isnan(quiet["precision"]) and quiet["correct"] == 0
    assert bd.positions_of(float("nan")) == () and bd.positions_of("9+21") == (9, 21) and bd.positions_of(4.0) == (4,)


@pytest.mark.slow
def test_small_instance_end_to_end(tmp_path: Path) -> None:
    """world-32, 256 images, lighting and bg_blur, 16 truth pairs: the benchmark runs and scores its answers."""
    import shutil

    cfg = tmp_path / "demo.yaml"
    text = (bd.ROOT / "analyses" / "demo.yaml").read_text().replace(
        "attributes: [lighting, bg_blur, global_blur, obj_hue, bg_hue, shape]", "attributes: [lighting, bg_blur]")
    cfg.write_text(text.replace("permutations: 200", "permutations: 20"))
    bd.CONFIGS["world-32"] = str(cfg)
    table, summary = bd.bench(["world-32"], truth_pairs=16, images=256, runs=tmp_path / "runs")
    assert set(table["attribute"]) <= {"lighting", "bg_blur"} and len(summary) == 1
    assert summary["attributes"].iloc[0] == len(table) >= 1
    assert ((table["truth_at_pipeline"] >= bd.CONFIRM) | ~table["correct"]).all()
    bd.plot(table, summary, tmp_path / "fig")
    assert (tmp_path / "fig.png").exists()
    shutil.rmtree(tmp_path / "runs")


def test_factors_the_truth_finds_not_reconstructed_are_not_scored() -> None:
    truth = _vmap([("a", "0", 0.9, "confirmed"), ("b", "1", 3.0, "not reconstructed")])
    t = bd.score(truth, HEAT, _vmap([("a", "0", 0.8, "confirmed"), ("b", "1", 0.7, "confirmed")]))
    assert t["attribute"].tolist() == ["a"]
