"""The probes as registered units, one signature each: ``unit(run, attribute, out) -> None``.

A unit reads what the run prepared once (:class:`ProbeRun`: permutations, representations, subsamples)
and one attribute (:class:`AttributeView`), and writes rows of the long table, and what the disentanglement
metrics read, into a :class:`Collector`. :data:`UNITS` lists the units in the order their rows appear in
the table; :func:`probe.probes.run_probes` runs, for every attribute, each unit that serves a probe asked for.

To add a probe: name it in :data:`probe.probes.config.ALL_PROBES`, write a function with the signature above
(its statistics in their own module, as :mod:`probe.probes.information` holds the MI), and list it in
:data:`UNITS` with the probe names it serves.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import Any

import numpy as np
import pandas as pd

from probe.probes import disentanglement as dis
from probe.probes.config import ProbeConfig
from probe.probes.data import Attribute, ProbeInput
from probe.probes.information import ami_all, contingency_grid
from probe.probes.linear import RidgeDesign, fold_ids, linear_classify_cv, linear_regress_cv, onehot_classify_cv
from probe.probes.significance import bh_qvalues, maxt_pvalues, permutation_pvalues
from probe.probes.stats import GroupDesign, group_permutation_stats, spearman_perm, standardized_ranks

#: Columns of the long table, in order.
TABLE_COLUMNS = ["position", "attribute", "probe", "value", "null_mean", "null_sd", "p_value", "q_value", "n"]
#: Position used for probes over all positions together.
ALL_POSITIONS = -1


class Timer:
    """Wall seconds (``t``) and process CPU seconds, all threads (``cpu``), per named section. A section
    nested in another counts for itself only (a cached build inside a unit is not the unit's time)."""

    def __init__(self) -> None:
        self.t: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._inner: list[list[float]] = []  # per open section: [wall, cpu] spent in its nested sections

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0, c0 = time.perf_counter(), time.process_time()
        self._inner.append([0.0, 0.0])
        try:
            yield
        finally:
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            inner_t, inner_c = self._inner.pop()
            self.t[name] = self.t.get(name, 0.0) + dt - inner_t
            self.cpu[name] = self.cpu.get(name, 0.0) + dc - inner_c
            if self._inner:
                self._inner[-1][0] += dt
                self._inner[-1][1] += dc


@dataclass
class ProbeRun:
    """What every attribute's probes share, prepared once per run (:meth:`prepare`).

    Attributes:
        perms: ``[P + 1, M]`` int32 row permutations, row 0 the identity (the same for every position).
        features: ``[M, N, C]`` pre-quantization features in their stored dtype, or None.
        codebook_emb: ``[M, N, C]`` float32 codebook embedding of each token, or None.
        primary / primary_name: the continuous representation the probes read (features, else the codebook
            embeddings) and its name; None without either.
        blocks: name -> ``[M, N, C]``, the representations of the group statistics.
        lin_rows: ``[m]`` sorted rows of the linear probes' seeded subsample.
        dci_rows / dci_fold: ``[n_train + n_test]`` sorted rows of DCI and their fold (0 train, 1 test).
        n_workers: threads of the group-sum products.
    """

    inp: ProbeInput
    cfg: ProbeConfig
    timer: Timer
    perms: np.ndarray
    features: np.ndarray | None
    codebook_emb: np.ndarray | None
    primary: np.ndarray | None
    primary_name: str
    blocks: dict[str, np.ndarray]
    lin_rows: np.ndarray
    dci_rows: np.ndarray
    dci_fold: np.ndarray
    n_train: int
    n_test: int
    n_workers: int = 1
    _cache: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def prepare(cls, inp: ProbeInput, cfg: ProbeConfig, timer: Timer, n_workers: int = 1) -> ProbeRun:
        """Draw the permutations and subsamples (in this order, from ``cfg.seed``) and gather the representations."""
        m, want = inp.num_images, set(cfg.probes)
        rng = np.random.default_rng(cfg.seed)
        perms = _permutations(rng, cfg.permutations, m)
        feats = inp.features  # kept in its dtype (float16 in a store) until needed
        cb_emb = None if inp.codebook is None else inp.codebook[inp.tokens]
        primary = feats if feats is not None else cb_emb
        pname = "features" if feats is not None else "codebook"
        lin_rows = np.sort(rng.choice(m, size=min(m, cfg.linear_max_samples or m), replace=False))
        n_train = min(cfg.dci_num_train, (2 * m) // 3)
        n_test = min(cfg.dci_num_test, m - n_train)
        dci_order = rng.permutation(m)
        dci_rows = np.sort(dci_order[: n_train + n_test])
        dci_fold = np.isin(dci_rows, dci_order[n_train : n_train + n_test]).astype(np.int64)
        blocks = {}
        if "eta2_features" in want and feats is not None:
            blocks["features"] = feats
        if "eta2_codebook" in want and cb_emb is not None:
            blocks["codebook"] = cb_emb
        if "var_logratio" in want and primary is not None and pname not in blocks:
            blocks[pname] = primary
        return cls(inp, cfg, timer, perms, feats, cb_emb, primary, pname, blocks, lin_rows, dci_rows, dci_fold,
                   int(n_train), int(n_test), n_workers)

    @cached_property
    def want(self) -> frozenset[str]:
        return frozenset(self.cfg.probes)

    @property
    def num_positions(self) -> int:
        return self.inp.num_positions

    def cached(self, key: str, make: Callable[[], Any], use_cache: bool = True) -> Any:
        """``make()``, built once per run when ``use_cache`` (it holds for every row), timed as ``prepare:key``."""
        if use_cache and key in self._cache:
            return self._cache[key]
        with self.timer(f"prepare:{key}"):
            value = make()
        if use_cache:
            self._cache[key] = value
        return value


def _permutations(rng: np.random.Generator, permutations: int, m: int) -> np.ndarray:
    """``[permutations + 1, m]`` int32: the identity, then ``permutations`` shuffles of ``0..m-1``."""
    perms = np.empty((permutations + 1, m), dtype=np.int32)
    perms[0] = np.arange(m)
    perms[1:] = rng.permuted(np.broadcast_to(np.arange(m, dtype=np.int32), (permutations, m)), axis=1)
    return perms


def dense_labels(attr: Attribute, rows: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Labels of ``rows`` renumbered 0..L'-1 over the levels present there, and those levels' names."""
    lab = attr.labels[rows]
    present, inv = np.unique(lab, return_inverse=True)
    return inv.astype(np.int32), [attr.levels[i] for i in present]


class AttributeView:
    """One attribute as the units read it: the rows where it is known (``valid``, ``n`` of them), its labels
    there renumbered over the levels present, and the permutations, tokens and linear-probe rows restricted
    to those rows (the run's own when the attribute is known everywhere, ``full``). Built lazily."""

    def __init__(self, run: ProbeRun, index: int, attr: Attribute) -> None:
        self.run, self.index, self.attr = run, index, attr
        self.name, self.kind = attr.name, attr.kind
        self.valid = np.flatnonzero(attr.valid)  # [n]
        self.n = len(self.valid)
        self.full = self.n == run.inp.num_images
        self.labels, self.levels = dense_labels(attr, self.valid)  # [n], L names
        self.n_levels = len(self.levels)

    @cached_property
    def perms(self) -> np.ndarray:
        """``[P + 1, n]``: the run's permutations, or (some rows unknown) permutations among the known rows,
        seeded by ``(seed, attribute index)``."""
        if self.full:
            return self.run.perms
        return _permutations(np.random.default_rng([self.run.cfg.seed, self.index]), self.run.cfg.permutations, self.n)

    @cached_property
    def tokens(self) -> np.ndarray:
        """``[n, N]`` token ids of the known rows."""
        return self.run.inp.tokens if self.full else self.run.inp.tokens[self.valid]

    @cached_property
    def permuted_labels(self) -> np.ndarray:
        """``[P + 1, n]`` the labels under every permutation."""
        return self.labels[self.perms]

    # --- the linear probes' subsample
    @cached_property
    def lin(self) -> np.ndarray:
        """``[m']`` rows of the run's linear subsample where the attribute is known."""
        return self.run.lin_rows if self.full else np.intersect1d(self.run.lin_rows, self.valid)

    @cached_property
    def lin_labels(self) -> np.ndarray:
        """``[m']`` labels of :attr:`lin`, renumbered over the levels present there."""
        return dense_labels(self.attr, self.lin)[0]

    @property
    def n_lin_levels(self) -> int:
        return int(self.lin_labels.max()) + 1

    @property
    def chance(self) -> float:
        """Balanced accuracy of a guess: the null of the linear classifiers."""
        return 1.0 / self.n_lin_levels

    @cached_property
    def folds(self) -> np.ndarray:
        """``[m']`` cross-validation fold of each row of :attr:`lin`."""
        return fold_ids(len(self.lin), self.run.cfg.cv_folds, self.run.cfg.seed)

    def linear_design(self, layout: str) -> RidgeDesign:
        """The ridge design of the run's representation on :attr:`lin` (``"positions"`` or ``"all"``), shared
        by every attribute known on the whole subsample."""
        run = self.run
        make = partial(_ridge_design, run.primary, self.lin, layout, self.folds, run.cfg.ridge_alpha)
        return run.cached(f"linear_{layout}", make, use_cache=len(self.lin) == len(run.lin_rows))


def _ridge_design(rep: np.ndarray, rows: np.ndarray, layout: str, folds: np.ndarray, alpha: float) -> RidgeDesign:
    """A :class:`RidgeDesign` of ``rep [M, N, C]`` at ``rows``: per position (``[N, m, C]``) or all
    positions together (``[1, m, N*C]``)."""
    x = np.asarray(rep[rows], dtype=np.float64)
    x = x.transpose(1, 0, 2) if layout == "positions" else x.reshape(1, len(rows), -1)
    return RidgeDesign(x, folds, alpha)


class Collector:
    """What the units write: rows of the long table, each factor's scores for the disentanglement metrics,
    and per attribute the family-wise (maxT) p-values over positions."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.factors: dict[str, dis.FactorScores] = {}
        self.family_wise: dict[str, tuple[np.ndarray, float]] = {}  # attribute -> (p per position, any-position p)

    def add(self, attribute: str, probe: str, value: np.ndarray, *, null_mean: Any = np.nan, null_sd: Any = np.nan,
            p: Any = np.nan, n: int, positions: Sequence[int] | None = None) -> None:
        """Rows for ``value [N]`` (one per position, or per ``positions``); ``null_mean``, ``null_sd``, ``p``
        are scalars or ``[N]``."""
        value = np.atleast_1d(np.asarray(value, dtype=np.float64))
        positions = range(len(value)) if positions is None else positions
        nm = np.broadcast_to(np.asarray(null_mean, dtype=np.float64), value.shape)
        ns = np.broadcast_to(np.asarray(null_sd, dtype=np.float64), value.shape)
        pp = np.broadcast_to(np.asarray(p, dtype=np.float64), value.shape)
        for i, pos in enumerate(positions):
            self.rows.append({"position": int(pos), "attribute": attribute, "probe": probe, "value": value[i],
                              "null_mean": nm[i], "null_sd": ns[i], "p_value": pp[i], "n": int(n)})

    def factor(self, name: str) -> dis.FactorScores:
        return self.factors.setdefault(name, dis.FactorScores())

    def table(self) -> pd.DataFrame:
        """The long table, columns :data:`TABLE_COLUMNS`; q-values Benjamini-Hochberg per probe."""
        table = pd.DataFrame(self.rows, columns=[c for c in TABLE_COLUMNS if c != "q_value"])
        table["q_value"] = np.nan
        for idx in table.groupby("probe").groups.values():
            table.loc[idx, "q_value"] = bh_qvalues(table.loc[idx, "p_value"].to_numpy())
        return table[TABLE_COLUMNS]


# ----------------------------------------------------------------------------------------------- the units
UnitFn = Callable[[ProbeRun, AttributeView, Collector], None]
"""A unit's one signature: read the run and one attribute, write into the collector."""


def information(run: ProbeRun, a: AttributeView, out: Collector) -> None:
    """``mi``, ``ami``, ``ami_max``, ``cramers_v`` of the token id x attribute tables; the MI for the metrics."""
    want, tail = run.want, run.cfg.tail
    grid = contingency_grid(a.tokens, a.labels, a.perms, run.inp.num_codes, a.n_levels)
    p_mi, mean_mi, sd_mi = permutation_pvalues(grid.mi, tail=tail)
    if "mi" in want:
        out.add(a.name, "mi", grid.mi[:, 0], null_mean=mean_mi, null_sd=sd_mi, p=p_mi, n=a.n)
    if "ami" in want:
        out.add(a.name, "ami", grid.ami, null_mean=0.0, p=p_mi, n=a.n)
    if want & {"ami", "ami_max"}:
        # "is the attribute carried by any position?": the per-cell q-values are BH over the whole grid, which
        # lets a chance cell through when many cells are real; each cell against the permuted maxima over
        # positions (maxT) controls the family-wise error over positions instead
        p_fw, p_any, amax = maxt_pvalues(ami_all(grid.mi, grid.emi, grid.token_entropy, grid.label_entropy))
        out.family_wise[a.name] = (p_fw, p_any)
        if "ami_max" in want:
            _, mean_any, sd_any = permutation_pvalues(amax[None], tail="none")
            out.add(a.name, "ami_max", amax[:1], null_mean=mean_any, null_sd=sd_any, p=p_any, n=a.n,
                    positions=[ALL_POSITIONS])
    if "cramers_v" in want:
        # plain permutation p: Pearson chi^2 on sparse tables is heavy-tailed, so no gamma tail
        p_v, mean_v, sd_v = permutation_pvalues(grid.cramers_v, tail="none")
        out.add(a.name, "cramers_v", grid.cramers_v[:, 0], null_mean=mean_v, null_sd=sd_v, p=p_v, n=a.n)
    f = out.factor(a.name)
    f.mi, f.mi_null, f.entropy = grid.mi[:, 0], mean_mi, grid.label_entropy


def group_statistics(run: ProbeRun, a: AttributeView, out: Collector) -> None:
    """``eta2_features``, ``eta2_codebook`` and the one-level-vs-rest ``var_logratio`` (categorical attributes
    with at most ``max_partition_levels`` levels; a binary one gets one partition)."""
    want, cfg = run.want, run.cfg
    part_levels: list[int] = []
    if ("var_logratio" in want and run.primary is not None and a.kind == "categorical"
            and a.n_levels <= cfg.max_partition_levels):
        part_levels = [1] if a.n_levels == 2 else list(range(a.n_levels))
    eta_blocks = tuple(k for k in ("features", "codebook") if f"eta2_{k}" in want and k in run.blocks)
    if not (eta_blocks or part_levels):
        return
    partition = run.primary_name if run.primary_name in run.blocks else None
    design = run.cached("groups", partial(GroupDesign.build, run.blocks, partition))
    if not a.full:
        design = design.subset(a.valid)
    gs = group_permutation_stats(design, a.permuted_labels, a.n_levels, blocks=eta_blocks,
                                 partition_levels=part_levels, n_workers=run.n_workers)
    for bname in eta_blocks:
        p, mean, sd = permutation_pvalues(gs.eta2[bname], tail=cfg.tail)
        out.add(a.name, f"eta2_{bname}", gs.eta2[bname][:, 0], null_mean=mean, null_sd=sd, p=p, n=a.n)
    for v, lr in gs.logratio.items():
        p, _, sd = permutation_pvalues(np.abs(lr), tail=cfg.tail)  # two-sided
        out.add(f"{a.name}={a.levels[v]}", "var_logratio", lr[:, 0], null_mean=lr[:, 1:].mean(1), null_sd=sd, p=p,
                n=a.n)


def spearman(run: ProbeRun, a: AttributeView, out: Collector) -> None:
    """``spearman_max`` (continuous attributes): the strongest |Spearman rho| over feature coordinates."""
    if a.kind != "continuous" or run.primary is None:
        return
    if a.full:
        ranks = run.cached("ranks", partial(_flat_ranks, run.primary))
    else:
        ranks = standardized_ranks(run.primary[a.valid].reshape(a.n, -1))
    max_abs, _ = spearman_perm(ranks, a.attr.values[a.valid], a.perms, run.num_positions)
    p, mean, sd = permutation_pvalues(max_abs, tail=run.cfg.tail)
    out.add(a.name, "spearman_max", max_abs[:, 0], null_mean=mean, null_sd=sd, p=p, n=a.n)


def _flat_ranks(rep: np.ndarray) -> np.ndarray:
    """``rep [M, N, C]`` -> standardized ranks of every coordinate, ``[M, N*C]``."""
    return standardized_ranks(rep.reshape(rep.shape[0], -1))


def linear_features(run: ProbeRun, a: AttributeView, out: Collector) -> None:
    """``linear_acc_features``: CV balanced accuracy of a linear classifier on each position's features."""
    if run.primary is None:
        return
    sc = linear_classify_cv(a.linear_design("positions"), a.lin_labels, a.n_lin_levels)
    out.add(a.name, "linear_acc_features", sc.balanced_accuracy, null_mean=a.chance, n=len(a.lin))


def linear_r2(run: ProbeRun, a: AttributeView, out: Collector) -> None:
    """``linear_r2`` (continuous attributes): CV ridge R^2 from each position's features."""
    if run.primary is None or a.kind != "continuous":
        return
    r2 = linear_regress_cv(a.linear_design("positions"), a.attr.values[a.lin])
    out.add(a.name, "linear_r2", r2, null_mean=0.0, n=len(a.lin))


def linear_all(run: ProbeRun, a: AttributeView, out: Collector) -> None:
    """``linear_acc_all``: CV balanced accuracy of a linear classifier on all positions' features together."""
    if run.primary is None:
        return
    sc = linear_classify_cv(a.linear_design("all"), a.lin_labels, a.n_lin_levels)
    out.add(a.name, "linear_acc_all", sc.balanced_accuracy, null_mean=a.chance, n=len(a.lin),
            positions=[ALL_POSITIONS])


def linear_ids(run: ProbeRun, a: AttributeView, out: Collector) -> None:
    """``linear_acc_ids``: CV balanced accuracy of the class-balanced ridge on each position's one-hot id; its
    plain accuracy is SAP's per-code score."""
    sc = onehot_classify_cv(run.inp.tokens[a.lin], a.lin_labels, run.inp.num_codes, a.n_lin_levels, a.folds)
    if "linear_acc_ids" in run.want:
        out.add(a.name, "linear_acc_ids", sc.balanced_accuracy, null_mean=a.chance, n=len(a.lin))
    out.factor(a.name).accuracy = sc.accuracy


def dci(run: ProbeRun, a: AttributeView, out: Collector) -> None:
    """DCI's importance of each position for the attribute, and its train / test accuracy, on the codebook
    embeddings (features without a codebook)."""
    rep = run.codebook_emb if run.codebook_emb is not None else run.features
    if rep is None:
        return
    keep = np.isin(run.dci_rows, a.valid)
    rows, fold = run.dci_rows[keep], run.dci_fold[keep]
    labels = np.full(run.inp.num_images, -1, dtype=np.int64)
    labels[a.valid] = a.labels
    code_of_column = np.repeat(np.arange(run.num_positions), rep.shape[2])
    if run.cfg.dci_importance == "linear":
        make = partial(_ridge_design, rep, rows, "all", fold, run.cfg.ridge_alpha)
        design = run.cached("dci", make, use_cache=bool(keep.all()))
        imp, acc_tr, acc_te = dis.dci_importance_linear(design, labels[rows], a.n_levels,
                                                        code_of_column=code_of_column, num_codes=run.num_positions)
    else:
        tr, te = rows[fold == 0], rows[fold == 1]
        imp, acc_tr, acc_te = dis.dci_importance_gbt(
            np.asarray(rep[tr], dtype=np.float32).reshape(len(tr), -1), labels[tr],
            np.asarray(rep[te], dtype=np.float32).reshape(len(te), -1), labels[te],
            code_of_column=code_of_column, num_codes=run.num_positions, seed=run.cfg.seed)
    f = out.factor(a.name)
    f.importance, f.info_train, f.info_test = imp, acc_tr, acc_te


@dataclass(frozen=True)
class Unit:
    """A registered probe: ``name`` (its timing key), the probe names it ``serves`` (it runs when one of them
    is asked for), and the function."""

    name: str
    serves: frozenset[str]
    run: UnitFn


def _unit(name: str, serves: Sequence[str], fn: UnitFn) -> Unit:
    return Unit(name, frozenset(serves), fn)


#: Every probe unit, in the order of its rows in the table.
UNITS: tuple[Unit, ...] = (
    _unit("mi_ami_cramers_v", ("mi", "ami", "ami_max", "cramers_v", "disentanglement"), information),
    _unit("eta2_var_logratio", ("eta2_features", "eta2_codebook", "var_logratio"), group_statistics),
    _unit("spearman_max", ("spearman_max",), spearman),
    _unit("linear_acc_features", ("linear_acc_features",), linear_features),
    _unit("linear_r2", ("linear_r2",), linear_r2),
    _unit("linear_acc_all", ("linear_acc_all",), linear_all),
    _unit("linear_acc_ids", ("linear_acc_ids", "disentanglement"), linear_ids),
    _unit("dci", ("disentanglement",), dci),
)
