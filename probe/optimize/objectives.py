"""Composable objectives for test-time token optimization (after lucent's ``objectives``).

An :class:`Objective` maps decoded images ``[B, 3, H, W]`` (raw decoder output, not clamped) to a
loss ``[B]`` (lower is better). Objectives add, subtract, scale and negate::

    obj = ClipText(clip, ["a red star"]) + 0.5 * MaskedReconstruction(target, known)

Random objectives (multi-crop views) draw from per-row generators passed as ``generators=``
(one ``torch.Generator`` per batch row), so a row's randomness does not depend on which other
rows share the batch: a batch of prompts gives the same result as the prompts run one by one.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

Generators = Sequence[torch.Generator] | None


class Objective:
    """A loss ``[B]`` of images ``[B, 3, H, W]``; combine with ``+``, ``-``, ``*`` (scalar), unary ``-``."""

    name: str = "objective"

    def __call__(self, images: torch.Tensor, *, generators: Generators = None) -> torch.Tensor:
        return self.loss(images, generators=generators)

    def loss(self, images: torch.Tensor, *, generators: Generators = None) -> torch.Tensor:
        raise NotImplementedError

    # --- algebra
    def __add__(self, other: Objective | float) -> Objective:
        if isinstance(other, int | float):
            return Sum([self, Constant(float(other))]) if other else self
        return Sum([self, other])

    def __radd__(self, other: Objective | float) -> Objective:
        # sum([...]) starts from 0
        return self.__add__(other)

    def __neg__(self) -> Objective:
        return Scaled(self, -1.0)

    def __sub__(self, other: Objective | float) -> Objective:
        return self + (-other)

    def __mul__(self, w: float) -> Objective:
        if not isinstance(w, int | float):
            raise TypeError(f"objectives scale by numbers only, got {type(w).__name__}")
        return Scaled(self, float(w))

    __rmul__ = __mul__

    def __truediv__(self, w: float) -> Objective:
        return self * (1.0 / w)

    def __repr__(self) -> str:
        return self.name


class Constant(Objective):
    def __init__(self, value: float) -> None:
        self.value = value
        self.name = f"{value:g}"

    def loss(self, images: torch.Tensor, *, generators: Generators = None) -> torch.Tensor:
        return images.new_full((images.shape[0],), self.value, dtype=torch.float32)


class Scaled(Objective):
    def __init__(self, inner: Objective, weight: float) -> None:
        self.inner, self.weight = inner, weight
        self.name = f"-{inner.name}" if weight == -1 else f"{weight:g}*{inner.name}"

    def loss(self, images: torch.Tensor, *, generators: Generators = None) -> torch.Tensor:
        return self.weight * self.inner(images, generators=generators)


class Sum(Objective):
    def __init__(self, parts: Sequence[Objective]) -> None:
        flat: list[Objective] = []
        for p in parts:
            flat.extend(p.parts if isinstance(p, Sum) else [p])
        self.parts = flat
        self.name = " + ".join(p.name for p in flat)

    def loss(self, images: torch.Tensor, *, generators: Generators = None) -> torch.Tensor:
        return sum(p(images, generators=generators) for p in self.parts)  # type: ignore[return-value]


class Lambda(Objective):
    """Wrap a plain function ``images [B,3,H,W] -> [B]``."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], name: str = "lambda") -> None:
        self.fn, self.name = fn, name

    def loss(self, images: torch.Tensor, *, generators: Generators = None) -> torch.Tensor:
        return self.fn(images)


