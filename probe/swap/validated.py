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

from probe.progress import StageBar, stage_of
from probe.swap.engine import Shard, parse_label
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
        answers: one row per attribute: ``positions`` (the best single position or the greedy set, whichever
            the confirmation pairs give the better verdict), ``source`` (``single`` / ``greedy``), the
            confirmation numbers (:data:`CONFIRMATION_COLUMNS`: ``transfer``, ``ci_low``, ``ci_high``,
            ``ci_low_adj`` (family-wise), ``family_size``, ``n_pairs``, the controls' movements, ``gated_by``,
            ``failed``, ``verdict``, ...), the attribute's ``visibility`` / ``visible_p`` / ``kept``, and the
            discovery numbers that selected it (:data:`DISCOVERY_COLUMNS`); ``probe_rank`` of a single answer
            position. An attribute the probes ranked but no measurer reads, or one left out of ``attributes``, is
            ``untested`` (its ``source`` says which).
        sweep: the discovery sweep's :class:`SwapResult` (``table``: one row per swap x measurer; ``summary``).
        heatmap: positions x attributes of transfer (discovery pairs).
        agreement: rank agreement per attribute; ``disagreements``: its rows with probe top != causal top.
        curves: the greedy transfer-vs-set-size curves (discovery pairs).
        sets: the confirmation summary: every mapping of every family, controls included.
        confirmation: the confirmation sweep's :class:`SwapResult`.
        mode: how the discovery step found positions: ``"exhaustive"`` (every single position swapped),
            ``"attribution"`` (attribution ranked every position on the discovery pairs, real swaps tested the top
            ones: the heatmap holds only those cells), ``"candidates"`` (the probes' candidates first) or ``"given"``.
        attribution: the attribution estimate of every cell on the discovery pairs
            (:class:`probe.swap.attribution.AttributionResult`) when one was made; ``attribution_agreement``: its
            agreement with the causal heatmap (exhaustive mode only: elsewhere the heatmap holds too few cells).
    """

    answers: pd.DataFrame
    sweep: SwapResult
    heatmap: pd.DataFrame
    agreement: pd.DataFrame
    ranking: pd.DataFrame
    curves: pd.DataFrame = field(default_factory=pd.DataFrame)
    sets: pd.DataFrame = field(default_factory=pd.DataFrame)
    confirmation: SwapResult | None = None
    mode: str = "exhaustive"
    attribution: Any = None

    @property
    def attribution_agreement(self) -> pd.DataFrame:
        """Per attribute: estimated vs real transfer over positions (:func:`probe.swap.attribution.agreement`)."""
        if self.attribution is None or self.mode != "exhaustive":
            return pd.DataFrame()
        from probe.swap.attribution import agreement

        return agreement(self.attribution.heatmap, self.heatmap)

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

        cfg = self.sweep.config
        return {
            "rule": cfg.verdict.text(),
            "numbers": SOURCES_TEXT,
            "discovery_pairs": cfg.discovery_pairs,
            "confirmation_pairs": cfg.pairs,
            "thresholds": cfg.verdict.to_dict(),
            "target_transfer": cfg.target,
            "mode": self.mode,
            "answers": [{k: clean(v) for k, v in r.items()} for r in self.answers.to_dict("records")],
            "disagreements": [{k: clean(v) for k, v in r.items()} for r in self.disagreements.to_dict("records")],
        }

    def save(self, folder: str | Path, *, figures: bool = True, tables_format: str = "csv") -> dict[str, Path]:
        """Write the tables (``swaps`` one row per swap x measurer and ``mappings`` one per (attribute, set), both
        with a ``split`` column (discovery / confirmation); ``validated_map``; ``causal_heatmap``;
        ``rank_agreement``; ``disagreements``; ``pairs``; ``greedy_curves``), ``validated_map.json`` (with the
        verdict rule and which numbers come from which pairs) and the figures (PNG + SVG)."""
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

        conf = self.confirmation
        both = [self.sweep] + ([conf] if conf is not None else [])
        table("swaps", pd.concat([r.table for r in both], ignore_index=True), tables_format)
        table("mappings", pd.concat([r.summary for r in both], ignore_index=True))
        table("validated_map", self.answers)
        table("causal_heatmap", self.heatmap)
        table("rank_agreement", self.agreement)
        table("disagreements", self.disagreements)
        table("pairs", pd.concat([r.pairs for r in both], ignore_index=True))
        if len(self.curves):
            table("greedy_curves", self.curves)
        if self.attribution is not None:
            table("attribution_heatmap", self.attribution.heatmap.reset_index())
            if len(self.attribution_agreement):
                table("attribution_agreement", self.attribution_agreement)
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
            if self.attribution is not None:
                from probe.viz.attribution import attribution_vs_causal_figure

                full = self.mode == "exhaustive"
                fig = attribution_vs_causal_figure(self.attribution.heatmap, self.heatmap if full else None,
                                                   self.attribution_agreement if full else None)
                paths["attribution_figure"] = save_figure(fig, out / "attribution_vs_causal")[0]
            import matplotlib.pyplot as plt

            plt.close("all")
        return paths


#: the columns of the validated map read from the confirmation pairs (the rest: from the discovery pairs)
CONFIRMATION_COLUMNS = ("transfer", "ci_low", "ci_high", "ci_low_adj", "family_size", "n_pairs", "iia",
                        "random_position", "same_end", "all_except", "swap_back", "self", "gated_by", "failed",
                        "verdict", "max_off_target", "entangled_with", "specificity")
#: the columns of the validated map that come from the discovery pairs (selection only)
DISCOVERY_COLUMNS = ("discovery_pairs", "discovery_transfer", "best_single", "best_single_transfer", "source")
#: what the validated map's numbers came from, as written beside it
SOURCES_TEXT = ("selection (best_single, best_single_transfer, the greedy set, discovery_transfer) on the "
                "discovery pairs; transfer, intervals, controls and verdict (" + ", ".join(CONFIRMATION_COLUMNS)
                + ") on the confirmation pairs (n_pairs), which share no image with them; visibility, visible_p "
                "and kept on the images of both")


def build_answers(confirmation: pd.DataFrame, discovery: pd.DataFrame, ranking: pd.DataFrame,
                  curves: pd.DataFrame) -> pd.DataFrame:
    """One row per attribute: the best verdict among its family on the confirmation pairs (ties: the smaller
    set), with the discovery numbers that selected it (see :class:`ValidatedMap`)."""
    from probe.swap.verdict import VERDICTS

    order = {v: i for i, v in enumerate(VERDICTS)}
    rows = []
    single = discovery[discovery["set_size"] == 1]
    for attr, grp in confirmation.groupby("attribute", sort=False):
        pick = grp.assign(_o=grp["verdict"].map(order)).sort_values(["_o", "set_size"], kind="stable").iloc[0]
        best = single[single["attribute"] == attr].sort_values("transfer", ascending=False)
        label = str(pick["positions"])
        src = "single" if int(pick["set_size"]) == 1 else "greedy"
        row = {"attribute": attr, "positions": label, "set_size": int(pick["set_size"]), "source": src,
               **{k: pick.get(k, np.nan) for k in CONFIRMATION_COLUMNS}}
        row.update(visibility=pick.get("visibility", ""), visible_p=pick.get("visible_p", np.nan),
                   kept=pick.get("kept", np.nan))
        disc = discovery[(discovery["attribute"] == attr) & (discovery["positions"] == label)]
        c = curves[(curves["attribute"] == attr) & (curves["positions"] == label)] if len(curves) else curves
        row["discovery_transfer"] = (float(disc["transfer"].iloc[0]) if len(disc)
                                     else float(c["transfer"].iloc[0]) if len(c) else np.nan)
        row["discovery_pairs"] = (int(disc["n_pairs"].iloc[0]) if len(disc) else
                                  int(c["n_pairs"].iloc[0]) if len(c) and "n_pairs" in c else np.nan)
        row["probe_rank"] = _rank_of(ranking, attr, parse_label(label)[0]) if src == "single" else np.nan
        row["best_single"] = best["positions"].iloc[0] if len(best) else ""
        row["best_single_transfer"] = float(best["transfer"].iloc[0]) if len(best) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def validate(tokenizer: Tokenizer, data: SwapData, measurers: Mapping[str, Measurer], semantic_map: PositionMap | None = None, *,
             attributes: Sequence[str] | None = None, config: SwapConfig | None = None, greedy: bool = True,
             progress: bool | StageBar = True, sweep_result: SwapResult | None = None, k: int | None = None,
             estimate: bool = False, attribution: Any = None, shard: Shard | None = None) -> ValidatedMap:
    """Select on discovery pairs, confirm on confirmation pairs, and assemble the :class:`ValidatedMap`.

    1. discovery: sweep every position for every attribute (or, with ``k``, the probes' ``k`` candidate positions
       first and the rest only where none of them reaches the target) -> the causal heatmap, the rank agreement
       with the probes, each attribute's best single position;
    2. discovery: where the best single position moves less than ``config.target``, the greedy search for the
       smallest set that reaches it;
    3. confirmation: the best single position and the greedy set, with the controls, on pairs that share no
       image with the discovery pairs; verdicts family-wise over them (:mod:`probe.swap.verdict`).

    Args:
        semantic_map: the probes' map (anything :func:`probe.swap.maps.top_positions` reads); ``None``: no
            comparison.
        sweep_result: a discovery sweep already run (``sweep(..., split="discovery")``) to build on.
        k: test the map's ``k`` candidate positions per attribute first (see 1.); without it, ``config.mode``
            says whether 1. swaps every position or attribution first (:class:`SwapConfig`).
        estimate: also make the attribution estimate of every cell (discovery pairs) in the exhaustive mode (the
            attribution mode always has it), so the map holds both heatmaps and their agreement.
        attribution: an attribution estimate already made for ``sweep_result``
            (:func:`probe.swap.attribution.attribution_first_sweep`): the map carries it.
        progress: bars of each loop's own (``True``), none, or one :class:`probe.progress.StageBar` for all of it
            (``True`` makes one, labelled ``swap``).
        shard: under ``torchrun``, this rank's share of every sweep, greedy step and confirmation
            (:class:`probe.swap.engine.Shard`); every rank returns the same map (all ranks call it alike).

    Examples:
        >>> vmap = validate(tok, SwapData.from_store(store, tok), {"lighting": measurer_for("lighting")},
        ...                 result.probes.semantic_map, config=SwapConfig(pairs=64))  # doctest: +SKIP
        >>> vmap.answer("lighting"), vmap.disagreements  # doctest: +SKIP
    """
    from probe.swap import attribution as atp

    cfg = config or SwapConfig()
    if progress is True:  # one bar for the whole validation, not one per batch of decodes
        with StageBar("swap") as bar:
            return validate(tokenizer, data, measurers, semantic_map, attributes=attributes, config=cfg,
                            greedy=greedy, progress=bar, sweep_result=sweep_result, k=k, estimate=estimate,
                            attribution=attribution, shard=shard)
    stage = stage_of(progress)
    if stage is not None and sweep_result is None:  # with a sweep given, its caller told the stage
        expect_validation(stage, data, measurers, attributes, cfg, shard, sweep=True)
        stage.phase("discovery")
    est = attribution
    if sweep_result is not None:
        sw, mode = sweep_result, "given"
    elif k is not None and semantic_map is not None:
        sw = _candidates_then_rest(tokenizer, data, measurers, semantic_map, attributes, cfg, k, progress, shard)
        mode = "candidates"
    elif atp.resolve_mode(cfg.mode, measurers, attributes, data) == "attribution":
        sw, est = atp.attribution_first_sweep(tokenizer, data, measurers, attributes=attributes, config=cfg,
                                              k=cfg.first_k, progress=progress)
        mode = "attribution"
    else:
        sw = sweep(tokenizer, data, measurers, attributes=attributes, config=cfg, progress=progress,
                   split="discovery", controls=DISCOVERY_CONTROLS, shard=shard)
        mode = "exhaustive"
    if mode == "given":  # a full sweep of single positions is the exhaustive mode
        n_tok = int(data.quantized.shape[1])
        single = sw.summary[sw.summary["set_size"] == 1] if len(sw.summary) else sw.summary
        full = len(single) and (single.groupby("attribute")["positions"].nunique() == n_tok).all()
        mode = "exhaustive" if full else "attribution" if est is not None else "given"
    if estimate and est is None and atp.resolve_mode("auto", measurers, attributes, data) == "attribution":
        try:  # an extra beside the real swaps: a measurer that is not what it declares costs the estimate only
            est = atp.attribution_sweep(tokenizer, data, measurers, attributes=attributes, swap_config=cfg,
                                        config=atp.RANKING, progress=progress)
        except atp.NotDifferentiableError as exc:
            import warnings

            warnings.warn(f"no attribution estimate: {exc}", stacklevel=2)
    heat = causal_heatmap(sw.summary)
    ranking = maps.ranking(semantic_map) if semantic_map is not None else pd.DataFrame(
        columns=["attribute", "position", "effect", "probe_rank"])
    agreement = rank_agreement(heat, ranking)
    if stage is not None:
        stage.settle("discovery")
        stage.phase("greedy sets")
    family, curves = _families(tokenizer, data, measurers, sw, list(heat.columns), cfg, greedy, progress, shard)
    if stage is not None:
        stage.settle("greedy sets")
        stage.phase("confirmation")
    conf = sweep(tokenizer, data, measurers, family, attributes=list(family), config=cfg, progress=progress,
                 shard=shard)
    answers = build_answers(conf.summary, sw.summary, ranking, curves)
    answers = _with_untested(answers, ranking, attributes, measurers)
    return ValidatedMap(answers, sw, heat, agreement, ranking, curves, conf.summary, conf, mode, est)


#: the discovery sweep ranks positions: the tested swap, and the random-position control a full sweep holds free
DISCOVERY_CONTROLS = ("none", "random_position")


def expect_validation(stage: StageBar, data: SwapData, measurers: Mapping[str, Measurer],
                      attributes: Sequence[str] | None, cfg: SwapConfig, shard: Shard | None, *, sweep: bool) -> None:
    """Tell ``stage`` the decodes a validation is expected to make, before it starts: the discovery sweep of every
    position (when ``sweep``), and a confirmation of one set per attribute. Estimates: the greedy searches are
    claimed as they go, and a phase that makes fewer decodes settles the rest (:class:`probe.progress.StageBar`)."""
    from probe.swap.engine import patch_decodes

    attrs = list(attributes or [a for a in measurers if a in data.attributes.columns])
    share = 1.0 / (shard.world_size if shard is not None else 1)
    n_tok = int(data.quantized.shape[1])
    if sweep:
        per = patch_decodes(int(cfg.discovery_pairs * share), n_tok, DISCOVERY_CONTROLS, full_sweep=True)
        stage.expect("discovery", len(attrs) * per)
    heads = min(cfg.control_pairs or cfg.pairs, cfg.pairs)
    per = (patch_decodes(int(cfg.pairs * share), 1, ("none",))
           + patch_decodes(int(heads * share), 1, tuple(c for c in cfg.controls if c != "none")))
    stage.expect("confirmation", len(attrs) * per)


def _candidates_then_rest(tokenizer: Tokenizer, data: SwapData, measurers: Mapping[str, Measurer],
                          semantic_map: PositionMap, attributes: Sequence[str] | None, cfg: SwapConfig, k: int,
                          progress: bool | StageBar, shard: Shard | None = None) -> SwapResult:
    """On discovery pairs: the map's ``k`` candidates of every attribute; the other positions where none of them
    reaches the target transfer."""
    attrs = list(attributes or [a for a in measurers if a in data.attributes.columns])
    sets = {a: [[p] for p in maps.top_positions(semantic_map, a, k, empty_ok=True)] for a in attrs}
    common = dict(config=cfg, progress=progress, split="discovery", controls=("none",), shard=shard)
    sw = sweep(tokenizer, data, measurers, sets, attributes=attrs, **common)
    done = sw.summary.groupby("attribute")["transfer"].max().ge(cfg.target) if len(sw.summary) else pd.Series(
        dtype=bool)
    rest = {a: [[p] for p in range(int(data.quantized.shape[1])) if [p] not in sets[a]]
            for a in attrs if not done.get(a, False)}
    if not any(rest.values()):
        return sw
    more = sweep(tokenizer, data, measurers, rest, attributes=[a for a in attrs if rest.get(a)], **common)
    table = pd.concat([sw.table, more.table], ignore_index=True)
    table.attrs.update(visibility={**sw.table.attrs.get("visibility", {}), **more.table.attrs.get("visibility", {})})
    pairs = pd.concat([sw.pairs, more.pairs], ignore_index=True).drop_duplicates("pair")
    return SwapResult(table, summarize(table, cfg.verdict), pairs, cfg)


def _families(tokenizer: Tokenizer, data: SwapData, measurers: Mapping[str, Measurer], sw: SwapResult,
              attributes: list[str], cfg: SwapConfig, greedy: bool, progress: bool | StageBar,
              shard: Shard | None = None) -> tuple[dict[str, list[list[int]]], pd.DataFrame]:
    """Per attribute the mappings to confirm (the best single position of the discovery sweep; the greedy set
    where the search reached the target with more than one position) and the greedy curves."""
    family: dict[str, list[list[int]]] = {}
    curves = []
    for attr in attributes:
        s = sw.summary[(sw.summary["attribute"] == attr) & (sw.summary["set_size"] == 1)]
        if s.empty:
            continue
        best = s.sort_values("transfer", ascending=False).iloc[0]
        family[attr] = [list(parse_label(best["positions"]))]
        if not greedy or best["transfer"] >= cfg.target:
            continue
        if (stage := stage_of(progress)) is not None:
            stage.detail(attr)
        c = greedy_set(tokenizer, data, measurers, attr, s, config=cfg, progress=progress, shard=shard)
        if c.empty:
            continue
        curves.append(c)
        hit = c[c["reached"]]
        if len(hit) and int(hit.iloc[0]["set_size"]) > 1:
            family[attr].append(list(parse_label(hit.iloc[0]["positions"])))
    return family, (pd.concat(curves, ignore_index=True) if curves else pd.DataFrame())


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
    """Load the tokenizer a store was made with: the shipped model its header's ``tokenizer_id`` names, else the
    shipped model whose config matches the header's (several share one architecture: the one whose codebook is
    the store's), else ``tokenizer_id`` as a :func:`probe.load_tokenizer` spec."""
    import probe
    from probe import zoo

    info = store.tokenizer
    spec = store.header.get("tokenizer_id")
    if spec in zoo.available():  # the header names the shipped model: models of one architecture share configs
        return probe.load_tokenizer(spec)
    same = [name for name in zoo.available()
            if zoo.config(name).get("kind") == "tokenizer" and zoo.config(name).get("config") == info.get("config")]
    if len(same) == 1:
        return probe.load_tokenizer(same[0])
    book = store.codebook
    if len(same) > 1 and book is not None:  # one architecture, several models: the store's codebook tells which
        for name in same:
            tok = probe.load_tokenizer(name)
            cb = tok.codebook.detach().cpu().numpy()
            if cb.shape == book.shape and np.allclose(cb, book, atol=1e-6):
                return tok
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
