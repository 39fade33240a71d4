"""The one generic patch: copy token positions from donors into recipients, decode, measure.

After TransformerLens's ``generic_activation_patch``: :func:`patch` takes paired token tensors
(recipient ``m`` receives from donor ``m``), a list of position sets and a list of measurers, and
returns one tidy row per (pair, position set, control, measurer). Everything else in
:mod:`probe.swap` (sweeps, validation of a semantic map, position sets, controls, traversals) is a thin
specialisation of it.

Measured values are compared on reconstructions: ``recipient`` is the measure of the recipient's own
decode, ``donor`` of the donor's, ``swapped`` of the patched decode, so the tokenizer's reconstruction
error does not count as an effect. The comparison is :func:`probe.swap.movement.movement` (the one
comparison of readings): ``moved`` is the projection of ``swapped - recipient`` on ``donor - recipient``
and ``gap`` the gap's length, so ``transfer = moved / gap`` is 0 for no effect and 1 for the whole gap,
negative for a paste that moves the wrong way, for every kind alike (vectors are projected). With
``directions`` for a measurer (the direction the pairs' labels define, :mod:`probe.swap.visibility`), its
rows are measured along that direction instead: ``moved = (swapped - recipient) . u`` and ``gap = (donor -
recipient) . u``, both signed, so pairs whose images differ in a way the labels do not explain move nothing
on average.

Controls, on the same pairs (``controls=``), each a small :class:`Control` strategy in a registry
(:func:`register_control` adds or replaces one); each can fail (:mod:`probe.swap.verdict` reads them):

- ``same_end``: the donor is another image from the recipient's own end of the attribute (what a paste
  moves by itself, e.g. through decoding an unusual token combination);
- ``random_position``: the same donor, a random other position set of the same size (seeded per pair);
- ``all_except``: every position except the tested ones;
- ``self``: the recipient's own tokens decoded again (an exact no-op on the tokens, asserted): what a
  stochastic decoder moves by itself. A deterministic decoder reproduces the recipient's decode exactly,
  so :func:`probe.swap.run.sweep` runs it only for tokenizers that declare ``stochastic = True``;
- ``swap_back``: swap, decode, re-encode, paste the recipient's own tokens back at the tested positions,
  decode again (reversibility through pixel space; needs ``tokenizer.encode``).

There is no donor-reconstruction "ceiling" row: compared with itself it is 1 by construction. How much of
the originals' gap the reconstructions keep is measured against the original images, by the attribute's
visibility test (:func:`probe.swap.visibility.visibility`, ``kept``).
"""
from __future__ import annotations

import os
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import pandas as pd
import torch

from probe.progress import StageBar, inner_bar
from probe.measure.shared import measure_all
from probe.swap.movement import MIN_GAP, movement
from probe.tokenizers.base import PositionSet, Tokenizer, module_device, paste_tokens, position_tuple

if TYPE_CHECKING:
    from probe.measure.base import Measurer


def set_label(positions: PositionSet) -> str:
    """A position set's label in tables: ``"7"`` or ``"3+7"`` (sorted)."""
    ps = position_tuple(positions)
    return "+".join(str(p) for p in ps)


def parse_label(label: str | int | float) -> tuple[int, ...]:
    """Inverse of :func:`set_label`: ``"3+7"`` -> ``(3, 7)``; a label a CSV read back as a number (``26.0``) too."""
    return tuple(int(float(p)) for p in str(label).split("+"))


