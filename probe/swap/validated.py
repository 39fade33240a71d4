"""The validated semantic map: what swaps confirm, beside what the probes ranked.

From a sweep (every single position x attribute) and the probes' ranking:

- the causal heatmap (positions x attributes of transfer) and the rank agreement per attribute
  (Spearman between probe effect and transfer over positions);
- the disagreement table: attributes whose probe top position is not the causal top;
- per attribute the answer: the best single position when swaps confirm it, else the smallest position
  set the greedy search finds reaching the stated transfer (with its curve), with transfer and
  interval, verdict, specificity and the probe rank the answer had.

:func:`validate` runs it all on swap data and a semantic map; :func:`validate_store` on a token store in one call.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from probe.swap.engine import parse_label
from probe.swap import maps
from probe.swap.run import SwapConfig, SwapData, SwapResult, greedy_set, sweep
from probe.swap.stats import summarize
from probe.tokenizers.base import Tokenizer

if TYPE_CHECKING:
    from probe.measure.base import Measurer
    from probe.swap.maps import PositionMap
    from probe.store import TokenStore


def causal_heatmap(summary: pd.DataFrame) -> pd.DataFrame:
    """Positions (rows) x attributes (columns) of single-position transfer, from a sweep summary."""
    single = summary[summary["set_size"] == 1].copy()
    single["position"] = single["positions"].astype(int)
    return single.pivot(index="position", columns="attribute", values="transfer").sort_index()


def rank_agreement(heat: pd.DataFrame, ranking: pd.DataFrame) -> pd.DataFrame:
    """Per attribute: Spearman correlation between the probe effect and the transfer over positions, and
    the top position of each (``probe_top``, ``causal_top``, ``agree``)."""
    from scipy.stats import spearmanr

    rows = []
    for attr in heat.columns:
        r = ranking[ranking["attribute"] == attr].set_index("position")["effect"]
        c = heat[attr]
        common = c.index.intersection(r.index)
        rho = np.nan
        if len(common) > 2 and np.nanstd(r[common]) > 0 and np.nanstd(c[common]) > 0:
            rho = float(spearmanr(r[common], c[common], nan_policy="omit").statistic)
        probe_top = int(r.idxmax()) if len(r) and r.notna().any() else -1
        causal_top = int(c.idxmax()) if c.notna().any() else -1
        rows.append({"attribute": attr, "spearman": rho, "probe_top": probe_top,
                     "probe_top_transfer": float(c.get(probe_top, np.nan)), "causal_top": causal_top,
                     "causal_top_transfer": float(c.get(causal_top, np.nan)),
                     "causal_top_probe_rank": _rank_of(ranking, attr, causal_top),
                     "agree": probe_top == causal_top})
    return pd.DataFrame(rows)


def _rank_of(ranking: pd.DataFrame, attr: str, position: int) -> float:
    r = ranking[(ranking["attribute"] == attr) & (ranking["position"] == position)]["probe_rank"]
    return float(r.iloc[0]) if len(r) else np.nan


def _disagreements(agreement: pd.DataFrame) -> pd.DataFrame:
    """The attributes whose probe top position is not the causal top (those the probes ranked)."""
    if agreement.empty:
        return agreement
    return agreement[(agreement["probe_top"] >= 0) & ~agreement["agree"].astype(bool)].reset_index(drop=True)


@dataclass
class ValidatedMap:
    """The answer per attribute, with everything behind it.

    Attributes:
        answers: one row per attribute: ``positions`` (the confirmed position or the greedy set),
            ``transfer``, ``ci_low``, ``ci_high``, ``iia``, ``verdict``, ``specificity``,
            ``entangled_with``, ``probe_rank`` (of a single answer position), ``source`` (``single`` /
            ``greedy``); an attribute the probes ranked but no measurer reads, or one left out of ``attributes``, is
            ``untested`` (its ``source`` says which).
        sweep: the sweep's :class:`SwapResult` (``table``: one row per swap x measurer; ``summary``).
        heatmap: positions x attributes of transfer.
        agreement: rank agreement per attribute; ``disagreements``: its rows with probe top != causal top.
        curves: the greedy transfer-vs-set-size curves.
        sets: the summary of the answer sets (controls included) when a set was re-run.
    """

    answers: pd.DataFrame
    sweep: SwapResult
    heatmap: pd.DataFrame
    agreement: pd.DataFrame
    ranking: pd.DataFrame
    curves: pd.DataFrame = field(default_factory=pd.DataFrame)
    sets: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def disagreements(self) -> pd.DataFrame:
        """The attributes whose probe top position is not the causal top (those the probes ranked)."""
        return _disagreements(self.agreement)

    def answer(self, attribute: str, *, accept: tuple[str, ...] = ("confirmed",)) -> list[int]:
        """The validated positions of ``attribute``: its answer when the verdict is in ``accept`` (default:
        confirmed only), else ``[]``."""
        row = self.answers[self.answers["attribute"] == attribute]
        if row.empty or row["verdict"].iloc[0] not in accept:
            return []
        return list(parse_label(row["positions"].iloc[0]))

    def to_dict(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:
            if isinstance(v, (np.generic,)):
                v = v.item()
            if isinstance(v, float) and not np.isfinite(v):
                return None
            return v

        return {
            "thresholds": dict(self.sweep.summary.attrs.get("thresholds", {})),
            "target_transfer": self.sweep.config.target,
            "answers": [{k: clean(v) for k, v in r.items()} for r in self.answers.to_dict("records")],
            "disagreements": [{k: clean(v) for k, v in r.items()} for r in self.disagreements.to_dict("records")],
        }

    def save(self, folder: str | Path, *, figures: bool = True, tables_format: str = "csv") -> dict[str, Path]:
        """Write the tables (``swaps`` one row per swap x measurer; ``mappings`` one per (attribute,
        set); ``validated_map``; ``causal_heatmap``; ``rank_agreement``; ``disagreements``;
        ``greedy_curves``), ``validated_map.json`` and the figures (PNG + SVG)."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        paths: dict[str, Path] = {}

        def table(name: str, df: pd.DataFrame, fmt: str = "csv") -> None:
            p = out / f"{name}.{fmt}"
            if fmt == "parquet":
                df.to_parquet(p, index=False)
            else:
                df.to_csv(p, index=name == "causal_heatmap")
            paths[name] = p

        table("swaps", self.sweep.table, tables_format)
        table("mappings", self.sweep.summary)
        table("validated_map", self.answers)
        table("causal_heatmap", self.heatmap)
        table("rank_agreement", self.agreement)
        table("disagreements", self.disagreements)
        table("pairs", self.sweep.pairs)
        if len(self.curves):
            table("greedy_curves", self.curves)
        if len(self.sets):
            table("answer_sets", self.sets)
        (out / "validated_map.json").write_text(json.dumps(self.to_dict(), indent=2, default=str))
        paths["json"] = out / "validated_map.json"
        if figures:
            from probe.viz.swap import causal_vs_probe_figure, transfer_curve_figure
            from probe.viz.save import save_figure

            fig = causal_vs_probe_figure(self.heatmap, self.ranking, self.answers)
            paths["heatmap_figure"] = save_figure(fig, out / "causal_vs_probe")[0]
            if len(self.curves):
                fig = transfer_curve_figure(self.curves, self.sweep.config.target)
                paths["curve_figure"] = save_figure(fig, out / "greedy_curves")[0]
            import matplotlib.pyplot as plt

            plt.close("all")
        return paths


