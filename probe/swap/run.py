"""Swaps on a token store: pairs per attribute -> :func:`probe.swap.patch` -> one table, one summary.

The thin specialisations of the patch live here:

- :func:`sweep_positions`: every single position, for every attribute (the causal heatmap);
- :func:`position_set`: one or several given position sets;
- :func:`validate`: each mapping of a semantic map (its candidate positions per attribute);
- :func:`greedy_set`: the smallest position set reaching a stated transfer, with its curve.
"""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from probe.swap.engine import PositionSet, Shard, patch, set_label
from probe.swap.pairs import PairConfig, sample_pairs
from probe.swap.stats import VerdictConfig, summarize

#: the bookkeeping a table's ``attrs`` carry: images decoded, seconds in decode and in the measurers
_TIMING = ("decoded", "decode_s", "measure_s")
#: controls run by default (swap_back re-encodes every swapped image: asked for explicitly)
DEFAULT_CONTROLS = ("none", "same_end", "random_position", "all_except", "self", "donor_recon")


@dataclass
class SwapConfig:
    """Settings of a swap run (every seed is here; saved as ``config.json``).

    Attributes:
        pairs: (recipient, donor) pairs per attribute.
        quantile: width of each end of an attribute (see :class:`probe.swap.pairs.PairConfig`).
        seed: seed of the pairs, the random-position control and the bootstrap.
        controls: controls run with every tested set (see :data:`probe.swap.engine.CONTROLS`).
        control_pairs: run the controls other than ``self`` / ``donor_recon`` on only the first this
            many pairs of each attribute (``None``: all); they cost one decode per pair and set each.
        batch: images per decode.
        target: the transfer a greedy position set must reach.
        max_set: the largest set the greedy search tries.
        pool: the greedy search adds positions from the ``pool`` best single positions.
        greedy_pairs: pairs per attribute in the greedy search.
        autocast: decode under bf16 autocast on CUDA.
        verdict: the verdict thresholds.
    """

    pairs: int = 256
    quantile: float = 0.25
    seed: int = 0
    controls: tuple[str, ...] = DEFAULT_CONTROLS
    control_pairs: int | None = None
    batch: int = 256
    target: float = 0.8
    max_set: int = 8
    pool: int = 8
    greedy_pairs: int = 64
    autocast: bool = False
    verdict: VerdictConfig = field(default_factory=VerdictConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SwapData:
    """What swaps read from a store: quantized tokens, attributes and how to treat them.

    Attributes:
        quantized: ``[M, N, C]`` code vectors (float32).
        attributes: one row per image.
        kinds: attribute -> ``"continuous"`` / ``"categorical"``.
        circular: attributes whose values are turns on a circle (hues).
        masks: ``[M, 1, H, W]`` object masks, for measurers that need them (``None``: none).
    """

    quantized: torch.Tensor
    attributes: pd.DataFrame
    kinds: dict[str, str]
    circular: tuple[str, ...] = ()
    masks: torch.Tensor | None = None

    @classmethod
    def from_store(cls, store: Any, tokenizer: Any, *, masks: torch.Tensor | None = None,
                   circular: Sequence[str] | None = None) -> SwapData:
        """Tokens of ``store`` as code vectors: ``codebook[tokens]`` for a VQ model, the tokenizer's own
        ``quantize`` of the stored features for a continuous one."""
        from probe.swap.engine import as_quantized

        if getattr(tokenizer, "is_discrete", tokenizer.codebook_size > 0):
            q = as_quantized(tokenizer, torch.as_tensor(np.array(store.tokens, dtype=np.int64)))
        else:
            with torch.no_grad():
                f = torch.as_tensor(np.asarray(store.features, dtype=np.float32))
                q = tokenizer.quantize(f.to(as_quantized(tokenizer, f[:1]).device))[0].float()
        attrs = store.attributes.reset_index(drop=True)
        kinds = store_kinds(store)
        if circular is None:
            circular = world_circular(kinds)
        return cls(q, attrs, kinds, tuple(circular), masks)


def store_kinds(store: Any) -> dict[str, str]:
    """attribute -> kind, from the store's manifest (else: strings / bools categorical, numbers continuous)."""
    if hasattr(store, "attribute_kinds"):
        return dict(store.attribute_kinds)
    kinds: dict[str, str] = {}
    manifest = getattr(store, "manifest", {}) or {}
    for a in manifest.get("attributes", []) or []:
        if isinstance(a, Mapping) and "name" in a and "kind" in a:
            kinds[str(a["name"])] = str(a["kind"])
    df = store.attributes
    for col in df.columns:
        if col in ("index", "ref") or col in kinds:
            continue
        kinds[col] = "continuous" if pd.api.types.is_float_dtype(df[col]) else "categorical"
    return kinds


def world_circular(kinds: Mapping[str, str]) -> tuple[str, ...]:
    """The circular attributes (hues) among ``kinds``, by the world's factor metadata."""
    from probe.data.world import FACTORS

    return tuple(a for a in kinds if a in FACTORS and FACTORS[a].circular)


@dataclass
class SwapResult:
    """A swap run: ``table`` (one row per swap x measurer), ``summary`` (one row per mapping)."""

    table: pd.DataFrame
    summary: pd.DataFrame
    pairs: pd.DataFrame
    config: SwapConfig


def _measured_names(measurers: Mapping[str, Any]) -> dict[str, str]:
    return {m.name: attr for attr, m in measurers.items()}


class _Named:
    """A measurer renamed to the attribute it stands for (two attributes may share one measurer class)."""

    def __init__(self, attribute: str, inner: Any) -> None:
        self.name, self.kind, self.inner = attribute, inner.kind, inner

    def __call__(self, images: torch.Tensor, *, masks: torch.Tensor | None = None) -> torch.Tensor:
        return self.inner(images, masks=masks)


def run_swaps(tokenizer: Any, data: SwapData, measurers: Mapping[str, Any],
              sets: Mapping[str, Sequence[PositionSet]] | Sequence[PositionSet], *,
              attributes: Sequence[str] | None = None, config: SwapConfig | None = None,
              shard: Shard | None = None, progress: bool = True, pairs_per_attribute: int | None = None,
              controls: Sequence[str] | None = None) -> SwapResult:
    """Swaps for each attribute on its own pairs, at its position sets, measured by every measurer.

    Args:
        measurers: attribute -> measurer; every swap is measured by all of them (the side effects).
        sets: position sets, the same for every attribute or per attribute.
        attributes: the attributes to draw pairs for (default: every measured attribute in ``data``).
    """
    cfg = config or SwapConfig()
    attrs = list(attributes or [a for a in measurers if a in data.attributes.columns])
    missing = [a for a in attrs if a not in measurers]
    if missing:
        raise ValueError(f"no measurer for attribute(s) {missing}; give one per attribute")
    meas = [_Named(a, m) for a, m in measurers.items()]
    n_pairs = pairs_per_attribute or cfg.pairs
    tables, pair_frames = [], []
    offset = 0
    for attr in attrs:
        pcfg = PairConfig(n=n_pairs, quantile=cfg.quantile, seed=cfg.seed)
        pairs = sample_pairs(data.attributes, attr, data.kinds.get(attr, "continuous"), pcfg,
                             circular=attr in data.circular)
        pairs.insert(0, "pair", np.arange(offset, offset + len(pairs)))
        offset += len(pairs)
        pair_frames.append(pairs)
        attr_sets = sets[attr] if isinstance(sets, Mapping) else sets
        if not attr_sets:
            continue
        rec, don, same = (torch.as_tensor(pairs[c].to_numpy().copy()) for c in ("recipient", "donor", "same_end_donor"))
        q = data.quantized
        mk = None if data.masks is None else (data.masks[rec], data.masks[don])
        ctrl = tuple(controls or cfg.controls)
        n_tok = int(q.shape[1])
        full_sweep = sorted(tuple(x) if not isinstance(x, (int, np.integer)) else (int(x),) for x in attr_sets) == [
            (p,) for p in range(n_tok)]
        # no decode of their own: self / ceiling reuse the references; a full sweep holds every random swap
        free = ("none", "self", "donor_recon") + (("random_position",) if full_sweep and "none" in ctrl else ())
        cheap = tuple(c for c in ctrl if c in free)
        costly = tuple(c for c in ctrl if c not in cheap)
        split = len(pairs) if cfg.control_pairs is None else min(cfg.control_pairs, len(pairs))
        common = dict(measurers=meas, seed=cfg.seed, batch=cfg.batch, shard=shard, progress=progress,
                      autocast=cfg.autocast)
        extra = {"attribute": np.full(len(pairs), attr, dtype=object),
                 "recipient_row": pairs["recipient"].to_numpy(), "donor_row": pairs["donor"].to_numpy()}
        if split == len(pairs) or not costly:
            t = patch(tokenizer, q[rec], q[don], attr_sets, controls=ctrl, same_end_donors=q[same],
                      masks=mk, pair_ids=pairs["pair"].to_numpy(), extra=extra, **common)
        else:  # the costly controls on the first ``split`` pairs only
            head = slice(0, split)
            t1 = patch(tokenizer, q[rec], q[don], attr_sets, controls=cheap, masks=mk,
                       pair_ids=pairs["pair"].to_numpy(), extra=extra, **common)
            mk2 = None if mk is None else (mk[0][head], mk[1][head])
            t2 = patch(tokenizer, q[rec[head]], q[don[head]], attr_sets, controls=costly,
                       same_end_donors=q[same[head]], masks=mk2, pair_ids=pairs["pair"].to_numpy()[head],
                       extra={k: v[head] for k, v in extra.items()}, **common)
            t = pd.concat([t1, t2], ignore_index=True)
            t.attrs.update({k: t1.attrs.get(k, 0) + t2.attrs.get(k, 0) for k in _TIMING})
        tables.append(t)
    timing = {k: sum(t.attrs.get(k, 0) for t in tables) for k in _TIMING}
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    if len(table):
        table["measured"] = table["measurer"]
        table = table.sort_values(["attribute", "pair"], kind="stable").reset_index(drop=True)
    t0 = time.perf_counter()
    summary = summarize(table, cfg.verdict) if len(table) else pd.DataFrame()
    table.attrs.update(timing, summary_s=time.perf_counter() - t0)
    return SwapResult(table, summary, pd.concat(pair_frames, ignore_index=True), cfg)


def sweep_positions(tokenizer: Any, data: SwapData, measurers: Mapping[str, Any], **kw: Any) -> SwapResult:
    """Every single position for every attribute (the causal heatmap's cells)."""
    n = int(data.quantized.shape[1])
    return run_swaps(tokenizer, data, measurers, [[p] for p in range(n)], **kw)


def position_set(tokenizer: Any, data: SwapData, measurers: Mapping[str, Any],
                 positions: PositionSet | Sequence[PositionSet], **kw: Any) -> SwapResult:
    """One position set (``[3, 7]``) or several (``[[3], [3, 7]]``) for every attribute."""
    ints = (int, np.integer)
    if isinstance(positions, ints) or (len(positions) and all(isinstance(p, ints) for p in positions)):
        sets = [positions]
    else:
        sets = list(positions)
    return run_swaps(tokenizer, data, measurers, sets, **kw)


def candidates(semantic_map: Any, attribute: str, k: int = 3) -> list[int]:
    """The top ``k`` probe positions of ``attribute``: ``semantic_map.candidates(attribute, k)`` where the
    map has it (a list of positions or a table with a ``position`` column), else its ranking."""
    if hasattr(semantic_map, "candidates"):
        c = semantic_map.candidates(attribute, k)
        if isinstance(c, pd.DataFrame):
            return [int(p) for p in c["position"].head(k)]
        return [int(p) for p in list(c)[:k]]
    ranking = probe_ranking(semantic_map)
    r = ranking[ranking["attribute"] == attribute].sort_values("probe_rank")
    return [int(p) for p in r["position"].head(k)]


def validate(tokenizer: Any, data: SwapData, semantic_map: Any, measurers: Mapping[str, Any], *, k: int = 3,
             attributes: Sequence[str] | None = None, **kw: Any) -> SwapResult:
    """Each mapping of ``semantic_map``: its ``k`` candidate positions, one at a time and together."""
    attrs = list(attributes or [a for a in measurers if a in data.attributes.columns])
    sets: dict[str, list[PositionSet]] = {}
    for a in attrs:
        c = candidates(semantic_map, a, k)
        sets[a] = [[p] for p in c] + ([sorted(c)] if len(c) > 1 else [])
    return run_swaps(tokenizer, data, measurers, sets, attributes=attrs, **kw)


def probe_ranking(semantic_map: Any) -> pd.DataFrame:
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
                return probe_ranking(frame)
        rows = [{"attribute": a, "position": int(r["position"]), "effect": r.get("effect")}
                for a, ranked in semantic_map.by_attribute.items() for r in ranked]
        out = pd.DataFrame(rows, columns=["attribute", "position", "effect"])
    out["effect"] = pd.to_numeric(out["effect"], errors="coerce")
    out = out.sort_values(["attribute", "effect"], ascending=[True, False], kind="stable")
    out["probe_rank"] = out.groupby("attribute").cumcount() + 1
    return out.reset_index(drop=True)


def greedy_set(tokenizer: Any, data: SwapData, measurers: Mapping[str, Any], attribute: str,
               single: pd.DataFrame, *, config: SwapConfig | None = None, progress: bool = True) -> pd.DataFrame:
    """The smallest position set reaching ``config.target`` transfer for ``attribute``, greedily.

    Starting from the best single position of ``single`` (a sweep summary), each step adds the position
    of the ``pool`` best single ones that raises the transfer most, until the target or ``max_set``.
    Returns the curve: one row per set size with ``positions, transfer, ci_low, ci_high, reached``.
    """
    cfg = config or SwapConfig()
    s = single[single["attribute"] == attribute].sort_values("transfer", ascending=False)
    pool = [int(p) for p in s["positions"].head(cfg.pool)]
    if not pool:
        return pd.DataFrame()
    chosen = [pool[0]]
    rows = []
    row0 = s.iloc[0]
    rows.append({"attribute": attribute, "set_size": 1, "positions": set_label(chosen),
                 "transfer": row0["transfer"], "ci_low": row0["ci_low"], "ci_high": row0["ci_high"]})
    while rows[-1]["transfer"] < cfg.target and len(chosen) < min(cfg.max_set, len(pool)):
        trial = [sorted(chosen + [p]) for p in pool if p not in chosen]
        res = run_swaps(tokenizer, data, {attribute: measurers[attribute]}, trial, attributes=[attribute],
                        config=cfg, controls=("none",), progress=progress, pairs_per_attribute=cfg.greedy_pairs)
        best = res.summary.sort_values("transfer", ascending=False).iloc[0]
        chosen = [int(p) for p in str(best["positions"]).split("+")]
        rows.append({"attribute": attribute, "set_size": len(chosen), "positions": best["positions"],
                     "transfer": best["transfer"], "ci_low": best["ci_low"], "ci_high": best["ci_high"]})
    out = pd.DataFrame(rows)
    out["reached"] = out["transfer"] >= cfg.target
    return out
