"""Training of small tokenizers (:class:`~probe.tokenizers.world.WorldTokenizer`) on the attribute world.

One function does the work: :func:`train` takes a :class:`TrainConfig`, runs the shared loop
(:class:`probe.training.loop.TrainLoop`) with this recipe's batches and losses, writes under ``out_dir``

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

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tqdm.auto import tqdm

from probe.data.world_cache import disk_cached, render_partners, render_world, to_u8, world_config
from probe.measure.fidelity import object_squared_error
from probe.tokenizers.world import WorldTokenizer, WorldTokenizerConfig, psnr
from probe.training.adversarial import PatchDiscriminator
from probe.training.losses import (
    SHARING_MODES,
    ada_average,
    changed_positions,
    discriminator_hinge_loss,
    generator_hinge_loss,
    image_gradient_l1,
    object_loss,
    salience,
)
from probe.training.loop import (
    Checkpoint,
    JsonlLog,
    Step,
    TrainLoop,
    load_checkpoint,
    param_groups,
    scalars,
    setup,
)


@dataclass
class TrainConfig:
    """Every setting of a training run. Defaults are those of the shipped ``world-32`` family.

    Attributes:
        model: :class:`WorldTokenizerConfig` fields (missing ones take that class's defaults).
        world: ``WorldConfig`` overrides for ``probe.data.world`` (empty: the world's defaults).
        manifest: train on the images of this manifest (a file or a shipped name, e.g. ``sprites``) instead of the
            attribute world: ``n_train`` items drawn with ``data_seed``, ``n_eval`` held out with ``eval_seed``.
            Only the images are read (no attribute, mask or pair): reconstruction training alone.
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
        w_salient: weight of the same L1 + L2 loss as ``w_object``, over a soft foreground estimated from each
            training image alone (``probe.training.losses.salience``: its deviation from its own median colour)
            instead of the generator's object masks: for images of small objects on a flat background (the
            sprites world), whose pixels the plain losses let the decoder trade for the background. It reads no
            mask, factor or label. 0 disables it.
        w_perceptual: weight of the perceptual loss (``probe.training.perceptual.OraclePerceptual``: LPIPS's
            recipe on the frozen conv stages of the shipped network ``perceptual_net``). 0 disables it.
        perceptual_net: zoo name of the frozen world-oracle that the perceptual loss reads.
        w_adversarial: weight of the adversarial (hinge) loss of a patch discriminator
            (``probe.training.adversarial``), TiTok's and VQGAN's term against soft edges. 0 disables it.
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
    manifest: str | None = None
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
    w_salient: float = 0.0
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


# ---------------------------------------------------------------------------------------------- one batch
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
    mix = ((lambda z: ada_average(z, cfg.pair_topk, mode=cfg.pairs))
           if pairs and cfg.pairs in SHARING_MODES else None)
    out = model(images, quantize=quantize, keep=keep, mix=mix)
    rec = out["recon"]
    l1 = (rec - images).abs().mean()
    l2 = F.mse_loss(rec, images)
    gr = image_gradient_l1(rec, images) if cfg.w_grad > 0 else rec.new_zeros(())
    if cfg.w_object > 0 and masks is None:
        raise ValueError("compute_losses: TrainConfig.w_object > 0 needs the object masks (masks=...)")
    obj = object_loss(rec, images, masks) if cfg.w_object > 0 else rec.new_zeros(())
    sal = object_loss(rec, images, salience(images)) if cfg.w_salient > 0 else None
    if cfg.w_perceptual > 0 and perceptual is None:
        raise ValueError("compute_losses: TrainConfig.w_perceptual > 0 needs the perceptual network (perceptual=...)")
    perc = perceptual(rec, images) if cfg.w_perceptual > 0 else rec.new_zeros(())
    adv = generator_hinge_loss(disc(rec)) if disc is not None and cfg.w_adversarial > 0 else rec.new_zeros(())
    total = (cfg.w_l1 * l1 + cfg.w_l2 * l2 + cfg.w_grad * gr + cfg.w_object * obj + cfg.w_perceptual * perc
             + cfg.w_adversarial * adv
             + cfg.w_codebook * out["codebook_loss"] + cfg.w_commit * out["commit_loss"])
    if sal is not None:
        total = total + cfg.w_salient * sal
    pair = rec.new_zeros(())
    if pairs:
        pair = changed_positions(out["features"])
        if cfg.pairs == "hoyer":
            total = total + cfg.pair_weight * pair
    parts = {"loss": total.detach(), "l1": l1.detach(), "l2": l2.detach(), "grad": gr.detach(),
             "object": obj.detach(), "perceptual": perc.detach(), "adversarial": adv.detach(), "pair": pair.detach(),
             "codebook": out["codebook_loss"].detach(), "commit": out["commit_loss"].detach(),
             "indices": out["indices"], "features": out["features"].detach(), "recon": rec.detach()}
    if sal is not None:
        parts["salient"] = sal.detach()
    return total, parts


# ---------------------------------------------------------------------------------------------- optimizer
def make_optimizer(model: WorldTokenizer, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; matrices and conv kernels decay; biases, norms, embeddings/positions and the codebook do not."""
    def no_decay(name: str, p: torch.nn.Parameter) -> bool:
        return not (p.ndim >= 2 and name not in {"codes", "latent_tokens", "mask_tokens"} and "pos" not in name)

    return torch.optim.AdamW(param_groups(model, cfg.weight_decay, no_decay), lr=cfg.lr, betas=cfg.betas)


# ---------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate(model: WorldTokenizer, images_u8: torch.Tensor, *, batch_size: int = 128,
             quantize: bool = True, masks: torch.Tensor | None = None) -> dict[str, float]:
    """Mean PSNR (dB) and code usage of ``model`` on ``images_u8 [M,3,H,W]`` uint8 (``quantize=False``:
    decode the continuous features, as during the VQ warm-up). With object ``masks [M,1,H,W]`` (uint8 or
    float) also ``object_psnr``: the PSNR over the dilated object pixels only (``probe.measure.fidelity.object_weight``),
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


# ---------------------------------------------------------------------------------------------- the zoo record
def zoo_record(model: WorldTokenizer, cfg: TrainConfig, state: dict[str, Any], metrics: dict[str, Any],
               command: str | None = None) -> dict[str, Any]:
    """The zoo JSON of a trained model (see probe/zoo/__init__.py)."""
    from probe.data import world as world_mod

    if cfg.manifest:  # trained on a manifest's images: name it; no world
        data: dict[str, Any] = {"manifest": cfg.manifest}
    else:
        world = asdict(world_config(cfg.world))
        world["resolution"] = cfg.resolution  # the resolution the model was trained at, not the world's default
        data = {"world": world, "world_overrides": dict(cfg.world), "world_module": world_mod.__name__}
    return {
        "kind": "tokenizer",
        "architecture": "world",
        "config": model.config_dict(),
        **data,
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


# ---------------------------------------------------------------------------------------------- the data
@dataclass
class TrainData:
    """The images of a run, as uint8 ``[M, 3, H, W]``: training images (on the training device), their
    partners (with pairs), object masks ``[M, 1, H, W]`` (with ``w_object``), and the held-out set (with its
    masks where the source has them)."""

    train_u8: torch.Tensor
    eval_u8: torch.Tensor
    train_masks: torch.Tensor | None = None
    partner_u8: torch.Tensor | None = None
    partner_masks: torch.Tensor | None = None
    eval_masks: torch.Tensor | None = None


def load_data(cfg: TrainConfig, device: torch.device) -> TrainData:
    """Render (or read from the cache) the training and held-out images ``cfg`` asks for: from the attribute
    world, or (``cfg.manifest``) from any manifest's images."""
    if cfg.pairs not in ("", "hoyer", *SHARING_MODES):
        raise ValueError(f"TrainConfig.pairs must be '', 'ada', 'swap', 'exchange' or 'hoyer', got {cfg.pairs!r}")
    if cfg.manifest:
        return _manifest_data(cfg, device)
    use_masks = cfg.w_object > 0
    rendered = render_world(cfg.n_train, seed=cfg.data_seed, resolution=cfg.resolution, world=cfg.world,
                            cache_dir=cfg.cache_dir, masks=use_masks)
    train_u8, train_factors = rendered[:2]
    data = TrainData(train_u8=train_u8, eval_u8=train_u8,
                     train_masks=rendered[2].to(device) if use_masks else None)
    if cfg.pairs:
        partners = render_partners(train_factors, seed=cfg.data_seed, resolution=cfg.resolution, world=cfg.world,
                                   cache_dir=cfg.cache_dir, masks=use_masks)
        data.partner_u8 = partners[0].to(device)
        data.partner_masks = partners[2].to(device) if use_masks else None
        if cfg.batch_size % 2:
            raise ValueError(f"TrainConfig: batch_size must be even with pairs, got {cfg.batch_size}")
    data.eval_u8, _, data.eval_masks = render_world(cfg.n_eval, seed=cfg.eval_seed, resolution=cfg.resolution,
                                                    world=cfg.world, cache_dir=cfg.cache_dir, masks=True)
    data.train_u8 = train_u8.to(device)  # uint8 (a 200k-image set is 0.6 GB): batches are indexed where they are used
    return data


def _manifest_data(cfg: TrainConfig, device: torch.device) -> TrainData:
    """Training images: items ``0..n_train-1`` of ``cfg.manifest`` drawn with seed ``data_seed``; held-out:
    ``n_eval`` items drawn with ``eval_seed`` (the manifest's own ``seed`` and ``size`` are replaced). Only the
    images are read: no attribute, mask or pair reaches the model."""
    if cfg.pairs or cfg.w_object > 0 or cfg.world:
        raise ValueError("TrainConfig.manifest: pairs, w_object and world overrides need the attribute world "
                         "(leave manifest empty)")
    return TrainData(train_u8=manifest_images(cfg.manifest, cfg.n_train, cfg.data_seed, cfg.resolution,
                                              cfg.cache_dir).to(device),
                     eval_u8=manifest_images(cfg.manifest, cfg.n_eval, cfg.eval_seed, cfg.resolution, cfg.cache_dir))


def manifest_images(manifest: str, n: int, seed: int, resolution: int, cache_dir: str | None,
                    batch: int = 500) -> torch.Tensor:
    """The first ``n`` images ``[n, 3, R, R]`` (uint8) of manifest ``manifest`` (a file or a shipped name)
    drawn with ``seed``, cached under ``cache_dir`` (keyed by the manifest's content, ``n``, seed, resolution)."""
    from probe.data.dataset import ManifestDataset, collate_skip_none
    from probe.data.manifest import load_manifest

    m = dataclasses.replace(load_manifest(manifest), seed=int(seed), size=int(n))
    key = {"manifest": _jsonable(dataclasses.asdict(dataclasses.replace(m, path=None))), "resolution": resolution}

    def build() -> dict[str, Any]:
        ds = ManifestDataset(m, resolution)
        chunks = [collate_skip_none(ds.__getitems__(list(range(s, min(s + batch, len(ds)))))).images
                  for s in tqdm(range(0, len(ds), batch), desc=f"render {m.name}", leave=False)]
        return {"images": to_u8(torch.cat(chunks))}

    return disk_cached(f"manifest-{m.name}", key, cache_dir, build)["images"]


# ---------------------------------------------------------------------------------------------- the recipe
def train(cfg: TrainConfig, out_dir: str | Path, *, resume: bool = True, command: str | None = None,
          progress_bar: bool = True, on_log: Callable[[dict[str, Any]], None] | None = None) -> WorldTokenizer:
    """Train a :class:`WorldTokenizer` as ``cfg`` says; write config, log, checkpoints and the model to ``out_dir``.

    With ``resume`` and an existing ``out_dir/last.pt`` (from the same config), training continues from it.
    Returns the trained model (on CPU, eval mode).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = setup(device=cfg.device, threads=cfg.threads, tf32=True)
    cfg_json = _jsonable(asdict(cfg))
    ckpt_path = out / "last.pt"
    if (out / "config.json").exists() and resume and ckpt_path.exists():
        old = json.loads((out / "config.json").read_text())
        if old != cfg_json:
            raise ValueError(f"{out / 'config.json'}: a different config was used for the checkpoint in {out}; "
                             "use a fresh out_dir or --no-resume")
    (out / "config.json").write_text(json.dumps(cfg_json, indent=2) + "\n")

    data = load_data(cfg, device)
    train_u8, train_masks, partner_u8, partner_masks = data.train_u8, data.train_masks, data.partner_u8, data.partner_masks
    eval_u8, eval_m = data.eval_u8, data.eval_masks
    use_masks, use_pairs = train_masks is not None, partner_u8 is not None

    perceptual = None
    if cfg.w_perceptual > 0:
        from probe.training.perceptual import OraclePerceptual

        perceptual = OraclePerceptual.from_zoo(cfg.perceptual_net, device=device)
    torch.manual_seed(cfg.seed)
    model = WorldTokenizer(cfg.model_config()).to(device)
    opt = make_optimizer(model, cfg)
    disc, disc_opt = None, None
    if cfg.w_adversarial > 0:
        disc = PatchDiscriminator(cfg.disc_channels).to(device)
        disc_opt = torch.optim.Adam(disc.parameters(), lr=cfg.disc_lr, betas=(0.5, 0.9))
    gen = torch.Generator().manual_seed(cfg.seed + 1)  # batch order and code restarts
    state: dict[str, Any] = {"best_psnr": -1.0}
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
    objects = {"model": model, "optimizer": opt}
    if disc is not None:
        objects.update(disc=disc, disc_optimizer=disc_opt)
    checkpoint = Checkpoint(ckpt_path, objects, every_minutes=cfg.ckpt_every_minutes,
                            state=lambda: {**state, "generator": gen.get_state()})
    loop = TrainLoop(opt, steps=cfg.steps, lr=cfg.lr, warmup_steps=cfg.warmup_steps, min_lr_ratio=cfg.min_lr_ratio,
                     max_minutes=cfg.max_minutes, grad_clip=cfg.grad_clip, clip_params=model.parameters(),
                     checkpoint=checkpoint, resume=resume, desc=f"train {out.name}", progress_bar=progress_bar)
    if loop.resumed_state is not None:
        state = loop.resumed_state
        gen.set_state(state["generator"])

    usage = torch.zeros(model.config.codebook_size, dtype=torch.long, device=device)
    log = JsonlLog(out / "log.jsonl", on_log)
    model.train()

    def step_fn(s: Step) -> tuple[torch.Tensor, dict[str, Any]]:
        n_first = cfg.batch_size // 2 if use_pairs else cfg.batch_size
        idx = torch.randint(0, train_u8.shape[0], (n_first,), generator=gen).to(device)
        x = torch.cat([train_u8[idx], partner_u8[idx]]) if use_pairs else train_u8[idx]
        x = x.float() / 255.0
        masks = None
        if use_masks:
            masks = (torch.cat([train_masks[idx], partner_masks[idx]]) if use_pairs else train_masks[idx]).float() / 255.0
        vq_on = model.config.quantize and (s.progress >= cfg.vq_warmup or bool(cfg.init))
        if vq_on and not state.get("vq_on", False):
            _init_codebook(model, train_u8, cfg, gen, device)
            state["vq_on"] = True
        keep = nested_keep(cfg.batch_size, model.config.num_tokens, cfg.nested_dropout, gen)
        if disc is not None:
            disc.requires_grad_(False)  # the tokenizer's step only needs the gradient through disc, not into it
        loss, parts = compute_losses(model, x, cfg, quantize=vq_on,
                                     keep=None if keep is None else keep.to(device), pairs=use_pairs,
                                     masks=masks, perceptual=perceptual,
                                     disc=disc if s.index >= cfg.adv_start_step else None)
        parts.update(images=x, vq_on=vq_on)
        return loss, parts

    def after_step(s: Step, parts: dict[str, Any]) -> None:
        x, vq_on = parts.pop("images"), parts.pop("vq_on")
        if disc is not None:
            disc.requires_grad_(True)
            d_loss = discriminator_hinge_loss(disc(x), disc(parts["recon"]))
            disc_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            disc_opt.step()
            parts["disc"] = d_loss.detach()
        step = s.index + 1
        if vq_on:
            usage.add_(torch.bincount(parts["indices"].flatten(), minlength=usage.numel()))
            if cfg.restart_every and step % cfg.restart_every == 0:
                n_restart = 0
                if s.progress < cfg.restart_until:
                    feats = parts["features"].reshape(-1, model.config.token_dim).cpu()
                    n_restart = model.restart_codes(usage == 0, feats, generator=gen)
                parts["restarted"] = n_restart
                usage.zero_()
        rec: dict[str, Any] = {}
        if step % cfg.log_every == 0 or step == 1:
            rec = scalars(parts)
            rec.update(step=step, lr=s.lr, elapsed_min=round(loop.elapsed() / 60, 3))
        if step % cfg.eval_every == 0:
            ev = evaluate(model, eval_u8, quantize=vq_on, masks=eval_m)
            rec.update({f"eval_{k}": v for k, v in ev.items()}, step=step, elapsed_min=round(loop.elapsed() / 60, 3))
            loop.bar.set_postfix(psnr=f"{ev['psnr']:.2f}", loss=f"{float(parts['loss']):.4f}")
        if rec:
            log.write(rec)

    loop.run(step_fn, after_step)
    state.update(step=loop.step, elapsed=loop.final_elapsed, generator=gen.get_state(), stopped_by=loop.stopped_by)
    model.eval()
    ev = evaluate(model, eval_u8, masks=eval_m)
    final = {"final_eval_" + k: v for k, v in ev.items()}
    final.update(step=loop.step, elapsed_min=round(state["elapsed"] / 60, 3), stopped_by=loop.stopped_by)
    log.write(final)
    log.close()
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