# ---------------------------------------------------------------------------------------- views
def random_views(images: torch.Tensor, n_views: int, size: int, *, generators: Generators = None,
                 flip: bool = True, pad: int = 0) -> torch.Tensor:
    """Random crops of side ``size`` (+ random horizontal flips) of each row.

    ``images [B, 3, H, W]`` -> ``[n_views, B, 3, size, size]``. Images smaller than ``size`` are
    resized up first; ``pad`` reflect-pads so that crops of an image of side ``size`` still
    translate. Each row draws from its own generator (``generators[b]``; default: torch's global one).
    ``n_views <= 0`` returns the images themselves (one view ``[1, B, 3, H, W]``, not resized: the CLIP
    resizes its input, :meth:`ClipModel.image`).
    """
    b, _, h, w = images.shape
    if n_views <= 0:
        return images[None]
    if min(h, w) < size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
        h = w = size
    if pad > 0:
        images = F.pad(images, (pad, pad, pad, pad), mode="reflect")
        h, w = h + 2 * pad, w + 2 * pad
    views = []
    for _ in range(n_views):
        rows = []
        for i in range(b):
            g = generators[i] if generators is not None else None
            r = torch.randint(0, h - size + 1, (1,), generator=g).item()
            c = torch.randint(0, w - size + 1, (1,), generator=g).item()
            crop = images[i, :, r:r + size, c:c + size]
            if flip and torch.rand((), generator=g).item() < 0.5:
                crop = crop.flip(-1)
            rows.append(crop)
        views.append(torch.stack(rows))
    return torch.stack(views)


# ---------------------------------------------------------------------------------------- CLIP
class ClipModel:
    """A CLIP (any ``open_clip.CLIP`` / ``CustomTextCLIP``, SigLIP included) + its tokenizer.

    Attributes:
        model: the open_clip model (eval mode, frozen).
        tokenizer: text -> token ids.
        size: the image side the vision tower takes.
        mean, std: ``[1, 3, 1, 1]`` normalization of [0, 1] pixels.
        sigmoid: True for SigLIP models (they score with ``logit_scale * cos + logit_bias``).
        antialias: resize images to ``size`` with an antialiased bilinear filter. Default False, the
            reference's plain bilinear ``F.interpolate`` (token-opt ``CLIPObjective.preprocess``); turn
            it on when the decoded images are much larger than the CLIP's input (e.g. 256 px into 32 px),
            where plain bilinear reads only every few pixels and its score follows single-pixel noise.
    """

    def __init__(self, model: torch.nn.Module, tokenizer: Callable[..., torch.Tensor], *,
                 size: int, mean: Sequence[float], std: Sequence[float], name: str = "clip",
                 antialias: bool = False) -> None:
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.tokenizer = tokenizer
        self.size = int(size)
        dev = next(model.parameters()).device
        self.mean = torch.tensor(list(mean), device=dev).view(1, 3, 1, 1)
        self.std = torch.tensor(list(std), device=dev).view(1, 3, 1, 1)
        self.sigmoid = getattr(model, "logit_bias", None) is not None
        self.name = name
        self.antialias = antialias

    @property
    def device(self) -> torch.device:
        return self.mean.device

    @torch.no_grad()
    def text(self, prompts: Sequence[str]) -> torch.Tensor:
        """Unit text embeddings ``[P, D]``."""
        return self.model.encode_text(self.tokenizer(list(prompts)).to(self.device), normalize=True).float()

    def image(self, images: torch.Tensor) -> torch.Tensor:
        """Unit image embeddings ``[B, D]`` of ``images [B, 3, size, size]`` in [0, 1] (differentiable)."""
        if images.shape[-2:] != (self.size, self.size):
            images = F.interpolate(images, size=(self.size, self.size), mode="bilinear", antialias=self.antialias,
                                   align_corners=False)
        return self.model.encode_image((images - self.mean) / self.std, normalize=True).float()


