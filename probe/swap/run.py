"""Swaps on a token store: pairs per attribute -> :func:`probe.swap.patch` -> one table, one summary.

The thin specialisations of the patch live here:

- :func:`sweep`: every single position for every attribute (the causal heatmap), or given position sets
  (the same for every attribute, or per attribute, e.g. a map's :func:`probe.swap.maps.candidate_sets`);
- :func:`greedy_set`: the smallest position set reaching a stated transfer, with its curve.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from probe.progress import StageBar, stage_of
from probe.swap.engine import PositionSet, Shard, control_decodes, parse_label, patch, set_label
from probe.swap.confirm import LabelGeometry, label_geometry
from probe.swap.split import split_pairs
from probe.swap.stats import summarize
from probe.swap.verdict import VerdictConfig
from probe.tokenizers.base import Tokenizer

if TYPE_CHECKING:
    from probe.measure.base import Measurer
    from probe.store import TokenStore

#: the bookkeeping a table's ``attrs`` carry: images decoded, seconds in decode and in the measurers
_TIMING = ("decoded", "decode_s", "measure_s")
#: controls run by default (swap_back re-encodes every swapped image: asked for explicitly; ``self`` is added for a
#: tokenizer whose decoder is stochastic, the only kind it can say something about)
DEFAULT_CONTROLS = ("none", "same_end", "random_position", "all_except")
#: the two sides of an attribute's pairs (:mod:`probe.swap.split`)
SPLITS = ("discovery", "confirmation")
#: how a validation's discovery step finds positions (see :attr:`SwapConfig.mode`)
MODES = ("auto", "exhaustive", "attribution")


@dataclass
class SwapConfig:
    """Settings of a swap run (every seed is here; saved as ``config.json``).

    Attributes:
        pairs: confirmation pairs per attribute: every reported transfer, interval and verdict is measured on
            them (they share no image with the discovery pairs).
        discovery_pairs: discovery pairs per attribute: every selection (the sweep's best position, the greedy
            sets) is made on them.
        split_fraction: the share of each end's images that goes to discovery (:mod:`probe.swap.split`).
        quantile: width of each end of an attribute (see :class:`probe.swap.pairs.PairConfig`).
        seed: seed of the pairs, the random-position control and the bootstrap.
        controls: controls run with every tested set (see :data:`probe.swap.engine.CONTROLS`; ``self`` is added
            for a stochastic decoder).
        control_pairs: run the controls that decode on only the first this many pairs of each attribute
            (``None``: all); they cost one decode per pair and set each.
        batch: images per decode.
        target: the transfer a greedy position set must reach.
        max_set: the largest set the greedy search tries.
        pool: the greedy search adds positions from the ``pool`` best single positions.
        greedy_pairs: discovery pairs per attribute the greedy search uses (at most ``discovery_pairs``).
        autocast: decode under bf16 autocast on CUDA.
        mode: how :func:`probe.swap.validate`'s discovery step finds each attribute's positions: ``"exhaustive"``
            (swap every single position), ``"attribution"`` (attribution patching ranks every position on the
            discovery pairs and real swaps test the top ``first_k``, then up to ``pool`` where none reaches
            ``target``: :mod:`probe.swap.attribution`) or ``"auto"`` (attribution when every tested attribute's
            measurer is differentiable, else exhaustive). Confirmation is the same in every mode.
        first_k: positions per attribute the real swaps test first in the attribution mode.
        verdict: the verdict's thresholds and interval method (:class:`probe.swap.verdict.VerdictConfig`; its
            :meth:`~probe.swap.verdict.VerdictConfig.text` is the rule).
    """

    pairs: int = 256
    discovery_pairs: int = 64
    split_fraction: float = 0.5
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
    mode: str = "auto"
    first_k: int = 3
    verdict: VerdictConfig = field(default_factory=VerdictConfig)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"SwapConfig.mode must be one of {MODES}, got {self.mode!r}")

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
        originals: rows -> the original images ``[R, 3, H, W]`` of those rows (``None``: not available); the
            visibility test then also says how much of the originals' gap the reconstructions keep.
    """

    quantized: torch.Tensor
    attributes: pd.DataFrame
    kinds: dict[str, str]
    circular: tuple[str, ...] = ()
    masks: torch.Tensor | None = None
    originals: Callable[[np.ndarray], torch.Tensor] | None = None
    #: (attribute, measurer, pair settings) -> its label geometry, computed once per data set
    _geometry: dict[tuple, LabelGeometry] = field(default_factory=dict, repr=False)

    @classmethod
    def from_store(cls, store: TokenStore, tokenizer: Tokenizer, *, masks: torch.Tensor | None | str = "world",
                   circular: Sequence[str] | None = None) -> SwapData:
        """Tokens of ``store`` as code vectors: ``codebook[tokens]`` for a VQ model, the tokenizer's own
        ``quantize`` of the stored features for a continuous one. ``masks``: ``"world"`` (default) asks the
        store's world (:func:`probe.worlds.store_masks`; none for photos or corrupted images), or give them.
        ``circular``: default the circular factors of the store's world (:func:`probe.worlds.of_store`).

        Examples:
            >>> data = SwapData.from_store(TokenStore.open("runs/demo/store"), load_tokenizer("world-32"))  # doctest: +SKIP
            >>> data.quantized.shape, data.circular  # doctest: +SKIP
            (torch.Size([4000, 32, 12]), ('obj_hue', 'bg_hue'))
        """
        from probe import worlds
        from probe.swap.engine import as_quantized

        if getattr(tokenizer, "is_discrete", tokenizer.codebook_size > 0):
            q = as_quantized(tokenizer, torch.as_tensor(np.array(store.tokens, dtype=np.int64)))
        else:
            with torch.no_grad():
                f = torch.as_tensor(np.asarray(store.features, dtype=np.float32))
                q = tokenizer.quantize(f.to(as_quantized(tokenizer, f[:1]).device))[0].float()
        attrs = store.attributes.reset_index(drop=True)
        world = worlds.of_store(store)
        if isinstance(masks, str):
            masks = worlds.store_masks(store)
        if circular is None:
            circular = world.circular() if world is not None else ()
        kinds = store_kinds(store)
        return cls(q, attrs, kinds, tuple(c for c in circular if c in kinds), masks, _StoreOriginals(store))

    @classmethod
    def from_images(cls, tokenizer: Tokenizer, images: torch.Tensor, attributes: pd.DataFrame, *,
                    kinds: Mapping[str, str] | None = None, circular: Sequence[str] = (),
                    masks: torch.Tensor | None = None, batch: int = 256) -> SwapData:
        """Encode ``images [M, 3, H, W]`` in [0, 1] with their ``attributes`` (one row per image); ``kinds``
        default: floats continuous, the rest categorical.

        Examples:
            >>> world = probe.worlds.get("attribute")  # doctest: +SKIP
            >>> images, factors, masks = world.sample(400, seed=1, resolution=32, return_masks=True)  # doctest: +SKIP
            >>> data = SwapData.from_images(tok, images, factors, kinds=world.factors,
            ...                             circular=world.circular(), masks=masks)  # doctest: +SKIP
        """
        from probe.tokenizers.base import encode_batched

        attrs = attributes.reset_index(drop=True)
        if len(attrs) != len(images):
            raise ValueError(f"{len(images)} images but {len(attrs)} attribute rows")
        q = encode_batched(tokenizer, images, batch).quantized.float()
        found = {c: ("continuous" if pd.api.types.is_float_dtype(attrs[c]) else "categorical") for c in attrs.columns}
        # a circular factor is continuous in value (turns); the engine's pairs treat it as circular
        given = {a: ("continuous" if k == "circular" else k) for a, k in (kinds or {}).items() if a in attrs.columns}
        return cls(q, attrs, {**found, **given}, tuple(circular), masks,
                   lambda rows: images[torch.as_tensor(np.asarray(rows, dtype=np.int64))])


