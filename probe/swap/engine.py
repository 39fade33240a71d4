"""The one generic patch: copy token positions from donors into recipients, decode, measure.

After TransformerLens's ``generic_activation_patch``: :func:`patch` takes paired token tensors
(recipient ``m`` receives from donor ``m``), a list of position sets and a list of measurers, and
returns one tidy row per (pair, position set, control, measurer). Everything else in
:mod:`probe.swap` (sweeps, validation of a semantic map, position sets, controls, traversals) is a thin
specialisation of it.

Measured values are compared on reconstructions: ``recipient`` is the measure of the recipient's own
decode, ``donor`` of the donor's, ``swapped`` of the patched decode, so the tokenizer's reconstruction
error does not count as an effect. Vector measurers (a circular hue as a unit vector ``[B, 2]``,
categorical class probabilities ``[B, K]``) are compared along the gap: ``moved`` is the projection of
``swapped - recipient`` on ``donor - recipient`` and ``gap`` the gap's length, so
``transfer = moved / gap`` is 0 for no effect and 1 for the whole gap, for every kind alike.

Controls, on the same pairs (``controls=``):

- ``same_end``: the donor is another image from the recipient's own end of the attribute (what a paste
  moves by itself, e.g. through decoding an unusual token combination);
- ``random_position``: the same donor, a random other position set of the same size (seeded per pair);
- ``all_except``: every position except the tested ones;
- ``self``: the recipient pasted into itself, an exact no-op (asserted on the tokens; its measures are
  the recipient's own);
- ``swap_back``: swap, decode, re-encode, paste the recipient's own tokens back at the tested positions,
  decode again (reversibility through pixel space; needs ``tokenizer.encode``);
- ``donor_recon``: the donor's whole reconstruction (the ceiling a paste could reach). With ``images``
  given, gaps are measured on the originals (movement still starts at the recipient's decode), so this
  row shows how much of the true gap decoding keeps.
"""
from __future__ import annotations

import os
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from probe.tokenizers.base import PositionSet, module_device, paste_tokens, position_tuple

#: the controls :func:`patch` knows (``"none"`` is the tested swap itself)
CONTROLS = ("none", "same_end", "random_position", "all_except", "self", "swap_back", "donor_recon")
#: gaps shorter than this (in measurer units) give ``transfer`` NaN for the row
MIN_GAP = 1e-9



def set_label(positions: PositionSet) -> str:
    """A position set's label in tables: ``"7"`` or ``"3+7"`` (sorted)."""
    ps = position_tuple(positions)
    return "+".join(str(p) for p in ps)


def parse_label(label: str) -> tuple[int, ...]:
    """Inverse of :func:`set_label`."""
    return tuple(int(p) for p in str(label).split("+"))