@dataclass(frozen=True)
class Shard:
    """Which pairs this process handles: pair ``m`` belongs to rank ``m % world_size``.

    A single process is ``Shard(0, 1)``. Under ``torchrun`` use :meth:`from_env`. Every random choice is
    drawn for all pairs before sharding, so the union of the shards' tables equals one process's table.
    """

    rank: int = 0
    world_size: int = 1
    #: :meth:`gather` exchanges the ranks' tables (``False``: it returns this rank's part, to merge by hand with
    #: :func:`merge_shards`, e.g. shards simulated in one process)
    exchange: bool = True

    @classmethod
    def from_env(cls) -> Shard:
        return cls(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")))

    def rows(self, m: int) -> np.ndarray:
        return np.arange(self.rank, m, self.world_size)

    def gather(self, table: pd.DataFrame) -> pd.DataFrame:
        """Every rank's swap table merged into the one-process table, on every rank (an all-gather over the
        process group, initialised with gloo when it is not); ``table`` itself in one process. A collective:
        every rank calls it, in the same order."""
        if self.world_size <= 1 or not self.exchange:
            return table
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group(backend="gloo")
        parts: list[Any] = [None] * self.world_size
        dist.all_gather_object(parts, table)
        full = [t for t in parts if len(t)]
        merged = merge_shards(full) if full else table
        merged.attrs = dict(table.attrs)
        return merged


def as_quantized(tokenizer: Tokenizer, tokens: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Token ids ``[M, N]`` -> code vectors ``[M, N, C]`` (``tokenizer.codebook`` lookup); vectors
    ``[M, N, C]`` pass through. On the tokenizer's device, float32."""
    t = torch.as_tensor(tokens)
    dev = module_device(tokenizer)
    if t.ndim == 2:
        if t.is_floating_point():
            raise ValueError(f"token ids must be integers, got {t.dtype} of shape {tuple(t.shape)}")
        return tokenizer.codebook.detach().to(dev)[t.to(dev).long()].float()
    if t.ndim != 3:
        raise ValueError(f"tokens must be ids [M, N] or vectors [M, N, C], got shape {tuple(t.shape)}")
    return t.to(dev).float()


def _measure_all(measurers: Sequence[Measurer], images: torch.Tensor, masks: torch.Tensor | None) -> list[np.ndarray]:
    """Each measurer on ``images [B,3,H,W]`` -> float64 ``[B, D]`` (D = 1 for a scalar). A model that several
    measurers share (their ``source``, e.g. the world oracle) runs once per batch
    (:func:`probe.measure.shared.measure_all`)."""
    with torch.no_grad():
        values = measure_all(measurers, images, masks)
    return [torch.as_tensor(v).detach().to("cpu", torch.float64).reshape(len(images), -1).numpy() for v in values]


class _Decoder:
    """Decodes queued token batches ``[B, N, C]`` and measures them, ``batch`` images at a time."""

    def __init__(self, tokenizer: Tokenizer, measurers: Sequence[Measurer], batch: int, progress: Any,
                 autocast: bool = False) -> None:
        self.tok, self.measurers, self.batch, self.bar = tokenizer, measurers, batch, progress
        self.autocast = autocast
        self.decoded = 0
        # seconds inside tokenizer.decode and inside the measurers (the rest of a run is the engine's own)
        self.decode_s = self.measure_s = 0.0

    @torch.no_grad()
    def images(self, q: torch.Tensor) -> torch.Tensor:
        outs = []
        for s in range(0, len(q), self.batch):
            qb = q[s : s + self.batch]
            t0 = time.perf_counter()
            if self.autocast and qb.device.type == "cuda":
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    img = self.tok.decode(qb)
                img = img.float().clamp(0, 1)
            else:
                img = self.tok.decode(qb)
            if img.device.type == "cuda":
                torch.cuda.synchronize(img.device)
            self.decode_s += time.perf_counter() - t0
            outs.append(img)
            self.decoded += len(qb)
            if self.bar is not None:
                self.bar.update(len(qb))
        return torch.cat(outs) if outs else q.new_zeros(0)

    @torch.no_grad()
    def measure(self, q: torch.Tensor, masks: torch.Tensor | None) -> list[np.ndarray]:
        parts: list[list[np.ndarray]] = []
        for s in range(0, len(q), self.batch):
            img = self.images(q[s : s + self.batch])
            mk = None if masks is None else masks[s : s + self.batch].to(img.device)
            t0 = time.perf_counter()
            parts.append(_measure_all(self.measurers, img, mk))
            self.measure_s += time.perf_counter() - t0
        if not parts:
            return [np.zeros((0, 1)) for _ in self.measurers]
        return [np.concatenate([p[k] for p in parts]) for k in range(len(self.measurers))]


class _Queue:
    """Patched token batches in, measurements out: decodes ``batch`` images at a time whatever the sizes
    of the batches put in. :meth:`put` returns a ticket; :meth:`results` maps tickets to the measured
    values ``[per measurer: [B, D]]`` of that batch."""

    def __init__(self, dec: _Decoder, batch: int) -> None:
        self.dec, self.batch = dec, batch
        self.pending: list[tuple[torch.Tensor, torch.Tensor | None]] = []
        self.n = 0
        self.lengths: list[int] = []
        self.parts: list[list[np.ndarray]] = []

    def put(self, q: torch.Tensor, masks: torch.Tensor | None) -> int:
        self.pending.append((q, masks))
        self.n += len(q)
        self.lengths.append(len(q))
        while self.n >= self.batch:
            self._flush(self.batch)
        return len(self.lengths) - 1

    def _flush(self, k: int) -> None:
        q = torch.cat([p[0] for p in self.pending])
        has_masks = self.pending[0][1] is not None
        mk = torch.cat([p[1] for p in self.pending]) if has_masks else None
        self.parts.append(self.dec.measure(q[:k], None if mk is None else mk[:k]))
        self.pending = [(q[k:], None if mk is None else mk[k:])] if len(q) > k else []
        self.n = len(q) - k

    def results(self) -> list[list[np.ndarray]]:
        if self.n:
            self._flush(self.n)
        n_meas = len(self.dec.measurers)
        if not self.parts:
            return [[np.zeros((0, 1))] * n_meas for _ in self.lengths]
        flat = [np.concatenate([p[k] for p in self.parts]) for k in range(n_meas)]
        bounds = np.cumsum([0, *self.lengths])
        return [[flat[k][bounds[j] : bounds[j + 1]] for k in range(n_meas)] for j in range(len(self.lengths))]


def _pair_rng(seed: int, salt: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(salt.encode())])


# ------------------------------------------------------------------------------------------- the controls
#: what a control hands back for one position set: a ticket of the decode queue, measured values
#: ``[per measurer: [m, D]]`` it already has, or ``("reuse", k)``: the tested swaps at random positions
Values = Union[int, list, tuple]


@dataclass
class _Run:
    """One :func:`patch` call's state, as the controls see it (this shard's pairs only).

    ``rq, dq, sq`` recipients, donors, same-end donors ``[m, N, C]``; ``rmask`` recipient masks; ``rec_r,
    rec_d`` the measures of the recipients' and donors' reconstructions; ``ref_s`` of the same-end donors'
    (``same_end`` only); ``rand_sets[k]`` the random other position set of every pair for set ``k``.
    """

    tokenizer: Tokenizer
    rq: torch.Tensor
    dq: torch.Tensor
    sq: torch.Tensor | None
    rmask: torch.Tensor | None
    rows: np.ndarray
    n_tok: int
    batch: int
    dec: _Decoder
    queue: _Queue
    rand_sets: list[np.ndarray]
    reuse_singletons: bool
    rec_r: list[np.ndarray] = field(default_factory=list)
    rec_d: list[np.ndarray] = field(default_factory=list)
    ref_s: list[np.ndarray] | None = None


@dataclass(frozen=True)
class Control:
    """One control of :func:`patch` (or the tested swap itself, ``"none"``).

    Attributes:
        name: its name in the table's ``control`` column.
        run: ``run(state, k, positions) -> Values``: queue (or reuse) the patched tokens of set ``k``.
        decodes: decodes per pair and position set (for the progress bar and for :class:`~probe.swap.run.SwapConfig`'s
            ``control_pairs``: controls with none are run on every pair).
        free_in_full_sweep: in a sweep of every single position it reads the tested swaps, no decode of its own.
        donor: ``donor(state) -> values``: the donor reference of its rows (default: the donor's own).
        prepare: ``prepare(state)`` once before the sets (e.g. measure the same-end donors).
        needs: the :func:`patch` argument it needs (named in the error when missing).
    """

    name: str
    run: Callable[[_Run, int, tuple[int, ...]], Values]
    decodes: int = 1
    free_in_full_sweep: bool = False
    donor: Callable[[_Run], list | None] = lambda state: None
    prepare: Callable[[_Run], None] = lambda state: None
    needs: str = ""


_CONTROLS: dict[str, Control] = {}


def register_control(control: Control) -> None:
    """Make ``control`` known to :func:`patch` by its name (a later registration replaces one)."""
    _CONTROLS[control.name] = control


def patch_decodes(pairs: int, sets: int, controls: Sequence[str], *, full_sweep: bool = False) -> int:
    """Decodes :func:`patch` makes for ``pairs`` pairs at ``sets`` position sets with ``controls`` (``full_sweep``:
    the sets are every single position): the two ends, every set's tested swap and controls, the same-end donors."""
    per_set = sum(control_decodes(c, full_sweep=full_sweep and "none" in controls) for c in controls)
    return pairs * (2 + sets * per_set + ("same_end" in controls))


def control_decodes(name: str, *, full_sweep: bool = False) -> int:
    """Decodes per pair and position set that control ``name`` costs (0: it reuses other rows)."""
    c = _CONTROLS[name]
    return 0 if (full_sweep and c.free_in_full_sweep) else c.decodes


def _tested(state: _Run, k: int, s: tuple[int, ...]) -> Values:
    return state.queue.put(paste_tokens(state.rq, state.dq, s), state.rmask)


def _same_end(state: _Run, k: int, s: tuple[int, ...]) -> Values:
    return state.queue.put(paste_tokens(state.rq, state.sq, s), state.rmask)


def _measure_same_end(state: _Run) -> None:
    # the same-end donor's own value is the control's "donor"
    state.ref_s = state.dec.measure(state.sq, state.rmask)


def _random_position(state: _Run, k: int, s: tuple[int, ...]) -> Values:
    if state.reuse_singletons:  # the tested swap at the random position, already in the queue
        return ("reuse", k)
    # a different position set per pair: a per-row gather, which the one-set paste_tokens does not express
    q = state.rq.clone()
    rs = torch.as_tensor(state.rand_sets[k][state.rows], device=state.rq.device)
    ar = torch.arange(len(q), device=state.rq.device)[:, None]
    q[ar, rs] = state.dq[ar, rs]
    return state.queue.put(q, state.rmask)


def _all_except(state: _Run, k: int, s: tuple[int, ...]) -> Values:
    rest = [p for p in range(state.n_tok) if p not in s]
    return state.queue.put(paste_tokens(state.rq, state.dq, rest) if rest else state.rq.clone(), state.rmask)


def _self(state: _Run, k: int, s: tuple[int, ...]) -> Values:
    q = paste_tokens(state.rq, state.rq, s)
    # a self-swap must be an exact no-op on the tokens; decoded again, it shows what the decoder moves by itself
    assert torch.equal(q, state.rq), "self-swap changed the tokens"
    return state.queue.put(q, state.rmask)


def _swap_back(state: _Run, k: int, s: tuple[int, ...]) -> Values:
    with torch.no_grad():
        imgs = state.dec.images(paste_tokens(state.rq, state.dq, s))
        back = torch.cat([state.tokenizer.encode(imgs[b : b + state.batch]).quantized
                          for b in range(0, len(imgs), state.batch)])
    return state.queue.put(paste_tokens(back, state.rq, s), state.rmask)


for _c in (
    Control("none", _tested),
    Control("same_end", _same_end, donor=lambda state: state.ref_s, prepare=_measure_same_end,
            needs="same_end_donors"),
    Control("random_position", _random_position, free_in_full_sweep=True),
    Control("all_except", _all_except),
    Control("self", _self),
    Control("swap_back", _swap_back, decodes=2),
):
    register_control(_c)
#: the built-in controls (``"none"`` is the tested swap itself)
CONTROLS = tuple(_CONTROLS)


# --------------------------------------------------------------------------------------------- the patch
def _check(controls: Sequence[str], same_end_donors: Any) -> None:
    unknown = [c for c in controls if c not in _CONTROLS]
    if unknown:
        raise ValueError(f"unknown control(s) {unknown}; known: {list(_CONTROLS)}")
    for c in controls:
        if _CONTROLS[c].needs == "same_end_donors" and same_end_donors is None:
            raise ValueError(f"the {c} control needs same_end_donors (donors from the recipient's own end)")


def _position_sets(positions: Sequence[PositionSet], n_tok: int) -> list[tuple[int, ...]]:
    sets = [position_tuple(p) for p in positions]
    for s in sets:
        if s[0] < 0 or s[-1] >= n_tok:
            raise ValueError(f"position set {s} outside 0..{n_tok - 1}")
    return sets


def _random_sets(sets: list[tuple[int, ...]], m_all: int, n_tok: int, seed: int) -> list[np.ndarray]:
    """Random other positions of every pair for each set, drawn for all pairs before sharding (the same table on
    any number of ranks): ``[m_all, len(set)]`` per set."""
    out = []
    for s in sets:
        rng = _pair_rng(seed, f"random_position:{set_label(s)}")
        others = np.setdiff1d(np.arange(n_tok), s)
        if len(others) < len(s):
            raise ValueError(f"no random other position set of size {len(s)} outside {s}")
        keys = rng.random((m_all, len(others)))
        out.append(others[np.argsort(keys, axis=1)[:, : len(s)]])
    return out


def _resolve_reuse(state: _Run, jobs: list[list[Any]], done: list[list[np.ndarray]], n_meas: int) -> None:
    """Random-position rows of a full single-position sweep read from the tested swaps at their random positions."""
    ticket = {int(lab): t for (lab, _, c, t, _) in jobs if c == "none"}
    m = len(state.rows)
    # per measurer the tested swaps at every position, [N, m, D]
    stacks = [np.stack([done[ticket[p]][kk] for p in range(state.n_tok)]) for kk in range(n_meas)]
    for job in jobs:
        vals = job[3]
        if isinstance(vals, tuple) and vals[0] == "reuse":
            pos = state.rand_sets[vals[1]][state.rows][:, 0]
            job[3] = [st[pos, np.arange(m)] for st in stacks]


def _along(mv: dict[str, np.ndarray], r: np.ndarray, d: np.ndarray, s: np.ndarray, start: np.ndarray,
           u: np.ndarray) -> dict[str, np.ndarray]:
    """``mv`` with ``moved`` / ``gap`` / ``transfer`` along the per-pair directions ``u [m, D]`` (signed)."""
    gap = ((d - r) * u).sum(1)
    moved = ((s - start) * u).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        transfer = np.where(gap > MIN_GAP, moved / np.where(gap > MIN_GAP, gap, 1.0), np.nan)
    return {**mv, "gap": gap, "moved": moved, "transfer": transfer}


def _table(jobs: list[list[Any]], done: list[list[np.ndarray]], measurers: Sequence[Any], ids: np.ndarray,
           ref_r: list[np.ndarray], ref_d: list[np.ndarray], start: list[np.ndarray],
           extra_cols: dict[str, np.ndarray], directions: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per (pair, job, measurer); columns gathered as arrays and framed once (a DataFrame per block costs
    more than the numbers)."""
    cols: dict[str, list[np.ndarray]] = {}
    m = len(ids)

    def add(name: str, value: np.ndarray) -> None:
        cols.setdefault(name, []).append(value)

    for label, size, control, vals, dref in jobs:
        swapped = done[vals] if isinstance(vals, int) else vals
        dref = ref_d if dref is None else dref
        for k, meas in enumerate(measurers):
            # with originals as references, movement still starts at the recipient's own decode
            mv = movement(meas.kind, ref_r[k], swapped[k], dref[k], start=start[k])
            if meas.name in directions:
                mv = _along(mv, ref_r[k], dref[k], swapped[k], start[k], directions[meas.name])
            add("pair", ids)
            for name, value in (("positions", label), ("set_size", size), ("control", control),
                                ("measurer", meas.name), ("kind", meas.kind)):
                add(name, np.full(m, value, dtype=object if isinstance(value, str) else np.int64))
            for name, key in _COLUMNS:
                add(name, mv[key])
            for c, v in extra_cols.items():
                add(c, v)
    return pd.DataFrame({c: np.concatenate(v) for c, v in cols.items()}) if cols else pd.DataFrame()


#: table column <- :func:`probe.swap.movement.movement` key
_COLUMNS = (("recipient", "before"), ("donor", "toward"), ("swapped", "after"), ("gap", "gap"), ("moved", "moved"),
            ("moved_abs", "moved_abs"), ("transfer", "transfer"), ("nearer_donor", "nearer_donor"))


def patch(
    tokenizer: Tokenizer,
    recipients: torch.Tensor | np.ndarray,
    donors: torch.Tensor | np.ndarray,
    positions: Sequence[PositionSet],
    measurers: Sequence[Measurer],
    *,
    controls: Sequence[str] = ("none",),
    same_end_donors: torch.Tensor | np.ndarray | None = None,
    masks: tuple[torch.Tensor | None, torch.Tensor | None] | None = None,
    images: tuple[torch.Tensor, torch.Tensor] | None = None,
    pair_ids: Sequence[int] | np.ndarray | None = None,
    seed: int = 0,
    batch: int = 256,
    shard: Shard | None = None,
    progress: bool | StageBar = True,
    autocast: bool = False,
    extra: dict[str, Sequence[Any]] | None = None,
    directions: Mapping[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Patch donors' tokens into recipients at each position set; decode; measure. One row per (pair,
    position set, control, measurer).

    Args:
        tokenizer: a :class:`probe.tokenizers.base.Tokenizer` (``decode(quantized [B, N, C])`` is the one decode).
        recipients, donors: paired tokens, ``[M, N, C]`` code vectors or ``[M, N]`` ids of a VQ model
            (looked up in ``tokenizer.codebook``, which gives the same result).
        positions: position sets; each an int or a sequence of ints.
        measurers: :class:`probe.measure.Measurer`-like callables (``name``, ``kind``,
            ``__call__(images, *, masks=None)``).
        controls: any of :data:`CONTROLS` (``"none"`` is the tested swap; :func:`register_control` adds one).
        same_end_donors: ``[M, N, C]`` / ``[M, N]`` donors from the recipient's own end (``same_end``).
        masks: ``(recipient_masks, donor_masks)`` ``[M, 1, H, W]`` for measurers that need object masks;
            a patched image is measured with its recipient's mask.
        images: ``(recipient_images, donor_images)`` originals: references are then measured on them
            instead of on the reconstructions.
        pair_ids: global pair ids (default ``0..M-1``); they name rows and seed the random controls.
        seed: seed of the random-position control.
        batch: images per decode (on the tokenizer's device).
        shard: handle only this shard's pairs (default: all; see :class:`Shard`).
        progress: a bar of its own (``True``), none, or a stage's :class:`probe.progress.StageBar` to feed.
        autocast: decode under bf16 autocast on CUDA.
        extra: per-pair columns copied into the table (e.g. ``{"attribute": [...]}``).
        directions: measurer name -> per-pair unit vectors ``[M, D]`` (the labels' direction of each pair,
            :func:`probe.swap.visibility.pair_directions`): that measurer's rows are measured along them.

    Returns:
        DataFrame with columns ``pair, positions, set_size, control, measurer, kind, recipient, donor,
        swapped, gap, moved, moved_abs, transfer, nearer_donor`` plus ``extra``'s (the comparison of
        :func:`probe.swap.movement.movement`); ``attrs`` hold ``decoded``, ``decode_s``, ``measure_s``.

    Examples:
        Paste position 3 of the donors into the recipients, with the random-position control:

        >>> table = patch(tok, q[recipient_rows], q[donor_rows], [[3]], [measurer_for("lighting")],
        ...               controls=("none", "random_position"))  # doctest: +SKIP
        >>> table.groupby("control")["transfer"].mean()  # doctest: +SKIP
    """
    _check(controls, same_end_donors)
    rq, dq = as_quantized(tokenizer, recipients), as_quantized(tokenizer, donors)
    if rq.shape != dq.shape:
        raise ValueError(f"recipients {tuple(rq.shape)} and donors {tuple(dq.shape)} must have the same shape")
    m_all, n_tok = rq.shape[0], rq.shape[1]
    sets = _position_sets(positions, n_tok)
    ids = np.arange(m_all) if pair_ids is None else np.asarray(pair_ids)
    rand_sets = _random_sets(sets, m_all, n_tok, seed) if "random_position" in controls else []
    rows = (shard or Shard()).rows(m_all)
    sq = None if same_end_donors is None else as_quantized(tokenizer, same_end_donors)[rows]
    rmask, dmask = (None, None) if masks is None else tuple(None if x is None else x[rows] for x in masks)
    full_sweep = all(len(s) == 1 for s in sets) and {s[0] for s in sets} == set(range(n_tok))

    m = len(rows)
    bar = inner_bar(progress, patch_decodes(m, len(sets), controls, full_sweep=full_sweep), "swap decodes")
    dec = _Decoder(tokenizer, measurers, batch, bar, autocast)
    # every patched batch goes through one queue, so decodes run at full batch size across sets;
    # a sweep of every single position already holds each random-position swap: reuse it, no decode
    state = _Run(tokenizer, rq[rows], dq[rows], sq, rmask, rows, n_tok, batch, dec, _Queue(dec, batch), rand_sets,
                 reuse_singletons="none" in controls and full_sweep)
    try:
        state.rec_r, state.rec_d = dec.measure(state.rq, rmask), dec.measure(state.dq, dmask)
        if images is not None:
            ref_r = _measure_all(measurers, images[0][rows].to(rq.device), rmask)
            ref_d = _measure_all(measurers, images[1][rows].to(rq.device), dmask)
        else:
            ref_r, ref_d = state.rec_r, state.rec_d
        for c in dict.fromkeys(controls):
            _CONTROLS[c].prepare(state)
        jobs = [[set_label(s), len(s), c, _CONTROLS[c].run(state, k, s), _CONTROLS[c].donor(state)]
                for k, s in enumerate(sets) for c in controls]
        done = state.queue.results()
        if state.reuse_singletons:
            _resolve_reuse(state, jobs, done, len(measurers))
        extra_cols = {c: np.asarray(v)[rows] for c, v in (extra or {}).items()}
        dirs = {name: np.asarray(u, np.float64).reshape(m_all, -1)[rows] for name, u in (directions or {}).items()}
        out = _table(jobs, done, measurers, ids[rows], ref_r, ref_d, state.rec_r, extra_cols, dirs)
    finally:
        bar.close()
    out.attrs.update(decoded=dec.decoded, decode_s=dec.decode_s, measure_s=dec.measure_s)
    return out


def merge_shards(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate shard tables into the one-process table (rows ordered by pair, then as emitted)."""
    order_cols = ["pair", "_block"]
    parts = []
    for t in tables:
        t = t.copy()
        # the emission order within a pair: (position set, control, measurer) blocks in order
        t["_block"] = t.groupby("pair").cumcount()
        parts.append(t)
    merged = pd.concat(parts, ignore_index=True).sort_values(order_cols, kind="stable")
    return _canonical(merged.drop(columns="_block"))


def _canonical(df: pd.DataFrame) -> pd.DataFrame:
    return df.reset_index(drop=True)


def canonical_order(df: pd.DataFrame) -> pd.DataFrame:
    """A swap table in a canonical row order (pair, then emission order), to compare runs."""
    return merge_shards([df])