class _StoreOriginals:
    """A store's original images by row (:func:`probe.data.rematerialise.rematerialise`); ``None`` once they
    cannot be made again (no manifest, a source that changed): the reconstruction check is then skipped."""

    def __init__(self, store: TokenStore) -> None:
        self.store, self.failed = store, False

    def __call__(self, rows: np.ndarray) -> torch.Tensor | None:
        from probe.data.rematerialise import rematerialise

        if self.failed:
            return None
        try:
            return rematerialise(self.store, rows)
        except (ValueError, OSError, KeyError, AttributeError):  # no manifest, or a source that changed
            self.failed = True
            return None


def store_kinds(store: TokenStore | Any) -> dict[str, str]:
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


@dataclass
class SwapResult:
    """A swap run: ``table`` (one row per swap x measurer), ``summary`` (one row per mapping)."""

    table: pd.DataFrame
    summary: pd.DataFrame
    pairs: pd.DataFrame
    config: SwapConfig


class _Named:
    """A measurer renamed to the attribute it stands for (two attributes may share one measurer class)."""

    def __init__(self, attribute: str, inner: Measurer) -> None:
        self.name, self.kind, self.inner = attribute, inner.kind, inner

    def __call__(self, images: torch.Tensor, *, masks: torch.Tensor | None = None) -> torch.Tensor:
        return self.inner(images, masks=masks)


