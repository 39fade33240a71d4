"""Training of small tokenizers (:class:`~probe.tokenizers.world.WorldTokenizer`) on the attribute world.

One function does the work: :func:`train` takes a :class:`TrainConfig`, writes under ``out_dir``

    config.json        every setting (model, world, optimizer, seeds), so the run can be repeated
    log.jsonl          one line per logged step (losses, lr, eval PSNR, code usage)
    last.pt            the latest checkpoint (model, optimizer, step, elapsed time, RNG); resumable
    model.json / model.safetensors   the final model in the zoo format

and returns the trained model. The schedule (linear warm-up, then cosine to ``min_lr_ratio``) runs on
``progress = max(step / steps, elapsed / max_minutes)``: with a step budget training is deterministic;
with a wall-clock budget (``max_minutes``) the schedule still anneals to its end before the time runs out.

The shipped pair is made by a chain of such runs, each starting from the last (``init``). ``world-32-continuous``:
from scratch on the default world with one-factor pairs ("ada", top-2), continued with "ada" top-2, then on the
pinned-stripe world "swap" top-1 (36 min), "ada" top-1, 500 "swap" steps, the object-weighted loss
(``w_object``) and a finer decoder grid (``dec_patch_size`` 4). ``world-32``: the twin's encoder and decoder with
1024 codes seeded by k-means (``init_kmeans``), trained with "ada" top-1 and ``w_object``. Every stage's flags and
command are in the model's zoo JSON (``training_chain``); analyses/world_tokenizer/reproduce.sh runs them.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tqdm.auto import tqdm

from probe.schedule import budget_progress, warmup_cosine_lr
from probe.tokenizers.adversarial import (
    PatchDiscriminator,
    discriminator_hinge_loss,
    generator_hinge_loss,
)
from probe.tokenizers.world import WorldTokenizer, WorldTokenizerConfig, psnr


@dataclass
class TrainConfig:
    """Every setting of a training run. Defaults are those of the shipped ``world-32`` family.

    Attributes:
        model: :class:`WorldTokenizerConfig` fields (missing ones take that class's defaults).
        world: ``WorldConfig`` overrides for ``probe.data.world`` (empty: the world's defaults).
        resolution: side of the rendered world images; must equal ``model['image_size']``.
        n_train: training images, rendered once with ``data_seed`` (cached under ``cache_dir``).
        n_eval: held-out images (rendered with ``eval_seed``) for the PSNR logged during training.
        data_seed, eval_seed: world seeds of the training and held-out sets.
        seed: seed of the model initialisation, batch order and code restarts.
        batch_size: images per step.
        steps: step budget (the schedule's length when no wall-clock budget binds first).
        max_minutes: optional wall-clock budget; training stops (annealed) when it is spent.
        lr: peak learning rate (AdamW).
        min_lr_ratio: final learning rate as a fraction of ``lr``.
        warmup_steps: linear warm-up steps.
        weight_decay: AdamW weight decay on matrices (not on biases, norms, embeddings or codes).
        betas: AdamW betas.
        grad_clip: max global gradient norm (0 disables).
        w_l1, w_l2, w_grad: weights of the L1, L2 and image-gradient (edge) reconstruction losses.
        w_codebook, w_commit: weights of the VQ codebook and commitment losses.
        w_object: weight of an extra L1 + L2 loss averaged over the object's pixels only (the object mask dilated
            by one pixel, so its anti-aliased rim and the background just outside count). A shape covers a few
            percent of a 32x32 image, so the plain losses let the decoder trade its outline for the stripes
            (without this term the world tokenizers drew every shape as a blob). 0 disables it; with it, the world's object
            masks are rendered and cached with the images.
        w_perceptual: weight of the perceptual loss (``probe.tokenizers.perceptual.OraclePerceptual``: LPIPS's
            recipe on the frozen conv stages of the shipped network ``perceptual_net``). 0 disables it.
        perceptual_net: zoo name of the frozen world-oracle that the perceptual loss reads.
        w_adversarial: weight of the adversarial (hinge) loss of a patch discriminator
            (``probe.tokenizers.adversarial``), TiTok's and VQGAN's term against soft edges. 0 disables it.
        adv_start_step: steps during which only the discriminator trains (the tokenizer does not yet see its
            loss); from a pretrained ``init`` a few hundred steps let it learn what "real" looks like first.
        disc_lr: learning rate of the discriminator (Adam, betas (0.5, 0.9), constant).
        disc_channels: channels of the discriminator's first conv.
        nested_dropout: fraction of each batch whose tokens are cut to a random prefix (length uniform in
            1..N; the rest zeroed at the decoder input) -- nested ("tail") token dropout as in FlexTok and
            One-D-Piece. It orders the tokens coarse to fine, so global attributes gather in a few early
            positions instead of being spread redundantly over all of them. 0 disables it.
        pairs: "" (off), "ada" or "hoyer". With pairs, every batch is ``batch_size / 2`` pairs: a training
            image and its partner, the same world image re-rendered with one randomly chosen rendered factor
            (or stripe nuisance) resampled. This is weak supervision from the generator (a pair shares all but
            one factor; which one is never given), as in Locatello et al. 2020 ("Weakly-supervised
            disentanglement without compromises") and SlowVAE's sparse transitions (Klindt et al. 2021); it
            is not part of TiTok's recipe.
            "ada": per pair, the positions whose feature change ``||z1_n - z2_n||`` is below the midpoint of
            its min and max are replaced by the pair's mean before quantization and decoding (Ada-GVAE's
            adaptive averaging, on token positions): tokens that do not change must really be shared.
            "swap": as "ada", but the shared positions of both images take the first image's features instead
            of the mean, so the partner's reconstruction is exactly a copy-paste edit: the first image's tokens
            with its ``pair_topk`` most changed positions pasted from the partner. This trains the single-position
            swap that the localization measures. Trained long, it grows echoes (several positions that can each
            impose the factor alone); the twin's chain uses it in two stages between "ada" stages.
            "exchange": as "swap", in both directions: the shared positions are exchanged within the pair, so
            each image is decoded from its own ``pair_topk`` most changed tokens pasted into the other image's
            tokens. Meant to forbid echoes (a position that is not pasted must change nothing); in a 30-minute CPU
            trial it did not remove them.
            "hoyer": adds ``pair_weight`` times the effective number of changed positions,
            ``(sum_n d_n)^2 / sum_n d_n^2`` with ``d_n = ||z1_n - z2_n||`` (scale-free, so it cannot be
            met by shrinking every change; a plain group lasso collapsed the encoder to constant features).
        pair_topk: with "ada", "swap" or "exchange": keep exactly the ``pair_topk`` most changed positions per pair apart and
            average all others (0: Ada-GVAE's adaptive midpoint threshold).
        pair_weight: weight of the "hoyer" penalty.
        vq_warmup: fraction of the progress trained without the code lookup (a VQ model only); when it ends
            the codebook is set to spherical k-means centroids of the encoder's features. A cold random
            codebook makes the decoder ignore its tokens for hundreds of steps (grey reconstructions).
        kmeans_images: training images whose features seed that k-means.
        init: weights to start from instead of a random initialisation: a ``.safetensors`` file, a run folder
            holding ``model.safetensors``, or a shipped zoo name (``world-32``). The architecture in ``model``
            must match them. A VQ model keeps the loaded codebook and skips the VQ warm-up.
        init_kmeans: with ``init``, a VQ model replaces the loaded codebook by spherical k-means centroids of the
            loaded encoder's features on ``kmeans_images`` training images before its first step: how a VQ model
            starts from its continuous twin (whose codes were never trained; its encoder and decoder are reused).
        restart_every: steps between dead-code restarts (0 disables); a code unused in that window is dead.
        restart_until: progress after which codes are no longer restarted (lets the codebook settle).
        eval_every: steps between held-out evaluations.
        log_every: steps between log lines.
        ckpt_every_minutes: wall-clock minutes between checkpoints.
        threads: torch CPU threads.
        device: "cpu", "cuda", ... (None: probe.device.resolve_device).
        cache_dir: where rendered world sets are cached (keyed by their settings).
    """

    model: dict[str, Any] = field(default_factory=dict)
    world: dict[str, Any] = field(default_factory=dict)
    resolution: int = 32
    n_train: int = 20000
    n_eval: int = 256
    data_seed: int = 0
    eval_seed: int = 1_000_003
    seed: int = 0
    batch_size: int = 32
    steps: int = 3000
    max_minutes: float | None = None
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 200
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0
    w_l1: float = 1.0
    w_l2: float = 1.0
    w_grad: float = 0.5
    w_codebook: float = 1.0
    w_commit: float = 0.25
    w_object: float = 0.0
    w_perceptual: float = 0.0
    perceptual_net: str = "world-oracle"
    w_adversarial: float = 0.0
    adv_start_step: int = 0
    disc_lr: float = 2e-4
    disc_channels: int = 32
    nested_dropout: float = 0.0
    pairs: str = ""
    pair_topk: int = 0
    pair_weight: float = 0.0
    vq_warmup: float = 0.0
    kmeans_images: int = 4096
    init: str | None = None
    init_kmeans: bool = False
    restart_every: int = 100
    restart_until: float = 0.8
    eval_every: int = 250
    log_every: int = 25
    ckpt_every_minutes: float = 3.0
    threads: int = 1
    device: str | None = "cpu"
    cache_dir: str = "runs/cache"

    @classmethod
    def from_dict(cls, cfg: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValueError(f"TrainConfig: unknown field(s) {unknown}; known fields: {sorted(known)}")
        cfg = dict(cfg)
        if "betas" in cfg:
            cfg["betas"] = tuple(cfg["betas"])
        return cls(**cfg)

    def model_config(self) -> WorldTokenizerConfig:
        mc = WorldTokenizerConfig.from_dict(self.model)
        if mc.image_size != self.resolution:
            raise ValueError(
                f"TrainConfig: model.image_size={mc.image_size} differs from resolution={self.resolution}"
            )
        return mc


# ---------------------------------------------------------------------------------------------- data
def world_config(overrides: dict[str, Any]) -> Any:
    """A ``probe.data.world.WorldConfig`` with ``overrides`` applied (errors name the unknown field)."""
    from probe.data import world as world_mod

    try:
        return world_mod.WorldConfig.from_dict(overrides)
    except ValueError as exc:
        raise ValueError(f"world overrides: {exc}") from None


def _disk_cached(prefix: str, key: dict[str, Any], cache_dir: str | Path | None,
                 build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``build()``'s dict, cached as ``<cache_dir>/<prefix>_<sha1 of key>.pt`` (no cache when ``cache_dir`` is None).

    Our own cache of tensors and DataFrames, hence ``weights_only=False``; the key is stored beside the data.
    """
    text = json.dumps(key, sort_keys=True)
    path = Path(cache_dir) / f"{prefix}_{hashlib.sha1(text.encode()).hexdigest()[:12]}.pt" if cache_dir else None
    if path is not None and path.exists():
        return torch.load(path, weights_only=False)
    blob = build()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({**blob, "key": text}, path)
    return blob


def _to_u8(images: Any) -> torch.Tensor:
    """Images in [0, 1] (tensor or array) -> uint8 tensor of the same shape."""
    return (torch.as_tensor(images).clamp(0, 1) * 255).round().to(torch.uint8)


def render_world(n: int, *, seed: int, resolution: int, world: dict[str, Any], cache_dir: str | Path | None,
                 chunk: int = 2000, masks: bool = False) -> tuple[torch.Tensor, Any] | tuple[torch.Tensor, Any, torch.Tensor]:
    """Rendered world images ``[n,3,H,W]`` as uint8 and their factors DataFrame, cached on disk.

    Image ``i`` is world image ``(seed, i)`` (``probe.data.world.sample_range``), rendered in chunks of
    ``chunk`` for a progress bar; the cache key hashes (n, seed, resolution, world overrides). With ``masks``,
    also the object masks ``[n,1,H,W]`` as uint8 (a cache of its own).
    """
    import pandas as pd

    from probe.data import world as world_mod

    def build() -> dict[str, Any]:
        wcfg = world_config(world)
        imgs, frames, ms = [], [], []
        for start in tqdm(range(0, n, chunk), desc=f"rendering {n} world images", leave=False):
            x, f, m = world_mod.sample_range(start, min(n, start + chunk), seed=seed, resolution=resolution,
                                             config=wcfg, return_masks=True)
            imgs.append(_to_u8(x))
            frames.append(f)
            ms.append(_to_u8(m))
        blob = {"images": torch.cat(imgs), "factors": pd.concat(frames, ignore_index=True)}
        return {**blob, "masks": torch.cat(ms)} if masks else blob

    key = {"n": n, "seed": seed, "res": resolution, "world": world}
    blob = _disk_cached("world", {**key, "masks": True} if masks else key, cache_dir, build)
    return (blob["images"], blob["factors"], blob["masks"]) if masks else (blob["images"], blob["factors"])


PAIR_FACTORS = ("shape", "obj_hue", "bg_hue", "obj_scale", "obj_x", "obj_y", "lighting", "bg_blur", "global_blur",
                "stripe_period", "stripe_angle", "stripe_phase")
"""The rendered world columns a partner image may differ in (``null`` is never rendered)."""


def render_partners(factors: Any, *, seed: int, resolution: int, world: dict[str, Any],
                    cache_dir: str | Path | None, chunk: int = 2000,
                    masks: bool = False) -> tuple[torch.Tensor, list[str]] | tuple[torch.Tensor, list[str], torch.Tensor]:
    """Partners of the images described by ``factors``: each re-rendered with one column of
    :data:`PAIR_FACTORS` (chosen uniformly) resampled uniformly over its range. Returns uint8
    ``[n,3,H,W]`` and the changed column per image (and with ``masks`` the object masks, uint8
    ``[n,1,H,W]``). Cached like :func:`render_world`."""
    import numpy as np

    from probe.data import world as world_mod

    n = len(factors)

    def build() -> dict[str, Any]:
        wcfg = world_config(world)
        specs = world_mod.factor_specs(wcfg)
        # a column pinned by the world settings (low == high) cannot differ: it would make identical pairs
        names = [f for f in PAIR_FACTORS if specs[f].kind == "categorical" or specs[f].range[0] < specs[f].range[1]]
        rng = np.random.default_rng([seed, 7_777])
        changed = [names[i] for i in rng.integers(0, len(names), n)]
        edited = factors.copy()
        for name in names:
            rows = np.flatnonzero(np.asarray(changed) == name)
            spec = specs[name]
            col = edited.columns.get_loc(name)
            if spec.kind == "categorical":
                vals = np.asarray(spec.levels, dtype=object)[rng.integers(0, len(spec.levels), len(rows))]
            else:
                vals = rng.uniform(spec.range[0], spec.range[1], len(rows))
            edited.iloc[rows, col] = vals
        imgs, ms = [], []
        for start in tqdm(range(0, n, chunk), desc=f"rendering {n} partner images", leave=False):
            x, m = world_mod.render(edited.iloc[start : start + chunk], resolution=resolution, config=wcfg)
            imgs.append(_to_u8(x))
            ms.append(_to_u8(m))
        blob = {"images": torch.cat(imgs), "changed": changed}
        return {**blob, "masks": torch.cat(ms)} if masks else blob

    key = {"n": n, "pairs_of_seed": seed, "res": resolution, "world": world}
    blob = _disk_cached("partners", {**key, "masks": True} if masks else key, cache_dir, build)
    return (blob["images"], blob["changed"], blob["masks"]) if masks else (blob["images"], blob["changed"])


# ---------------------------------------------------------------------------------------------- losses
SHARING_MODES = ("ada", "swap", "exchange")
"""``TrainConfig.pairs`` values that share the unchanged token positions within a pair (see :func:`_ada_average`)."""


def _ada_average(z: torch.Tensor, topk: int = 0, mode: str = "ada") -> torch.Tensor:
    """Ada-GVAE-style sharing within pairs. ``z [B,N,C]`` = [first images; partners] -> same shape, with the
    positions whose change is below the per-pair midpoint of min and max change (``topk`` > 0: all but the
    ``topk`` most changed positions) shared. ``mode`` says how: "ada" replaces them by the pair mean; "swap" by
    the first image's features (the partner is decoded from the first image's tokens with only its most
    changed ones pasted in); "exchange" gives each image the other's (each image is decoded from its own most
    changed tokens pasted into the other image's tokens)."""
    h = z.shape[0] // 2
    z1, z2 = z[:h], z[h:]
    d = (z1 - z2).norm(dim=-1)  # [B/2, N]
    if topk > 0:
        thr = d.topk(topk, dim=1).values[:, -1:]
    else:
        thr = 0.5 * (d.max(dim=1, keepdim=True).values + d.min(dim=1, keepdim=True).values)
    shared = (d < thr)[..., None]
    if mode == "exchange":
        return torch.cat([torch.where(shared, z2, z1), torch.where(shared, z1, z2)])
    mean = z1 if mode == "swap" else F.normalize(z1 + z2, dim=-1)
    return torch.cat([torch.where(shared, mean, z1), torch.where(shared, mean, z2)])



def image_gradient_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """L1 distance of horizontal and vertical finite differences (an edge loss). ``a, b [B,3,H,W]``."""
    dx = lambda t: t[..., :, 1:] - t[..., :, :-1]
    dy = lambda t: t[..., 1:, :] - t[..., :-1, :]
    return (dx(a) - dx(b)).abs().mean() + (dy(a) - dy(b)).abs().mean()


def object_weight(masks: torch.Tensor) -> torch.Tensor:
    """Object masks ``[B,1,H,W]`` in [0, 1] -> the object region dilated by one pixel (3x3 max), ``[B,1,H,W]``."""
    return F.max_pool2d(masks, kernel_size=3, stride=1, padding=1)


def object_squared_error(rec: torch.Tensor, images: torch.Tensor, masks: torch.Tensor) -> tuple[float, float]:
    """Summed squared error over the dilated object pixels (:func:`object_weight`) and their weight summed over
    channels, ``(sse, count)``: their ratio, pooled over batches, is the object-region MSE. ``rec, images
    [B,3,H,W]`` (``rec`` clamped to [0, 1] here), ``masks [B,1,H,W]`` in [0, 1]."""
    w = object_weight(masks)
    return float(((rec.clamp(0, 1) - images).pow(2) * w).sum()), float(w.sum()) * images.shape[1]


def object_loss(rec: torch.Tensor, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """L1 + L2 reconstruction error averaged over the (dilated) object pixels only. ``rec, images [B,3,H,W]``,
    ``masks [B,1,H,W]`` in [0, 1]."""
    w = object_weight(masks)
    err = (rec - images).abs()
    return ((err + err.pow(2)) * w).sum() / (w.sum() * images.shape[1] + 1e-6)


def nested_keep(batch: int, num_tokens: int, fraction: float, generator: torch.Generator) -> torch.Tensor | None:
    """Nested-dropout mask ``[B,N]`` (bool): a random ``fraction`` of rows keep only a prefix of length
    uniform in 1..N, the other rows keep every token. ``None`` when ``fraction`` is 0."""
    if fraction <= 0:
        return None
    cut = torch.rand(batch, generator=generator) < fraction
    length = torch.randint(1, num_tokens + 1, (batch,), generator=generator)
    length = torch.where(cut, length, torch.full_like(length, num_tokens))
    return torch.arange(num_tokens)[None, :] < length[:, None]


def compute_losses(model: WorldTokenizer, images: torch.Tensor, cfg: TrainConfig,
                   quantize: bool = True, keep: torch.Tensor | None = None,
                   pairs: bool = False, masks: torch.Tensor | None = None,
                   perceptual: torch.nn.Module | None = None,
                   disc: torch.nn.Module | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
    """Total loss and its parts for one batch ``images [B,3,H,W]`` in [0, 1].

    The scalar parts are returned as detached tensors (no device sync per step; the caller converts them
    when it logs). ``keep [B,N]``: tokens the decoder sees (nested dropout). ``pairs``: the batch is
    ``[first images; their partners]`` (B/2 each) and the sparse-change penalty is added. ``masks [B,1,H,W]``:
    object masks, needed when ``cfg.w_object`` > 0. ``perceptual``: the distance module (``rec, images`` ->
    scalar) that ``cfg.w_perceptual`` > 0 needs. ``disc``: the patch discriminator whose hinge loss is added
    with weight ``cfg.w_adversarial`` (None: no adversarial term, e.g. before ``cfg.adv_start_step``).
    ``parts["recon"]`` is the detached reconstruction (what the discriminator then learns from).
    """
    mix = ((lambda z: _ada_average(z, cfg.pair_topk, mode=cfg.pairs))
           if pairs and cfg.pairs in SHARING_MODES else None)
    out = model(images, quantize=quantize, keep=keep, mix=mix)
    rec = out["recon"]
    l1 = (rec - images).abs().mean()
    l2 = F.mse_loss(rec, images)
    gr = image_gradient_l1(rec, images) if cfg.w_grad > 0 else rec.new_zeros(())
    if cfg.w_object > 0 and masks is None:
        raise ValueError("compute_losses: TrainConfig.w_object > 0 needs the object masks (masks=...)")
    obj = object_loss(rec, images, masks) if cfg.w_object > 0 else rec.new_zeros(())
    if cfg.w_perceptual > 0 and perceptual is None:
        raise ValueError("compute_losses: TrainConfig.w_perceptual > 0 needs the perceptual network (perceptual=...)")
    perc = perceptual(rec, images) if cfg.w_perceptual > 0 else rec.new_zeros(())
    adv = generator_hinge_loss(disc(rec)) if disc is not None and cfg.w_adversarial > 0 else rec.new_zeros(())
    total = (cfg.w_l1 * l1 + cfg.w_l2 * l2 + cfg.w_grad * gr + cfg.w_object * obj + cfg.w_perceptual * perc
             + cfg.w_adversarial * adv
             + cfg.w_codebook * out["codebook_loss"] + cfg.w_commit * out["commit_loss"])
    pair = rec.new_zeros(())
    if pairs:
        z = out["features"]
        h = z.shape[0] // 2
        d = (z[:h] - z[h:]).norm(dim=-1)  # [B/2, N] change per position
        pair = (d.sum(1) ** 2 / (d.pow(2).sum(1) + 1e-6)).mean()  # effective number of changed positions
        if cfg.pairs == "hoyer":
            total = total + cfg.pair_weight * pair
    parts = {"loss": total.detach(), "l1": l1.detach(), "l2": l2.detach(), "grad": gr.detach(),
             "object": obj.detach(), "perceptual": perc.detach(), "adversarial": adv.detach(), "pair": pair.detach(),
             "codebook": out["codebook_loss"].detach(), "commit": out["commit_loss"].detach(),
             "indices": out["indices"], "features": out["features"].detach(), "recon": rec.detach()}
    return total, parts


# ---------------------------------------------------------------------------------------------- schedule
def lr_at(step: int, progress: float, cfg: TrainConfig) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine from ``lr`` to ``lr * min_lr_ratio`` over progress."""
    return warmup_cosine_lr(cfg.lr, step, progress, cfg.warmup_steps, cfg.min_lr_ratio)


def make_optimizer(model: WorldTokenizer, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        # matrices and conv kernels decay; biases, norms, embeddings/positions and the codebook do not
        (decay if p.ndim >= 2 and name not in {"codes", "latent_tokens", "mask_tokens"} and "pos" not in name
         else no_decay).append(p)
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=cfg.betas,
    )


# ---------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate(model: WorldTokenizer, images_u8: torch.Tensor, *, batch_size: int = 128,
             quantize: bool = True, masks: torch.Tensor | None = None) -> dict[str, float]:
    """Mean PSNR (dB) and code usage of ``model`` on ``images_u8 [M,3,H,W]`` uint8 (``quantize=False``:
    decode the continuous features, as during the VQ warm-up). With object ``masks [M,1,H,W]`` (uint8 or
    float) also ``object_psnr``: the PSNR over the dilated object pixels only (:func:`object_weight`),
    pooled over the set."""
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    ps, used = [], []
    obj_se, obj_n = 0.0, 0.0
    for s in range(0, images_u8.shape[0], batch_size):
        x = images_u8[s : s + batch_size].to(dev).float() / 255.0
        enc = model.encode(x)
        if not quantize:
            enc = type(enc)(None, enc.features, enc.features)
        rec = model.decode(enc.quantized)
        ps.append(psnr(rec, x).cpu())
        if masks is not None:
            m = masks[s : s + batch_size].to(dev).float()
            se, n = object_squared_error(rec, x, m / 255.0 if masks.dtype == torch.uint8 else m)
            obj_se, obj_n = obj_se + se, obj_n + n
        if enc.indices is not None:
            used.append(enc.indices.flatten().cpu())
    model.train(was_training)
    res = {"psnr": float(torch.cat(ps).mean())}
    if masks is not None and obj_n > 0:
        res["object_psnr"] = float(-10 * torch.log10(torch.tensor(obj_se / obj_n)))
    if used:
        counts = torch.bincount(torch.cat(used), minlength=model.config.codebook_size).float()
        prob = counts / counts.sum()
        res["codes_used"] = int((counts > 0).sum())
        res["perplexity"] = float(torch.exp(-(prob[prob > 0] * prob[prob > 0].log()).sum()))
    return res


@torch.no_grad()
def _init_codebook(model: WorldTokenizer, train_u8: torch.Tensor, cfg: TrainConfig, gen: torch.Generator,
                   device: torch.device) -> None:
    """Codebook := spherical k-means of the features of ``cfg.kmeans_images`` training images."""
    if cfg.vq_warmup <= 0 and not cfg.init_kmeans:
        return  # cold start: keep the random initial codebook
    idx = torch.randperm(train_u8.shape[0], generator=gen)[: cfg.kmeans_images]
    feats = torch.cat([model.encode_features(train_u8[idx[s : s + 256]].to(device).float() / 255.0)
                       for s in range(0, len(idx), 256)])
    model.init_codes_kmeans(feats.reshape(-1, model.config.token_dim).cpu(), generator=gen)


def _grow_codebook(weights: dict[str, torch.Tensor], model: WorldTokenizer) -> dict[str, torch.Tensor]:
    """``weights`` with a smaller codebook than ``model``'s padded by ``model``'s own (random) codes: the loaded
    codes keep their indices, the new ones start unused and dead-code restarts move them onto encoder outputs."""
    codes = weights.get("codes")
    if codes is None or codes.shape[0] >= model.codes.shape[0] or codes.shape[1:] != model.codes.shape[1:]:
        return weights
    grown = model.codes.detach().clone()
    grown[: codes.shape[0]] = codes
    return {**weights, "codes": grown}


def _refine_decoder_grid(weights: dict[str, torch.Tensor], model: WorldTokenizer,
                         generator: torch.Generator) -> dict[str, torch.Tensor]:
    """``weights`` of a model with a coarser decoder patch grid than ``model``'s, adapted to it.

    Each new patch query (``mask_tokens [g'*g', W]``) starts as the query of the coarse patch it lies in, plus
    noise of 10% of the queries' spread (so that sibling queries can tell each other apart); the pixel head
    (``to_pixels``) keeps ``model``'s random init, since its output size changes. The encoder, the codebook and
    the decoder's transformer are loaded as they are, so the tokens keep their meaning from the first step.
    """
    old = weights.get("mask_tokens")
    new = model.mask_tokens
    if old is None or old.shape == new.shape:
        return weights
    g_old, g_new = math.isqrt(old.shape[0]), model.config.dec_grid
    if g_old * g_old != old.shape[0] or g_new % g_old or old.shape[1] != new.shape[1]:
        raise ValueError(f"TrainConfig.init: decoder patch queries {tuple(old.shape)} cannot be refined to "
                         f"{tuple(new.shape)} (the new grid side must be a multiple of the old one)")
    grid = old.reshape(g_old, g_old, -1).repeat_interleave(g_new // g_old, 0).repeat_interleave(g_new // g_old, 1)
    grid = grid.reshape(g_new * g_new, -1)
    grid = grid + torch.randn(grid.shape, generator=generator) * (0.1 * float(old.std()))
    out = {**weights, "mask_tokens": grid}
    for key in ("to_pixels.weight", "to_pixels.bias"):
        out[key] = model.state_dict()[key].detach().clone()
    return out


def _init_weights(spec: str) -> dict[str, torch.Tensor]:
    """State dict named by ``TrainConfig.init`` (a .safetensors file, a run folder or a zoo name)."""
    from safetensors.torch import load_file

    path = Path(spec)
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.exists():
        from probe import zoo

        if spec not in zoo.available():
            raise FileNotFoundError(f"TrainConfig.init: {spec!r} is neither a weights file, a run folder with "
                                    f"model.safetensors, nor a shipped model ({', '.join(zoo.available())})")
        path = zoo.weights_path(spec)
    return load_file(str(path))


# ---------------------------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: Path, model: WorldTokenizer, opt: torch.optim.Optimizer, state: dict[str, Any],
                    extra: dict[str, Any] | None = None) -> None:
    """``extra``: further state dicts to keep (the discriminator and its optimizer)."""
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "state": state, **(extra or {})}, tmp)
    tmp.replace(path)  # atomic: a run killed mid-write keeps its previous checkpoint


def load_checkpoint(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def zoo_record(model: WorldTokenizer, cfg: TrainConfig, state: dict[str, Any], metrics: dict[str, Any],
               command: str | None = None) -> dict[str, Any]:
    """The zoo JSON of a trained model (see probe/zoo/__init__.py)."""
    from probe.data import world as world_mod

    wcfg = world_config(cfg.world)
    world = asdict(wcfg)
    world["resolution"] = cfg.resolution  # the resolution the model was trained at, not the world's default
    return {
        "kind": "tokenizer",
        "architecture": "world",
        "config": model.config_dict(),
        "world": world,
        "world_overrides": dict(cfg.world),
        "world_module": world_mod.__name__,
        "resolution": cfg.resolution,
        "training": {
            "command": command,
            "steps": state["step"],
            "wall_minutes": round(state["elapsed"] / 60, 2),
            "seed": cfg.seed,
            "data_seed": cfg.data_seed,
            "stopped_by": state.get("stopped_by"),
            "train_config": _jsonable(asdict(cfg)),
        },
        "metrics": metrics,
    }


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def export_model(model: WorldTokenizer, out_json: Path, out_weights: Path, record: dict[str, Any]) -> None:
    """Write the zoo pair: ``record`` as JSON and the state dict as safetensors (float32, contiguous)."""
    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(sd, str(out_weights))
    out_json.write_text(json.dumps(record, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------- the loop
def train(cfg: TrainConfig, out_dir: str | Path, *, resume: bool = True, command: str | None = None,
          progress_bar: bool = True, on_log: Callable[[dict[str, Any]], None] | None = None) -> WorldTokenizer:
    """Train a :class:`WorldTokenizer` as ``cfg`` says; write config, log, checkpoints and the model to ``out_dir``.

    With ``resume`` and an existing ``out_dir/last.pt`` (from the same config), training continues from it.
    Returns the trained model (on CPU, eval mode).
    """
    from probe.device import resolve_device

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 matmuls: ample for 8-bit images
    cfg_json = _jsonable(asdict(cfg))
    ckpt_path = out / "last.pt"
    if (out / "config.json").exists() and resume and ckpt_path.exists():
        old = json.loads((out / "config.json").read_text())
        if old != cfg_json:
            raise ValueError(f"{out / 'config.json'}: a different config was used for the checkpoint in {out}; "
                             "use a fresh out_dir or --no-resume")
    (out / "config.json").write_text(json.dumps(cfg_json, indent=2) + "\n")

    use_masks = cfg.w_object > 0
    rendered = render_world(cfg.n_train, seed=cfg.data_seed, resolution=cfg.resolution, world=cfg.world,
                            cache_dir=cfg.cache_dir, masks=use_masks)
    train_u8, train_factors = rendered[:2]
    train_masks = rendered[2].to(device) if use_masks else None
    if cfg.pairs not in ("", "hoyer", *SHARING_MODES):
        raise ValueError(f"TrainConfig.pairs must be '', 'ada', 'swap', 'exchange' or 'hoyer', got {cfg.pairs!r}")
    use_pairs = bool(cfg.pairs)
    if use_pairs:
        partners = render_partners(train_factors, seed=cfg.data_seed, resolution=cfg.resolution, world=cfg.world,
                                   cache_dir=cfg.cache_dir, masks=use_masks)
        partner_u8 = partners[0].to(device)
        partner_masks = partners[2].to(device) if use_masks else None
        if cfg.batch_size % 2:
            raise ValueError(f"TrainConfig: batch_size must be even with pairs, got {cfg.batch_size}")
    eval_u8, _, eval_m = render_world(cfg.n_eval, seed=cfg.eval_seed, resolution=cfg.resolution, world=cfg.world,
                                      cache_dir=cfg.cache_dir, masks=True)
    train_u8 = train_u8.to(device)  # uint8 (a 200k-image set is 0.6 GB): batches are indexed where they are used

    perceptual = None
    if cfg.w_perceptual > 0:
        from probe.tokenizers.perceptual import OraclePerceptual

        perceptual = OraclePerceptual.from_zoo(cfg.perceptual_net, device=device)
    torch.manual_seed(cfg.seed)
    model = WorldTokenizer(cfg.model_config()).to(device)
    opt = make_optimizer(model, cfg)
    disc, disc_opt = None, None
    if cfg.w_adversarial > 0:
        disc = PatchDiscriminator(cfg.disc_channels).to(device)
        disc_opt = torch.optim.Adam(disc.parameters(), lr=cfg.disc_lr, betas=(0.5, 0.9))

    def extra_state() -> dict[str, Any]:
        return {} if disc is None else {"disc": disc.state_dict(), "disc_optimizer": disc_opt.state_dict()}
    gen = torch.Generator().manual_seed(cfg.seed + 1)  # batch order and code restarts
    state: dict[str, Any] = {"step": 0, "elapsed": 0.0, "best_psnr": -1.0}
    if cfg.init_kmeans and not (cfg.init and model.config.quantize):
        raise ValueError("TrainConfig.init_kmeans needs TrainConfig.init and a VQ model (model.is_discrete true)")
    if cfg.init:
        weights = _init_weights(cfg.init)
        if cfg.init_kmeans:  # the loaded codes are replaced at the first step, whatever their number
            weights = {**weights, "codes": model.codes.detach().clone()}
        weights = _grow_codebook(weights, model)
        model.load_state_dict(_refine_decoder_grid(weights, model, torch.Generator().manual_seed(cfg.seed + 2)))
        # the loaded codebook is used from the first step, or (init_kmeans) re-seeded by k-means before it
        state["vq_on"] = model.config.quantize and not cfg.init_kmeans
    if resume and ckpt_path.exists():
        ck = load_checkpoint(ckpt_path)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        if disc is not None and "disc" in ck:
            disc.load_state_dict(ck["disc"])
            disc_opt.load_state_dict(ck["disc_optimizer"])
        state = dict(ck["state"])
        gen.set_state(ck["state"]["generator"])
        print(f"resumed from {ckpt_path} at step {state['step']} ({state['elapsed'] / 60:.1f} min)")
    def progress_of(step: int, elapsed: float) -> float:
        return budget_progress(step, cfg.steps, elapsed, cfg.max_minutes)

    usage = torch.zeros(model.config.codebook_size, dtype=torch.long, device=device)
    log_f = open(out / "log.jsonl", "a")
    t0 = time.time() - state["elapsed"]
    last_ckpt = time.time()
    bar = tqdm(total=cfg.steps, initial=state["step"], desc=f"train {out.name}", disable=not progress_bar)
    model.train()
    step = state["step"]
    stopped_by = "steps"
    while True:
        elapsed = time.time() - t0
        prog = progress_of(step, elapsed)
        if prog >= 1.0:
            stopped_by = "steps" if step >= cfg.steps else "max_minutes"
            break
        lr = lr_at(step, prog, cfg)
        for g in opt.param_groups:
            g["lr"] = lr
        n_first = cfg.batch_size // 2 if use_pairs else cfg.batch_size
        idx = torch.randint(0, train_u8.shape[0], (n_first,), generator=gen).to(device)
        x = torch.cat([train_u8[idx], partner_u8[idx]]) if use_pairs else train_u8[idx]
        x = x.float() / 255.0
        masks = None
        if use_masks:
            masks = (torch.cat([train_masks[idx], partner_masks[idx]]) if use_pairs else train_masks[idx]).float() / 255.0
        vq_on = model.config.quantize and (prog >= cfg.vq_warmup or bool(cfg.init))
        if vq_on and not state.get("vq_on", False):
            _init_codebook(model, train_u8, cfg, gen, device)
            state["vq_on"] = True
        keep = nested_keep(cfg.batch_size, model.config.num_tokens, cfg.nested_dropout, gen)
        if disc is not None:
            disc.requires_grad_(False)  # the tokenizer's step only needs the gradient through disc, not into it
        loss, parts = compute_losses(model, x, cfg, quantize=vq_on,
                                     keep=None if keep is None else keep.to(device), pairs=use_pairs,
                                     masks=masks, perceptual=perceptual,
                                     disc=disc if step >= cfg.adv_start_step else None)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        if disc is not None:
            disc.requires_grad_(True)
            d_loss = discriminator_hinge_loss(disc(x), disc(parts["recon"]))
            disc_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            disc_opt.step()
            parts["disc"] = d_loss.detach()
        step += 1
        bar.update(1)
        if vq_on:
            usage += torch.bincount(parts["indices"].flatten(), minlength=usage.numel())
            if cfg.restart_every and step % cfg.restart_every == 0:
                n_restart = 0
                if prog < cfg.restart_until:
                    feats = parts["features"].reshape(-1, model.config.token_dim).cpu()
                    n_restart = model.restart_codes(usage == 0, feats, generator=gen)
                parts["restarted"] = n_restart
                usage.zero_()
        rec: dict[str, Any] = {}
        if step % cfg.log_every == 0 or step == 1:
            rec = {k: (round(float(v), 5) if isinstance(v, torch.Tensor) and v.ndim == 0 else v)
                   for k, v in parts.items() if not (isinstance(v, torch.Tensor) and v.ndim > 0)}
            rec.update(step=step, lr=lr, elapsed_min=round((time.time() - t0) / 60, 3))
        if step % cfg.eval_every == 0:
            ev = evaluate(model, eval_u8, quantize=vq_on, masks=eval_m)
            rec.update({f"eval_{k}": v for k, v in ev.items()}, step=step,
                       elapsed_min=round((time.time() - t0) / 60, 3))
            bar.set_postfix(psnr=f"{ev['psnr']:.2f}", loss=f"{float(parts['loss']):.4f}")
        if rec:
            log_f.write(json.dumps(rec) + "\n")
            log_f.flush()
            if on_log:
                on_log(rec)
        if time.time() - last_ckpt > cfg.ckpt_every_minutes * 60:
            state.update(step=step, elapsed=time.time() - t0, generator=gen.get_state())
            save_checkpoint(ckpt_path, model, opt, state, extra_state())
            last_ckpt = time.time()
    bar.close()
    state.update(step=step, elapsed=time.time() - t0, generator=gen.get_state(), stopped_by=stopped_by)
    save_checkpoint(ckpt_path, model, opt, state, extra_state())
    model.eval()
    ev = evaluate(model, eval_u8, masks=eval_m)
    final = {"final_eval_" + k: v for k, v in ev.items()}
    final.update(step=step, elapsed_min=round(state["elapsed"] / 60, 3), stopped_by=stopped_by)
    log_f.write(json.dumps(final) + "\n")
    log_f.close()
    metrics = {"train_eval_psnr": round(ev["psnr"], 3), **{k: v for k, v in ev.items() if k != "psnr"}}
    export_model(model.cpu(), out / "model.json", out / "model.safetensors", zoo_record(model, cfg, state, metrics, command))
    return model.cpu()


def load_trained(out_dir: str | Path, *, from_checkpoint: bool = False) -> WorldTokenizer:
    """Load a model written by :func:`train` (``model.safetensors``, or the latest ``last.pt``)."""
    from safetensors.torch import load_file

    out = Path(out_dir)
    cfg = TrainConfig.from_dict(json.loads((out / "config.json").read_text()))
    model = WorldTokenizer(cfg.model_config())
    if from_checkpoint:
        model.load_state_dict(load_checkpoint(out / "last.pt")["model"])
    else:
        model.load_state_dict(load_file(str(out / "model.safetensors")))
    return model.eval()
