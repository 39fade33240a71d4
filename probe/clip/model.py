"""The world CLIP: an ``open_clip.CLIP`` with a small custom config for 32x32 world images.

The config is plain open_clip (``embed_dim`` / ``vision_cfg`` / ``text_cfg``) and the shipped
JSON has open_clip's own ``open_clip_config.json`` layout (``model_cfg`` + ``preprocess_cfg``),
so :func:`export_open_clip` writes a folder that ``open_clip.create_model_and_transforms(
"local-dir:FOLDER")`` and ``open_clip.get_tokenizer("local-dir:FOLDER")`` load unchanged.
"""
from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import open_clip
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from probe.device import resolve_device
from probe.errors import check_images

IMAGE_SIZE = 32

# open_clip model configs (the keys of open_clip.model.CLIPVisionCfg / CLIPTextCfg).
# The shipped image tower is open_clip's ModifiedResNet (a list of ``layers`` selects it): on a
# shared 2-core CPU it learned the shape several times faster per image than a small ViT
# (WORLD_CLIP_VIT_VISION_CFG: 42 % shape zero-shot after 90 k images, vs 43 % after 26 k).
# ~6.5 M parameters, 4.7 M of them the 49408-token text embedding of open_clip's BPE vocabulary.
WORLD_CLIP_MODEL_CFG: dict[str, Any] = {
    "embed_dim": 128,
    "vision_cfg": {
        "image_size": IMAGE_SIZE,
        "layers": [1, 1, 1, 1],  # ModifiedResNet: stem /4, then stages /1 /2 /2 /2 -> 1x1
        "width": 16,  # stem width; stage outputs 64, 128, 256, 512; attention pool 512 -> 128
    },
    "text_cfg": {
        "context_length": 32,  # the longest world caption is ~30 BPE tokens
        "vocab_size": 49408,
        "width": 96,
        "heads": 4,
        "layers": 3,
    },
}

# The small ViT that was tried first (kept for comparison: --vision-cfg with this JSON).
WORLD_CLIP_VIT_VISION_CFG: dict[str, Any] = {
    "image_size": IMAGE_SIZE,
    "patch_size": 8,  # 4x4 = 16 patches (objects are 9-18 px across)
    "width": 128,
    "layers": 4,
    "head_width": 32,  # 4 heads
    "mlp_ratio": 4.0,
}

# open_clip PreprocessCfg fields. Mean/std 0.5 map [0, 1] to [-1, 1] (the world has no natural
# photo statistics to copy); resizing is antialiased so bigger inputs are averaged, not aliased.
WORLD_CLIP_PREPROCESS_CFG: dict[str, Any] = {
    "size": IMAGE_SIZE,
    "mode": "RGB",
    "mean": [0.5, 0.5, 0.5],
    "std": [0.5, 0.5, 0.5],
    "interpolation": "bicubic",
    "resize_mode": "squash",
    "fill_color": 0,
}


