"""Positions a map ties to an attribute: the one "top k positions of a map" of tokenprobe.

A map is any of: a :class:`probe.probes.semantic_map.SemanticMap` (its significant cells, best first), anything
with ``candidates(attribute, k)`` or ``top_positions(attribute, k)``, a probe table (one long DataFrame of
:func:`probe.run_probes`; ranked by its ``rank_by`` probe), a ``{attribute: [positions]}`` mapping, or a shipped
model's swap-validated ``declared_semantics`` (``{attribute: {"positions": [...], ...}}``, in
``probe.zoo.config``).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, Union

import pandas as pd

from probe.tokenizers.base import PositionSet

if TYPE_CHECKING:
    from probe.probes.semantic_map import SemanticMap


class RanksPositions(Protocol):
    """Anything that names an attribute's best positions."""

    def candidates(self, attribute: str, k: int) -> Sequence[int]: ...


#: every kind of map :func:`top_positions` reads (see the module docstring)
PositionMap = Union["SemanticMap", RanksPositions, pd.DataFrame, Mapping[str, Any]]


def ranking(semantic_map: SemanticMap | pd.DataFrame) -> pd.DataFrame:
    """The probes' ranking as a table ``attribute, position, effect, probe_rank`` (1 = top), from a
    SemanticMap (``by_attribute``, or a DataFrame-backed one), or a probe table (``probe == rank_by``)."""
    if isinstance(semantic_map, pd.DataFrame):
        df = semantic_map
        if "probe" in df.columns:
            rank_by = df.attrs.get("rank_by", "ami")
            df = df[(df["probe"] == rank_by) & (df["position"] >= 0)]
        val = "effect" if "effect" in df.columns else "value"
        out = df[["attribute", "position", val]].rename(columns={val: "effect"}).copy()
    else:
        for name in ("frame", "table"):  # a DataFrame-backed map
            frame = getattr(semantic_map, name, None)
            if isinstance(frame, pd.DataFrame) and {"attribute", "position"} <= set(frame.columns):
                return ranking(frame)
        rows = [{"attribute": a, "position": int(r["position"]), "effect": r.get("effect")}
                for a, ranked in semantic_map.by_attribute.items() for r in ranked]
        out = pd.DataFrame(rows, columns=["attribute", "position", "effect"])
    out["effect"] = pd.to_numeric(out["effect"], errors="coerce")
    out = out.sort_values(["attribute", "effect"], ascending=[True, False], kind="stable")
    out["probe_rank"] = out.groupby("attribute").cumcount() + 1
    return out.reset_index(drop=True)


def _as_ints(found: Any) -> list[int]:
    if isinstance(found, pd.DataFrame):
        found = found["position"]
    return [int(p if not isinstance(p, Mapping) else p["position"]) for p in list(found)]


def top_positions(smap: PositionMap, attribute: str, k: int, *, empty_ok: bool = False) -> list[int]:
    """The ``k`` positions ``smap`` ties to ``attribute``, best first (see the module docstring for the maps).

    A mapping that does not name ``attribute`` raises a KeyError naming the ones it has; a map that ties no
    (significant) position to it raises a ValueError, or gives ``[]`` with ``empty_ok``.

    Examples:
        >>> top_positions({"lighting": [26, 17, 11]}, "lighting", 2)
        [26, 17]
        >>> top_positions({"lighting": {"positions": [26], "floor": 0.3}}, "lighting", 1)  # declared_semantics
        [26]
        >>> top_positions(result.probes.semantic_map, "lighting", 3)  # doctest: +SKIP
    """
    if isinstance(smap, Mapping):
        attrs = sorted(a for a in smap if not str(a).startswith("_"))
        if attribute not in attrs:
            raise KeyError(f"the position map has no attribute {attribute!r}; it has {attrs}")
        entry = smap[attribute]
        if isinstance(entry, Mapping):  # a zoo record's declared_semantics: {"positions": [...], "floor": ...}
            entry = entry["positions"]
        got = _as_ints(entry)[:k]
    else:
        method = next((m for m in ("candidates", "top_positions") if hasattr(smap, m)), None)
        if method is not None:
            got = _as_ints(getattr(smap, method)(attribute, k))[:k]
        else:
            r = ranking(smap)
            got = [int(p) for p in r[r["attribute"] == attribute].sort_values("probe_rank")["position"].head(k)]
    if not got and not empty_ok:
        raise ValueError(f"the map ties no significant position to {attribute!r}; pass positions explicitly")
    return got


def candidate_sets(smap: PositionMap, attributes: Sequence[str], k: int) -> dict[str, list[PositionSet]]:
    """attribute -> the map's ``k`` top positions one at a time and, when there are several, together: the sets
    that test a map's mappings (``sweep(tokenizer, data, measurers, candidate_sets(smap, attrs, 3))``)."""
    sets: dict[str, list[PositionSet]] = {}
    for a in attributes:
        c = top_positions(smap, a, k, empty_ok=True)
        sets[a] = [[p] for p in c] + ([sorted(c)] if len(c) > 1 else [])
    return sets