def build_answers(summary: pd.DataFrame, ranking: pd.DataFrame, curves: pd.DataFrame,
                  sets: pd.DataFrame) -> pd.DataFrame:
    """One row per attribute: the confirmed single position, else the greedy set (see :class:`ValidatedMap`)."""
    rows = []
    single = summary[summary["set_size"] == 1]
    for attr, grp in single.groupby("attribute", sort=False):
        best = grp.sort_values("transfer", ascending=False).iloc[0]
        src = "single"
        pick = best
        if best["verdict"] != "confirmed" and len(curves):
            c = curves[curves["attribute"] == attr]
            hit = c[c["reached"]] if len(c) else c
            if len(hit) and len(sets):
                label = hit.iloc[0]["positions"]
                s = sets[(sets["attribute"] == attr) & (sets["positions"] == label)]
                if len(s):
                    pick, src = s.iloc[0], "greedy"
        keep = ["positions", "set_size", "transfer", "ci_low", "ci_high", "iia", "d_random", "d_same_end",
                "max_off_target", "entangled_with", "verdict", "specificity"]
        row = {"attribute": attr, **{k: pick.get(k, np.nan) for k in keep}, "source": src}
        row["probe_rank"] = (_rank_of(ranking, attr, parse_label(pick["positions"])[0])
                             if int(pick["set_size"]) == 1 else np.nan)
        row["best_single"] = best["positions"]
        row["best_single_transfer"] = best["transfer"]
        rows.append(row)
    return pd.DataFrame(rows)


