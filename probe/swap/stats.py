"""Statistics of swap tables per (attribute, position set): transfer, controls, side effects, verdict.

Input: a swap table from :func:`probe.swap.patch` / :func:`probe.swap.sweep` with an ``attribute`` column (the
attribute the pairs were drawn for) and a ``measurer`` column (the attribute each row's measurer reads). The
rows of the attribute's own measurer carry ``moved`` and ``gap`` along the direction the labels define
(:mod:`probe.swap.visibility`; :func:`probe.swap.sweep` passes the directions to the engine), so they are
signed. Per (attribute, position set), and per side (``split``: discovery / confirmation) when the table has one:

- ``transfer``: ``sum(moved) / sum(gap)`` over pairs, with its 95% interval (``ci_low``, ``ci_high``;
  :mod:`probe.swap.intervals`, the method the calibration benchmark chose) and the family-wise one-sided bound
  ``ci_low_adj`` over the ``family_size`` mappings of the attribute in the table (:mod:`probe.swap.familywise`);
- the controls' movement toward the donor's end in transfer units (``random_position``, ``same_end``,
  ``all_except``, ``swap_back``, ``self``), the ones that took part in the verdict (``gated_by``) and those
  the transfer did not beat (``failed``);
- ``visibility``, ``visible_p``, ``kept``: the attribute's visibility test (``table.attrs["visibility"]``);
- ``iia``: interchange-intervention accuracy, the fraction of swaps whose reading lands nearer the donor's
  than the recipient's (categorical: the swapped image takes the donor's class);
- off-target: every other measured attribute's movement ``sum(|swapped - recipient|) / sum(|donor -
  recipient|)`` on the same swaps, minus the same under the random-position control (what any paste moves
  it); ``max_off_target`` is the largest such excess, ``entangled_with`` those above the threshold
  (:func:`off_target`: one row per (attribute, set, other)); ``specificity``;
- ``verdict``: the rule of :mod:`probe.swap.verdict` (:meth:`VerdictConfig.text`).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from probe.swap.confirm import judge_table
from probe.swap.verdict import VerdictConfig
from probe.swap.visibility import Visibility

__all__ = ["VerdictConfig", "off_target", "off_target_matrix", "summarize"]


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


def summarize(table: pd.DataFrame, config: VerdictConfig | None = None, *,
              visibility: Mapping[str, Visibility] | None = None) -> pd.DataFrame:
    """One row per (attribute, position set[, split]): see the module docstring for the columns.

    Args:
        table: a swap table (:func:`probe.swap.patch` / :func:`probe.swap.sweep`) with an ``attribute`` column.
        config: the verdict's thresholds and interval method.
        visibility: attribute -> its visibility test (a :class:`~probe.swap.visibility.Visibility` or its fields
            as a dict; default ``table.attrs["visibility"]``, which
            :func:`probe.swap.sweep` sets). An attribute without one is judged as testable and its
            ``visibility`` column says ``not tested``.

    Examples:
        >>> res = sweep(tok, data, measurers, [[26]], config=SwapConfig(pairs=64))  # doctest: +SKIP
        >>> summarize(res.table, VerdictConfig(confirm=0.6))[["attribute", "transfer", "ci_low_adj", "verdict"]]  # doctest: +SKIP
    """
    cfg = config or VerdictConfig()
    vis = dict(visibility if visibility is not None else table.attrs.get("visibility", {}) or {})
    own = table[table["measurer"] == table["attribute"]]
    side = off_target(table)
    side_idx = side.set_index(["attribute", "positions"]) if len(side) else None
    frames = []
    keys = ["attribute", "split"] if "split" in own.columns else ["attribute"]
    for key, grp in own.groupby(keys, sort=False):
        attr = key[0] if isinstance(key, tuple) else key
        v = vis.get(attr)
        if isinstance(v, Mapping):
            v = Visibility(**v)
        out = judge_table(grp, cfg, status=v.status if v is not None else "testable")
        if out.empty:
            continue
        tested = grp[grp["control"] == "none"].groupby("positions", sort=False)
        out.insert(0, "attribute", attr)
        out.insert(2, "set_size", out["positions"].map(tested["set_size"].first()).astype(int))
        if "split" in keys:
            out.insert(3, "split", key[1])
        out["iia"] = out["positions"].map(tested["nearer_donor"].mean()).astype(float)
        out["visibility"] = v.status if v is not None else "not tested"
        out["visible_p"] = v.p_value if v is not None else np.nan
        out["kept"] = v.kept if v is not None else np.nan
        worst, culprit, tangled = [], [], []
        for label in out["positions"]:
            others = side_idx.loc[[(attr, label)]] if side_idx is not None and (attr, label) in side_idx.index else None
            if others is not None and len(others):
                o = others.sort_values("excess", ascending=False)
                worst.append(float(o["excess"].iloc[0]))
                culprit.append(str(o["measurer"].iloc[0]))
                tangled.append(",".join(o[o["excess"] > cfg.specific]["measurer"].astype(str)))
            else:
                worst.append(np.nan), culprit.append(""), tangled.append("")
        out["max_off_target"], out["worst_off_target"], out["entangled_with"] = worst, culprit, tangled
        out["specificity"] = np.where(np.isfinite(out["max_off_target"]) & (out["max_off_target"] > cfg.specific),
                                      "entangled", "specific")
        frames.append(out)
    result = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    result.attrs["thresholds"] = cfg.to_dict()
    result.attrs["rule"] = cfg.text()
    return result


def off_target_matrix(table: pd.DataFrame, positions: str | None = None) -> pd.DataFrame:
    """Attributes (rows: the one the pairs contrast) x measured attributes (columns): movement as a
    fraction of each measured attribute's own gap beyond a random-position paste (the ``excess`` of
    :func:`off_target`), for one position set per attribute (``positions``:
    a label; default each attribute's best set by transfer). The diagonal is the transfer."""
    summ = summarize(table)
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
