"""The swap engine: copy-paste token swaps measured on decoded images, at scale, with controls.

- :func:`patch` (:mod:`probe.swap.engine`): the one generic patch (pairs x position sets x measurers,
  with controls) -> a tidy table;
- :func:`sample_pairs` (:mod:`probe.swap.pairs`): (recipient, donor) pairs from opposite ends of an attribute;
- :func:`sweep_positions`, :func:`position_set`, :func:`validate`, :func:`greedy_set` (:mod:`probe.swap.run`):
  the specialisations on a store's tokens;
- :func:`summarize`, :class:`VerdictConfig` (:mod:`probe.swap.stats`): transfer with a bootstrap interval,
  interchange-intervention accuracy, effect sizes against the controls, side effects, verdicts;
- :func:`validate_map`, :class:`ValidatedMap` (:mod:`probe.swap.validated`): the validated semantic map;
- :func:`traverse`, :func:`response_curve` (:mod:`probe.swap.traverse`): one position through many codes.

The measurers live in :mod:`probe.measure`. :mod:`probe.swap.paste` and :mod:`probe.swap.localization` keep the
tokenizer analysis' single-token paste between an attribute's two bins (``end_groups``, ``moved_by_paste``).
"""
from probe.swap.engine import CONTROLS, Shard, as_quantized, canonical_order, merge_shards, patch, paste_tokens, set_label
from probe.swap.pairs import PairConfig, sample_pairs
from probe.swap.paste import end_groups, moved_by_paste, moved_fraction
from probe.swap.run import (
    SwapConfig,
    SwapData,
    SwapResult,
    greedy_set,
    position_set,
    probe_ranking,
    run_swaps,
    sweep_positions,
    validate,
)
from probe.swap.stats import VerdictConfig, off_target_matrix, summarize
from probe.swap.traverse import codes_used, response_curve, traverse
from probe.swap.validated import ValidatedMap, causal_heatmap, rank_agreement, validate_map, validated_map

__all__ = [
    "CONTROLS", "PairConfig", "Shard", "SwapConfig", "SwapData", "SwapResult", "ValidatedMap", "VerdictConfig",
    "as_quantized", "canonical_order", "causal_heatmap", "codes_used", "end_groups", "greedy_set", "merge_shards",
    "moved_by_paste", "moved_fraction", "off_target_matrix", "paste_tokens", "patch", "position_set",
    "probe_ranking", "rank_agreement", "response_curve", "run_swaps", "sample_pairs", "set_label", "summarize",
    "sweep_positions", "traverse", "validate", "validate_map", "validated_map",
]