def validate(tokenizer: Tokenizer, data: SwapData, measurers: Mapping[str, Measurer], semantic_map: PositionMap | None = None, *,
             attributes: Sequence[str] | None = None, config: SwapConfig | None = None, greedy: bool = True,
             progress: bool = True, sweep_result: SwapResult | None = None, k: int | None = None) -> ValidatedMap:
    """Sweep every position for every attribute (or, with ``k``, only the probes' ``k`` candidate positions
    of each: quicker, and the heatmap then holds only those cells), compare with the probes, search sets
    where no single position is confirmed, and assemble the :class:`ValidatedMap`.

    Args:
        semantic_map: the probes' map (anything :func:`probe.swap.maps.top_positions` reads); ``None``: no
            comparison.
        sweep_result: a sweep already run (:func:`probe.swap.sweep`) to build on instead of sweeping again.
        k: test the map's ``k`` candidate positions per attribute first, and sweep the other positions only
            for attributes where none of them is confirmed (default: sweep every position).

    Examples:
        >>> vmap = validate(tok, SwapData.from_store(store, tok), {"lighting": measurer_for("lighting")},
        ...                 result.probes.semantic_map, config=SwapConfig(pairs=64))  # doctest: +SKIP
        >>> vmap.answer("lighting"), vmap.disagreements  # doctest: +SKIP
    """
    cfg = config or SwapConfig()
    if sweep_result is not None:
        sw = sweep_result
    elif k is not None and semantic_map is not None:
        sw = _candidates_then_rest(tokenizer, data, measurers, semantic_map, attributes, cfg, k, progress)
    else:
        sw = sweep(tokenizer, data, measurers, attributes=attributes, config=cfg, progress=progress)
    heat = causal_heatmap(sw.summary)
    ranking = maps.ranking(semantic_map) if semantic_map is not None else pd.DataFrame(
        columns=["attribute", "position", "effect", "probe_rank"])
    agreement = rank_agreement(heat, ranking)
    curves_df, sets_df = (_greedy_sets(tokenizer, data, measurers, sw, list(heat.columns), cfg, progress)
                          if greedy else (pd.DataFrame(), pd.DataFrame()))
    answers = build_answers(sw.summary, ranking, curves_df, sets_df)
    answers = _with_untested(answers, ranking, attributes, measurers)
    return ValidatedMap(answers, sw, heat, agreement, ranking, curves_df, sets_df)


def _candidates_then_rest(tokenizer: Tokenizer, data: SwapData, measurers: Mapping[str, Measurer],
                          semantic_map: PositionMap, attributes: Sequence[str] | None, cfg: SwapConfig, k: int,
                          progress: bool) -> SwapResult:
    """The map's ``k`` candidates of every attribute; the other positions where none of them is confirmed."""
    attrs = list(attributes or [a for a in measurers if a in data.attributes.columns])
    sets = {a: [[p] for p in maps.top_positions(semantic_map, a, k, empty_ok=True)] for a in attrs}
    sw = sweep(tokenizer, data, measurers, sets, attributes=attrs, config=cfg, progress=progress)
    # where no candidate is confirmed, the probes' ranking was not the answer: sweep the other positions
    done = sw.summary.groupby("attribute")["verdict"].apply(lambda v: (v == "confirmed").any()) \
        if len(sw.summary) else pd.Series(dtype=bool)
    rest = {a: [[p] for p in range(int(data.quantized.shape[1])) if [p] not in sets[a]]
            for a in attrs if not done.get(a, False)}
    if not any(rest.values()):
        return sw
    more = sweep(tokenizer, data, measurers, rest, attributes=[a for a in attrs if rest.get(a)], config=cfg,
                 progress=progress)
    table = pd.concat([sw.table, more.table], ignore_index=True)
    return SwapResult(table, summarize(table, cfg.verdict), sw.pairs, cfg)