def _as_sets(positions: PositionSet | Sequence[PositionSet]) -> list[PositionSet]:
    """One position set (``3``, ``[3, 7]``) or several (``[[3], [3, 7]]``) as a list of sets."""
    ints = (int, np.integer)
    if isinstance(positions, ints) or (len(positions) and all(isinstance(p, ints) for p in positions)):
        return [positions]
    return list(positions)


def _attribute_swaps(tokenizer: Tokenizer, data: SwapData, meas: list[_Named], attr: str, pairs: pd.DataFrame,
                     attr_sets: Sequence[PositionSet], cfg: SwapConfig, ctrl: tuple[str, ...],
                     shard: Shard | None, progress: bool | StageBar, directions: np.ndarray) -> pd.DataFrame:
    """The patch table of one attribute's pairs at its sets, its own measurer read along the labels' direction
    (``directions [P, D]``): the costly controls (those that decode) on the first ``cfg.control_pairs`` pairs only."""
    rec, don, same = (torch.as_tensor(pairs[c].to_numpy().copy()) for c in ("recipient", "donor", "same_end_donor"))
    q = data.quantized
    mk = None if data.masks is None else (data.masks[rec], data.masks[don])
    n_tok = int(q.shape[1])
    full_sweep = sorted(tuple(x) if not isinstance(x, (int, np.integer)) else (int(x),) for x in attr_sets) == [
        (p,) for p in range(n_tok)]
    # no decode of their own: a full sweep holds every random swap
    cheap = tuple(c for c in ctrl if c == "none" or control_decodes(c, full_sweep=full_sweep and "none" in ctrl) == 0)
    costly = tuple(c for c in ctrl if c not in cheap)
    split = len(pairs) if cfg.control_pairs is None else min(cfg.control_pairs, len(pairs))
    common = dict(measurers=meas, seed=cfg.seed, batch=cfg.batch, shard=shard, progress=progress,
                  autocast=cfg.autocast)
    extra = {"attribute": np.full(len(pairs), attr, dtype=object), "split": pairs["split"].to_numpy(dtype=object),
             "recipient_row": pairs["recipient"].to_numpy(), "donor_row": pairs["donor"].to_numpy()}
    ids = pairs["pair"].to_numpy()
    if split == len(pairs) or not costly:
        return patch(tokenizer, q[rec], q[don], attr_sets, controls=ctrl, same_end_donors=q[same], masks=mk,
                     pair_ids=ids, extra=extra, directions={attr: directions}, **common)
    head = slice(0, split)
    t1 = patch(tokenizer, q[rec], q[don], attr_sets, controls=cheap, masks=mk, pair_ids=ids, extra=extra,
               directions={attr: directions}, **common)
    mk2 = None if mk is None else (mk[0][head], mk[1][head])
    t2 = patch(tokenizer, q[rec[head]], q[don[head]], attr_sets, controls=costly, same_end_donors=q[same[head]],
               masks=mk2, pair_ids=ids[head], extra={k: v[head] for k, v in extra.items()},
               directions={attr: directions[head]}, **common)
    t = pd.concat([t1, t2], ignore_index=True)
    t.attrs.update({k: t1.attrs.get(k, 0) + t2.attrs.get(k, 0) for k in _TIMING})
    return t


