"""``run_probes``: every probe for every (position, attribute), one tidy table and a semantic map."""
from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from probe.probes.config import ALL_PROBES, FEATURE_PROBES, ProbeConfig
from probe.probes.data import ProbeInput, prepare_inputs
from probe.probes.disentanglement import METRIC_COLUMNS, metrics_table
from probe.probes.semantic_map import SemanticMap, build_semantic_map
from probe.probes.units import ALL_POSITIONS, TABLE_COLUMNS, UNITS, AttributeView, Collector, ProbeRun, Timer
from probe.probes.usage import code_frequencies, codebook_usage

if TYPE_CHECKING:
    from probe.store import TokenStore

__all__ = ["ALL_POSITIONS", "TABLE_COLUMNS", "ProbeResult", "run_probes"]


@dataclass
class ProbeResult:
    """Everything :func:`run_probes` computed.

    Attributes:
        table: long table, one row per (position, attribute, probe), columns :data:`TABLE_COLUMNS`.
            ``position`` is -1 for probes over all positions; ``attribute`` is ``name=level`` for
            the one-level-vs-rest partitions of ``var_logratio``. ``p_value`` is NaN for probes
            without a permutation test (the cross-validated ones; their ``null_mean`` is chance).
            ``q_value`` is Benjamini-Hochberg over the whole position x attribute grid of a probe.
        semantic_map: see :class:`SemanticMap`.
        disentanglement: columns ``metric, scope (overall|position|attribute), position,
            attribute, value``.
        attributes: name -> ``{"kind", "levels"}`` as probed.
        config: every setting, incl. the seed.
        timings: wall seconds per probe group.
        cpu_timings: process CPU seconds (all threads) per probe group.
        skipped: attribute -> why it was not probed.
        usage: codebook usage per position (:func:`probe.probes.usage.codebook_usage`).
        frequencies: ``[N, K]`` rank-frequency of the codes per position (:func:`probe.probes.usage.code_frequencies`).
    """

    table: pd.DataFrame
    semantic_map: SemanticMap
    disentanglement: pd.DataFrame
    attributes: dict[str, dict[str, Any]]
    config: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    cpu_timings: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    usage: pd.DataFrame | None = None
    frequencies: np.ndarray | None = None

    def heatmap(self, probe: str, value: str = "value") -> pd.DataFrame:
        """``position x attribute`` pivot of one probe (:func:`probe.viz.heatmap.heatmap_frame`)."""
        from probe.viz.heatmap import heatmap_frame  # viz draws from this package's results, never imports it

        return heatmap_frame(self.table, probe, value)

    @property
    def summary(self) -> pd.DataFrame:
        """One row per attribute: top position, effect, q-value, the family-wise answer, the runner-up
        (:meth:`SemanticMap.summary`)."""
        return self.semantic_map.summary()

    def save(self, out_dir: str | Path, figures: bool = True, *, figures_dir: str | Path | None = None,
             store: TokenStore | None = None, umap_top: int = 0, umap_points: int = 3000, title: str | None = None,
             extra_config: dict[str, Any] | None = None) -> dict[str, Path]:
        """Write every table and (with ``figures``) every figure; returns name -> path (PNG for figures).

        Tables under ``out_dir``: ``probes.csv`` / ``probes.parquet`` (the long table),
        ``semantic_map.json`` and ``semantic_map.csv`` (one row per attribute x position),
        ``summary.csv`` (one row per attribute), ``disentanglement.csv``, ``usage.csv`` (codebook usage
        per position) and ``config.json`` (settings, seed, attributes, timings, plus ``extra_config``).
        Figures (PNG + SVG) under ``figures_dir`` (default ``out_dir/figures``): see
        :func:`probe.viz.probe_figures` (``store`` and ``umap_top`` > 0 add the UMAP figures).
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "table_csv": out / "probes.csv",
            "table_parquet": out / "probes.parquet",
            "semantic_map": out / "semantic_map.json",
            "semantic_map_csv": out / "semantic_map.csv",
            "summary": out / "summary.csv",
            "disentanglement": out / "disentanglement.csv",
            "config": out / "config.json",
        }
        self.table.to_csv(paths["table_csv"], index=False)
        self.table.to_parquet(paths["table_parquet"], index=False)
        self.semantic_map.to_json(paths["semantic_map"])
        self.semantic_map.to_frame().to_csv(paths["semantic_map_csv"], index=False)
        self.summary.to_csv(paths["summary"], index=False)
        self.disentanglement.to_csv(paths["disentanglement"], index=False)
        if self.usage is not None:
            paths["usage"] = out / "usage.csv"
            self.usage.to_csv(paths["usage"], index=False)
        cfg = {**self.config, **(extra_config or {}), "attributes": self.attributes, "skipped": self.skipped, "timings_s": self.timings,
               "cpu_timings_s": self.cpu_timings}
        paths["config"].write_text(json.dumps(cfg, indent=2, default=str))
        if figures:
            from probe.viz.probe_figures import probe_figures  # viz imports this package: import here, not at the top

            paths.update(probe_figures(self, Path(figures_dir) if figures_dir is not None else out / "figures",
                                       store=store, umap_top=umap_top, umap_points=umap_points, title=title))
        return paths


@contextlib.contextmanager
def _threads(n_jobs: int) -> Iterator[None]:
    """Use ``n_jobs`` threads (-1: all cores) in the compiled loops; keep BLAS single-threaded."""
    import numba
    from threadpoolctl import threadpool_limits

    old = numba.get_num_threads()
    numba.set_num_threads(_num_threads(n_jobs))
    try:
        with threadpool_limits(1):  # BLAS single-threaded; parallelism comes from numba and a thread pool
            yield
    finally:
        numba.set_num_threads(old)


def _num_threads(n_jobs: int | None) -> int:
    import numba

    top = numba.config.NUMBA_NUM_THREADS
    return top if n_jobs in (-1, None) else max(1, min(int(n_jobs), top))


def run_probes(
    store_or_tokens: TokenStore | np.ndarray,
    attributes: pd.DataFrame | None = None,
    *,
    features: np.ndarray | None = None,
    codebook: np.ndarray | None = None,
    attributes_subset: Sequence[str] | None = None,
    permutations: int = 200,
    seed: int = 0,
    probes: Sequence[str] = ALL_PROBES,
    n_jobs: int = 1,
    progress: bool = True,
    config: ProbeConfig | None = None,
) -> ProbeResult:
    """Run the probe suite on a token store (anything with ``.tokens`` / ``.attributes``, optionally
    ``.features`` / ``.codebook`` / ``.header``) or on plain arrays.

    Args:
        store_or_tokens: a store, or ``tokens [M, N]`` integer ids.
        attributes: one row per image (a ``ref`` / ``index`` column is ignored); taken from the
            store when omitted. Categorical: strings, bools, numbers with <= 20 distinct values;
            continuous: other numbers (binned into quantiles for the group statistics).
        features: ``[M, N, C]`` pre-quantization features (store: ``.features``).
        codebook: ``[K, C]`` codebook (store: ``.codebook``); gives ``eta2_codebook`` and DCI.
        attributes_subset: probe only these attributes.
        permutations / seed / probes: see :class:`ProbeConfig`; ``config`` overrides them all.
        n_jobs: threads (-1: all cores) for the compiled loops and the group-sum products; BLAS
            itself stays single-threaded (its spin-waiting threads are costly on a shared machine).
        progress: show a progress bar over attributes.

    Significance: p-values are permutation p-values with the same permutations of the image rows
    for every position (so one permutation gives a null table for the whole grid); q-values are
    Benjamini-Hochberg per probe over all its (position, attribute) cells. The semantic map ranks
    positions by ``config.rank_by`` (default ``ami``, chance-corrected MI with sklearn semantics;
    its p-value is the MI permutation p-value, the two being monotone in each other once the
    margins are fixed). Where the observed statistic beats every permutation, the p-value is a
    moment-matched gamma tail (``ProbeConfig.tail``; Cramer's V excepted), so strong effects are not
    all tied at ``1 / (permutations + 1)``.

    Linear probes: equal-prior shrunk LDA (classification) and ridge (regression, continuous
    attributes), 5-fold CV on a seeded subsample of at most ``linear_max_samples`` = 20,000 rows;
    ``linear_acc_ids`` is the closed-form class-balanced ridge on the one-hot id (all rows of the
    subsample). Their ``null_mean`` is chance (1/L for balanced accuracy, 0 for R^2), p is NaN.

    Disentanglement metrics (:mod:`probe.probes.disentanglement`), positions as codes: MIG and
    modularity from the plug-in MI of the ids (all rows; ``*_adjusted``: MI minus its permutation
    mean), SAP from ``linear_acc_ids``' plain accuracy, DCI from |ridge weights| on the codebook
    embeddings (features without a codebook) with disentanglement_lib's 10,000 / 5,000 train / test
    rows (``dci_importance="gbt"``: its GradientBoostingClassifier, slow).
    """
    cfg = config or ProbeConfig(permutations=permutations, seed=seed, probes=tuple(probes))
    timer = Timer()
    with timer("prepare"):
        inp = prepare_inputs(
            store_or_tokens, attributes, features=features, codebook=codebook, attributes_subset=attributes_subset,
            n_bins=cfg.n_bins, max_levels=cfg.max_categorical_levels,
        )
    if not inp.ids:
        cfg = _feature_probes_only(cfg)
    with _threads(n_jobs):
        return _run(inp, cfg, timer, progress, n_jobs)


def _feature_probes_only(cfg: ProbeConfig) -> ProbeConfig:
    """A continuous tokenizer's store has no token ids: only the probes that read features run, ranked by
    ``eta2_features`` unless ``rank_by`` is one of them."""
    import dataclasses

    probes = tuple(p for p in cfg.probes if p in FEATURE_PROBES)
    if not probes:
        raise ValueError(f"a continuous tokenizer's store has no token ids, only features: ask for one of "
                         f"{list(FEATURE_PROBES)} (asked for {list(cfg.probes)})")
    rank_by = cfg.rank_by if cfg.rank_by in probes else ("eta2_features" if "eta2_features" in probes else probes[0])
    return dataclasses.replace(cfg, probes=probes, rank_by=rank_by)


def _run(inp: ProbeInput, cfg: ProbeConfig, timer: Timer, progress: bool, n_jobs: int = 1) -> ProbeResult:
    """Every wanted unit of :data:`probe.probes.units.UNITS` on every attribute, then the q-values, the
    disentanglement metrics and the semantic map."""
    with timer("prepare"):
        run = ProbeRun.prepare(inp, cfg, timer, n_workers=_num_threads(n_jobs))
    units = [u for u in UNITS if u.serves & run.want]
    out = Collector()
    attr_info: dict[str, dict[str, Any]] = {}
    for index, attr in enumerate(tqdm(inp.attributes, desc="probing attributes", disable=not progress)):
        a = AttributeView(run, index, attr)
        attr_info[attr.name] = {"kind": attr.kind, "levels": a.levels, "n": a.n}
        if a.n_levels < 2:
            continue
        for unit in units:
            with timer(unit.name):
                unit.run(run, a, out)
    with timer("significance"):
        table = out.table()
    with timer("disentanglement"):
        dtable = metrics_table(out.factors) if "disentanglement" in run.want else pd.DataFrame(columns=METRIC_COLUMNS)
    smap = build_semantic_map(table, list(attr_info), rank_by=cfg.rank_by, alpha=cfg.alpha,
                              permutations=cfg.permutations,
                              family_wise=out.family_wise if cfg.rank_by == "ami" else None)
    config = {**cfg.to_dict(), "num_images": inp.num_images, "num_positions": inp.num_positions,
              "num_codes": inp.num_codes, "has_features": inp.features is not None,
              "has_codebook": inp.codebook is not None, "has_ids": inp.ids, "linear_rows": len(run.lin_rows),
              "dci_train": run.n_train, "dci_test": run.n_test}
    return ProbeResult(table, smap, dtable, attr_info, config, dict(timer.t), dict(timer.cpu), dict(inp.skipped),
                       usage=codebook_usage(inp.tokens, inp.num_codes) if inp.ids else None,
                       frequencies=code_frequencies(inp.tokens, inp.num_codes) if inp.ids else None)