def load_clip(spec: str, *, device: str | torch.device | None = None, antialias: bool = False) -> ClipModel:
    """Load a CLIP for objectives (``antialias``: see :class:`ClipModel`).

    ``spec``: ``world-clip`` (or any shipped CLIP in ``probe.zoo``); ``ARCH:PRETRAINED`` for open_clip
    (``ViT-B-32:laion2b_s34b_b79k``, ``ViT-B-16-SigLIP:webli``; PRETRAINED may be a local weights file);
    ``hf-hub:ORG/NAME`` or ``local-dir:FOLDER`` (open_clip's own schemes).
    """
    from probe.device import resolve_device

    dev = resolve_device(device)
    from probe import zoo

    if spec in zoo.available():
        model, _, tok = zoo.load(spec, device=dev)
        pp = model.visual.preprocess_cfg
        return ClipModel(model, tok, size=pp["size"], mean=pp["mean"], std=pp["std"], name=spec, antialias=antialias)
    import open_clip

    if spec.startswith(("hf-hub:", "local-dir:")):
        model, _, _ = open_clip.create_model_and_transforms(spec, device=dev)
        tok = open_clip.get_tokenizer(spec)
    elif ":" in spec:
        arch, pretrained = spec.split(":", 1)
        try:
            model, _, _ = open_clip.create_model_and_transforms(arch, pretrained=pretrained, device=dev)
        except RuntimeError as exc:  # no such tag / no network: say what to pass instead
            raise RuntimeError(f"CLIP {spec!r}: open_clip could not load it ({exc}); pass a local weights "
                               "file as ARCH:/path/to/weights.bin or a shipped model (world-clip)") from exc
        tok = open_clip.get_tokenizer(arch)
    else:
        raise ValueError(f"CLIP spec {spec!r}: expected a shipped model ({', '.join(zoo.available())}), "
                         "ARCH:PRETRAINED, hf-hub:ORG/NAME or local-dir:FOLDER")
    pp = model.visual.preprocess_cfg
    size = pp["size"] if isinstance(pp["size"], int) else pp["size"][0]
    return ClipModel(model.eval(), tok, size=size, mean=pp["mean"], std=pp["std"], name=spec, antialias=antialias)


