"""Building, saving and loading tokenizers.

``load_tokenizer(spec)`` resolves ``spec`` in this order: a preset name (``titok-l32``, ...), a
shipped model (``probe.zoo.available()``), an existing local path (a hub-style folder with
``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``, a ``.safetensors`` file, or a
raw ``.bin`` / ``.pt`` state dict), then a Hugging Face hub id (``owner/name``).

Saved folders use the hub layout: ``config.json`` (``{"architecture", "config"}``) and
``model.safetensors`` (the config is also stored in the safetensors metadata, so a bare file
describes itself). Official TiTok folders (``{"model": {"vq_model": ...}}``) load too.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from probe.device import resolve_device
from probe.errors import TokenprobeError
from probe.tokenizers.base import Tokenizer
from probe.tokenizers.config import TiTokConfig
from probe.tokenizers.presets import PRESETS, get_preset
from probe.tokenizers.registry import architecture_of, get_architecture
from probe.tokenizers.titok import TiTok

CONFIG_NAME = "config.json"
WEIGHT_NAMES = ("model.safetensors", "pytorch_model.bin")
_METADATA_KEY = "tokenprobe_config"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class WeightsUnavailableError(TokenprobeError, RuntimeError):
    """The weights could not be fetched (offline, no network, or not in the cache)."""


class TokenizerLoadError(TokenprobeError, ValueError):
    """A tokenizer spec or weight file that cannot be loaded (the message names the file)."""


class TokenizerNotFoundError(TokenprobeError, FileNotFoundError):
    """A tokenizer folder, file or hub repository that does not exist or lacks a needed file."""


_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")


# ---- building -----------------------------------------------------------------------------------
def build_tokenizer(
    config: str | TiTokConfig | Mapping[str, Any], *, seed: int = 0, device: str | torch.device | None = "cpu"
) -> nn.Module:
    """A tokenizer with random weights (seeded) from a preset name, a :class:`TiTokConfig`, our
    saved layout (``{"architecture", "config"}``), a flat TiTok config dict or an official one.
    ``device=None`` leaves the model where it was built (e.g. under ``torch.device("meta")``)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if isinstance(config, str):
            model: nn.Module = TiTok(get_preset(config).config)
        elif isinstance(config, TiTokConfig):
            model = TiTok(config)
        elif isinstance(config, Mapping):
            if "architecture" in config:
                if "config" not in config:
                    raise TokenizerLoadError("tokenizer config: has 'architecture' but no 'config' field")
                model = get_architecture(str(config["architecture"])).from_config(dict(config["config"]))
            else:
                model = TiTok.from_config(dict(config))
        else:
            raise TypeError(f"build_tokenizer: expected a preset name, TiTokConfig or dict, got {type(config).__name__}")
    return (model if device is None else model.to(resolve_device(device))).eval()


# ---- saving -------------------------------------------------------------------------------------
def _saved_config(model: Tokenizer) -> dict[str, Any]:
    return {"architecture": architecture_of(model), "config": model.config_dict()}


def save_tokenizer(model: Tokenizer, folder: str | os.PathLike) -> Path:
    """Write ``config.json`` + ``model.safetensors`` (hub layout) into ``folder``; returns it."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = _saved_config(model)
    (folder / CONFIG_NAME).write_text(json.dumps(cfg, indent=2) + "\n")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / WEIGHT_NAMES[0]), metadata={_METADATA_KEY: json.dumps(cfg)})
    return folder


# ---- state dicts --------------------------------------------------------------------------------
def _read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and (safetensors) metadata of a weight file; ``.bin`` loads with ``weights_only``."""
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
                return {k: fh.get_tensor(k) for k in fh.keys()}, meta
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise TokenizerLoadError(
                f"{path}: not a readable .safetensors file ({exc}); it is probably truncated or "
                "corrupt: download or copy it again") from None
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        import pickle

        if isinstance(exc, pickle.UnpicklingError) and "weights only" in str(exc).lower():
            # PyTorch's own message advises weights_only=False, i.e. running the file's code
            raise TokenizerLoadError(
                f"{path}: refused: this file would run code when loaded (unsafe pickle); load only "
                "tensors: ask for a .safetensors file or a plain state dict") from None
        raise TokenizerLoadError(f"{path}: not a loadable PyTorch state dict ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else ''}); it may be truncated "
                                 "or not a weight file") from None
    for key in ("state_dict", "model"):  # common training-checkpoint wrappers
        if isinstance(obj, dict) and isinstance(obj.get(key), dict) and obj[key] and all(
            isinstance(v, torch.Tensor) for v in obj[key].values()
        ):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise TokenizerLoadError(f"{path}: expected a state dict (a mapping of names to tensors)")
    return dict(obj), {}