@dataclass(frozen=True)
class Shard:
    """Which pairs this process handles: pair ``m`` belongs to rank ``m % world_size``.

    A single process is ``Shard(0, 1)``. Under ``torchrun`` use :meth:`from_env`. Every random choice is
    drawn for all pairs before sharding, so the union of the shards' tables equals one process's table.
    """

    rank: int = 0
    world_size: int = 1

    @classmethod
    def from_env(cls) -> Shard:
        return cls(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")))

    def rows(self, m: int) -> np.ndarray:
        return np.arange(self.rank, m, self.world_size)


def as_quantized(tokenizer: Any, tokens: torch.Tensor | np.ndarray) -> torch.Tensor:
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


class _Memo:
    """A model shared by several measurers (the oracle reads every world attribute in one forward), run once
    per input batch: the last call's output is reused for the same tensor (same storage and shape)."""

    def __init__(self, module: Any) -> None:
        self.module, self.key, self.value = module, None, None

    def __call__(self, x: torch.Tensor) -> Any:
        key = (x.data_ptr(), tuple(x.shape), tuple(x.stride()), x.device)
        if key != self.key:
            self.key, self.value = key, self.module(x)
        return self.value

    def __getattr__(self, name: str) -> Any:
        return getattr(self.module, name)


#: measurer attributes holding a model that several measurers may share
_SHARED = ("oracle",)


def _measure_all(measurers: Sequence[Any], images: torch.Tensor, masks: torch.Tensor | None) -> list[np.ndarray]:
    """Each measurer on ``images [B,3,H,W]`` -> float64 ``[B, D]`` (D = 1 for a scalar). A model shared by
    several measurers (e.g. the world oracle) runs once per batch."""
    memos: dict[int, _Memo] = {}
    swapped: list[tuple[Any, str, Any]] = []
    for m in measurers:
        inner = getattr(m, "inner", m)  # a renamed measurer wraps the real one
        for attr in _SHARED:
            model = getattr(inner, attr, None)
            if isinstance(model, torch.nn.Module):
                memo = memos.setdefault(id(model), _Memo(model))
                swapped.append((inner, attr, model))
                setattr(inner, attr, memo)
    out = []
    try:
        with torch.no_grad():
            for m in measurers:
                v = m(images, masks=masks)
                v = torch.as_tensor(v).detach().to("cpu", torch.float64)
                out.append(v.reshape(len(images), -1).numpy())
    finally:
        for inner, attr, model in swapped:
            setattr(inner, attr, model)
    return out


class _Decoder:
    """Decodes queued token batches ``[B, N, C]`` and measures them, ``batch`` images at a time."""

    def __init__(self, tokenizer: Any, measurers: Sequence[Any], batch: int, progress: Any,
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


def _scalar(kind: str, v: np.ndarray, ref_class: np.ndarray | None) -> np.ndarray:
    """A table-friendly scalar of measured values ``v [B, D]``: the value (continuous), the angle in turns
    (circular), or the probability of ``ref_class`` (categorical: the donor's class)."""
    if v.shape[1] == 1:
        return v[:, 0]
    if kind == "circular" and v.shape[1] == 2:
        return (np.arctan2(v[:, 1], v[:, 0]) / (2 * np.pi)) % 1.0
    return v[np.arange(len(v)), ref_class]


def _compare(kind: str, r: np.ndarray, d: np.ndarray, s: np.ndarray,
             start: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-row comparison of recipient ``r``, donor ``d`` and swapped ``s`` values ``[B, D]``; the movement
    is counted from ``start`` (default ``r``; the recipient's decode when ``r`` is measured on originals)."""
    start = r if start is None else start
    gap_vec = d - r
    gap = np.sqrt((gap_vec**2).sum(1))
    moved = ((s - start) * gap_vec).sum(1) / np.maximum(gap, MIN_GAP)
    moved_abs = np.sqrt(((s - start) ** 2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        transfer = np.where(gap > MIN_GAP, moved / np.maximum(gap, MIN_GAP), np.nan)
    if kind == "categorical" and r.shape[1] > 1:
        dc, sc, rc = d.argmax(1), s.argmax(1), r.argmax(1)
        nearer = (sc == dc) & (dc != rc)
        ref_class = dc
    else:
        nearer = ((s - d) ** 2).sum(1) < ((s - r) ** 2).sum(1)
        ref_class = None
    return {"recipient": _scalar(kind, r, ref_class), "donor": _scalar(kind, d, ref_class),
            "swapped": _scalar(kind, s, ref_class), "gap": gap, "moved": moved, "moved_abs": moved_abs,
            "transfer": transfer,
            "nearer_donor": nearer}


def _pair_rng(seed: int, salt: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(salt.encode())])


def patch(
    tokenizer: Any,
    recipients: torch.Tensor | np.ndarray,
    donors: torch.Tensor | np.ndarray,
    positions: Sequence[PositionSet],
    measurers: Sequence[Any],
    *,
    controls: Sequence[str] = ("none",),
    same_end_donors: torch.Tensor | np.ndarray | None = None,
    masks: tuple[torch.Tensor | None, torch.Tensor | None] | None = None,
    images: tuple[torch.Tensor, torch.Tensor] | None = None,
    pair_ids: Sequence[int] | np.ndarray | None = None,
    seed: int = 0,
    batch: int = 256,
    shard: Shard | None = None,
    progress: bool = True,
    autocast: bool = False,
    extra: dict[str, Sequence[Any]] | None = None,
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
        controls: any of :data:`CONTROLS` (``"none"`` is the tested swap).
        same_end_donors: ``[M, N, C]`` / ``[M, N]`` donors from the recipient's own end (``same_end``).
        masks: ``(recipient_masks, donor_masks)`` ``[M, 1, H, W]`` for measurers that need object masks;
            a patched image is measured with its recipient's mask.
        images: ``(recipient_images, donor_images)`` originals: references are then measured on them
            instead of on the reconstructions.
        pair_ids: global pair ids (default ``0..M-1``); they name rows and seed the random controls.
        seed: seed of the random-position control.
        batch: images per decode (on the tokenizer's device).
        shard: handle only this shard's pairs (default: all; see :class:`Shard`).
        autocast: decode under bf16 autocast on CUDA.
        extra: per-pair columns copied into the table (e.g. ``{"attribute": [...]}``).

    Returns:
        DataFrame with columns ``pair, positions, set_size, control, measurer, kind, recipient, donor,
        swapped, gap, moved, moved_abs, transfer, nearer_donor`` plus ``extra``'s.
    """
    unknown = [c for c in controls if c not in CONTROLS]
    if unknown:
        raise ValueError(f"unknown control(s) {unknown}; known: {list(CONTROLS)}")
    if "same_end" in controls and same_end_donors is None:
        raise ValueError("the same_end control needs same_end_donors (donors from the recipient's own end)")
    rq = as_quantized(tokenizer, recipients)
    dq = as_quantized(tokenizer, donors)
    if rq.shape != dq.shape:
        raise ValueError(f"recipients {tuple(rq.shape)} and donors {tuple(dq.shape)} must have the same shape")
    m_all, n_tok = rq.shape[0], rq.shape[1]
    sets = [position_tuple(p) for p in positions]
    for s in sets:
        if s[0] < 0 or s[-1] >= n_tok:
            raise ValueError(f"position set {s} outside 0..{n_tok - 1}")
    ids = np.arange(m_all) if pair_ids is None else np.asarray(pair_ids)
    # random other positions, drawn for every pair before sharding (same table on any number of ranks)
    rand_sets: list[np.ndarray] = []
    if "random_position" in controls:
        for k, s in enumerate(sets):
            rng = _pair_rng(seed, f"random_position:{set_label(s)}")
            others = np.setdiff1d(np.arange(n_tok), s)
            if len(others) < len(s):
                raise ValueError(f"no random other position set of size {len(s)} outside {s}")
            keys = rng.random((m_all, len(others)))
            rand_sets.append(others[np.argsort(keys, axis=1)[:, : len(s)]])
    sh = shard or Shard()
    rows = sh.rows(m_all)
    rq, dq, ids = rq[rows], dq[rows], ids[rows]
    sq = None if same_end_donors is None else as_quantized(tokenizer, same_end_donors)[rows]
    rmask = dmask = None
    if masks is not None:
        rmask = None if masks[0] is None else masks[0][rows]
        dmask = None if masks[1] is None else masks[1][rows]
    m = len(rows)

    from tqdm.auto import tqdm

    full_sweep = all(len(s) == 1 for s in sets) and {s[0] for s in sets} == set(range(n_tok))
    per_set = sum(c in ("none", "same_end", "all_except") for c in controls)
    per_set += "random_position" in controls and not ("none" in controls and full_sweep)
    per_set += 2 * ("swap_back" in controls)
    total = m * (2 + len(sets) * per_set + ("same_end" in controls))
    bar = tqdm(total=total, desc="swap decodes", unit="img", disable=not progress, leave=False)
    dec = _Decoder(tokenizer, measurers, batch, bar, autocast)
    try:
        rec_r = dec.measure(rq, rmask)
        rec_d = dec.measure(dq, dmask)
        if images is not None:
            ref_r = _measure_all(measurers, images[0][rows].to(rq.device), rmask)
            ref_d = _measure_all(measurers, images[1][rows].to(rq.device), dmask)
        else:
            ref_r, ref_d = rec_r, rec_d
        # the same-end donor's own value is the control's "donor"
        ref_s = dec.measure(sq, rmask) if "same_end" in controls else None

        # every patched batch goes through one queue, so decodes run at full batch size across sets
        # a sweep of every single position already holds each random-position swap: reuse it, no decode
        reuse_singletons = ("none" in controls and all(len(s) == 1 for s in sets)
                            and {s[0] for s in sets} == set(range(n_tok)))
        queue = _Queue(dec, batch)
        jobs: list[tuple[str, int, str, Any, list[np.ndarray] | None]] = []  # label, size, control, values, donor ref
        for k, s in enumerate(sets):
            label = set_label(s)
            for control in controls:
                dref = None
                if control == "none":
                    vals: Any = queue.put(paste_tokens(rq, dq, s), rmask)
                elif control == "same_end":
                    vals, dref = queue.put(paste_tokens(rq, sq, s), rmask), ref_s
                elif control == "random_position" and reuse_singletons:
                    vals = ("reuse", k)  # the tested swap at the random position, already in the queue
                elif control == "random_position":
                    q = rq.clone()
                    rs = torch.as_tensor(rand_sets[k][rows], device=rq.device)
                    ar = torch.arange(m, device=rq.device)[:, None]
                    q[ar, rs] = dq[ar, rs]
                    vals = queue.put(q, rmask)
                elif control == "all_except":
                    rest = [p for p in range(n_tok) if p not in s]
                    vals = queue.put(paste_tokens(rq, dq, rest) if rest else rq.clone(), rmask)
                elif control == "self":
                    q = paste_tokens(rq, rq, s)
                    # a self-swap must be an exact no-op on the tokens: its measures are the recipient's own
                    assert torch.equal(q, rq), "self-swap changed the tokens"
                    vals = rec_r
                elif control == "swap_back":
                    with torch.no_grad():
                        imgs = dec.images(paste_tokens(rq, dq, s))
                        back = torch.cat([tokenizer.encode(imgs[b : b + batch]).quantized
                                          for b in range(0, len(imgs), batch)])
                    vals = queue.put(paste_tokens(back, rq, s), rmask)
                else:  # donor_recon
                    vals = rec_d
                jobs.append((label, len(s), control, vals, dref))
        done = queue.results()
        if reuse_singletons:  # random-position rows read from the tested swaps at their random positions
            ticket = {int(lab): t for (lab, _, c, t, _) in jobs if c == "none"}
            # per measurer the tested swaps at every position, [N, m, D]
            stacks = [np.stack([done[ticket[p]][kk] for p in range(n_tok)]) for kk in range(len(measurers))]
            for j, (lab, size, c, vals, dref) in enumerate(jobs):
                if isinstance(vals, tuple) and vals[0] == "reuse":
                    pos = rand_sets[vals[1]][rows][:, 0]
                    jobs[j] = (lab, size, c, [st[pos, np.arange(m)] for st in stacks], dref)

        # columns gathered as arrays and framed once (a DataFrame per block costs more than the numbers)
        cols: dict[str, list[np.ndarray]] = {}

        def add(name: str, value: np.ndarray) -> None:
            cols.setdefault(name, []).append(value)

        extra_cols = {c: np.asarray(v)[rows] for c, v in (extra or {}).items()}
        for label, size, control, vals, dref in jobs:
            swapped = done[vals] if isinstance(vals, int) else vals
            dref = ref_d if dref is None else dref
            for k, meas in enumerate(measurers):
                # with originals as references, movement still starts at the recipient's own decode
                cmp = _compare(meas.kind, ref_r[k], dref[k], swapped[k], start=rec_r[k])
                add("pair", ids)
                for name, value in (("positions", label), ("set_size", size), ("control", control),
                                    ("measurer", meas.name), ("kind", meas.kind)):
                    add(name, np.full(m, value, dtype=object if isinstance(value, str) else np.int64))
                for name, value in cmp.items():
                    add(name, value)
                for c, v in extra_cols.items():
                    add(c, v)
    finally:
        bar.close()
    out = pd.DataFrame({c: np.concatenate(v) for c, v in cols.items()}) if cols else pd.DataFrame()
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

