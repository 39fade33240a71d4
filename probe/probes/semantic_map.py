"""The semantic map: per attribute its positions ranked by effect; per position its dominant attribute."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

#: Probes the map may rank by, best first when the requested one was not run.
RANKABLE = ("ami", "mi", "eta2_features", "eta2_codebook", "cramers_v", "linear_acc_features")


def _num(x: Any) -> float | None:
    x = float(x)
    return None if not np.isfinite(x) else x


@dataclass
class SemanticMap:
    """Attributes:
    rank_by: the probe whose value is the effect size.
    alpha: q-value threshold for "significant".
    by_attribute: attribute -> positions, best first: ``{"position", "effect", "p_value",
        "q_value", "significant"}``.
    by_position: position -> ``{"dominant", "effect", "q_value"}`` (dominant is None when no
        attribute is significant there).
    """

    rank_by: str
    alpha: float
    by_attribute: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    by_position: dict[int, dict[str, Any]] = field(default_factory=dict)

    def top_positions(self, attribute: str, k: int = 3) -> list[int]:
        return [r["position"] for r in self.by_attribute[attribute][:k]]

    def dominant(self, position: int) -> str | None:
        return self.by_position[position]["dominant"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank_by": self.rank_by,
            "alpha": self.alpha,
            "by_attribute": self.by_attribute,
            "by_position": {str(k): v for k, v in self.by_position.items()},
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SemanticMap:
        return cls(d["rank_by"], d["alpha"], d["by_attribute"], {int(k): v for k, v in d["by_position"].items()})


def build_semantic_map(table: pd.DataFrame, attributes: list[str], *, rank_by: str = "ami", alpha: float = 0.05) -> SemanticMap:
    """Build the map from the probe table (rows with ``position >= 0`` of ``attributes``)."""
    available = set(table["probe"].unique())
    if rank_by not in available:
        fallback = [p for p in RANKABLE if p in available]
        if not fallback:  # nothing to rank by (e.g. only disentanglement metrics were run)
            return SemanticMap(rank_by, alpha)
        rank_by = fallback[0]
    sub = table[(table["probe"] == rank_by) & (table["position"] >= 0) & table["attribute"].isin(attributes)]
    smap = SemanticMap(rank_by, alpha)
    for attr in attributes:
        rows = sub[sub["attribute"] == attr].sort_values("value", ascending=False, kind="stable")
        smap.by_attribute[attr] = [
            {
                "position": int(r.position),
                "effect": _num(r.value),
                "p_value": _num(r.p_value),
                "q_value": _num(r.q_value),
                "significant": bool(np.isfinite(r.q_value) and r.q_value < alpha),
            }
            for r in rows.itertuples()
        ]
    for pos in sorted(sub["position"].unique()):
        rows = sub[sub["position"] == pos]
        sig = rows[rows["q_value"] < alpha]
        if len(sig):
            best = sig.loc[sig["value"].idxmax()]
            smap.by_position[int(pos)] = {
                "dominant": str(best["attribute"]),
                "effect": _num(best["value"]),
                "q_value": _num(best["q_value"]),
            }
        else:
            smap.by_position[int(pos)] = {"dominant": None, "effect": None, "q_value": None}
    return smap