def _summarise(keys: list[str], limit: int = 12) -> str:
    more = f" ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise one ValueError naming the missing, unexpected and wrongly shaped keys (with both
    shapes) of ``state`` against ``model``; return silently when they match exactly."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shape = sorted(
        f"{k} (file {tuple(state[k].shape)} vs model {tuple(own[k].shape)})"
        for k in set(own) & set(state)
        if tuple(state[k].shape) != tuple(own[k].shape)
    )
    if missing or unexpected or shape:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {_summarise(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {_summarise(unexpected)}")
        if shape:
            parts.append(f"shape mismatches ({len(shape)}): {_summarise(shape)}")
        raise TokenizerLoadError(f"{source}: weights do not match the {type(model).__name__} architecture; " + "; ".join(parts))


def load_state_dict_checked(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Strict load with a readable error (:func:`check_state_dict`). A model built on the meta
    device takes the loaded tensors as they are (``assign``), so no memory is spent twice."""
    check_state_dict(model, state, source)
    on_meta = any(t.is_meta for t in model.state_dict().values())
    model.load_state_dict(dict(state), strict=True, assign=on_meta)


def _finish(model: nn.Module, device: str | torch.device | None) -> nn.Module:
    return model.to(resolve_device(device)).eval()


# ---- inferring a TiTok config from weight shapes -------------------------------------------------
def _count(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    pat = re.compile(re.escape(prefix) + r"(\d+)\.")
    ids = {int(m.group(1)) for k in state if (m := pat.match(k))}
    return max(ids) + 1 if ids else 0


def _heads(width: int) -> int:
    # the official sizes use 64-dim heads (512/8, 768/12, 1024/16); head counts are not stored
    return max(1, width // 64)


def infer_titok_config(state: Mapping[str, torch.Tensor], source: str = "state dict") -> TiTokConfig:
    """Reconstruct a :class:`TiTokConfig` from a TiTok state dict's key names and shapes.

    Head counts are not stored in the weights: width // 64 is assumed (true of every official
    model). Two-stage pixel decoders are assumed to have ``channel_mult[0] == 1``.
    """
    from probe.tokenizers.config import PixelDecoderConfig

    need = ["latent_tokens", "encoder.patch_embed.weight", "encoder.positional_embedding",
            "encoder.conv_out.weight", "decoder.decoder_embed.weight", "decoder.positional_embedding"]
    absent = [k for k in need if k not in state]
    if absent:
        raise TokenizerLoadError(f"{source}: cannot infer a TiTok architecture, missing keys: {', '.join(absent)} "
                         "(pass preset=... to name the architecture)")
    n, enc_w = state["latent_tokens"].shape
    patch = state["encoder.patch_embed.weight"].shape[-1]
    enc_grid = int(round((state["encoder.positional_embedding"].shape[0] - 1) ** 0.5))
    image = enc_grid * patch
    dec_w, token = state["decoder.decoder_embed.weight"].shape
    dec_grid = int(round((state["decoder.positional_embedding"].shape[0] - 1) ** 0.5))
    enc_out = state["encoder.conv_out.weight"].shape[0]
    vq = "quantize.embedding.weight" in state
    legacy = "decoder.ffn.2.weight" in state
    two_stage = "pixel_quantize.embedding.weight" in state
    kw: dict[str, Any] = dict(
        image_size=image, enc_patch_size=patch, dec_patch_size=image // dec_grid,
        enc_width=enc_w, enc_depth=_count(state, "encoder.transformer."), enc_heads=_heads(enc_w),
        dec_width=dec_w, dec_depth=_count(state, "decoder.transformer."), dec_heads=_heads(dec_w),
        mlp_ratio=state["encoder.transformer.0.mlp.c_fc.weight"].shape[0] / enc_w
        if "encoder.transformer.0.mlp.c_fc.weight" in state else 4.0,
        num_latent_tokens=n, token_size=token,
        codebook_size=state["quantize.embedding.weight"].shape[0] if vq else 0,
        quantize_mode="vq" if vq else "vae", is_legacy=legacy, finetune_decoder=two_stage,
    )
    # L2 normalisation is not visible in the weights: the legacy models use it, the others not
    kw["use_l2_norm"] = vq and legacy
    if not vq and enc_out != 2 * token:
        raise TokenizerLoadError(f"{source}: no quantizer codebook and encoder.conv_out has {enc_out} channels, "
                         f"not 2 x {token}: not a TiTok VAE")
    if two_stage:
        k, z = state["pixel_quantize.embedding.weight"].shape
        levels = _count(state, "pixel_decoder.up.")
        hidden = state["pixel_decoder.conv_out.weight"].shape[1]
        mult = tuple(state[f"pixel_decoder.up.{i}.block.0.conv1.weight"].shape[0] // hidden for i in range(levels))
        kw["pixel"] = PixelDecoderConfig(codebook_size=k, z_channels=z, hidden_channels=hidden, channel_mult=mult,
                                         num_res_blocks=_count(state, "pixel_decoder.up.0.block."))
    try:
        return TiTokConfig(**kw)
    except ValueError as exc:
        raise TokenizerLoadError(f"{source}: inferred an inconsistent TiTok config ({exc})") from exc


# ---- resolving a spec ---------------------------------------------------------------------------
def _config_from_json(path: Path) -> dict[str, Any]:
    """Our layout ``{"architecture", "config"}`` or an official TiTok config, as build input."""
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise TokenizerLoadError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(cfg, dict):
        raise TokenizerLoadError(f"{path}: expected a JSON object")
    if "architecture" in cfg:
        return cfg
    if isinstance(cfg.get("model"), dict) and "vq_model" in cfg["model"]:
        return {"architecture": "titok", "config": TiTokConfig.from_official(cfg).to_dict()}
    raise TokenizerLoadError(f"{path}: neither a tokenprobe config (field 'architecture') nor an official "
                     "TiTok config (section 'model.vq_model')")


def _build_empty(cfg: Mapping[str, Any] | TiTokConfig) -> nn.Module:
    """The model of ``cfg`` for loading weights into: TiTok is built on the meta device (no
    memory or init time for the 600 M-parameter models); other architectures on the CPU."""
    if isinstance(cfg, TiTokConfig) or cfg.get("architecture", "titok") == "titok":
        with torch.device("meta"):
            return build_tokenizer(cfg, device=None)
    return build_tokenizer(cfg, device=None)


def _load_weights_into(cfg: Mapping[str, Any] | TiTokConfig, weights: Path, device: str | torch.device | None,
                       state: Mapping[str, torch.Tensor] | None = None) -> nn.Module:
    if state is None:
        state, _ = _read_state_dict(weights)
    model = _build_empty(cfg)
    load_state_dict_checked(model, state, str(weights))
    return _finish(model, device)


def _load_folder(folder: Path, device: str | torch.device | None) -> nn.Module:
    cfg_path = folder / CONFIG_NAME
    if not cfg_path.exists():
        raise TokenizerNotFoundError(f"{folder}: no {CONFIG_NAME} (a tokenizer folder holds {CONFIG_NAME} + one of {WEIGHT_NAMES})")
    cfg = _config_from_json(cfg_path)
    for name in WEIGHT_NAMES:
        if (folder / name).exists():
            return _load_weights_into(cfg, folder / name, device)
    raise TokenizerNotFoundError(f"{folder}: no weights file; looked for {', '.join(WEIGHT_NAMES)}")


def _load_file(path: Path, device: str | torch.device | None, preset: str | None) -> nn.Module:
    state, meta = _read_state_dict(path)
    if preset is not None:
        cfg: Mapping[str, Any] | TiTokConfig = get_preset(preset).config
    elif _METADATA_KEY in meta:
        cfg = json.loads(meta[_METADATA_KEY])
    elif (path.parent / CONFIG_NAME).exists():
        cfg = _config_from_json(path.parent / CONFIG_NAME)
    else:
        cfg = infer_titok_config(state, str(path))
    return _load_weights_into(cfg, path, device, state)


def _offline_message(repo_id: str, reason: str) -> str:
    from probe.hub import hub_offline

    offline = hub_offline()
    why = "HF_HUB_OFFLINE is set" if offline else "the hub did not answer a connection probe"
    return (
        f"could not get the weights of {repo_id!r} from the Hugging Face hub ({why}, and they are not "
        f"in the local cache: {reason}); get them on a machine with network access "
        f"(`hf download {repo_id} --local-dir FOLDER`) and pass that local folder instead"
        + ("; or, with network access, unset HF_HUB_OFFLINE" if offline else "")
    )


def _hub_file(repo_id: str, filename: str) -> Path | None:
    """A file of a hub repository (from the cache when offline); None if the repository lacks it.

    When the hub does not answer one short connection probe (made once per process), only the
    local cache is used: no minute of retries before the same answer.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    from probe.hub import hub_offline, hub_reachable

    local_only = hub_offline() or not hub_reachable()
    try:
        return Path(hf_hub_download(repo_id, filename, local_files_only=local_only))
    except LocalEntryNotFoundError as exc:  # offline or unreachable, and not in the cache
        raise WeightsUnavailableError(_offline_message(repo_id, f"{filename}: {type(exc).__name__}")) from exc
    except EntryNotFoundError:  # the repository exists but has no such file
        return None
    except RepositoryNotFoundError as exc:
        raise TokenizerNotFoundError(f"no Hugging Face hub repository {repo_id!r} (or it is private or gated)") from exc
    except Exception as exc:  # offline mode, connection errors, timeouts: one clear message
        raise WeightsUnavailableError(_offline_message(repo_id, f"{filename}: {type(exc).__name__}")) from exc


def _load_hub(repo_id: str, device: str | torch.device | None, config: TiTokConfig | None = None) -> nn.Module:
    cfg: Mapping[str, Any] | TiTokConfig
    if config is not None:
        cfg = config
    else:
        cfg_file = _hub_file(repo_id, CONFIG_NAME)
        if cfg_file is None:
            raise TokenizerNotFoundError(f"hub repository {repo_id!r} has no {CONFIG_NAME}")
        cfg = _config_from_json(cfg_file)
    for name in WEIGHT_NAMES:
        weights = _hub_file(repo_id, name)
        if weights is not None:
            return _load_weights_into(cfg, weights, device)
    raise TokenizerNotFoundError(f"hub repository {repo_id!r} has none of {', '.join(WEIGHT_NAMES)}")


def load_tokenizer(
    spec: str | os.PathLike | TiTokConfig,
    *,
    device: str | torch.device | None = None,
    random_init: bool = False,
    preset: str | None = None,
    seed: int = 0,
    precision: str = "fp32",
    compile: bool = False,
) -> nn.Module:
    """Load a tokenizer (in eval mode, on ``device``; default cuda, then mps, then cpu).

    Args:
        spec: a preset name (``list_presets()``), a shipped model name (``probe.zoo.available()``),
            a local folder / ``.safetensors`` / ``.bin`` file, a Hugging Face hub id, or a
            :class:`TiTokConfig`.
        random_init: build the preset or config with random weights (seeded by ``seed``) instead
            of loading weights; for tests and examples.
        preset: the architecture of a bare weight file (otherwise read from the file's metadata,
            a ``config.json`` beside it, or inferred from the key shapes).
        precision, compile: the inference path of a TiTok model (``TiTok.configure_inference``):
            ``precision="bf16"`` for bfloat16 autocast, ``compile=True`` for ``torch.compile``;
            the default is exact float32.
    """
    if precision != "fp32" or compile:
        model = load_tokenizer(spec, device=device, random_init=random_init, preset=preset, seed=seed)
        if not hasattr(model, "configure_inference"):
            raise ValueError(f"load_tokenizer: precision / compile apply to TiTok models, not {type(model).__name__} ({spec!r})")
        return model.configure_inference(precision=precision, compile=compile)
    if isinstance(spec, TiTokConfig):
        if not random_init:
            raise TokenizerLoadError("load_tokenizer: a TiTokConfig carries no weights; pass random_init=True")
        return build_tokenizer(spec, seed=seed, device=device or "auto")
    spec_str = os.fspath(spec)
    if spec_str in PRESETS:
        p = PRESETS[spec_str]
        if random_init:
            return build_tokenizer(spec_str, seed=seed, device=device or "auto")
        if p.hub_id is None:
            raise TokenizerLoadError(
                f"preset {spec_str!r} has no published weights; use random_init=True, "
                "or pass a folder / weight file of a trained model",
                cli=f"--tokenizer {spec_str}: this preset has no published weights; add --random-init "
                    "(random weights, for trials), or pass a folder / weight file of a trained model")
        return _load_hub(p.hub_id, device, get_preset(spec_str).config)
    from probe import zoo

    if spec_str in zoo.available():
        if random_init:
            return build_tokenizer(zoo.config(spec_str), seed=seed, device=device or "auto")
        return zoo.load(spec_str, device=device)
    path = Path(spec_str).expanduser()
    if not path.exists() and _looks_local(spec_str):
        raise TokenizerLoadError(f"{spec_str}: no such file or folder (a local path, so not looked up on "
                                 "the Hugging Face hub); check the path")
    if path.exists():
        if random_init:
            cfg_path = path / CONFIG_NAME if path.is_dir() else path.parent / CONFIG_NAME
            if preset is not None:
                return build_tokenizer(preset, seed=seed, device=device or "auto")
            return build_tokenizer(_config_from_json(cfg_path), seed=seed, device=device or "auto")
        if path.is_dir():
            return _load_folder(path, device)
        return _load_file(path, device, preset)
    if _HUB_ID.match(spec_str) and not spec_str.startswith((".", "/", "~")):
        try:
            return _load_hub(spec_str, device)
        except (WeightsUnavailableError, FileNotFoundError) as exc:
            # "runs/tok" could be a mistyped local folder as well as a hub id: say both
            raise type(exc)(f"{spec_str}: no such local folder or file, so read as a hub id: {exc}") from exc
    raise TokenizerLoadError(
        f"load_tokenizer: {spec_str!r} is not a preset ({', '.join(PRESETS)}), a shipped model "
        f"({', '.join(zoo.available()) or 'none'}), an existing path, or a hub id of the form owner/name"
    )


def load_zoo_tokenizer(cfg: Mapping[str, Any], weights: Path, device: str | torch.device | None = None,
                       **_: Any) -> nn.Module:
    """Loader for ``probe.zoo`` entries ``{"kind": "tokenizer", "architecture": ..., "config": {...}}``.

    The model's ``training_world`` is the entry's ``world`` (the WorldConfig fields it was trained
    on; ``None`` if not given), which :func:`probe.encode.tokenize_manifest` compares with a world
    manifest.
    """
    for field in ("architecture", "config"):
        if field not in cfg:
            raise TokenizerLoadError(f"zoo tokenizer config for {weights.stem!r}: missing field {field!r}")
    model = _load_weights_into({"architecture": cfg["architecture"], "config": cfg["config"]}, Path(weights), device)
    model.training_world = dict(cfg["world"]) if isinstance(cfg.get("world"), Mapping) else None
    return model


def _looks_local(spec: str) -> bool:
    """Whether a spec that does not exist can only be meant as a local path (never a hub id)."""
    return (spec.startswith((".", "/", "~")) or spec.endswith(("/", os.sep)) or "\\" in spec
            or spec.lower().endswith(_WEIGHT_SUFFIXES) or len(Path(spec).parts) > 2)
