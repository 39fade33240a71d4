"""The semantic map: per attribute its positions ranked by effect, tested family-wise over positions.

One row per attribute x position (:meth:`SemanticMap.to_frame`), one row per attribute
(:meth:`SemanticMap.summary`), the swap engine's candidate positions (:meth:`SemanticMap.candidates`),
a JSON round trip (``semantic_map.json``).

Significance is the family-wise answer over positions: a cell is significant when its adjusted MI beats
the ``1 - alpha`` quantile of the permuted *maxima over positions* (single-step maxT, Westfall & Young
1993), so an attribute has a significant cell exactly when its ``ami_max`` any-position test says it is
carried, and an attribute that is not carried has none. The per-cell Benjamini-Hochberg q-values are
kept for reference; those below ``1 / (permutations + 1)`` (the smallest a permutation test can show)
are reported as that bound (``q_at_bound``; ``"< 1/(P+1)"`` in the JSON) rather than as the gamma
tail's extrapolation.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: Probes the map may rank by, best first when the requested one was not run.
RANKABLE = ("ami", "mi", "eta2_features", "eta2_codebook", "cramers_v", "linear_acc_features")
#: Columns of :meth:`SemanticMap.to_frame` before the per-probe value columns.
MAP_COLUMNS = ["attribute", "position", "rank", "effect", "q_value", "q_at_bound", "fw_p_value", "significant",
               "any_position_p", "carried"]
#: Columns of :meth:`SemanticMap.summary`.
SUMMARY_COLUMNS = ["attribute", "rank_by", "top_position", "effect", "q_value", "q_at_bound", "significant",
                   "any_position_p", "second_position", "second_effect"]


def _num(x: Any) -> float | None:
    x = float(x)
    return None if not np.isfinite(x) else x


@dataclass
class SemanticMap:
    """Attributes:
    frame: one row per attribute x position, columns :data:`MAP_COLUMNS` plus one column per
        per-position probe (its value): ``rank`` 1 = largest ``effect`` (the ``rank_by`` probe's
        value) of the attribute; ``q_value`` the cell's Benjamini-Hochberg q (clipped to the bound,
        ``q_at_bound``); ``fw_p_value`` the cell's family-wise p (maxT over positions; NaN without
        the permuted maxima, when ``significant`` falls back to ``q_value < alpha``);
        ``any_position_p`` / ``carried`` the attribute's family-wise answer (repeated per row).
    rank_by: the probe whose value is the effect size.
    alpha: threshold of ``fw_p_value`` (or of ``q_value`` in the fallback).
    permutations: permutations behind the p-values (sets the bound ``1 / (permutations + 1)``).
    attributes: every attribute probed, in order (also those with no rows).
    """

    frame: pd.DataFrame
    rank_by: str
    alpha: float
    permutations: int | None = None
    attributes: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ queries
    @property
    def q_bound(self) -> float | None:
        """``1 / (permutations + 1)``, the smallest p or q a permutation test can show."""
        return 1.0 / (self.permutations + 1) if self.permutations else None

    def _rows(self, attribute: str) -> pd.DataFrame:
        if attribute not in self.attributes:
            raise KeyError(f"attribute {attribute!r} is not in the semantic map; present: {self.attributes}")
        return self.frame[self.frame["attribute"] == attribute].sort_values("rank", kind="stable")

    def candidates(self, attribute: str, k: int = 3, *, significant_only: bool = True) -> list[int]:
        """The ``k`` best positions of ``attribute``, best first, for the swap engine to test. With
        ``significant_only`` (default) only significant cells, so an attribute that is not carried
        gets ``[]``."""
        rows = self._rows(attribute)
        if significant_only:
            rows = rows[rows["significant"]]
        return [int(p) for p in rows["position"].iloc[:k]]

    def top_positions(self, attribute: str, k: int = 3) -> list[int]:
        """The ``k`` best-ranked positions of ``attribute`` whether significant or not."""
        return self.candidates(attribute, k, significant_only=False)

    def carried(self, attribute: str) -> bool:
        """The family-wise answer: does some position carry ``attribute``?"""
        rows = self._rows(attribute)
        return bool(rows["significant"].any())

    def dominant(self, position: int) -> str | None:
        """The attribute with the largest effect among the significant cells at ``position``."""
        sig = self.frame[(self.frame["position"] == position) & self.frame["significant"]]
        return None if sig.empty else str(sig.loc[sig["effect"].idxmax(), "attribute"])

    @property
    def by_attribute(self) -> dict[str, list[dict[str, Any]]]:
        """attribute -> its positions best first: ``{"position", "rank", "effect", "q_value",
        "q_at_bound", "fw_p_value", "significant"}`` (numbers; NaN as None)."""
        keys = ("position", "rank", "effect", "q_value", "q_at_bound", "fw_p_value", "significant")
        return {a: [_record(r, keys) for r in self._rows(a).to_dict("records")] for a in self.attributes}

    @property
    def by_position(self) -> dict[int, dict[str, Any]]:
        """position -> ``{"dominant", "effect", "q_value"}`` (None when no cell there is significant)."""
        out: dict[int, dict[str, Any]] = {}
        for pos in sorted(self.frame["position"].unique()):
            dom = self.dominant(int(pos))
            if dom is None:
                out[int(pos)] = {"dominant": None, "effect": None, "q_value": None}
            else:
                r = self.frame[(self.frame["position"] == pos) & (self.frame["attribute"] == dom)].iloc[0]
                out[int(pos)] = {"dominant": dom, "effect": _num(r["effect"]), "q_value": _num(r["q_value"])}
        return out

    def to_frame(self) -> pd.DataFrame:
        """One row per attribute x position (a copy), attributes in order, positions best first."""
        return self.frame.copy()

    def summary(self) -> pd.DataFrame:
        """One row per attribute (:data:`SUMMARY_COLUMNS`): its top position, effect and q-value, the
        family-wise answer (``significant`` = carried, ``any_position_p``) and the runner-up."""
        rows = []
        for attr in self.attributes:
            ranked = self._rows(attr)
            row: dict[str, Any] = {"attribute": attr, "rank_by": self.rank_by}
            if len(ranked):
                top = ranked.iloc[0]
                row.update(top_position=int(top["position"]), effect=top["effect"], q_value=top["q_value"],
                           q_at_bound=bool(top["q_at_bound"]), significant=bool(ranked["significant"].any()),
                           any_position_p=top["any_position_p"])
                if len(ranked) > 1:
                    row.update(second_position=int(ranked.iloc[1]["position"]), second_effect=ranked.iloc[1]["effect"])
            rows.append(row)
        out = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
        for col in ("top_position", "second_position"):
            out[col] = out[col].astype("Int64")
        return out

    def summary_text(self) -> str:
        """:meth:`summary` as a printed table; q-values at the permutation bound read ``< 1/(P+1)``."""
        summ = self.summary().drop(columns=["rank_by"])
        bound = f"< 1/{self.permutations + 1}" if self.permutations else None
        summ["q_value"] = [bound if b and bound else f"{q:.3g}" for q, b in zip(summ["q_value"], summ["q_at_bound"])]
        summ = summ.drop(columns=["q_at_bound"])
        with pd.option_context("display.width", 160, "display.max_columns", 20, "display.float_format", "{:.3g}".format):
            return summ.to_string(index=False)

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: settings, per attribute the family-wise answer and the ranked cells, per
        position the dominant attribute. q-values at the bound are the string ``"< 1/(P+1)"``."""
        bound_text = f"< 1/{self.permutations + 1}" if self.permutations else None
        probe_cols = [c for c in self.frame.columns if c not in MAP_COLUMNS]
        by_attr: dict[str, list[dict[str, Any]]] = {}
        attrs: dict[str, dict[str, Any]] = {}
        for attr in self.attributes:
            ranked = self._rows(attr)
            cells = []
            for r in ranked.to_dict("records"):
                cell = _record(r, ("position", "rank", "effect", "q_value", "q_at_bound", "fw_p_value", "significant"))
                if cell["q_at_bound"] and bound_text:
                    cell["q_value"] = bound_text
                cell["values"] = {p: _num(r[p]) for p in probe_cols}
                cells.append(cell)
            by_attr[attr] = cells
            first = ranked.iloc[0] if len(ranked) else None
            attrs[attr] = {
                "carried": bool(ranked["significant"].any()),
                "any_position_p": None if first is None else _num(first["any_position_p"]),
                "top_position": None if first is None else int(first["position"]),
                "candidates": self.candidates(attr),
            }
        return {
            "rank_by": self.rank_by,
            "alpha": self.alpha,
            "permutations": self.permutations,
            "significance": "family-wise over positions (maxT on the permuted maxima of adjusted MI)"
            if self.frame["fw_p_value"].notna().any() else f"Benjamini-Hochberg q < {self.alpha:g}",
            "attributes": attrs,
            "by_attribute": by_attr,
            "by_position": {str(k): v for k, v in self.by_position.items()},
        }

    def to_json(self, path: str | Path | None = None, indent: int | None = 2) -> str:
        """The JSON text of :meth:`to_dict`; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SemanticMap:
        perms = d.get("permutations")
        bound = 1.0 / (perms + 1) if perms else np.nan
        rows = []
        for attr, cells in d["by_attribute"].items():
            info = d.get("attributes", {}).get(attr, {})
            for c in cells:
                q = c["q_value"]
                row = {"attribute": attr, "position": c["position"], "rank": c["rank"], "effect": c["effect"],
                       "q_value": bound if isinstance(q, str) else q, "q_at_bound": c["q_at_bound"],
                       "fw_p_value": c["fw_p_value"], "significant": c["significant"],
                       "any_position_p": info.get("any_position_p"), "carried": info.get("carried", False)}
                row.update(c.get("values", {}))
                rows.append(row)
        return cls(_typed(pd.DataFrame(rows)), d["rank_by"], d["alpha"], perms, list(d["by_attribute"]))

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> SemanticMap:
        """Read :meth:`to_json`'s text, or a ``semantic_map.json`` file."""
        p = Path(text_or_path) if not str(text_or_path).lstrip().startswith("{") else None
        return cls.from_dict(json.loads(p.read_text() if p is not None else str(text_or_path)))