class ClipText(Objective):
    """Minus the CLIP similarity to a prompt, averaged over random crop + flip views.

    ``prompts``: one prompt for the whole batch or one per row. With ``negative`` prompts the loss is
    ``-sim - (1 - cfg) * neg_sim`` (the paper's form; cfg > 1 pushes away from the negative).
    SigLIP models score with their sigmoid logit ``scale * cos + bias`` instead of the cosine.

    Args:
        n_views: random views per image (0: the whole image once).
        crop: crop side in decoded pixels (default: the CLIP's input size, capped at the image side).
        pad: reflect padding before cropping (lets crops of small images translate).
    """

    def __init__(self, clip: ClipModel, prompts: str | Sequence[str], *, negative: str | Sequence[str] | None = None,
                 cfg: float = 1.0, n_views: int = 0, crop: int | None = None, pad: int = 0,
                 flip: bool = True) -> None:
        self.clip, self.cfg, self.n_views, self.crop, self.pad, self.flip = clip, cfg, n_views, crop, pad, flip
        self.prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        self.negative = None if negative is None else ([negative] if isinstance(negative, str) else list(negative))
        self.text_emb = clip.text(self.prompts)  # [P, D]
        self.neg_emb = None if self.negative is None else clip.text(self.negative)
        self.name = f"clip({self.prompts[0]!r}{'...' if len(self.prompts) > 1 else ''})"

    def embed(self, images: torch.Tensor, *, generators: Generators = None) -> torch.Tensor:
        """Unit image embeddings of the views: ``[V, B, D]``."""
        b = images.shape[0]
        size = min(self.crop or self.clip.size, images.shape[-1])
        views = random_views(images, self.n_views, size, generators=generators, flip=self.flip, pad=self.pad)
        return self.clip.image(views.flatten(0, 1)).view(views.shape[0], b, -1)

    def score(self, emb: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """``[B]`` similarity of view embeddings ``[V, B, D]`` to ``text [1 or B, D]``, mean over views."""
        if text.shape[0] not in (1, emb.shape[1]):
            raise ValueError(f"ClipText: {text.shape[0]} prompts for a batch of {emb.shape[1]} images "
                             f"(give 1 or {emb.shape[1]})")
        sim = (emb * text[None]).sum(-1)  # [V, B]
        if self.clip.sigmoid:  # SigLIP: its own logit
            m = self.clip.model
            sim = sim * m.logit_scale.exp() + m.logit_bias
        return sim.mean(0)

    def loss(self, images: torch.Tensor, *, generators: Generators = None) -> torch.Tensor:
        emb = self.embed(images, generators=generators)  # the negative sees the same views
        sim = self.score(emb, self.text_emb)
        if self.neg_emb is None:
            return -sim
        return -sim - (1.0 - self.cfg) * self.score(emb, self.neg_emb)


# ---------------------------------------------------------------------------------------- pixels
class MaskedReconstruction(Objective):
    """L1 or L2 distance to ``target`` on the known pixels only.

    Args:
        target: ``[B, 3, H, W]`` images in [0, 1] (values under the hole are ignored).
        known: ``[B, 1, H, W]`` (or ``[B, 3, H, W]``) 1 where the pixel is known, 0 in the hole.
        p: 1 (L1) or 2 (L2).
    """

    def __init__(self, target: torch.Tensor, known: torch.Tensor, *, p: int = 2) -> None:
        if p not in (1, 2):
            raise ValueError(f"MaskedReconstruction: p must be 1 or 2, got {p}")
        if known.shape[0] != target.shape[0] or known.shape[-2:] != target.shape[-2:]:
            raise ValueError(f"MaskedReconstruction: mask {tuple(known.shape)} does not fit "
                             f"target {tuple(target.shape)}")
        self.target, self.known, self.p = target, known.to(target.dtype), p
        self.name = f"masked_l{p}"

    def loss(self, images: torch.Tensor, *, generators: Generators = None) -> torch.Tensor:
        d = (images.float() - self.target) * self.known
        d = d.abs() if self.p == 1 else d.pow(2)
        n = (self.known.expand_as(d)).flatten(1).sum(1).clamp_min(1.0)
        return d.flatten(1).sum(1) / n


# ---------------------------------------------------------------------------------------- measurers
class MeasurerTarget(Objective):
    """Squared distance of a measurer's reading to a target value.

    ``measurer``: a ``probe.measure.Measurer`` or any callable ``images -> [B]`` (continuous),
    ``[B, K]`` class probabilities (categorical: the loss is ``-log p[target]``, ``target`` a class
    index or name) or ``[B, 2]`` unit vectors (circular: ``1 - cos``, ``target`` a hue in [0, 1) or a
    ``[2]`` vector). ``target`` may also be a ``[B]`` tensor (one per row). Images are clamped to
    [0, 1] before measuring (measurers read images, not raw decoder output).
    """

    def __init__(self, measurer: Callable[..., torch.Tensor], target: Any, *, kind: str | None = None,
                 masks: torch.Tensor | None = None, name: str | None = None) -> None:
        self.measurer, self.masks = measurer, masks
        self.kind = kind or getattr(measurer, "kind", "continuous")
        if self.kind == "categorical" and isinstance(target, str):
            classes = list(getattr(measurer, "classes", []))
            if target not in classes:
                raise ValueError(f"MeasurerTarget: class {target!r} not among the measurer's classes {classes}")
            target = classes.index(target)
        self.target = target
        self.name = name or f"{getattr(measurer, 'name', 'measure')}->{target}"

    def read(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().clamp(0, 1)
        return self.measurer(x, masks=self.masks) if self.masks is not None else self.measurer(x)

    def loss(self, images: torch.Tensor, *, generators: Generators = None) -> torch.Tensor:
        m = self.read(images)
        t = self.target
        if self.kind == "categorical":
            idx = torch.as_tensor(t, device=m.device).long().expand(m.shape[0])
            return -torch.log(m.gather(1, idx[:, None])[:, 0].clamp_min(1e-8))
        if self.kind == "circular":
            tt = torch.as_tensor(t, dtype=m.dtype, device=m.device)
            if tt.ndim == 0 or (tt.ndim == 1 and tt.shape[0] == m.shape[0] and m.shape[0] != 2):
                ang = 2 * torch.pi * tt
                tt = torch.stack([torch.cos(ang), torch.sin(ang)], dim=-1)
            return 1.0 - (F.normalize(m, dim=-1) * F.normalize(tt.expand_as(m), dim=-1)).sum(-1)
        tt = torch.as_tensor(t, dtype=m.dtype, device=m.device)
        return (m - tt).pow(2)


# ---------------------------------------------------------------------------------------- held-out
class HeldOut:
    """A scorer reported beside the optimized objective, never optimized (higher is better).

    Wraps an objective (score = minus its loss, e.g. a second CLIP or SigLIP ``ClipText``) or any
    callable ``images -> [B]`` score. Images are clamped to [0, 1] (what a user would see).
    """

    def __init__(self, scorer: Objective | Callable[[torch.Tensor], torch.Tensor], name: str | None = None) -> None:
        self.scorer = scorer
        self.name = name or getattr(scorer, "name", "heldout")

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().clamp(0, 1)
        if isinstance(self.scorer, Objective):
            return -self.scorer(x)
        return self.scorer(x)
