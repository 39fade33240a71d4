"""Figures: each function takes computed data and returns a Figure; save_figure writes PNG + SVG."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from probe.probes import run_probes
from probe.probes.synthetic import planted_tokens
from probe.probes.usage import code_frequencies, codebook_usage
from probe.viz import (
    codebook_usage_figure,
    position_umap,
    probe_heatmap,
    save_figure,
    summary_figure,
)


@pytest.fixture(scope="module")
def probed():
    data = planted_tokens(800, 6, 64, planted={"a": ("categorical", 3, 4)}, null={"z": ("continuous", 4)}, seed=0)
    res = run_probes(data.tokens, data.attributes, features=data.features, codebook=data.codebook,
                     permutations=40, progress=False)
    return data, res


def test_codebook_usage_known_answers() -> None:
    tokens = np.array([[0, 1], [0, 2], [0, 3], [0, 1]])
    u = codebook_usage(tokens, num_codes=4)
    assert list(u.used_codes) == [1, 3]
    assert u.perplexity[0] == pytest.approx(1.0)
    p = np.array([0.5, 0.25, 0.25])
    assert u.perplexity[1] == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    assert u.top1_share[1] == pytest.approx(0.5)
    np.testing.assert_allclose(code_frequencies(tokens, 4)[1], [0.5, 0.25, 0.25, 0.0])


def _marked(ax) -> list[tuple[int, int]]:
    """(row, column) of the outlined cells."""
    return sorted((int(round(p.get_y())), int(round(p.get_x()))) for p in ax.patches if p.get_gid() == "top-position")


def test_heatmap_marks_the_semantic_maps_candidates(probed) -> None:
    _, res = probed
    smap = res.semantic_map
    fig = probe_heatmap(res.table, "ami", semantic_map=smap)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    # rows are attributes, columns positions; the planted "a" (position 4) is carried, the null "z" is not
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "z (n.s.)"]
    assert len(ax.get_xticklabels()) == 6
    assert smap.candidates("a") == [4] and smap.candidates("z") == []
    assert _marked(ax) == [(0, 4)]
    # the marks are the map's answer on every probe's heatmap
    assert _marked(probe_heatmap(res.table, "eta2_features", semantic_map=smap).axes[0]) == [(0, 4)]
    probe_heatmap(res.table, "var_logratio", semantic_map=smap)  # diverging colour map, rows "a=level" unmarked


def test_summary_usage_and_save(probed, tmp_path: Path) -> None:
    data, res = probed
    usage = codebook_usage(data.tokens, 64)
    figs = {
        "summary": summary_figure(res.table, res.semantic_map, res.disentanglement, usage),
        "summary_without_usage": summary_figure(res.table, res.semantic_map),
        "usage": codebook_usage_figure(usage, code_frequencies(data.tokens, 64)),
    }
    # no empty panel: 2 heatmaps (+ colour bars), best positions, disentanglement, usage (+ its twin axis)
    assert len(figs["summary"].axes) == 2 * 2 + 2 + 2
    assert len(figs["summary_without_usage"].axes) == 2 * 2 + 1  # no disentanglement, no usage: no empty axes
    for name, fig in figs.items():
        assert isinstance(fig, Figure)
        paths = save_figure(fig, tmp_path / "figs" / name)
        assert [p.suffix for p in paths] == [".png", ".svg"]
        assert all(p.stat().st_size > 1000 for p in paths)
        assert paths[1].read_text()[:200].lstrip().startswith("<?xml")


def test_position_umap_panels_with_given_embeddings(probed) -> None:
    data, _ = probed
    rng = np.random.default_rng(0)
    emb = {4: rng.standard_normal((200, 2)), 1: rng.standard_normal((200, 2))}
    fig = position_umap(data.features, data.attributes["a"], [4, 1], attribute="a", max_points=200, embeddings=emb)
    assert [ax.get_title() for ax in fig.axes[:2]] == ["position 4", "position 1"]
    assert len(fig.legends) == 1 and len(fig.legends[0].get_texts()) == 3
    fig = position_umap(data.features, data.attributes["z"], [4], attribute="z", max_points=200, embeddings={4: emb[4]})
    assert len(fig.axes) == 2  # panel + colour bar for a continuous attribute
    with pytest.raises(ValueError, match="rows"):
        position_umap(data.features[:10], data.attributes["a"], [0], embeddings=emb)


def _report_figures(probed):
    """The report's heatmap-like figures at 32 positions and 9 attributes (the size of a real run)."""
    import pandas as pd

    from probe.viz.attribution import attribution_vs_causal_figure
    from probe.viz.spatial import spatial_maps_figure
    from probe.viz.swap import causal_vs_probe_figure, traversal_figure

    data, res = probed
    rng = np.random.default_rng(0)
    attrs = [f"attribute_{i}" for i in range(9)]
    heat = pd.DataFrame(rng.uniform(-1, 1, (32, 9)), index=range(32), columns=attrs)
    ranking = pd.DataFrame([{"attribute": a, "position": p, "effect": rng.random()} for a in attrs for p in range(32)])
    answers = pd.DataFrame({"attribute": attrs[:2], "positions": ["4", "26"], "set_size": [1, 1],
                            "verdict": ["confirmed", "weak"]})
    curve = pd.DataFrame([{"code": c, "measured": m, "mean": rng.random(), "q25": 0.0, "q75": 1.0, "baseline": 0.5}
                          for c in range(200) for m in ("lighting", "bg_blur")])
    return {
        "probe heatmap": probe_heatmap(res.table, "ami", semantic_map=res.semantic_map),
        "summary": summary_figure(res.table, res.semantic_map),
        "causal vs probe": causal_vs_probe_figure(heat, ranking, answers),
        "attribution": attribution_vs_causal_figure(heat * 0.9, heat),
        "spatial": spatial_maps_figure(rng.random((32, 16, 16)), cols=8, title="maps"),
        "traversal": traversal_figure(curve),
    }


def test_report_figures_show_text_of_at_least_11_px_in_the_report_column(probed) -> None:
    """Shown in the report's 1,312 px column (each PNG at its natural size, shrunk to fit), no text of the
    heatmaps, the traversal or the spatial maps is smaller than 11 px; and a heatmap panel is at most 13 inches
    wide, so that floor is a normal font size (at most ~10.5 pt)."""
    from probe.viz.style import MIN_TEXT_PX, text_sizes

    for name, fig in _report_figures(probed).items():
        sizes = text_sizes(fig)
        small = sizes[sizes["px"] < MIN_TEXT_PX - 1e-6]
        assert small.empty, (name, small.head().to_dict("records"))
        assert fig.get_size_inches()[0] <= 13.0 + 1e-9, name


def test_traversal_axis_names_its_codes(probed) -> None:
    fig = _report_figures(probed)["traversal"]
    bottom = fig.axes[1]
    labels = [t.get_text() for t in bottom.get_xticklabels()]
    assert 2 <= len(labels) <= 16 and all(t.isdigit() for t in labels), labels
    assert "code id" in bottom.get_xlabel()
