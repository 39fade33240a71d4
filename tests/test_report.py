"""Reports: markdown tables for analysis READMEs (and the shape-difficulty breakdown they report), and the
self-contained HTML report of a run, checked as HTML and as rendered by headless Chromium."""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from probe.oracle.evaluate import shape_by_difficulty
from probe.report import RunPaths, build_report, markdown_table, render_report
from probe.report.caveats import tokenizer_caveats
from probe.report.html import MAP_HEADER_RGB


def test_markdown_table_layout_and_float_format():
    df = pd.DataFrame({"acc": [0.5, 0.12345], "kind": ["x", "y"]}, index=pd.Index(["a", "b"], name="task"))
    assert markdown_table(df).splitlines() == [
        "| task | acc | kind |",
        "|---|---|---|",
        "| a | 0.500 | x |",
        "| b | 0.123 | y |",
    ]


def test_shape_by_difficulty_splits_by_blur_over_size():
    factors = pd.DataFrame({"global_blur": np.linspace(0.0, 0.05, 8), "obj_scale": np.full(8, 0.2)})
    correct = np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)  # the blurrier half is wrong
    out = shape_by_difficulty(correct, factors, bins=2)
    assert out["accuracy"].tolist() == [1.0, 0.0]
    assert out["n"].tolist() == [4, 4]


# ---------------------------------------------------------------------------------------------- the HTML report

def _png(path: Path, colour: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(2, 1))
    fig.add_subplot().imshow(np.ones((4, 4, 3)) * np.array({"red": [1, 0, 0], "blue": [0, 0, 1]}[colour]))
    fig.savefig(path)


def _probe_only_run(root: Path) -> RunPaths:
    run = RunPaths(root)
    run.probes.mkdir(parents=True)
    pd.DataFrame({"attribute": ["lighting", "null"], "rank_by": "ami", "top_position": [11, 18],
                  "effect": [0.467, 0.003], "significant": [True, False]}).to_csv(run.summary, index=False)
    _png(run.probe_heatmap("ami"), "red")
    run.config.write_text(json.dumps({"tokenizer": "world-32", "stages": [
        {"stage": "swap", "status": "skipped", "note": "swap validation did not run: planted reason"}]}))
    return run


def test_report_without_swaps_shows_the_probe_map_as_unvalidated_and_says_what_is_missing(tmp_path):
    run = _probe_only_run(tmp_path / "run")
    page = build_report(run.root)
    assert page.index("Probe map (unvalidated)") < page.index("Probe and causal heatmaps")
    assert "Validated semantic map" not in page
    assert "planted reason" in page  # the pipeline's note says why the swap sections are missing
    assert "The causal heatmap is missing" in page and "optimize/generate.csv" in page
    assert page.count("data:image/png;base64,") == 1
    # self-contained: nothing fetched from anywhere
    assert not re.search(r"(src|href)=\"(https?:)?//", page) and "<script" not in page and "<link" not in page
    # the caveats of the tokenizer in use, from its zoo record
    assert "Locatello" in page and "Compression alone did not localize lighting" in page
    assert "The mapping it declares" in page  # world-32 declares lighting at 26, ...
    assert re.search(r"<td>lighting</td>\s*<td>26</td>", page)


def test_report_with_swap_and_optimize_outputs_shows_them(tmp_path):
    run = _probe_only_run(tmp_path / "run")
    run.swap.mkdir()
    pd.DataFrame({"verdict": ["confirmed", "not visible"], "attribute": ["lighting", "null"], "positions": ["26", "3"],
                  "transfer": [0.78, 0.01], "probe_rank": [3, 1]}).to_csv(run.validated_map, index=False)
    pd.DataFrame({"attribute": ["lighting"], "probe_top": [11], "causal_top": [26]}).to_csv(run.disagreements,
                                                                                         index=False)
    _png(run.causal_heatmap, "blue")
    _png(run.swap_grids / "lighting.png", "blue")
    _png(run.traversal(26), "blue")
    run.optimize.mkdir()
    pd.DataFrame({"prompt": ["a red triangle"], "clip_score": [0.31], "heldout_score": [0.22]}).to_csv(
        run.optimize_table("generate"), index=False)
    _png(run.optimize_folder("generate") / "grid.png", "red")
    page = render_report(run.root).read_text()
    assert page.index("Validated semantic map") < page.index("Probe and causal heatmaps")
    assert "unvalidated" not in page.split("Probe and causal heatmaps")[0]
    head = page[page.index('id="map"'):]
    # the validated map's columns come in the documented order, whatever order the CSV had
    cols = re.findall(r"<th>([^<]+)</th>", head[: head.index("</thead>")])
    assert cols == ["attribute", "positions", "transfer", "verdict", "probe_rank"]
    assert "probe_top" in page and "a red triangle" in page
    # an attribute the rule could not test is named before the table
    assert page.index("Not testable:</b> null (not visible)") < page.index('id="map"')
    # the causal figure (drawn beside the probe ranking by the swap engine), grid, traversal, generation
    assert page.count("data:image/png;base64,") == 4
    assert "Inpainting (optimize/inpaint.csv" in page  # still missing, and says so
    assert "traversal 26" in page and "lighting.png" in page


def test_caveats_are_the_tokenizers_own():
    world = tokenizer_caveats("world-32")
    assert any("Locatello" in c for c in world) and any("compression sweep" in c for c in world)
    other = tokenizer_caveats("some/hub-model")
    assert not any("Locatello" in c for c in other) and "not a shipped model" in other[0]


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.geteuid() != 0:
            pytest.skip("chromium is not installed and this user cannot install it (apt-get install chromium)")
        pytest.fail("chromium is missing: .ci/run installs it (apt-get install -y chromium)")
    return exe


