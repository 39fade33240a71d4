"""Swap validation of a store, in one process or sharded over ``torchrun`` ranks, written to a folder.

:func:`validate_and_write` is the one place that runs the swaps of a validation (every position, or the probes'
candidates), shards them over ranks, merges the shards on rank 0 and writes the tables, the figures, the image
grids of the confirmed mappings and ``config.json``. The ``tokenprobe swap`` command and the pipeline's swap
stage both call it.

Sharding: pair ``m`` belongs to rank ``m % world_size`` (:class:`probe.swap.engine.Shard`); every random choice
is drawn for all pairs before sharding, so the merged table equals one process's table. Every sweep of the
validation is sharded so: the discovery sweep, each step of the greedy set search, the confirmation. After each,
the ranks exchange their tables (:meth:`probe.swap.engine.Shard.gather`, an all-gather), so every rank makes the
same selections from the same merged numbers; rank 0 writes the outputs, the other ranks return ``None``.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from probe.errors import UsageError
from probe.swap.attribution import attribution_first_sweep, resolve_mode
from probe.progress import StageBar, stage_of
from probe.swap.engine import Shard, parse_label
from probe.swap.maps import candidate_sets
from probe.swap.run import SwapConfig, SwapData, SwapResult, sweep
from probe.swap.validated import DISCOVERY_CONTROLS, ValidatedMap, expect_validation, grid_images, validate
from probe.swap.verdict import VERDICTS

#: columns of the answers table when no mapping was tested
_ANSWER_COLUMNS = ["attribute", "positions", "transfer", "verdict", "source"]


@dataclass
class SwapOutputs:
    """What :func:`validate_and_write` measured and wrote (on rank 0).

    Attributes:
        result: the merged swaps (``table``, ``summary``: one row per (attribute, position set), ``pairs``).
        answers: one row per attribute: the validated map's answers (sweep), or the best tested set (candidates).
        vmap: the validated map (sweep only).
        paths: name -> file written.
    """

    result: SwapResult
    answers: pd.DataFrame
    vmap: ValidatedMap | None = None
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def confirmed(self) -> pd.DataFrame:
        """The confirmed answers, one row per attribute (positions as labels, e.g. ``"9+21"``)."""
        a = self.answers
        return a[a["verdict"] == "confirmed"].drop_duplicates("attribute") if len(a) else a


def validate_and_write(tokenizer: Any, data: SwapData, measurers: Mapping[str, Any], semantic_map: Any,
                       out: str | Path, *, attributes: Sequence[str], config: SwapConfig,
                       candidates: int | None = None, greedy: bool = True, figures: bool = True, grids: int = 0,
                       tables_format: str = "csv", progress: bool | StageBar = True, shard: Shard | None = None,
                       record: Mapping[str, Any] | None = None, estimate: bool = False) -> SwapOutputs | None:
    """Validate ``semantic_map`` by swaps and write everything under ``out``.

    Args:
        data: the store's tokens as code vectors ``[M, N, C]`` with its attributes (and masks).
        measurers: attribute -> measurer; every swap is measured by all of them (the side effects).
        semantic_map: the probes' map (or ``None`` with a sweep: no comparison).
        attributes: the attributes pairs are drawn for.
        candidates: ``None``: sweep every single position on the discovery pairs (the causal heatmap,
            disagreements, greedy sets) and confirm each attribute's selection on the confirmation pairs (the
            validated map, :func:`probe.swap.validate`); ``k``: only the map's ``k`` candidate positions per
            attribute, one at a time and together, on the confirmation pairs.
        greedy: with a sweep, search the smallest set reaching ``config.target`` where the best single position
            moves less.
        figures: draw the figures (PNG + SVG) of the validated map.
        grids: pairs per image grid of a confirmed mapping (0: none).
        tables_format: ``csv`` or ``parquet`` for the large per-swap table.
        progress: one bar for all of it (``True``; labelled ``swap``, drawn on rank 0), none, or a stage's
            :class:`probe.progress.StageBar` to feed.
        shard: this process's shard (default: from the ``torchrun`` environment).
        record: extra entries of ``config.json``.
        estimate: with every position swapped, also the attribution estimate of every cell (when every tested
            measurer is differentiable): ``attribution_heatmap.csv``, ``attribution_agreement.csv`` and the
            figure ``attribution_vs_causal`` beside the causal heatmap (attribution first always has the estimate).

    Returns:
        :class:`SwapOutputs` on rank 0, ``None`` on the other ranks.
    """
    out = Path(out)
    shard = shard or Shard.from_env()
    out.mkdir(parents=True, exist_ok=True)
    own_bar = progress is True
    bar = StageBar("swap", enabled=bool(progress) and shard.rank == 0) if own_bar else progress
    try:
        outputs = _validate(tokenizer, data, measurers, semantic_map, out, attributes=attributes, config=config,
                            candidates=candidates, greedy=greedy, figures=figures, tables_format=tables_format,
                            progress=bar, shard=shard, estimate=estimate)
    finally:
        if own_bar:
            bar.close()
        _leave(shard)
    if outputs is None:
        return None
    if figures and grids > 0:
        outputs.paths |= write_grids(tokenizer, data, outputs, out / "grids", n=grids, seed=config.seed)
    outputs.paths["config"] = _write_config(out, config, attributes, measurers, shard, record)
    return outputs


def _validate(tokenizer: Any, data: SwapData, measurers: Mapping[str, Any], semantic_map: Any, out: Path, *,
              attributes: Sequence[str], config: SwapConfig, candidates: int | None, greedy: bool, figures: bool,
              tables_format: str, progress: Any, shard: Shard, estimate: bool) -> SwapOutputs | None:
    """The swaps of :func:`validate_and_write` (every rank), and its tables and figures (rank 0)."""
    made = None  # the attribution estimate of attribution first
    stage = stage_of(progress)
    if candidates is None and _mode(config, measurers, attributes, data, shard) == "attribution":
        # attribution ranks every position, real swaps test the top ones (one process: nothing to shard)
        if stage is not None:
            stage.phase("attribution first")
        res, made = attribution_first_sweep(tokenizer, data, measurers, attributes=attributes, config=config,
                                            k=config.first_k, progress=progress)
    elif candidates is None:  # select on the discovery pairs; validate() confirms on the confirmation pairs
        if stage is not None:
            expect_validation(stage, data, measurers, attributes, config, shard, sweep=True)
            stage.phase("discovery")
        res = sweep(tokenizer, data, measurers, attributes=attributes, config=config, shard=shard,
                    progress=progress, split="discovery", controls=DISCOVERY_CONTROLS)
    else:  # the probes selected the candidates: they are measured on the confirmation pairs directly
        if stage is not None:
            stage.phase("candidates")
        res = sweep(tokenizer, data, measurers, candidate_sets(semantic_map, attributes, candidates),
                    attributes=attributes, config=config, shard=shard, progress=progress)
    if candidates is not None:
        return _write_candidates(res, out, tables_format) if shard.rank == 0 else None
    # every rank selects from the same merged numbers and shares the greedy steps and the confirmation
    vmap = validate(tokenizer, data, measurers, semantic_map, attributes=attributes, config=config,
                    greedy=greedy, progress=progress, sweep_result=res, attribution=made,
                    estimate=estimate and made is None and shard.rank == 0, shard=shard)
    if shard.rank != 0:
        return None
    return SwapOutputs(res, vmap.answers, vmap, vmap.save(out, figures=figures, tables_format=tables_format))


def rank_device(device: str | None) -> str | None:
    """The device of this process: under ``torchrun`` each rank takes its own GPU (``cuda:LOCAL_RANK``) when the
    device is CUDA (asked for, or picked automatically); otherwise ``device`` unchanged."""
    import os

    import torch

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return device
    cuda = device in ("cuda", None) and torch.cuda.is_available()
    return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if cuda else device


def _mode(config: SwapConfig, measurers: Mapping[str, Any], attributes: Sequence[str], data: SwapData,
          shard: Shard) -> str:
    """``config.mode`` resolved (:func:`probe.swap.attribution.resolve_mode`); under torchrun ``auto`` sweeps every
    position (the sharded work), and ``attribution`` is refused."""
    mode = resolve_mode(config.mode, measurers, attributes, data)
    if mode == "attribution" and shard.world_size > 1:
        if config.mode == "attribution":
            raise UsageError("swap mode 'attribution' runs in one process; under torchrun sweep every position "
                             "(tokenprobe swap --sweep, or swap mode 'exhaustive')")
        return "exhaustive"
    return mode


def _leave(shard: Shard) -> None:
    """Under ``torchrun``: wait for every rank, then close the process group the sweeps opened."""
    if shard.world_size <= 1:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _write_candidates(res: SwapResult, out: Path, tables_format: str) -> SwapOutputs:
    """The candidates' tables; each attribute's answer is its best tested set."""
    paths = {"mappings": out / "mappings.csv", "swaps": out / f"swaps.{tables_format}", "pairs": out / "pairs.csv",
             "validated_map": out / "validated_map.csv"}
    res.summary.to_csv(paths["mappings"], index=False)
    if tables_format == "parquet":
        res.table.to_parquet(paths["swaps"], index=False)
    else:
        res.table.to_csv(paths["swaps"], index=False)
    res.pairs.to_csv(paths["pairs"], index=False)
    if res.summary.empty:
        answers = pd.DataFrame(columns=_ANSWER_COLUMNS)
    else:  # the best verdict, then the largest transfer
        order = res.summary["verdict"].map({v: i for i, v in enumerate(VERDICTS)})
        answers = (res.summary.assign(_o=order).sort_values(["_o", "transfer"], ascending=[True, False])
                   .drop(columns="_o").drop_duplicates("attribute").assign(source="candidate"))
    answers.to_csv(paths["validated_map"], index=False)
    return SwapOutputs(res, answers, None, paths)


def write_grids(tokenizer: Any, data: SwapData, outputs: SwapOutputs, folder: Path, *, n: int,
                seed: int) -> dict[str, Path]:
    """recipient | donor | swapped | controls of each confirmed mapping: ``folder/<attribute>.png|svg``."""
    from probe.viz.save import save_figure
    from probe.viz.swap import image_grid_figure

    # a validated map's answers were measured on its confirmation pairs
    conf = outputs.vmap.confirmation if outputs.vmap is not None else None
    pairs, written = (conf.pairs if conf is not None else outputs.result.pairs), {}
    for row in outputs.confirmed.itertuples():
        imgs = grid_images(tokenizer, data, pairs[pairs["attribute"] == row.attribute], parse_label(row.positions),
                           n=n, seed=seed)
        fig = image_grid_figure(imgs, f"{row.attribute} @ {row.positions}: transfer {row.transfer:.2f}")
        written[f"grid_{row.attribute}"] = save_figure(fig, folder / str(row.attribute))[0]
    return written


def _write_config(out: Path, config: SwapConfig, attributes: Sequence[str], measurers: Mapping[str, Any],
                  shard: Shard, record: Mapping[str, Any] | None) -> Path:
    """``config.json``: every setting and seed, the verdict rule, the measurers."""
    d = {"swap": config.to_dict(), "thresholds": config.verdict.text(), "attributes": list(attributes),
         "measurers": {a: getattr(m, "name", str(m)) for a, m in measurers.items()}, **(record or {})}
    if shard.world_size > 1:
        d["world_size"] = shard.world_size
    path = out / "config.json"
    path.write_text(json.dumps(d, indent=2, default=str))
    return path


__all__ = ["SwapOutputs", "rank_device", "validate_and_write", "write_grids"]
