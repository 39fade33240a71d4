"""Attribution patching: every single-position swap's effect estimated from one backward pass.

After Nanda (2023, "Attribution patching"), Syed, Rager & Conmy (2023, "Attribution patching outperforms
automated circuit discovery") and Kramar et al. (2024, "AtP*"). A real swap of position ``p`` pastes the donor's
token ``q_{d,p}`` into the recipient ``q_r``, decodes and measures; its movement along the pair's gap is (see
:mod:`probe.swap.engine`)

    moved = <m(decode(q_r with q_{d,p})) - m(decode(q_r)), u>,   u = (m_d - m_r) / |m_d - m_r|

with ``m_r`` / ``m_d`` the measurer's readings of the recipient's and the donor's reconstructions. Its
first-order estimate, for all positions at once, is

    moved_p ~= <grad_{q_p} <m(decode(q)), u> |_{q = q_r},  q_{d,p} - q_{r,p}>

one decode forward, one measurer forward and one backward per batch of pairs and measurer (the gradient is taken
at the recipient's quantized tokens: the decoder's input, so no straight-through estimator is needed). The
estimate is projected on the same gap and divided by the same gap as the real swap, so ``transfer`` is in the
same units (0: no movement, 1: the whole gap) and :func:`attribution_heatmap` has the layout of
:func:`probe.swap.validated.causal_heatmap` (positions x attributes).

Options (differences from the plain method, each deliberate):

- ``clamp`` (default True): differentiate the decode the engine measures, ``decode(q)`` clamped to [0, 1]. A
  clamped pixel passes no gradient, which is the first-order behaviour of the function the real swap measures
  (a saturated pixel pushed further does not move the reading). ``clamp=False`` differentiates the raw decoder
  output instead (``tokenizer.decode(q, clamp=False)``), which counts movement the clamp then removes; the
  benchmark (``analyses/bench_attribution.py``) reports both.
- ``steps`` (default 1): 1 is attribution patching at the recipient. ``steps > 1`` averages the gradient over
  ``steps`` midpoints of the straight path from ``q_r`` to ``q_d`` with every position moving together
  (integrated gradients over inputs, the remedy Marks et al. 2024 use against saturation; AtP*'s own remedies,
  the QK fix and GradDrop, target attention saturation and gradient cancellation inside a residual stream,
  which a single decode of pasted tokens does not have as such). It costs ``steps`` backward passes, and the
  estimates then add up to the whole-donor paste rather than each single-position paste.

A measurer must declare ``differentiable = True`` (:class:`probe.measure.base.Measurer`); one that does not,
or whose output carries no gradient at run time, is refused with :class:`NotDifferentiableError` naming it,
never estimated as zero.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from probe.errors import TokenprobeError
from probe.measure.shared import innermost, is_differentiable, measure_all
from probe.swap.engine import as_quantized
from probe.swap.movement import MIN_GAP

#: the ``control`` of attribution rows in tables shared with real swaps
METHOD = "attribution"


class NotDifferentiableError(TokenprobeError, ValueError):
    """A measurer that attribution patching cannot differentiate."""


@dataclass(frozen=True)
class AttributionConfig:
    """Settings of the attribution estimate (see the module docstring).

    Attributes:
        clamp: differentiate the clamped decode the engine measures (True) or the raw decoder output.
        steps: 1 = gradient at the recipient (attribution patching); more = integrated gradients on the
            recipient-to-donor path with that many midpoints.
        batch: pairs per forward/backward pass.
    """

    clamp: bool = True
    steps: int = 1
    batch: int = 64

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"AttributionConfig.steps must be >= 1, got {self.steps}")
        if self.batch < 1:
            raise ValueError(f"AttributionConfig.batch must be >= 1, got {self.batch}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_differentiable(measurers: Sequence[Any]) -> None:
    """Raise :class:`NotDifferentiableError` naming every measurer that does not declare ``differentiable = True``."""
    def label(m: Any) -> str:
        inner = innermost(m)
        own = getattr(inner, "name", "?")
        named = getattr(m, "name", own)
        return f"{named!r} ({'' if own == named else f'measurer {own!r}, '}{type(inner).__name__})"

    bad = [label(m) for m in measurers if not is_differentiable(m)]
    if bad:
        raise NotDifferentiableError(
            f"attribution patching needs measurers whose readings autograd can differentiate; not declared "
            f"differentiable: {', '.join(bad)}. Test these attributes with real swaps (the exhaustive sweep), or "
            "give a differentiable measurer (set differentiable = True only if its output is a torch computation "
            "of the images)")


def _flat(v: torch.Tensor, n: int) -> torch.Tensor:
    return v.reshape(n, -1).float()


def _estimate_batch(tokenizer: Any, qr: torch.Tensor, qd: torch.Tensor, measurers: Sequence[Any],
                    mask_r: torch.Tensor | None, mask_d: torch.Tensor | None, cfg: AttributionConfig,
                    directions: Sequence[torch.Tensor | None]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per measurer: the gap ``[B]`` and the estimated movement of every single-position paste ``[B, N]``, along the
    pair's gap or, where given, along its labels' direction ``[B, D]`` (then both signed)."""
    b = len(qr)
    with torch.no_grad():  # the references, as the engine measures them (clamped decode)
        vr = [_flat(v, b) for v in measure_all(measurers, tokenizer.decode(qr), mask_r)]
        vd = [_flat(v, b) for v in measure_all(measurers, tokenizer.decode(qd), mask_d)]
    gap_vec = [d - r for r, d in zip(vr, vd)]
    gaps = [g.norm(dim=1) if u is None else (g * u).sum(1) for g, u in zip(gap_vec, directions)]
    units = [g / n.clamp_min(MIN_GAP)[:, None] if u is None else u.to(g.dtype)
             for g, n, u in zip(gap_vec, gaps, directions)]
    delta = qd - qr
    grads = [torch.zeros_like(qr) for _ in measurers]
    alphas = [0.0] if cfg.steps == 1 else [(i + 0.5) / cfg.steps for i in range(cfg.steps)]
    for a in alphas:
        q = (qr + a * delta).detach().requires_grad_(True)
        with torch.enable_grad():
            img = tokenizer.decode(q, clamp=cfg.clamp)
            outs = measure_all(measurers, img, mask_r)
            for k, (m, out) in enumerate(zip(measurers, outs)):
                if not (isinstance(out, torch.Tensor) and out.requires_grad):
                    raise NotDifferentiableError(
                        f"measurer {getattr(m, 'name', '?')!r} declares differentiable = True but its output "
                        "carries no gradient (computed without autograd: numpy, argmax, torch.no_grad?); "
                        "attribution patching cannot estimate it: test it with real swaps")
                f = (_flat(out, b) * units[k]).sum()
                (g,) = torch.autograd.grad(f, q, retain_graph=k < len(measurers) - 1, allow_unused=True)
                if g is not None:  # None: the reading does not depend on the tokens at all (a true zero)
                    grads[k] += g / len(alphas)
    return gaps, [(g * delta).sum(-1) for g in grads]