class WorldCLIP(open_clip.CLIP):
    """``open_clip.CLIP`` plus helpers for the project's image convention.

    Everything open_clip code expects works (``encode_image``, ``encode_text``, ``forward``,
    ``logit_scale``); :meth:`encode_images01` additionally takes ``[B, 3, H, W]`` tensors in
    [0, 1], resizes them (antialiased) to 32x32 and normalizes them.
    """

    def __init__(self, *args: Any, preprocess_cfg: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        pp = dict(WORLD_CLIP_PREPROCESS_CFG if preprocess_cfg is None else preprocess_cfg)
        self.visual.preprocess_cfg = pp  # where open_clip keeps it (create_model sets the same)
        self.register_buffer("pixel_mean", torch.tensor(pp["mean"]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pp["std"]).view(1, 3, 1, 1), persistent=False)

    @property
    def image_size(self) -> int:
        return int(self.visual.preprocess_cfg["size"])

    def normalize01(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` in [0, 1] -> the normalized ``[B, 3, 32, 32]`` the vision tower wants."""
        check_images(images, "WorldCLIP")
        s = self.image_size
        if images.shape[-2:] != (s, s):
            images = F.interpolate(images, size=(s, s), mode="bilinear", antialias=True, align_corners=False)
        return (images - self.pixel_mean) / self.pixel_std

    def encode_images01(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Image embeddings ``[B, D]`` of ``images [B, 3, H, W]`` in [0, 1] (differentiable)."""
        return self.encode_image(self.normalize01(images), normalize=normalize)


def build_model(model_cfg: dict[str, Any] | None = None,
                preprocess_cfg: dict[str, Any] | None = None) -> WorldCLIP:
    """A randomly initialised :class:`WorldCLIP` from an open_clip model config."""
    cfg = copy.deepcopy(WORLD_CLIP_MODEL_CFG if model_cfg is None else model_cfg)
    for key in ("embed_dim", "vision_cfg", "text_cfg"):
        if key not in cfg:
            raise KeyError(f"CLIP model config lacks required key {key!r}")
    return WorldCLIP(**cfg, preprocess_cfg=preprocess_cfg)


def get_tokenizer(model_cfg: dict[str, Any] | None = None) -> Callable[..., torch.Tensor]:
    """open_clip's BPE tokenizer (vocabulary shipped inside open_clip, so it works offline)."""
    cfg = WORLD_CLIP_MODEL_CFG if model_cfg is None else model_cfg
    return open_clip.tokenizer.SimpleTokenizer(context_length=int(cfg["text_cfg"]["context_length"]))


def get_preprocess(preprocess_cfg: dict[str, Any] | None = None) -> Callable:
    """open_clip's inference transform (PIL image -> normalized ``[3, 32, 32]`` tensor)."""
    pp = open_clip.transform.PreprocessCfg(**(WORLD_CLIP_PREPROCESS_CFG if preprocess_cfg is None
                                              else preprocess_cfg))
    return open_clip.transform.image_transform_v2(pp, is_train=False)


SPARSE_ROWS = "sparse.token_embedding.rows"
SPARSE_VALUES = "sparse.token_embedding.values"


def sparse_state_dict(model: WorldCLIP, seen_tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    """The state dict with the token embedding stored as its seen rows only.

    ``seen_tokens [V]`` (bool) marks token ids that occurred in training. Unseen rows never
    received a gradient, so they carry no information; they are stored as zeros (the loader
    scatters the seen rows into a zero matrix). This keeps the weights file ~6 MB instead of ~31.
    """
    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    emb = sd.pop("token_embedding.weight")
    rows = torch.nonzero(seen_tokens.cpu()).flatten()
    sd[SPARSE_ROWS] = rows.to(torch.int64)
    sd[SPARSE_VALUES] = emb[rows].contiguous()
    return sd


def dense_state_dict(state: dict[str, torch.Tensor], vocab_size: int) -> dict[str, torch.Tensor]:
    """Inverse of :func:`sparse_state_dict` (a plain open_clip state dict)."""
    if SPARSE_ROWS not in state:
        return dict(state)
    state = dict(state)
    rows, values = state.pop(SPARSE_ROWS), state.pop(SPARSE_VALUES)
    emb = torch.zeros(vocab_size, values.shape[1], dtype=values.dtype)
    emb[rows] = values
    state["token_embedding.weight"] = emb
    return state


def load_zoo_clip(cfg: dict[str, Any], weights: Path, device: str | torch.device | None = None,
                  **_: Any) -> tuple[WorldCLIP, Callable, Callable[..., torch.Tensor]]:
    """Loader of the zoo's ``kind: clip`` entries; mirrors open_clip's API.

    Returns ``(model, preprocess, tokenizer)`` like ``open_clip.create_model_and_transforms``
    (its validation transform) plus ``open_clip.get_tokenizer``. The model is in eval mode.
    """
    if "model_cfg" not in cfg:
        raise KeyError(f"CLIP zoo config for {weights} lacks 'model_cfg'")
    model = build_model(cfg["model_cfg"], cfg.get("preprocess_cfg"))
    state = dense_state_dict(load_file(str(weights)), int(cfg["model_cfg"]["text_cfg"]["vocab_size"]))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{weights}: weights do not fit the config (missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]})")
    model = model.to(resolve_device(device)).eval()
    return model, get_preprocess(cfg.get("preprocess_cfg")), get_tokenizer(cfg["model_cfg"])


def export_open_clip(cfg: dict[str, Any], weights: Path, folder: str | Path) -> Path:
    """Write ``folder/open_clip_config.json`` + ``open_clip_model.safetensors`` for open_clip.

    Afterwards ``open_clip.create_model_and_transforms(f"local-dir:{folder}")`` and
    ``open_clip.get_tokenizer(f"local-dir:{folder}")`` load the model with open_clip alone.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "open_clip_config.json", "w") as fh:
        json.dump({"model_cfg": cfg["model_cfg"], "preprocess_cfg": cfg.get("preprocess_cfg", {})}, fh, indent=2)
    state = dense_state_dict(load_file(str(weights)), int(cfg["model_cfg"]["text_cfg"]["vocab_size"]))
    save_file(state, str(folder / "open_clip_model.safetensors"))
    return folder
