"""The swap engine: copy-paste token swaps measured on decoded images, at scale, with controls.

Eleven verbs and the five types they pass around (each verb has an Examples block):

- :func:`patch`: the one generic patch (pairs x position sets x measurers, with controls) -> a tidy table;
- :func:`sample_pairs`: (recipient, donor) pairs from opposite ends of an attribute;
- :func:`sweep`: every single position (or given sets) for every attribute of a :class:`SwapData` ->
  :class:`SwapResult` (table + summary);
- :func:`greedy_set`: the smallest position set reaching a stated transfer;
- :func:`validate`: sweep, compare with the probes' map, search sets -> :class:`ValidatedMap`;
  :func:`validate_store`: the same on a token store in one call;
- :func:`summarize`: transfer with a bootstrap interval, interchange-intervention accuracy, effect sizes against
  the controls, side effects, verdicts (thresholds: :class:`VerdictConfig`);
- :func:`traverse`: one position through many codes;
- :func:`copy_paste`: images in, composites out (encode, paste, decode);
- :func:`movement`: how far a reading moved (signed along the recipient-to-donor direction);
- :func:`top_positions`: the top k positions a map ties to an attribute.

Settings: :class:`SwapConfig`; results: :class:`SwapResult`. The modules hold the rest (controls as strategies in
:mod:`probe.swap.engine`, the heatmap and rank agreement in :mod:`probe.swap.validated`, response curves in
:mod:`probe.swap.traverse`, torchrun sharding in :mod:`probe.swap.distributed`, attribution patching and the
attribution-first mode (``SwapConfig.mode``) in :mod:`probe.swap.attribution`, where in the image each position
acts in :mod:`probe.swap.spatial`).
The measurers live in :mod:`probe.measure`; the one token paste is :func:`probe.tokenizers.base.paste_tokens`.
"""
from probe.swap.edit import copy_paste
from probe.swap.engine import patch
from probe.swap.maps import top_positions
from probe.swap.movement import movement
from probe.swap.pairs import sample_pairs
from probe.swap.run import SwapConfig, SwapData, SwapResult, greedy_set, sweep
from probe.swap.stats import VerdictConfig, summarize
from probe.swap.traverse import traverse
from probe.swap.validated import ValidatedMap, validate, validate_store

__all__ = [
    "SwapConfig", "SwapData", "SwapResult", "ValidatedMap", "VerdictConfig",
    "copy_paste", "greedy_set", "movement", "patch", "sample_pairs", "summarize", "sweep", "top_positions",
    "traverse", "validate", "validate_store",
]
