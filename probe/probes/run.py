"""``run_probes``: every probe for every (position, attribute), one tidy table and a semantic map."""
from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from probe.probes import disentanglement as dis
from probe.probes.config import ALL_PROBES, ProbeConfig
from probe.probes.data import Attribute, ProbeInput, prepare_inputs
from probe.probes.information import ami_all, contingency_grid
from probe.probes.linear import (
    RidgeDesign,
    fold_ids,
    linear_classify_cv,
    linear_regress_cv,
    onehot_classify_cv,
)
from probe.probes.semantic_map import SemanticMap, build_semantic_map
from probe.probes.significance import bh_qvalues, maxt_pvalues, permutation_pvalues
from probe.probes.stats import (
    GroupDesign,
    group_permutation_stats,
    spearman_perm,
    standardized_ranks,
)
from probe.probes.usage import code_frequencies, codebook_usage

#: Columns of the long table, in order.
TABLE_COLUMNS = ["position", "attribute", "probe", "value", "null_mean", "null_sd", "p_value", "q_value", "n"]
#: Position used for probes over all positions together.
ALL_POSITIONS = -1


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
        return heatmap_frame(self.table, probe, value)

    @property
    def summary(self) -> pd.DataFrame:
        """One row per attribute: top position, effect, q-value, the family-wise answer, the runner-up
        (:meth:`SemanticMap.summary`)."""
        return self.semantic_map.summary()

    def save(self, out_dir: str | Path, figures: bool = True, *, figures_dir: str | Path | None = None,
             store: Any = None, umap_top: int = 0, umap_points: int = 3000, title: str | None = None,
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


def heatmap_frame(table: pd.DataFrame, probe: str, value: str = "value") -> pd.DataFrame:
    """Pivot one probe of the long table to a ``position x attribute`` frame (positions >= 0)."""
    sub = table[(table["probe"] == probe) & (table["position"] >= 0)]
    if sub.empty:
        raise ValueError(f"probe {probe!r} has no per-position rows; present: {sorted(table['probe'].unique())}")
    order = list(dict.fromkeys(sub["attribute"]))
    return sub.pivot(index="position", columns="attribute", values=value)[order]


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


class _Timer:
    """Wall seconds (``t``) and process CPU seconds, all threads (``cpu``), per named section."""

    def __init__(self) -> None:
        self.t: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.t[name] = self.t.get(name, 0.0) + time.perf_counter() - t0
            self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - c0


def _rows(table: list[dict[str, Any]], attr: str, probe: str, value: np.ndarray, *, null_mean: Any = np.nan,
          null_sd: Any = np.nan, p: Any = np.nan, n: int, positions: Sequence[int] | None = None) -> None:
    value = np.atleast_1d(np.asarray(value, dtype=np.float64))
    positions = range(len(value)) if positions is None else positions
    nm = np.broadcast_to(np.asarray(null_mean, dtype=np.float64), value.shape)
    ns = np.broadcast_to(np.asarray(null_sd, dtype=np.float64), value.shape)
    pp = np.broadcast_to(np.asarray(p, dtype=np.float64), value.shape)
    for i, pos in enumerate(positions):
        table.append({"position": int(pos), "attribute": attr, "probe": probe, "value": value[i],
                      "null_mean": nm[i], "null_sd": ns[i], "p_value": pp[i], "n": int(n)})


def _dense_labels(attr: Attribute, rows: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Labels of ``rows`` renumbered 0..L'-1 over the levels present there."""
    lab = attr.labels[rows]
    present, inv = np.unique(lab, return_inverse=True)
    return inv.astype(np.int32), [attr.levels[i] for i in present]


def run_probes(
    store_or_tokens: Any,
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
    timer = _Timer()
    with timer("prepare"):
        inp = prepare_inputs(
            store_or_tokens, attributes, features=features, codebook=codebook, attributes_subset=attributes_subset,
            n_bins=cfg.n_bins, max_levels=cfg.max_categorical_levels,
        )
    with _threads(n_jobs):
        return _run(inp, cfg, timer, progress, n_jobs)


def _run(inp: ProbeInput, cfg: ProbeConfig, timer: _Timer, progress: bool, n_jobs: int = 1) -> ProbeResult:
    want = set(cfg.probes)
    m, n_pos = inp.num_images, inp.num_positions
    rng = np.random.default_rng(cfg.seed)
    with timer("prepare"):
        perms_all = np.empty((cfg.permutations + 1, m), dtype=np.int32)
        perms_all[0] = np.arange(m)
        perms_all[1:] = rng.permuted(np.broadcast_to(np.arange(m, dtype=np.int32), (cfg.permutations, m)), axis=1)
        feats = inp.features  # [M, N, C], kept in its dtype (float16 in a store) until needed
        cb_emb = None if inp.codebook is None else inp.codebook[inp.tokens]  # [M, N, C] float32
        primary = feats if feats is not None else cb_emb  # the continuous representation
        pname = "features" if feats is not None else "codebook"
        lin_rows = np.sort(rng.choice(m, size=min(m, cfg.linear_max_samples or m), replace=False))
        n_train = min(cfg.dci_num_train, (2 * m) // 3)
        n_test = min(cfg.dci_num_test, m - n_train)
        dci_order = rng.permutation(m)
        dci_rows = np.sort(dci_order[: n_train + n_test])
        dci_fold = np.isin(dci_rows, dci_order[n_train : n_train + n_test]).astype(np.int64)  # 0 train, 1 test
    blocks = {}
    if "eta2_features" in want and feats is not None:
        blocks["features"] = feats
    if "eta2_codebook" in want and cb_emb is not None:
        blocks["codebook"] = cb_emb
    if "var_logratio" in want and primary is not None and pname not in blocks:
        blocks[pname] = primary
    cache: dict[str, Any] = {}

    def cached(key: str, make: Any, use_cache: bool = True) -> Any:
        """``make()``, built once per run when ``use_cache`` (all rows valid), timed as prepare:key."""
        if use_cache and key in cache:
            return cache[key]
        with timer(f"prepare:{key}"):
            value = make()
        if use_cache:
            cache[key] = value
        return value

    rows: list[dict[str, Any]] = []
    mi_mat, mi_null, h_fac, sap_mat, imp_mat, info_tr, info_te = [], [], [], [], [], [], []
    fac_names: list[str] = []
    family_wise: dict[str, tuple[np.ndarray, float]] = {}  # attribute -> (maxT p per position, any-position p)
    attr_info: dict[str, dict[str, Any]] = {}

    for ai, attr in enumerate(tqdm(inp.attributes, desc="probing attributes", disable=not progress)):
        valid = np.flatnonzero(attr.valid)
        full = len(valid) == m
        labels, levels = _dense_labels(attr, valid)
        n_lev = len(levels)
        attr_info[attr.name] = {"kind": attr.kind, "levels": levels, "n": len(valid)}
        if n_lev < 2:
            continue
        if full:
            perms = perms_all
        else:  # permute among the rows where the attribute is known
            sub_rng = np.random.default_rng([cfg.seed, ai])
            perms = np.empty((cfg.permutations + 1, len(valid)), dtype=np.int32)
            perms[0] = np.arange(len(valid))
            perms[1:] = sub_rng.permuted(np.broadcast_to(np.arange(len(valid), dtype=np.int32), perms[1:].shape), axis=1)
        tok = inp.tokens if full else inp.tokens[valid]
        nv = len(valid)
        labp = labels[perms]

        if want & {"mi", "ami", "ami_max", "cramers_v", "disentanglement"}:
            with timer("mi_ami_cramers_v"):
                grid = contingency_grid(tok, labels, perms, inp.num_codes, n_lev)
                p_mi, mean_mi, sd_mi = permutation_pvalues(grid.mi, tail=cfg.tail)
                if "mi" in want:
                    _rows(rows, attr.name, "mi", grid.mi[:, 0], null_mean=mean_mi, null_sd=sd_mi, p=p_mi, n=nv)
                if "ami" in want:
                    _rows(rows, attr.name, "ami", grid.ami, null_mean=0.0, p=p_mi, n=nv)
                if want & {"ami", "ami_max"}:
                    # "is the attribute carried by any position?": the per-cell q-values are BH over the whole
                    # grid, which lets a chance cell through when many cells are real; each cell against the
                    # permuted maxima over positions (maxT) controls the family-wise error over positions instead
                    p_fw, p_any, amax = maxt_pvalues(ami_all(grid.mi, grid.emi, grid.token_entropy, grid.label_entropy))
                    family_wise[attr.name] = (p_fw, p_any)
                    if "ami_max" in want:
                        _, mean_any, sd_any = permutation_pvalues(amax[None], tail="none")
                        _rows(rows, attr.name, "ami_max", amax[:1], null_mean=mean_any, null_sd=sd_any, p=p_any, n=nv,
                              positions=[-1])
                if "cramers_v" in want:
                    # plain permutation p: Pearson chi^2 on sparse tables is heavy-tailed, so no gamma tail
                    p_v, mean_v, sd_v = permutation_pvalues(grid.cramers_v, tail="none")
                    _rows(rows, attr.name, "cramers_v", grid.cramers_v[:, 0], null_mean=mean_v, null_sd=sd_v, p=p_v, n=nv)
                mi_mat.append(grid.mi[:, 0])
                mi_null.append(mean_mi)
                h_fac.append(grid.label_entropy)
                fac_names.append(attr.name)

        part_levels: list[int] = []
        if "var_logratio" in want and primary is not None and attr.kind == "categorical" and n_lev <= cfg.max_partition_levels:
            part_levels = [1] if n_lev == 2 else list(range(n_lev))
        eta_blocks = tuple(k for k in ("features", "codebook") if f"eta2_{k}" in want and k in blocks)
        if eta_blocks or part_levels:
            design = cached("groups", partial(GroupDesign.build, blocks, pname if pname in blocks else None))
            if not full:
                design = design.subset(valid)
            with timer("eta2_var_logratio"):
                gs = group_permutation_stats(design, labp, n_lev, blocks=eta_blocks, partition_levels=part_levels,
                                             n_workers=_num_threads(n_jobs))
                for bname in eta_blocks:
                    p, mean, sd = permutation_pvalues(gs.eta2[bname], tail=cfg.tail)
                    _rows(rows, attr.name, f"eta2_{bname}", gs.eta2[bname][:, 0], null_mean=mean, null_sd=sd, p=p, n=nv)
                for v, lr in gs.logratio.items():
                    p, _, sd = permutation_pvalues(np.abs(lr), tail=cfg.tail)  # two-sided
                    _rows(rows, f"{attr.name}={levels[v]}", "var_logratio", lr[:, 0], null_mean=lr[:, 1:].mean(1),
                          null_sd=sd, p=p, n=nv)

        if attr.kind == "continuous" and "spearman_max" in want and primary is not None:
            ranks = cached("ranks", partial(_flat_ranks, primary))
            with timer("spearman_max"):
                rk = ranks if full else standardized_ranks(primary[valid].reshape(nv, -1))
                max_abs, _ = spearman_perm(rk, attr.values[valid], perms, n_pos)
                p, mean, sd = permutation_pvalues(max_abs, tail=cfg.tail)
                _rows(rows, attr.name, "spearman_max", max_abs[:, 0], null_mean=mean, null_sd=sd, p=p, n=nv)

        lin = lin_rows if full else np.intersect1d(lin_rows, valid)
        lin_full = len(lin) == len(lin_rows)
        lin_lab = _dense_labels(attr, lin)[0]
        n_lin_lev = int(lin_lab.max()) + 1
        folds = fold_ids(len(lin), cfg.cv_folds, cfg.seed)
        chance = 1.0 / n_lin_lev

        def lin_design(layout: str, rows_: np.ndarray = lin, folds_: np.ndarray = folds, full_: bool = lin_full) -> RidgeDesign:
            make = partial(_ridge_design, primary, rows_, layout, folds_, cfg.ridge_alpha)
            return cached(f"linear_{layout}", make, use_cache=full_)

        if primary is not None and "linear_acc_features" in want:
            d = lin_design("positions")
            with timer("linear_acc_features"):
                sc = linear_classify_cv(d, lin_lab, n_lin_lev)
                _rows(rows, attr.name, "linear_acc_features", sc.balanced_accuracy, null_mean=chance, n=len(lin))
        if primary is not None and "linear_r2" in want and attr.kind == "continuous":
            d = lin_design("positions")
            with timer("linear_r2"):
                r2 = linear_regress_cv(d, attr.values[lin])
                _rows(rows, attr.name, "linear_r2", r2, null_mean=0.0, n=len(lin))
        if primary is not None and "linear_acc_all" in want:
            d = lin_design("all")
            with timer("linear_acc_all"):
                sc = linear_classify_cv(d, lin_lab, n_lin_lev)
                _rows(rows, attr.name, "linear_acc_all", sc.balanced_accuracy, null_mean=chance, n=len(lin),
                      positions=[ALL_POSITIONS])
        if "linear_acc_ids" in want or "disentanglement" in want:
            with timer("linear_acc_ids"):
                sc = onehot_classify_cv(inp.tokens[lin], lin_lab, inp.num_codes, n_lin_lev, folds)
                if "linear_acc_ids" in want:
                    _rows(rows, attr.name, "linear_acc_ids", sc.balanced_accuracy, null_mean=chance, n=len(lin))
                sap_mat.append(sc.accuracy)

        dci_rep = cb_emb if cb_emb is not None else feats
        if "disentanglement" in want and dci_rep is not None:
            keep = np.isin(dci_rows, valid)
            r, f = dci_rows[keep], dci_fold[keep]
            lab_all = np.full(m, -1, dtype=np.int64)
            lab_all[valid] = labels
            code_of_column = np.repeat(np.arange(n_pos), dci_rep.shape[2])
            if cfg.dci_importance == "linear":
                make = partial(_ridge_design, dci_rep, r, "all", f, cfg.ridge_alpha)
                d = cached("dci", make, use_cache=bool(keep.all()))
                with timer("dci"):
                    imp, acc_tr, acc_te = dis.dci_importance_linear(
                        d, lab_all[r], n_lev, code_of_column=code_of_column, num_codes=n_pos)
            else:
                with timer("dci"):
                    tr, te = r[f == 0], r[f == 1]
                    imp, acc_tr, acc_te = dis.dci_importance_gbt(
                        np.asarray(dci_rep[tr], dtype=np.float32).reshape(len(tr), -1), lab_all[tr],
                        np.asarray(dci_rep[te], dtype=np.float32).reshape(len(te), -1), lab_all[te],
                        code_of_column=code_of_column, num_codes=n_pos, seed=cfg.seed)
            imp_mat.append(imp)
            info_tr.append(acc_tr)
            info_te.append(acc_te)

    with timer("significance"):
        table = pd.DataFrame(rows, columns=[c for c in TABLE_COLUMNS if c != "q_value"])
        table["q_value"] = np.nan
        for idx in table.groupby("probe").groups.values():
            table.loc[idx, "q_value"] = bh_qvalues(table.loc[idx, "p_value"].to_numpy())
        table = table[TABLE_COLUMNS]
    with timer("disentanglement"):
        dtable = _disentanglement_table(fac_names, mi_mat, mi_null, h_fac, sap_mat, imp_mat, info_tr, info_te, want)
    names = [a.name for a in inp.attributes if a.name in attr_info]
    smap = build_semantic_map(table, names, rank_by=cfg.rank_by, alpha=cfg.alpha, permutations=cfg.permutations,
                              family_wise=family_wise if cfg.rank_by == "ami" else None)
    config = {**cfg.to_dict(), "num_images": m, "num_positions": n_pos, "num_codes": inp.num_codes,
              "has_features": inp.features is not None, "has_codebook": inp.codebook is not None,
              "linear_rows": len(lin_rows), "dci_train": int(n_train), "dci_test": int(n_test)}
    return ProbeResult(table, smap, dtable, attr_info, config, dict(timer.t), dict(timer.cpu), dict(inp.skipped),
                       usage=codebook_usage(inp.tokens, inp.num_codes),
                       frequencies=code_frequencies(inp.tokens, inp.num_codes))


def _ridge_design(rep: np.ndarray, rows: np.ndarray, layout: str, folds: np.ndarray, alpha: float) -> RidgeDesign:
    """A :class:`RidgeDesign` of ``rep [M, N, C]`` at ``rows``: per position (``[N, m, C]``) or all
    positions together (``[1, m, N*C]``)."""
    x = np.asarray(rep[rows], dtype=np.float64)
    x = x.transpose(1, 0, 2) if layout == "positions" else x.reshape(1, len(rows), -1)
    return RidgeDesign(x, folds, alpha)


def _flat_ranks(rep: np.ndarray) -> np.ndarray:
    return standardized_ranks(rep.reshape(rep.shape[0], -1))


def _disentanglement_table(names, mi_mat, mi_null, h_fac, sap_mat, imp_mat, info_tr, info_te, want) -> pd.DataFrame:
    cols = ["metric", "scope", "position", "attribute", "value"]
    if "disentanglement" not in want or not names:
        return pd.DataFrame(columns=cols)
    out: list[tuple] = []

    def add(metric: str, scope: str, values: np.ndarray | float, labels: Sequence[Any] | None = None) -> None:
        if scope == "overall":
            out.append((metric, scope, None, None, float(values)))
            return
        for lab, v in zip(labels, np.asarray(values, dtype=np.float64)):
            out.append((metric, scope, int(lab) if scope == "position" else None, lab if scope == "attribute" else None, float(v)))

    mi = np.stack(mi_mat, 1)  # [N, A]
    h = np.asarray(h_fac)
    n_pos = mi.shape[0]
    positions = list(range(n_pos))
    for suffix, mat in (("", mi), ("_adjusted", np.maximum(mi - np.stack(mi_null, 1), 0.0))):
        add("mig" + suffix, "overall", dis.mig(mat, h))
        add("mig" + suffix, "attribute", dis.mig_per_factor(mat, h), names)
        add("modularity" + suffix, "overall", dis.modularity(mat))
        add("modularity" + suffix, "position", dis.modularity_per_code(mat), positions)
    if len(sap_mat) == len(names):
        sap = np.stack(sap_mat, 1)
        add("sap", "overall", dis.sap(sap))
        add("sap", "attribute", dis.sap_per_factor(sap), names)
    if len(imp_mat) == len(names):
        imp = np.stack(imp_mat, 1)  # [N, A]
        add("dci_disentanglement", "overall", dis.dci_disentanglement(imp))
        add("dci_disentanglement", "position", dis.dci_disentanglement_per_code(imp), positions)
        add("dci_completeness", "overall", dis.dci_completeness(imp))
        add("dci_completeness", "attribute", dis.dci_completeness_per_factor(imp), names)
        add("dci_informativeness_train", "overall", float(np.mean(info_tr)))
        add("dci_informativeness_test", "overall", float(np.mean(info_te)))
    return pd.DataFrame(out, columns=cols)
