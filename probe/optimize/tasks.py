"""Tasks built on the loop: edit, generate, inpaint, position-restricted edits (copy-paste, no optimization,
is :func:`probe.swap.copy_paste`).

Each returns an :class:`~probe.optimize.loop.OptimizeResult` and
:func:`write_run` writes a run folder: one PNG per image, the grid (input | milestones | result),
the loss trajectory, ``history.csv`` and ``config.json``.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from probe.optimize.loop import OptimizeConfig, OptimizeResult, StepInfo, optimize
from probe.optimize.objectives import ClipModel, ClipText, HeldOut, MaskedReconstruction, MeasurerTarget, load_clip
from probe.swap.maps import top_positions
from probe.swap.movement import movement
from probe.tokenizers.base import Tokenizer, module_device


@torch.no_grad()
def encode_features(tok: Tokenizer, images: torch.Tensor) -> torch.Tensor:
    """Pre-quantization features ``[B, N, C]`` (VAE: posterior mean) of ``images [B, 3, H, W]``."""
    return tok.encode(images.to(module_device(tok))).features.float()


def _clip(clip: ClipModel | str, tok: Tokenizer) -> ClipModel:
    return load_clip(clip, device=module_device(tok)) if isinstance(clip, str) else clip


GENERATE_DEFAULTS = OptimizeConfig(iterations=100, lr=0.1, ema_decay=0.9, noise=0.1, reg_weight=2.0, reg_target="seed")
"""The loop settings :func:`generate` and :func:`edit` use when given none: the paper's recipe against adversarial drift
(EMA, token noise, the regularizer towards the seed; with :data:`GENERATE_VIEWS`), values chosen by the
study in ``analyses/optimize_generation.py`` on the attribute world."""
GENERATE_VIEWS = {"n_views": 4, "pad": 3}
"""Random crop + flip views per step (and the reflect padding that lets crops of small images move) that
:func:`generate` uses when given none."""


def edit(tok: Tokenizer, images: torch.Tensor, prompt: str | Sequence[str], *, clip: ClipModel | str = "world-clip",
         negative: str | Sequence[str] | None = None, cfg: float = 1.0, n_views: int | None = None,
         pad: int | None = None, config: OptimizeConfig | None = None, heldout: HeldOut | None = None,
         frozen: torch.Tensor | None = None) -> OptimizeResult:
    """Text-guided editing: optimize the tokens of ``images [B, 3, H, W]`` towards ``prompt`` (one, or one per row).

    Defaults (``config``, ``n_views``, ``pad`` left None): the text-guided recipe of :func:`generate`.
    """
    clip = _clip(clip, tok)
    obj = ClipText(clip, prompt, negative=negative, cfg=cfg, n_views=GENERATE_VIEWS["n_views"] if n_views is None
                   else n_views, pad=GENERATE_VIEWS["pad"] if pad is None else pad)
    return optimize(tok, obj, encode_features(tok, images), config=config or GENERATE_DEFAULTS, heldout=heldout,
                    frozen=frozen)


@torch.no_grad()
def clip_top1(clip: ClipModel, images: torch.Tensor, prompts: Sequence[str], batch: int = 256) -> torch.Tensor:
    """Index into ``images`` of the best-matching image per prompt (the paper's seed choice). -> ``[P]``."""
    embs = torch.cat([clip.image(images[i:i + batch].to(clip.device)) for i in range(0, len(images), batch)])
    return (clip.text(prompts) @ embs.T).argmax(dim=1).cpu()


def random_features(tok: Tokenizer, n: int, *, seed: int = 0) -> torch.Tensor:
    """Random starting tokens ``[n, N, C]``: uniform codebook entries (VQ) or standard normal features."""
    g = torch.Generator().manual_seed(seed)
    if getattr(tok, "is_discrete", False):
        idx = torch.randint(0, tok.codebook_size, (n, tok.num_tokens), generator=g)
        return tok.codebook.detach().float().cpu()[idx].to(module_device(tok))
    return torch.randn(n, tok.num_tokens, tok.token_dim, generator=g).to(module_device(tok))


def generate(tok: Tokenizer, prompt: str | Sequence[str], n: int = 1, *, clip: ClipModel | str = "world-clip",
             seed_images: torch.Tensor | None = None, init: str = "top1", negative: str | Sequence[str] | None = None,
             cfg: float = 1.0, n_views: int | None = None, pad: int | None = None, config: OptimizeConfig | None = None,
             heldout: HeldOut | None = None, seed_index: Sequence[int] | torch.Tensor | None = None) -> OptimizeResult:
    """Generate ``n`` images per prompt from a seed set.

    Defaults (``config``, ``n_views``, ``pad`` left None): :data:`GENERATE_DEFAULTS` and
    :data:`GENERATE_VIEWS`, the paper's recipe against adversarial drift; pass ``OptimizeConfig()`` and
    ``n_views=0`` for the bare reference loop.

    ``init``: ``"top1"`` (every sample of a prompt starts from the CLIP top-1 image of ``seed_images``),
    ``"random"`` (random images of the set, drawn with ``config.seed``) or ``"tokens"`` (random tokens,
    no seed set). Rows are prompt-major: prompt 0's n samples, then prompt 1's, ...
    ``seed_index`` (one index into ``seed_images`` per row) overrides ``init``, e.g. top-1 picks
    computed once for a long list of prompts (:func:`clip_top1`).
    """
    config = config or GENERATE_DEFAULTS
    n_views = GENERATE_VIEWS["n_views"] if n_views is None else n_views
    pad = GENERATE_VIEWS["pad"] if pad is None else pad
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    rows = [p for p in prompts for _ in range(n)]
    clip = _clip(clip, tok)
    if seed_index is not None:
        if seed_images is None or len(seed_index) != len(rows):
            raise ValueError(f"generate: seed_index needs seed_images and one index per row ({len(rows)})")
        seed = encode_features(tok, seed_images[torch.as_tensor(seed_index, dtype=torch.long)])
    elif init == "tokens":
        seed = random_features(tok, len(rows), seed=config.seed)
    elif init in ("top1", "random"):
        if seed_images is None:
            raise ValueError(f"generate: init={init!r} needs seed_images (or use init='tokens')")
        if init == "top1":
            pick = clip_top1(clip, seed_images, prompts).repeat_interleave(n)
        else:
            g = torch.Generator().manual_seed(config.seed)
            pick = torch.randint(0, len(seed_images), (len(rows),), generator=g)
        seed = encode_features(tok, seed_images[pick])
    else:
        raise ValueError(f"generate: init must be 'top1', 'random' or 'tokens', got {init!r}")
    neg = None if negative is None else ([negative] * len(rows) if isinstance(negative, str)
                                         else [q for q in negative for _ in range(n)])
    obj = ClipText(clip, rows, negative=neg, cfg=cfg, n_views=n_views, pad=pad)
    return optimize(tok, obj, seed, config=config, heldout=heldout)


def paste_known(images: torch.Tensor, target: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """The composite: ``target`` where ``known`` is 1, ``images`` (clamped to [0, 1]) elsewhere."""
    k = known.to(images.dtype)
    return k * target + (1 - k) * images.clamp(0, 1)


@dataclass
class TokenReset:
    """Every ``every`` steps: paste the known pixels into this step's decoded images and re-encode.

    A callback for :func:`~probe.optimize.loop.optimize` (``reset=``). ``last`` keeps the last composite.
    """

    tok: Tokenizer
    target: torch.Tensor
    known: torch.Tensor
    every: int = 50
    last: torch.Tensor | None = None

    def __call__(self, info: StepInfo) -> torch.Tensor | None:
        if self.every <= 0 or (info.step + 1) % self.every != 0:
            return None
        self.last = paste_known(info.images.float(), self.target, self.known)
        return encode_features(self.tok, self.last)


def box_known(size: int, boxes: torch.Tensor) -> torch.Tensor:
    """``known [B, 1, size, size]``: 0 inside each row's box, 1 outside.

    ``boxes [B, 4]`` are ``x0, y0, x1, y1`` in fractions of the side (clipped to the image).
    """
    boxes = torch.as_tensor(boxes, dtype=torch.float32).clamp(0, 1)
    known = torch.ones(len(boxes), 1, size, size)
    for i, (x0, y0, x1, y1) in enumerate((boxes * size).round().long().tolist()):
        known[i, :, y0:y1, x0:x1] = 0
    return known


def masked_images(images: torch.Tensor, known: torch.Tensor, fill: float = 0.5) -> torch.Tensor:
    """``images`` with the hole (``known == 0``) painted ``fill`` (the inpainting seed)."""
    k = known.to(images.dtype)
    return k * images + (1 - k) * fill


def inpaint(tok: Tokenizer, images: torch.Tensor, known: torch.Tensor, *, p: int = 2, reset_every: int = 50,
            fill: float = 0.5, config: OptimizeConfig | None = None, heldout: HeldOut | None = None) -> OptimizeResult:
    """Fill the hole of ``images [B, 3, H, W]`` (``known [B, 1, H, W]`` 1 on kept pixels).

    Seeded with the masked image; the loss is L``p`` on the known pixels; every ``reset_every`` steps
    (0 = never) the known pixels are pasted back and the composite re-encoded (token reset).
    """
    dev = module_device(tok)
    images, known = images.to(dev).float(), known.to(dev).float()
    obj = MaskedReconstruction(images, known, p=p)
    reset = TokenReset(tok, images, known, reset_every) if reset_every > 0 else None
    seed = encode_features(tok, masked_images(images, known, fill))
    return optimize(tok, obj, seed, config=config, heldout=heldout, reset=reset)


# ---------------------------------------------------------------------------------------- positions
def load_position_map(path: str | Path) -> Any:
    """A semantic map from JSON: ``SemanticMap.to_json`` output, or a plain ``{attribute: [positions]}``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"semantic map {path} does not exist; write one with `tokenprobe probe` "
                                "or pass positions")
    data = json.loads(path.read_text())
    if isinstance(data, dict) and "by_attribute" in data and "rank_by" in data:
        from probe.probes.semantic_map import SemanticMap

        return SemanticMap.from_dict(data)
    if isinstance(data, dict) and isinstance(data.get("declared_semantics"), dict):  # a zoo model record
        data = data["declared_semantics"]
    if isinstance(data, dict):
        out = {}
        for k, v in data.items():
            if str(k).startswith("_"):
                continue
            v = v.get("positions") if isinstance(v, dict) else v
            if not isinstance(v, list):
                break
            out[str(k)] = [int(p) if not isinstance(p, dict) else int(p["position"]) for p in v]
        else:
            return out
    raise ValueError(f"{path}: expected a semantic map (keys rank_by, by_attribute), a zoo model record with "
                     "declared_semantics, or {attribute: [positions]}")


def attribute_drift(measurers: Mapping[str, Callable[..., torch.Tensor]], before: torch.Tensor,
                    after: torch.Tensor) -> pd.DataFrame:
    """How far each measured attribute moved, one row per (attribute, image).

    Columns ``attribute, row, before, after, drift``; ``drift`` is :func:`probe.swap.movement.movement`'s
    unsigned ``distance``: ``|after - before|`` for scalars, total variation for class probabilities and the
    angle / (2 pi) for unit vectors (hue; the measurer says so with ``kind = "circular"``, else ``[B, K]``
    outputs are read as class probabilities).
    """
    rows = []
    for name, m in measurers.items():
        with torch.no_grad():
            a, b = (m(x.float().clamp(0, 1)).float().cpu() for x in (before, after))
        kind = getattr(m, "kind", None) or ("continuous" if a.ndim == 1 else "categorical")
        mv = movement(kind, a, b)
        for r in range(len(a)):
            rows.append({"attribute": name, "row": r, "before": float(mv["before"][r]),
                         "after": float(mv["after"][r]), "drift": float(mv["distance"][r])})
    return pd.DataFrame(rows)


def validated_positions(path: str | Path, attribute: str) -> list[int]:
    """The confirmed positions of ``attribute`` in a swap validation: ``path`` is a run folder (its
    ``swap/validated_map.csv``), a swap output folder (``validated_map.csv``), or a ``validated_map.csv`` /
    ``validated_map.json`` file (:meth:`probe.swap.ValidatedMap.save`).

    Raises :class:`probe.errors.UsageError` (one line: what is missing and what to do) when there is no map,
    no row for the attribute, or its verdict is not ``confirmed``.
    """
    from probe.errors import UsageError
    from probe.swap.engine import parse_label

    path = Path(path)
    found = next((c for c in (path / "swap" / "validated_map.csv", path / "validated_map.csv",
                              path / "validated_map.json") if c.exists()), None) if path.is_dir() else path
    if found is None or not found.exists():
        raise UsageError(f"no validated map at {path}: give a run folder with swap/validated_map.csv (tokenprobe run "
                         "with the swap stage), a tokenprobe swap output folder, or the file itself")
    if found.suffix == ".json":
        answers = pd.DataFrame(json.loads(found.read_text()).get("answers", []))
    else:
        answers = pd.read_csv(found, keep_default_na=False, na_values=[""], dtype={"positions": str})
    if answers.empty or not {"attribute", "positions", "verdict"} <= set(answers.columns):
        raise UsageError(f"{found}: expected a validated map with columns attribute, positions, verdict")
    row = answers[answers["attribute"] == attribute]
    if row.empty:
        raise UsageError(f"{found} has no row for {attribute!r}; it has {sorted(answers['attribute'].unique())}")
    verdict = str(row["verdict"].iloc[0])
    if verdict != "confirmed":
        raise UsageError(f"{found}: {attribute!r} was not confirmed (verdict {verdict!r}); give --positions "
                         "explicitly or 'all'")
    return list(parse_label(row["positions"].iloc[0]))


POSITION_EDIT_METHODS = ("auto", "search", "gradient", "search+gradient")


def _row_objectives(measurer: Callable[..., torch.Tensor], target: Any, b: int) -> list[MeasurerTarget]:
    """One :class:`MeasurerTarget` per image (``target``: one value for all, or ``[B]``)."""
    t = torch.as_tensor(target) if not isinstance(target, str) else None
    per_row = t is not None and t.ndim == 1 and len(t) == b and not (getattr(measurer, "kind", "") == "circular"
                                                                     and len(t) == 2 and b != 2)
    return [MeasurerTarget(measurer, t[r] if per_row else target) for r in range(b)]


def _better_rows(first: OptimizeResult, second: OptimizeResult, loss_first: torch.Tensor,
                 loss_second: torch.Tensor) -> OptimizeResult:
    """Row by row, the result with the lower objective (``first`` on ties)."""
    take = (loss_second < loss_first).cpu()

    def mix(x: torch.Tensor | None, y: torch.Tensor | None) -> torch.Tensor | None:
        if x is None or y is None:
            return x
        m = take.to(x.device).view(-1, *([1] * (x.ndim - 1)))
        return torch.where(m, y.to(x.device), x)

    hist = pd.concat([first.history.assign(method="search"), second.history.assign(method="gradient")],
                     ignore_index=True)
    return OptimizeResult(features=mix(first.features, second.features), quantized=mix(first.quantized, second.quantized),
                          indices=mix(first.indices, second.indices), images=mix(first.images, second.images),
                          seed_images=first.seed_images, history=hist, milestones=first.milestones,
                          steps=first.steps + second.steps,
                          row_steps=first.row_steps + np.where(take.numpy(), second.row_steps, 0))


def position_edit(tok: Tokenizer, images: torch.Tensor, attribute: str, target: Any, *,
                  measurer: Callable[..., torch.Tensor], positions: Sequence[int] | None = None,
                  smap: Any = None, k: int = 1, others: Mapping[str, Callable[..., torch.Tensor]] | None = None,
                  config: OptimizeConfig | None = None, method: str = "auto",
                  sweeps: int = 3) -> tuple[OptimizeResult, pd.DataFrame]:
    """Move ``attribute`` of ``images [B, 3, H, W]`` to ``target`` by changing only the positions tied to it.

    Positions: given, or the map's top ``k`` for ``attribute`` (``smap``); every other position keeps its
    token bitwise. ``positions=None`` and ``smap=None`` edits all positions (the unrestricted baseline).

    Methods (the objective is :class:`MeasurerTarget` of ``measurer`` and ``target``, one value or ``[B]``):

    - ``"search"``: every code at each position, scored by the objective
      (:func:`probe.optimize.search.search_positions`; discrete tokenizers);
    - ``"gradient"``: the loop (:func:`~probe.optimize.loop.optimize`) with the other positions frozen;
      a straight-through gradient may never leave the seed code's cell;
    - ``"search+gradient"``: the search, then the loop from its result; per image, the one with the
      lower objective (refinement where it helps);
    - ``"auto"`` (default): ``"search"`` for a restricted edit of a discrete tokenizer, else ``"gradient"``.

    Returns the result and :func:`attribute_drift` over ``{attribute: measurer, **others}``.
    """
    if method not in POSITION_EDIT_METHODS:
        raise ValueError(f"position_edit: method must be one of {POSITION_EDIT_METHODS}, got {method!r}")
    if positions is None and smap is not None:
        positions = top_positions(smap, attribute, k)
    discrete = bool(getattr(tok, "is_discrete", False))
    if method == "auto":
        method = "search" if positions is not None and discrete else "gradient"
    if method != "gradient" and (positions is None or not discrete):
        raise ValueError(f"position_edit: method {method!r} searches codes at given positions of a discrete "
                         "tokenizer; give positions (or a map), or use method='gradient'")
    frozen = None
    if positions is not None:
        frozen = torch.ones(tok.num_tokens, dtype=torch.bool)
        frozen[torch.as_tensor(list(positions), dtype=torch.long)] = False
    dev = module_device(tok)
    objs = _row_objectives(measurer, target, len(images))
    if method == "gradient":
        seed = encode_features(tok, images)
        res = optimize(tok, MeasurerTarget(measurer, target), seed, config=config,
                       frozen=None if frozen is None else frozen.to(dev))
    else:
        from probe.optimize.search import search_positions

        res = search_positions(tok, images, list(positions), objs, sweeps=sweeps)
        if method == "search+gradient":
            grad = optimize(tok, MeasurerTarget(measurer, target), res.features.float(), config=config,
                            frozen=frozen.to(dev))
            with torch.no_grad():
                loss = lambda r: torch.stack([objs[i](r.images[i:i + 1].to(dev)).float().cpu()[0]  # noqa: E731
                                              for i in range(len(objs))])
                res = _better_rows(res, grad, loss(res), loss(grad))
    drift = attribute_drift({attribute: measurer, **dict(others or {})}, res.seed_images, res.images)
    return res, drift


# ---------------------------------------------------------------------------------------- output
def save_images(images: torch.Tensor, folder: str | Path, prefix: str = "") -> list[Path]:
    """One PNG per image of ``images [B, 3, H, W]`` in [0, 1]."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    arr = (images.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
    for i, a in enumerate(arr):
        path = folder / f"{prefix}{i:04d}.png"
        Image.fromarray(a).save(path)
        out.append(path)
    return out


def write_run(out: str | Path, result: OptimizeResult, *, inputs: torch.Tensor | None = None,
              settings: Mapping[str, Any] | None = None, labels: Sequence[str] | None = None) -> Path:
    """Write ``images/``, ``grid.png|svg``, ``trajectory.png|svg``, ``history.csv``, ``config.json`` under ``out``."""
    from probe.viz.optimize import optimization_grid, optimization_trajectory
    from probe.viz.save import save_figure

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_images(result.images, out / "images")
    save_figure(optimization_grid(result.milestones, inputs=inputs, labels=labels), out / "grid")
    save_figure(optimization_trajectory(result.history), out / "trajectory")
    result.history.to_csv(out / "history.csv", index=False)
    with open(out / "config.json", "w") as fh:
        json.dump(dict(settings or {}), fh, indent=2, default=str)
    return out