def attribute(
    tokenizer: Any,
    recipients: torch.Tensor | np.ndarray,
    donors: torch.Tensor | np.ndarray,
    measurers: Sequence[Any],
    *,
    masks: tuple[torch.Tensor | None, torch.Tensor | None] | None = None,
    config: AttributionConfig | None = None,
    pair_ids: Sequence[int] | np.ndarray | None = None,
    extra: Mapping[str, Sequence[Any]] | None = None,
    progress: bool = False,
    directions: Mapping[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Estimate every single-position paste of each donor into its recipient (see the module docstring).

    Args:
        tokenizer: a :class:`probe.tokenizers.base.Tokenizer` whose ``decode`` autograd can differentiate.
        recipients, donors: paired tokens, ``[M, N, C]`` code vectors or ``[M, N]`` ids.
        measurers: measurer-like objects (``name``, ``kind``, ``__call__``) declaring ``differentiable = True``.
        masks: ``(recipient_masks, donor_masks)`` ``[M, 1, H, W]`` for measurers that read object masks.
        config: :class:`AttributionConfig`.
        pair_ids: pair ids for the rows (default ``0..M-1``).
        extra: per-pair columns copied into the table (e.g. ``{"attribute": [...]}``).
        directions: measurer name -> per-pair unit vectors ``[M, D]`` (the labels' direction of each pair): that
            measurer's estimate is projected on them, as :func:`probe.swap.patch` measures it (``gap`` and
            ``moved`` signed along the direction).

    Returns:
        One row per (pair, position, measurer): ``pair, positions`` (the label, as in swap tables),
        ``position, set_size, control`` (``"attribution"``), ``measurer, kind, gap, moved, transfer`` (the
        estimate of the real swap's ``moved`` and ``transfer``) plus ``extra``'s columns.

    Examples:
        >>> from probe.measure import analytic
        >>> est = attribute(tok, q[rec], q[don], [analytic("lighting")])      # doctest: +SKIP
        >>> est.groupby("position")["moved"].sum() / est.groupby("position")["gap"].sum()  # doctest: +SKIP
    """
    cfg = config or AttributionConfig()
    measurers = list(measurers)
    check_differentiable(measurers)
    rq = as_quantized(tokenizer, recipients).detach()
    dq = as_quantized(tokenizer, donors).detach()
    if rq.shape != dq.shape:
        raise ValueError(f"recipients {tuple(rq.shape)} and donors {tuple(dq.shape)} must have the same shape")
    m_all, n_tok = int(rq.shape[0]), int(rq.shape[1])
    ids = np.arange(m_all) if pair_ids is None else np.asarray(pair_ids)
    rmask = dmask = None
    if masks is not None:
        rmask, dmask = masks
    names = [getattr(m, "name", "") for m in measurers]

    from probe.progress import inner_bar

    gaps: list[list[torch.Tensor]] = [[] for _ in measurers]
    moved: list[list[torch.Tensor]] = [[] for _ in measurers]
    bar = inner_bar(progress, m_all, "attribution", unit="pair")  # one forward + backward per pair
    for s in range(0, m_all, cfg.batch):
        e = min(m_all, s + cfg.batch)
        mr = None if rmask is None else rmask[s:e].to(rq.device)
        md = None if dmask is None else dmask[s:e].to(rq.device)
        dirs = [None if name not in (directions or {}) else
                 torch.as_tensor(np.asarray(directions[name], np.float32)[s:e], device=rq.device)
                 for name in names]
        g, mv = _estimate_batch(tokenizer, rq[s:e], dq[s:e], measurers, mr, md, cfg, dirs)
        for k in range(len(measurers)):
            gaps[k].append(g[k].detach().cpu())
            moved[k].append(mv[k].detach().cpu())
        bar.update(e - s)
    bar.close()

    frames = []
    pos = np.tile(np.arange(n_tok), m_all)
    for k, meas in enumerate(measurers):
        gap = (torch.cat(gaps[k]) if gaps[k] else torch.zeros(0)).double().numpy()
        mv = (torch.cat(moved[k]) if moved[k] else torch.zeros(0, n_tok)).double().numpy().reshape(-1)
        gap_rows = np.repeat(gap, n_tok)
        with np.errstate(invalid="ignore", divide="ignore"):
            transfer = np.where(gap_rows > MIN_GAP, mv / np.maximum(gap_rows, MIN_GAP), np.nan)
        cols: dict[str, Any] = {"pair": np.repeat(ids, n_tok), "positions": pos.astype(str), "position": pos,
                                "set_size": 1, "control": METHOD, "measurer": meas.name, "kind": meas.kind,
                                "gap": gap_rows, "moved": mv, "transfer": transfer}
        for c, v in (extra or {}).items():
            cols[c] = np.repeat(np.asarray(v), n_tok)
        frames.append(pd.DataFrame(cols))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def attribution_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (attribute, position) of an attribution table's own-measurer rows: ``transfer`` =
    ``sum(moved) / sum(gap)`` over pairs (the engine's transfer, estimated), ``n_pairs``, ``set_size`` 1.
    Without an ``attribute`` column each measurer stands for itself."""
    t = table.copy()
    if "attribute" not in t.columns:
        t["attribute"] = t["measurer"]
    own = t[t["measurer"] == t["attribute"]]
    g = own.groupby(["attribute", "position"], sort=False).agg(moved=("moved", "sum"), gap=("gap", "sum"),
                                                               n_pairs=("pair", "nunique"))
    g["transfer"] = g["moved"] / g["gap"].where(g["gap"] > MIN_GAP)
    out = g.reset_index()
    out["positions"] = out["position"].astype(str)
    out["set_size"] = 1
    return out[["attribute", "positions", "position", "set_size", "n_pairs", "transfer"]]


def attribution_heatmap(summary: pd.DataFrame) -> pd.DataFrame:
    """Positions (rows) x attributes (columns) of estimated transfer: the layout and units of
    :func:`probe.swap.validated.causal_heatmap`."""
    return summary.pivot(index="position", columns="attribute", values="transfer").sort_index()


def _corr(a: pd.Series, c: pd.Series, how: str) -> float:
    from scipy.stats import pearsonr, spearmanr

    if len(a) < 3 or a.std() == 0 or c.std() == 0:
        return np.nan
    return float((spearmanr if how == "spearman" else pearsonr)(a, c).statistic)


def agreement(attribution: pd.DataFrame, causal: pd.DataFrame, *, top: int = 3, active: float = 0.05) -> pd.DataFrame:
    """Per attribute (the columns both heatmaps share): Spearman and Pearson between estimated and real transfer
    over positions; Spearman over the ``active`` positions only (those where either moves at least ``active`` of
    the gap: the rest are positions both call ~0, whose order is noise); the swap-best position, the
    attribution-best one, the swap-best position's attribution rank (1 = first), and whether the attribution's
    ``top`` positions hold the swap-best one (``top_hit``)."""
    rows = []
    for attr in [c for c in causal.columns if c in attribution.columns]:
        a, c = attribution[attr], causal[attr]
        common = a.dropna().index.intersection(c.dropna().index)
        a, c = a[common], c[common]
        on = (a.abs() >= active) | (c.abs() >= active)
        best = int(c.idxmax()) if len(common) else -1
        order = list(a.sort_values(ascending=False).index)
        rank = order.index(best) + 1 if best in order else np.nan
        rows.append({"attribute": attr, "spearman": _corr(a, c, "spearman"), "pearson": _corr(a, c, "pearson"),
                     "spearman_active": _corr(a[on], c[on], "spearman"), "active_positions": int(on.sum()),
                     "swap_best": best,
                     "swap_best_transfer": float(c.get(best, np.nan)),
                     "attribution_best": int(order[0]) if order else -1,
                     "attribution_of_swap_best": float(a.get(best, np.nan)),
                     "swap_top": "+".join(str(int(p)) for p in c.sort_values(ascending=False).index[:top]),
                     "attribution_top": "+".join(str(int(p)) for p in order[:top]),
                     "swap_best_rank": rank, "top_hit": bool(rank <= top) if np.isfinite(rank) else False,
                     "positions": len(common)})
    return pd.DataFrame(rows)


@dataclass
class AttributionResult:
    """An attribution sweep: ``table`` (one row per pair x position x measurer), ``summary`` (one row per
    attribute x position), ``heatmap`` (positions x attributes), ``pairs`` (as :func:`probe.swap.sweep`
    draws them), the settings."""

    table: pd.DataFrame
    summary: pd.DataFrame
    heatmap: pd.DataFrame
    pairs: pd.DataFrame
    config: AttributionConfig = field(default_factory=AttributionConfig)


def attribution_sweep(tokenizer: Any, data: Any, measurers: Mapping[str, Any], *,
                      attributes: Sequence[str] | None = None, swap_config: Any = None,
                      config: AttributionConfig | None = None, side_effects: bool = False,
                      progress: bool = False, split: str = "discovery") -> AttributionResult:
    """Attribution estimates of every single position for every attribute, on the pairs a real sweep with
    ``swap_config`` (:class:`probe.swap.SwapConfig`) draws on ``split`` (default the discovery pairs: a ranking is
    a selection), each attribute's own reading along its labels' direction as the engine measures it, so both
    are compared pair for pair.

    Args:
        data: a :class:`probe.swap.SwapData`.
        measurers: attribute -> measurer (each declaring ``differentiable = True``).
        attributes: the attributes to draw pairs for (default: every measured attribute in ``data``).
        side_effects: also estimate every other measurer on each attribute's pairs (default: its own only,
            which is all the heatmap needs).
    """
    from probe.swap.run import SwapConfig, _draw, _Named, geometry

    scfg = swap_config or SwapConfig()
    acfg = config or AttributionConfig()
    attrs = list(attributes or [a for a in measurers if a in data.attributes.columns])
    missing = [a for a in attrs if a not in measurers]
    if missing:
        raise ValueError(f"no measurer for attribute(s) {missing}; give one per attribute")
    named = {a: _Named(a, m) for a, m in measurers.items()}
    check_differentiable([named[a] for a in (named if side_effects else attrs)])
    q = data.quantized
    tables, pair_frames = [], []
    offset = 0
    for attr in attrs:  # the pairs sweep(split=split) draws, with the same ids
        n = scfg.discovery_pairs if split == "discovery" else scfg.pairs
        both = _draw(data, attr, scfg, n if split == "discovery" else 0, n if split == "confirmation" else 0)
        pairs = both[both["split"] == split].reset_index(drop=True)
        pairs.insert(0, "pair", np.arange(offset, offset + len(pairs)))
        offset += len(pairs)
        pair_frames.append(pairs)
        rec, don = (torch.as_tensor(pairs[c].to_numpy().copy()) for c in ("recipient", "donor"))
        mk = None if data.masks is None else (data.masks[rec], data.masks[don])
        meas = list(named.values()) if side_effects else [named[attr]]
        dirs = {attr: geometry(tokenizer, data, attr, measurers[attr], scfg).directions_for(pairs)}
        tables.append(attribute(tokenizer, q[rec], q[don], meas, masks=mk, config=acfg, directions=dirs,
                                pair_ids=pairs["pair"].to_numpy(), progress=progress,
                                extra={"attribute": np.full(len(pairs), attr, dtype=object)}))
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    summary = attribution_summary(table) if len(table) else pd.DataFrame()
    heat = attribution_heatmap(summary) if len(summary) else pd.DataFrame()
    return AttributionResult(table, summary, heat, pd.concat(pair_frames, ignore_index=True), acfg)


#: attribution-first sweeps rank with integrated gradients over 4 steps: on world-32 the gradient at the
#: recipient misses the swap-best position of lighting in its top 3 (rank 4), 4 steps find every confirmed one in
#: the top 2 (analyses/bench_attribution.py; figures/attribution_world32.csv), at ~1/5 of a sweep's CPU time
RANKING = AttributionConfig(steps=4)


def resolve_mode(mode: str, measurers: Mapping[str, Any], attributes: Sequence[str] | None, data: Any) -> str:
    """``"exhaustive"`` or ``"attribution"`` for a :attr:`probe.swap.SwapConfig.mode`: ``"auto"`` is attribution
    when the measurer of every attribute to test declares ``differentiable = True``; ``"attribution"`` with one
    that does not raises :class:`NotDifferentiableError` naming it."""
    attrs = list(attributes or [a for a in measurers if a in data.attributes.columns])
    own = [measurers[a] for a in attrs if a in measurers]
    if mode == "attribution":
        check_differentiable(own)
        return mode
    if mode == "auto":
        return "attribution" if own and all(is_differentiable(m) for m in own) else "exhaustive"
    return mode


def ranked_positions(heatmap: pd.DataFrame, attribute: str, k: int) -> list[int]:
    """The ``k`` positions of ``attribute`` with the largest estimated transfer (cells without an estimate
    left out), through the one top-k rule (:func:`probe.swap.maps.top_positions`)."""
    from probe.swap.maps import top_positions

    order = heatmap[attribute].dropna().sort_values(ascending=False, kind="stable")
    return top_positions({attribute: [int(p) for p in order.index]}, attribute, k, empty_ok=True)


def attribution_first_sweep(tokenizer: Any, data: Any, measurers: Mapping[str, Any], *,
                            attributes: Sequence[str] | None = None, config: Any = None, k: int = 3,
                            pool: int | None = None, attribution: AttributionConfig | None = None,
                            progress: bool = False) -> tuple[Any, AttributionResult]:
    """The discovery step, attribution first: attribution ranks every position on the discovery pairs; real
    swaps on the same pairs test only the top ``k`` of each attribute, and where none of those reaches
    ``config.target``, the next ones up to ``pool`` (default ``config.pool``, the greedy search's pool) so a
    position-set search has the same pool size as after a full sweep. Confirmation
    (:func:`probe.swap.validate`) is the same as after a full sweep.

    Returns ``(discovery SwapResult of the tested cells, AttributionResult of every cell)``; the swap result is
    what :func:`probe.swap.validate` builds on (``sweep_result=``, ``attribution=``).
    """
    from probe.swap.run import SwapConfig, SwapResult, sweep
    from probe.swap.stats import summarize

    cfg = config or SwapConfig()
    attrs = list(attributes or [a for a in measurers if a in data.attributes.columns])
    est = attribution_sweep(tokenizer, data, measurers, attributes=attrs, swap_config=cfg,
                            config=attribution or RANKING, progress=progress)
    common = dict(config=cfg, progress=progress, split="discovery", controls=("none",))
    first = {a: [[p] for p in ranked_positions(est.heatmap, a, k)] for a in attrs}
    sw = sweep(tokenizer, data, measurers, first, attributes=attrs, **common)
    reached = sw.summary.groupby("attribute")["transfer"].max().ge(cfg.target) if len(sw.summary) else pd.Series(
        dtype=bool)
    size = cfg.pool if pool is None else pool
    more = {a: [[p] for p in ranked_positions(est.heatmap, a, size)[k:]] for a in attrs if not reached.get(a, False)}
    more = {a: s for a, s in more.items() if s}
    if more:
        extra = sweep(tokenizer, data, measurers, more, attributes=list(more), **common)
        # the same pairs (same seed per attribute), numbered from 0 again: give them the first run's ids
        shift = (sw.pairs.groupby("attribute")["pair"].min() - extra.pairs.groupby("attribute")["pair"].min()).dropna()
        extra_table = extra.table.copy()
        extra_table["pair"] = extra_table["pair"] + extra_table["attribute"].map(shift).astype(np.int64)
        table = pd.concat([sw.table, extra_table], ignore_index=True)
        for key in ("decoded", "decode_s", "measure_s"):
            table.attrs[key] = sw.table.attrs.get(key, 0) + extra.table.attrs.get(key, 0)
        table.attrs["visibility"] = {**extra.table.attrs.get("visibility", {}), **sw.table.attrs.get("visibility", {})}
        sw = SwapResult(table, summarize(table, cfg.verdict), sw.pairs, cfg)
    return sw, est