def _chromium_args(tmp_path: Path) -> list[str]:
    return [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'chromium-profile'}"]


def _screenshot(tmp_path, report, width, height):
    from PIL import Image

    shot = tmp_path / "report.png"
    subprocess.run([*_chromium_args(tmp_path), f"--screenshot={shot}", f"--window-size={width},{height}",
                    report.resolve().as_uri()], check=True, timeout=120, capture_output=True)
    if os.environ.get("TOKENPROBE_REPORT_SHOT"):  # keep the screenshot to look at
        shutil.copy(shot, os.environ["TOKENPROBE_REPORT_SHOT"])
    return np.asarray(Image.open(shot).convert("RGB")).astype(np.int16)


def _map_band(img):
    """Rows and columns of the screenshot where the map table's header colour is."""
    hit = (np.abs(img - np.array(MAP_HEADER_RGB)).max(axis=2) <= 6)
    return np.flatnonzero(hit.sum(axis=1) > 200), np.flatnonzero(hit.any(axis=0))


def _dom(tmp_path, report):
    return subprocess.run([*_chromium_args(tmp_path), "--dump-dom", report.resolve().as_uri()], check=True,
                          timeout=120, capture_output=True, text=True).stdout


def test_report_of_a_small_run_renders_in_headless_chromium(tmp_path):
    """The first screen (1,400 x 900 px) holds the map table, whole in width, with its legend on the page; a run on
    random weights says so first."""
    from probe.pipeline import RunConfig, run_pipeline

    cfg = RunConfig.from_dict({"name": "chromium-check", "out": str(tmp_path / "run"), "tokenizer": "titok-tiny",
                               "random_init": True, "data": {"images": 128, "batch_size": 64},
                               "probes": {"permutations": 10}, "swap": {"enabled": False},
                               "optimize": {"enabled": False}})
    report = run_pipeline(cfg, log=lambda s: None).report
    width, height = 1400, 900
    img = _screenshot(tmp_path, report, width, height)
    assert img.shape[:2] == (height, width)
    assert img.std() > 20  # not a blank page
    rows, cols = _map_band(img)
    assert len(rows) >= 15, "no header band of the semantic map table on the first screen"
    dom = _dom(tmp_path, report)
    assert dom.index('id="random-weights"') < dom.index('id="reconstruction"') < dom.index('id="map"')
    table = dom[dom.index('id="map"'):]
    table = table[: table.index("</table>")]
    assert "top_position" in table and ">lighting<" in table and ">null_factor<" in table

    # a validated map with every column the engine writes and two untested attributes
    attrs = ["lighting", "bg_blur", "global_blur", "obj_hue", "bg_hue", "shape", "obj_scale", "obj_x"]
    vmap = pd.DataFrame({"attribute": attrs, "positions": ["26", "4", "4", "9+21+23", "7", "12", "3", "5"],
                         "set_size": [1, 1, 1, 3, 1, 1, 1, 1], "transfer": np.linspace(0.2, 1.1, 8),
                         "ci_low": np.linspace(0.1, 0.9, 8), "ci_high": np.linspace(0.3, 1.25, 8),
                         "iia": 0.8, "d_random": 1.5, "d_same_end": 0.5, "max_off_target": 0.99,
                         "entangled_with": "global_blur,shape,obj_scale", "verdict": "confirmed",
                         "specificity": "entangled", "source": "single", "probe_rank": 1.0, "best_single": "4",
                         "best_single_transfer": 0.95})
    untested = pd.DataFrame({"attribute": ["null_factor", "obj_y"], "verdict": "untested",
                             "source": ["no measurer", "not selected"]})
    paths = RunPaths(tmp_path / "run")
    paths.swap.mkdir()
    pd.concat([vmap, untested]).to_csv(paths.validated_map, index=False)
    report = render_report(paths.root)
    img = _screenshot(tmp_path, report, width, height)
    rows, cols = _map_band(img)
    assert len(rows) >= 15 and rows.max() < height, "the validated map's header is not on the first screen"
    assert cols.max() < width - 20, "the validated map is wider than the window"
    dom = _dom(tmp_path, report)
    table = dom[dom.index('id="map"'):]
    table = table[: table.index("</table>")]
    assert ">obj_hue<" in table and "null_factor" not in table and "d_same_end" not in table
    assert "null_factor (no measurer)" in dom[dom.index('id="untested"'):][:300]
    legend = dom[dom.index('id="legend"'):]
    for column in ("transfer", "ci_high", "iia", "d_random", "d_same_end", "set_size", "specificity"):
        assert f"<dt>{column}</dt>" in legend, column
    assert "can exceed 1" in legend  # interval bounds above 1 are explained
    # random weights erase the attributes: said above the map (the null of the reconstruction check)
    assert "lighting" in dom[dom.index('id="erased"'):][:400]


def test_report_of_a_folder_made_by_the_separate_commands(tmp_path):
    from probe.cli import main

    run = tmp_path / "run"
    assert main(["tokenize", "--manifest", "world-32", "--out", str(run / "store"), "--limit", "48", "--tokenizer",
                 "titok-tiny", "--random-init", "--device", "cpu", "--workers", "0", "--no-progress"]) == 0
    assert main(["probe", "--store", str(run / "store"), "--out", str(run / "probes"), "--permutations", "5",
                 "--attributes", "lighting,shape", "--umap-top", "0", "--quiet"]) == 0
    html = render_report(run).read_text()
    assert "tokenizer <code>titok-tiny</code>" in html  # from the store's header, not "?"
    assert "The probe heatmap is missing" not in html and "data:image/png;base64" in html  # probes/figures found
