"""Statistics of swap tables per (attribute, position set): transfer, controls, side effects, verdict.

Input: a swap table from :func:`probe.swap.patch` with an ``attribute`` column (the attribute the pairs
were drawn for) and a ``measurer`` column (the attribute each row's measurer reads). Per (attribute,
position set) with the attribute's own measurer:

- ``transfer``: normalized transfer, ``sum(moved) / sum(gap)`` over pairs (the mean change over the mean
  gap, robust to the odd small gap; vectors are projected on the gap), with a seeded percentile bootstrap
  95% interval over pairs (``ci_low``, ``ci_high``);
- ``iia``: interchange-intervention accuracy, the fraction of swaps whose measured value lands nearer the
  donor's than the recipient's (categorical: the swapped image takes the donor's class);
- ``d_random`` / ``d_same_end``: Cohen's d of the per-pair movement (over the tested mean gap) against the
  random-position control's (the same donor at a random other position) and the same-end control's
  distance moved (what pasting a token from the recipient's own end moves by itself; ``same_end_moves``);
- ``all_except`` / ``swap_back`` / ``ceiling``: the mean transfer of those controls (``swap_back`` is the
  distance left from the recipient after swapping back, as a fraction of the gap: 0 = reversible);
- off-target: every other measured attribute's movement ``sum(|swapped - recipient|) / sum(|donor -
  recipient|)`` on the same swaps, minus the same under the random-position control (what any paste moves
  it); ``max_off_target`` is the largest such excess, ``entangled_with`` those above the threshold
  (:func:`off_target`: one row per (attribute, set, other));
- ``verdict`` and ``specificity`` by the thresholds of :class:`VerdictConfig`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class VerdictConfig:
    """Thresholds of the verdict per mapping (stated in every output table and in ``--help``).

    Attributes:
        confirm: ``confirmed`` when the transfer's 95% interval lies at or above this.
        weak: ``weak`` when the interval lies at or above this (and not confirmed); else ``rejected``.
        min_effect: also ``rejected`` when Cohen's d against the random-position control (when run) is
            below this: a mapping must beat pasting at a random other position.
        specific: ``specific`` when no other measured attribute moves by more than this fraction of its own
            gap beyond what a random-position paste moves it; else ``entangled`` (the culprits are named in
            ``entangled_with``).
        n_boot: bootstrap resamples; ``ci``: interval level; ``seed``: bootstrap seed.
    """

    confirm: float = 0.5
    weak: float = 0.15
    min_effect: float = 0.5
    specific: float = 0.25
    n_boot: int = 1000
    ci: float = 0.95
    seed: int = 0

    def describe(self) -> str:
        return (f"confirmed: transfer {self.ci:.0%} CI low >= {self.confirm}; weak: CI low >= {self.weak}; "
                f"rejected otherwise or when Cohen's d vs the random-position control < {self.min_effect}; "
                f"specific: every other attribute moves <= {self.specific} of its own gap beyond a random-position "
                f"paste, else entangled")


def ratio_ci(moved: np.ndarray, gap: np.ndarray, *, n_boot: int = 1000, ci: float = 0.95,
             seed: int = 0) -> tuple[float, float, float]:
    """``sum(moved) / sum(gap)`` and its percentile bootstrap interval over rows.

    Written out with numpy (one vectorised resampling matrix) rather than scipy.stats.bootstrap, which
    re-evaluates a Python statistic per resample and is far slower for thousands of small groups.
    """
    moved, gap = np.asarray(moved, float), np.asarray(gap, float)
    ok = np.isfinite(moved) & np.isfinite(gap)
    moved, gap = moved[ok], gap[ok]
    n = len(moved)
    if n == 0 or gap.sum() <= 0:
        return np.nan, np.nan, np.nan
    point = moved.sum() / gap.sum()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    g = gap[idx].sum(1)
    boot = moved[idx].sum(1) / np.where(g > 0, g, np.nan)
    a = (1 - ci) / 2
    lo, hi = np.nanquantile(boot, [a, 1 - a])
    return float(point), float(lo), float(hi)


def cohens_d(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's d of ``a`` over ``b`` (pooled standard deviation); NaN when either is empty."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2:
        return np.nan
    sd = np.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))
    diff = a.mean() - b.mean()
    if sd < 1e-12:
        return float(np.sign(diff) * np.inf) if abs(diff) > 1e-12 else 0.0
    return float(diff / sd)


def _per_pair(df: pd.DataFrame, col: str) -> pd.Series:
    return df.set_index("pair")[col]


def off_target(table: pd.DataFrame) -> pd.DataFrame:
    """Side effects: per (attribute, positions, other measured attribute) ``sum(moved_abs) / sum(gap)`` of
    the tested swaps (``off_target``), the same of the random-position control (``off_target_random``: what
    any paste moves it, e.g. decoding noise) and their difference ``excess`` (the random part taken as 0 when
    that control was not run). Columns ``attribute, positions, measurer, off_target, off_target_random,
    excess``."""
    cols = ["attribute", "positions", "measurer", "off_target", "off_target_random", "excess"]
    other = table[table["measurer"] != table["attribute"]]
    if other.empty or not (other["control"] == "none").any():
        return pd.DataFrame(columns=cols)
    keys = ["attribute", "positions", "measurer"]

    def ratio(control: str) -> pd.Series:
        g = other[other["control"] == control].groupby(keys, sort=False)[["moved_abs", "gap"]].sum()
        return g["moved_abs"] / g["gap"].where(g["gap"] > 0)

    out = ratio("none").rename("off_target").to_frame()
    out["off_target_random"] = ratio("random_position").reindex(out.index)
    out["excess"] = out["off_target"] - out["off_target_random"].fillna(0.0)
    return out.reset_index()[cols]


def summarize(table: pd.DataFrame, config: VerdictConfig | None = None) -> pd.DataFrame:
    """One row per (attribute, position set): see the module docstring for the columns.

    ``table``: a swap table (:func:`probe.swap.patch` / :func:`probe.swap.sweep`) with an ``attribute`` column.

    Examples:
        >>> res = sweep(tok, data, measurers, [[26]], config=SwapConfig(pairs=64))  # doctest: +SKIP
        >>> summarize(res.table, VerdictConfig(confirm=0.6))[["attribute", "transfer", "ci_low", "verdict"]]  # doctest: +SKIP
    """
    cfg = config or VerdictConfig()
    own = table[table["measurer"] == table["attribute"]]
    side = off_target(table)
    side_idx = side.set_index(["attribute", "positions"]) if len(side) else None
    rows = []
    for (attr, label), grp in own.groupby(["attribute", "positions"], sort=False):
        by = {c: g for c, g in grp.groupby("control", sort=False)}
        test = by.get("none")
        if test is None:
            continue
        point, lo, hi = ratio_ci(test["moved"].to_numpy(), test["gap"].to_numpy(), n_boot=cfg.n_boot,
                                 ci=cfg.ci, seed=cfg.seed)
        # per-pair scores over the tested mean gap: their mean is the transfer, and a pair with a tiny gap
        # of its own (heavy-tailed measures such as sharpness) cannot blow up the spread
        scale = max(float(test["gap"].mean()), 1e-12)
        score = _per_pair(test, "moved") / scale
        row = {"attribute": attr, "positions": label, "set_size": int(test["set_size"].iloc[0]),
               "n_pairs": int(len(test)), "transfer": point, "ci_low": lo, "ci_high": hi,
               "iia": float(test["nearer_donor"].mean())}
        if "random_position" in by:
            r = by["random_position"]
            row["random_transfer"] = float(r["moved"].sum() / max(r["gap"].sum(), 1e-12))
            row["d_random"] = cohens_d(score.to_numpy(), (_per_pair(r, "moved") / scale).to_numpy())
        if "same_end" in by:
            s_ = by["same_end"]
            moved_s = _per_pair(s_, "moved_abs")
            row["same_end_moves"] = float(moved_s.mean() / scale)
            row["d_same_end"] = cohens_d(score.to_numpy(), (moved_s / scale).to_numpy())
        for c, name in (("all_except", "all_except"), ("donor_recon", "ceiling")):
            if c in by:
                row[name] = float(by[c]["moved"].sum() / max(by[c]["gap"].sum(), 1e-12))
        if "swap_back" in by:
            b = by["swap_back"]
            row["swap_back"] = float(b["moved_abs"].sum() / max(b["gap"].sum(), 1e-12))
        if "self" in by:
            row["self_moves"] = float(by["self"]["moved_abs"].max())
        # side effects
        others = side_idx.loc[[(attr, label)]] if side_idx is not None and (attr, label) in side_idx.index else None
        if others is not None and len(others):
            worst = others.sort_values("excess", ascending=False)
            row["max_off_target"] = float(worst["excess"].iloc[0])
            row["worst_off_target"] = str(worst["measurer"].iloc[0])
            bad = worst[worst["excess"] > cfg.specific]
            row["entangled_with"] = ",".join(bad["measurer"].astype(str))
        else:
            row["max_off_target"], row["worst_off_target"], row["entangled_with"] = np.nan, "", ""
        row.update(verdict_of(row, cfg))
        rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs["thresholds"] = asdict(cfg)
    return out


def verdict_of(row: dict, cfg: VerdictConfig) -> dict[str, str]:
    """``verdict`` (confirmed / weak / rejected) and ``specificity`` (specific / entangled) of a summary row."""
    lo = row.get("ci_low", np.nan)
    d = row.get("d_random", np.nan)
    if not np.isfinite(lo):
        verdict = "rejected"
    elif lo >= cfg.confirm:
        verdict = "confirmed"
    elif lo >= cfg.weak:
        verdict = "weak"
    else:
        verdict = "rejected"
    if verdict != "rejected" and np.isfinite(d) and d < cfg.min_effect:
        verdict = "rejected"
    mo = row.get("max_off_target", np.nan)
    spec = "entangled" if np.isfinite(mo) and mo > cfg.specific else "specific"
    return {"verdict": verdict, "specificity": spec}


def off_target_matrix(table: pd.DataFrame, positions: str | None = None) -> pd.DataFrame:
    """Attributes (rows: the one the pairs contrast) x measured attributes (columns): movement as a
    fraction of each measured attribute's own gap beyond a random-position paste (the ``excess`` of
    :func:`off_target`), for one position set per attribute (``positions``:
    a label; default each attribute's best set by transfer). The diagonal is the transfer."""
    summ = summarize(table, VerdictConfig(n_boot=1))
    if positions is None:
        best = summ.sort_values("transfer", ascending=False).drop_duplicates("attribute")
        pick = dict(zip(best["attribute"], best["positions"]))
    else:
        pick = {a: positions for a in summ["attribute"].unique()}
    side = off_target(table)
    mat = {}
    for attr, label in pick.items():
        s = side[(side["attribute"] == attr) & (side["positions"] == label)]
        row = dict(zip(s["measurer"], s["excess"]))
        row[attr] = float(summ[(summ["attribute"] == attr) & (summ["positions"] == label)]["transfer"].iloc[0])
        mat[f"{attr} @ {label}"] = row
    return pd.DataFrame(mat).T