def _draw(data: SwapData, attr: str, cfg: SwapConfig, discovery: int, confirmation: int) -> pd.DataFrame:
    return split_pairs(data.attributes, attr, data.kinds.get(attr, "continuous"), discovery=discovery,
                       confirmation=confirmation, quantile=cfg.quantile, circular=attr in data.circular,
                       fraction=cfg.split_fraction, seed=cfg.seed)


def geometry(tokenizer: Tokenizer, data: SwapData, attr: str, measurer: Measurer, cfg: SwapConfig,
             progress: bool = False) -> LabelGeometry:
    """The attribute's visibility and label directions (:func:`probe.swap.confirm.label_geometry`) on the images
    of its discovery and confirmation pairs at ``cfg``'s sizes; computed once per data set and settings."""
    key = (attr, getattr(measurer, "name", str(measurer)), cfg.discovery_pairs, cfg.pairs, cfg.quantile,
           cfg.split_fraction, cfg.seed, cfg.verdict.visible_alpha, cfg.verdict.min_kept)
    if key not in data._geometry:
        pairs = _draw(data, attr, cfg, cfg.discovery_pairs, cfg.pairs)
        data._geometry[key] = label_geometry(tokenizer, data.quantized, measurer, pairs, rule=cfg.verdict,
                                             masks=data.masks, originals=data.originals, batch=cfg.batch,
                                             seed=cfg.seed)
    return data._geometry[key]


def sweep(tokenizer: Tokenizer, data: SwapData, measurers: Mapping[str, Measurer],
          positions: PositionSet | Sequence[PositionSet] | Mapping[str, Sequence[PositionSet]] | None = None, *,
          attributes: Sequence[str] | None = None, config: SwapConfig | None = None, shard: Shard | None = None,
          progress: bool | StageBar = True, pairs_per_attribute: int | None = None,
          controls: Sequence[str] | None = None, split: str = "confirmation") -> SwapResult:
    """Swaps for each attribute on its own pairs, at position sets, measured by every measurer.

    Args:
        measurers: attribute -> measurer; every swap is measured by all of them (the side effects).
        positions: ``None`` (default): every single position (the causal heatmap's cells); a position set
            (``3``, ``[3, 7]``) or several (``[[3], [3, 7]]``) for every attribute; or attribute -> sets.
        attributes: the attributes to draw pairs for (default: every measured attribute in ``data``).
        config: pairs, seeds, controls, verdict thresholds (:class:`SwapConfig`).
        pairs_per_attribute, controls: override the side's number of pairs / ``config.controls``.
        split: the side of each attribute's pairs (:mod:`probe.swap.split`): ``"confirmation"`` (``config.pairs``;
            the numbers to report) or ``"discovery"`` (``config.discovery_pairs``; to select on).
        shard: under ``torchrun``, this rank's pairs (:class:`probe.swap.engine.Shard`): each rank swaps its
            share, and every rank gets the merged result (a collective: all ranks call it alike).
        progress: a bar per batch of decodes (``True``), none, or a stage's :class:`probe.progress.StageBar`.

    Returns:
        :class:`SwapResult`: ``table`` one row per (pair, set, control, measurer) (:func:`probe.swap.patch`; the
        attribute's own measurer along the labels' direction), ``summary`` one row per (attribute, set)
        (:func:`probe.swap.summarize`: verdicts family-wise over the sets of the call), ``pairs``;
        ``table.attrs["visibility"]``: attribute -> its visibility test (as a dict of
        :class:`probe.swap.visibility.Visibility`'s fields).

    Examples:
        >>> res = sweep(tok, SwapData.from_store(store, tok), {"lighting": measurer_for("lighting")},
        ...             config=SwapConfig(pairs=64))  # doctest: +SKIP
        >>> res.summary.sort_values("transfer").tail(1)[["positions", "transfer", "verdict"]]  # doctest: +SKIP
        >>> sweep(tok, data, measurers, [[26], [17, 26]]).summary  # doctest: +SKIP
    """
    cfg = config or SwapConfig()
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    attrs = list(attributes or [a for a in measurers if a in data.attributes.columns])
    missing = [a for a in attrs if a not in measurers]
    if missing:
        raise ValueError(f"no measurer for attribute(s) {missing}; give one per attribute")
    if positions is None:
        positions = [[p] for p in range(int(data.quantized.shape[1]))]
    elif not isinstance(positions, Mapping):
        positions = _as_sets(positions)
    meas = [_Named(a, m) for a, m in measurers.items()]
    ctrl = tuple(controls or cfg.controls)
    if controls is None and getattr(tokenizer, "stochastic", False) and "self" not in ctrl:
        ctrl += ("self",)  # a stochastic decoder: what re-decoding the same tokens moves
    tables, pair_frames, vis = [], [], {}
    offset = 0
    stage = stage_of(progress)
    for i, attr in enumerate(attrs):
        if stage is not None:
            stage.detail(f"{i + 1}/{len(attrs)} attributes" if len(attrs) > 1 else attr)
        geo = geometry(tokenizer, data, attr, measurers[attr], cfg)
        vis[attr] = geo.visibility
        n = pairs_per_attribute or (cfg.pairs if split == "confirmation" else cfg.discovery_pairs)
        both = _draw(data, attr, cfg, n if split == "discovery" else 0, n if split == "confirmation" else 0)
        pairs = both[both["split"] == split].reset_index(drop=True)
        pairs.insert(0, "pair", np.arange(offset, offset + len(pairs)))
        offset += len(pairs)
        pair_frames.append(pairs)
        attr_sets = positions[attr] if isinstance(positions, Mapping) else positions
        if attr_sets:
            tables.append(_attribute_swaps(tokenizer, data, meas, attr, pairs, attr_sets, cfg, ctrl, shard, progress,
                                           geo.directions_for(pairs)))
    timing = {k: sum(t.attrs.get(k, 0) for t in tables) for k in _TIMING}
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    if shard is not None:
        table = shard.gather(table)
    if len(table):
        table = table.sort_values(["attribute", "pair"], kind="stable").reset_index(drop=True)
    t0 = time.perf_counter()
    summary = summarize(table, cfg.verdict, visibility=vis) if len(table) else pd.DataFrame()
    # as plain dicts: a table's attrs travel into parquet metadata as JSON
    table.attrs.update(timing, summary_s=time.perf_counter() - t0, visibility={a: asdict(v) for a, v in vis.items()})
    return SwapResult(table, summary, pd.concat(pair_frames, ignore_index=True), cfg)