def _record(r: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in keys:
        v = r[k]
        if k in ("position", "rank"):
            out[k] = int(v)
        elif k in ("significant", "q_at_bound"):
            out[k] = bool(v)
        else:
            out[k] = _num(v)
    return out


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Column order and dtypes of the map frame (the same after a JSON round trip)."""
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=object if c == "attribute" else float) for c in MAP_COLUMNS})
    probe_cols = [c for c in frame.columns if c not in MAP_COLUMNS]
    frame = frame[MAP_COLUMNS + probe_cols].reset_index(drop=True)
    frame["attribute"] = frame["attribute"].astype(str)
    for c in ("position", "rank"):
        frame[c] = frame[c].astype(np.int64)
    for c in ("significant", "q_at_bound", "carried"):
        frame[c] = frame[c].astype(bool)
    for c in ["effect", "q_value", "fw_p_value", "any_position_p", *probe_cols]:
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype(np.float64)
    return frame


def build_semantic_map(
    table: pd.DataFrame,
    attributes: list[str],
    *,
    rank_by: str = "ami",
    alpha: float = 0.05,
    permutations: int | None = None,
    family_wise: dict[str, tuple[np.ndarray, float]] | None = None,
) -> SemanticMap:
    """Build the map from the probe table (rows with ``position >= 0`` of ``attributes``).

    Args:
        family_wise: attribute -> (``fw_p [N]`` per-position family-wise p-values, ``any_position_p``)
            from :func:`probe.probes.significance.maxt_pvalues` on the ``rank_by`` probe. Without it
            (or for a ``rank_by`` other than the one it was computed on) a cell is significant when
            its q-value is below ``alpha``, and the attribute is carried when some cell is.
    """
    available = set(table["probe"].unique())
    if rank_by not in available:
        fallback = [p for p in RANKABLE if p in available]
        if not fallback:  # nothing to rank by (e.g. only disentanglement metrics were run)
            return SemanticMap(_typed(pd.DataFrame()), rank_by, alpha, permutations, [])
        rank_by = fallback[0]
        family_wise = None  # computed on the requested probe, not on this one
    cells = table[(table["position"] >= 0) & table["attribute"].isin(attributes)]
    values = cells.pivot_table(index=["attribute", "position"], columns="probe", values="value", aggfunc="first")
    bound = 1.0 / (permutations + 1) if permutations else None
    sub = cells[cells["probe"] == rank_by]
    parts = []
    for attr in attributes:
        rows = sub[sub["attribute"] == attr].sort_values("value", ascending=False, kind="stable", na_position="last")
        if rows.empty:
            continue
        pos = rows["position"].to_numpy(dtype=np.int64)
        q = rows["q_value"].to_numpy(dtype=np.float64)
        at_bound = np.isfinite(q) & (q < bound) if bound else np.zeros(len(q), dtype=bool)
        if family_wise and attr in family_wise:
            fw_cells, p_any = family_wise[attr]
            fw = np.asarray(fw_cells, dtype=np.float64)[pos]
            sig = np.isfinite(fw) & (fw < alpha)
        else:
            fw, p_any = np.full(len(pos), np.nan), np.nan
            sig = np.isfinite(q) & (q < alpha)
        part = pd.DataFrame({
            "attribute": attr, "position": pos, "rank": np.arange(1, len(pos) + 1), "effect": rows["value"].to_numpy(),
            "q_value": np.where(at_bound, bound if bound else np.nan, q), "q_at_bound": at_bound, "fw_p_value": fw,
            "significant": sig, "any_position_p": float(p_any), "carried": bool(sig.any()),
        })
        vals = values.loc[attr].reindex(pos)
        for probe in vals.columns:
            part[probe] = vals[probe].to_numpy(dtype=np.float64)
        parts.append(part)
    frame = _typed(pd.concat(parts, ignore_index=True) if parts else pd.DataFrame())
    return SemanticMap(frame, rank_by, alpha, permutations, [a for a in attributes if a in set(frame["attribute"])])