def _greedy_sets(tokenizer: Tokenizer, data: SwapData, measurers: Mapping[str, Measurer], sw: SwapResult,
                 attributes: list[str], cfg: SwapConfig, progress: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Greedy curves of the attributes with no confirmed single position, and the summary (controls included) of
    each set that reached the target."""
    curves, sets = [], []
    for attr in attributes:
        s = sw.summary[(sw.summary["attribute"] == attr) & (sw.summary["set_size"] == 1)]
        if s.empty or (s["verdict"] == "confirmed").any():
            continue
        c = greedy_set(tokenizer, data, measurers, attr, s, config=cfg, progress=progress)
        if c.empty:
            continue
        curves.append(c)
        hit = c[c["reached"]]
        if len(hit) and int(hit.iloc[0]["set_size"]) > 1:
            best = list(parse_label(hit.iloc[0]["positions"]))
            res = sweep(tokenizer, data, measurers, best, attributes=[attr], config=cfg, progress=progress)
            sets.append(res.summary)
    return (pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(),
            pd.concat(sets, ignore_index=True) if sets else pd.DataFrame())


def _with_untested(answers: pd.DataFrame, ranking: pd.DataFrame, attributes: Sequence[str] | None,
                   measurers: Mapping[str, Measurer]) -> pd.DataFrame:
    """Rows for the attributes the probes ranked but nothing measured (the world's never-rendered null factor),
    saying why: nothing measures it, or it has a (default) measurer but was left out of the attributes asked for."""
    from probe import worlds

    untested = [a for a in ranking["attribute"].unique() if a not in set(answers["attribute"])
                and (attributes is None or a in attributes or a not in measurers)]
    if not untested:
        return answers

    def has_default(a: str) -> bool:
        try:
            return worlds.default_measurer(a) is not None
        except KeyError:  # worlds disagree on it: it has defaults
            return True

    extra = pd.DataFrame([{"attribute": a, "verdict": "untested", "specificity": "",
                           "source": "not selected" if a in measurers or has_default(a) else "no measurer"}
                          for a in untested])
    return pd.concat([answers, extra], ignore_index=True)


def validate_store(store: TokenStore | str | Path, tokenizer: Tokenizer | None = None, *,
                   semantic_map: PositionMap | None = None, attributes: Sequence[str] | None = None,
                   measurers: Mapping[str, Measurer] | None = None, config: SwapConfig | None = None,
                   k: int | None = None, greedy: bool = True, progress: bool = True) -> ValidatedMap:
    """The validated semantic map of a token store, in one call (:func:`validate` on the store's tokens).

    Args:
        store: a :class:`probe.store.TokenStore` (or a path to one).
        tokenizer: the tokenizer that made it (default: the shipped model whose config the header records).
        semantic_map: the probes' map (a ``SemanticMap``, or a probe table); ``None``: no comparison.
        attributes: the attributes to draw pairs for (default: every one with a measurer); every swap is
            measured on all attributes that have a measurer (the side effects).
        measurers: attribute -> measurer (default: the store's world's, :func:`probe.measure.measurer_for`).
        k: test the probes' ``k`` candidate positions per attribute first, and sweep the other positions only
            for attributes where none of them is confirmed (default: sweep every position).

    Examples:
        The demo's lighting answer:

        >>> from probe.swap import SwapConfig, validate_store
        >>> vmap = validate_store(result.store, semantic_map=result.probes.semantic_map, attributes=["lighting"],
        ...                       k=3, config=SwapConfig(pairs=64, control_pairs=16))  # doctest: +SKIP
        >>> vmap.answer("lighting")  # doctest: +SKIP
        [26]
    """
    from probe.store import TokenStore

    if isinstance(store, (str, Path)):
        store = TokenStore.open(store)
    tokenizer = tokenizer if tokenizer is not None else tokenizer_of(store)
    measurers = dict(measurers) if measurers is not None else default_measurers(store)
    if attributes is not None:
        lacking = [a for a in attributes if a not in measurers]
        if lacking:
            measurers |= default_measurers(store, lacking)
    data = SwapData.from_store(store, tokenizer)
    attrs = list(attributes) if attributes is not None else [a for a in measurers if a in data.attributes.columns]
    return validate(tokenizer, data, measurers, semantic_map, attributes=attrs, config=config, greedy=greedy,
                    progress=progress, k=k)


def tokenizer_of(store: TokenStore) -> Tokenizer:
    """Load the tokenizer a store was made with: a shipped model whose config matches the header's, else
    the header's ``tokenizer_id`` as a :func:`probe.load_tokenizer` spec."""
    import probe
    from probe import zoo

    info = store.tokenizer
    for name in zoo.available():
        cfg = zoo.config(name)
        if cfg.get("kind") == "tokenizer" and cfg.get("config") == info.get("config"):
            return probe.load_tokenizer(name)
    spec = store.header.get("tokenizer_id")
    if not spec:
        raise ValueError(f"store {store.path}: its header names no tokenizer to load; pass tokenizer=")
    try:
        return probe.load_tokenizer(spec)
    except Exception as exc:  # loading raises several types; the user needs one line
        raise ValueError(f"store {store.path}: cannot load its tokenizer {spec!r} ({exc}); pass tokenizer= "
                         f"(or --tokenizer)") from exc


def default_measurers(store: TokenStore, attributes: Sequence[str] | None = None) -> dict[str, Measurer]:
    """attribute -> ``probe.measure.measurer_for(attribute, world=<the store's world>)`` for each attribute that
    has a default."""
    from probe import worlds
    from probe.measure import measurer_for

    world = worlds.of_store(store)
    names = list(attributes) if attributes is not None else [
        c for c in store.attributes.columns if c not in ("index", "ref") and not str(c).endswith("_bin")]
    out = {}
    for a in names:
        try:
            out[a] = measurer_for(a, world=world)
        except (KeyError, ValueError) as exc:
            if attributes is not None:  # asked for by name: say which one has no measurer
                raise ValueError(f"attribute {a!r}: {exc.args[0] if exc.args else exc}") from exc
    return out


def grid_images(tokenizer: Tokenizer, data: SwapData, pairs: pd.DataFrame, positions: Sequence[int], *, n: int = 6,
                seed: int = 0) -> dict[str, Any]:
    """Decoded images of the first ``n`` pairs: recipient | donor | swapped | controls (random other
    position set of the same size, same-end donor, all positions except the tested ones), each ``[n, 3, H, W]``."""
    import torch

    from probe.tokenizers.base import paste_tokens

    p = pairs.head(n)
    q = data.quantized
    rec = q[torch.as_tensor(p["recipient"].to_numpy().copy())]
    don = q[torch.as_tensor(p["donor"].to_numpy().copy())]
    same = q[torch.as_tensor(p["same_end_donor"].to_numpy().copy())]
    n_tok = q.shape[1]
    rng = np.random.default_rng(seed)
    others = [i for i in range(n_tok) if i not in set(positions)]
    rand = sorted(rng.choice(others, len(positions), replace=False).tolist()) if len(others) >= len(positions) else []
    cols = {"recipient": rec, "donor": don, f"swapped @{'+'.join(map(str, positions))}": paste_tokens(rec, don, positions)}
    if rand:
        cols[f"random @{'+'.join(map(str, rand))}"] = paste_tokens(rec, don, rand)
    cols["same-end donor"] = paste_tokens(rec, same, positions)
    if others:
        cols["all except"] = paste_tokens(rec, don, others)
    with torch.no_grad():
        return {k: tokenizer.decode(v) for k, v in cols.items()}