def greedy_set(tokenizer: Tokenizer, data: SwapData, measurers: Mapping[str, Measurer], attribute: str,
               single: pd.DataFrame, *, config: SwapConfig | None = None, progress: bool | StageBar = True,
               shard: Shard | None = None) -> pd.DataFrame:
    """The smallest position set reaching ``config.target`` transfer for ``attribute``, greedily.

    Starting from the best single position of ``single`` (a discovery sweep's summary), each step adds the
    position of the ``pool`` best single ones that raises the transfer most on the discovery pairs (a selection:
    its numbers are not reported as evidence), until the target or ``max_set``.
    Returns the curve: one row per set size with ``positions, transfer, ci_low, ci_high, n_pairs, reached``.

    Examples:
        >>> res = sweep(tok, data, measurers)  # doctest: +SKIP
        >>> greedy_set(tok, data, measurers, "obj_hue", res.summary, config=SwapConfig(target=0.8))  # doctest: +SKIP
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
                 "transfer": row0["transfer"], "ci_low": row0["ci_low"], "ci_high": row0["ci_high"],
                 "n_pairs": row0.get("n_pairs", np.nan)})
    while rows[-1]["transfer"] < cfg.target and len(chosen) < min(cfg.max_set, len(pool)):
        trial = [sorted(chosen + [p]) for p in pool if p not in chosen]
        res = sweep(tokenizer, data, {attribute: measurers[attribute]}, trial, attributes=[attribute],
                    config=cfg, controls=("none",), progress=progress, split="discovery", shard=shard,
                    pairs_per_attribute=min(cfg.greedy_pairs, cfg.discovery_pairs))
        best = res.summary.sort_values("transfer", ascending=False).iloc[0]
        chosen = list(parse_label(best["positions"]))
        rows.append({"attribute": attribute, "set_size": len(chosen), "positions": best["positions"],
                     "transfer": best["transfer"], "ci_low": best["ci_low"], "ci_high": best["ci_high"],
                     "n_pairs": best["n_pairs"]})
    out = pd.DataFrame(rows)
    out["reached"] = out["transfer"] >= cfg.target
    return out
