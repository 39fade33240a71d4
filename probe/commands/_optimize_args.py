"""Options shared by the ``edit``, ``generate``, ``inpaint`` and ``copy-paste`` commands, and their parsing.

(The leading underscore keeps ``probe.cli`` from taking this module for a command.)"""
from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from probe.errors import UsageError
from probe.optimize.loop import OptimizeConfig

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def add_model_arguments(parser: argparse.ArgumentParser, *, clip: bool = True, views: int = 0, pad: int = 0) -> None:
    """The tokenizer, CLIP and output options (``views`` / ``pad``: the defaults of ``--views`` / ``--pad``)."""
    from probe.commands._args import add_overwrite_flag, non_negative_int

    parser.add_argument("--tokenizer", default="world-32",
                        help="preset, shipped model, hub id, folder or weights file (default: world-32)")
    parser.add_argument("--random-init", action="store_true",
                        help="build the tokenizer preset with random weights (trials)")
    if clip:
        parser.add_argument("--clip", default="world-clip",
                            help="CLIP for the objective: a shipped model (world-clip), ARCH:PRETRAINED of open_clip "
                                 "(PRETRAINED may be a local weights file), hf-hub:ORG/NAME or local-dir:FOLDER "
                                 "(default: world-clip)")
        parser.add_argument("--heldout-clip", default=None,
                            help="a second CLIP (same forms) scoring the prompt beside the objective, never optimized")
        parser.add_argument("--negative", default=None, help="negative prompt")
        parser.add_argument("--cfg", type=float, default=1.0,
                            help="negative-prompt scale: loss = -sim - (1 - cfg) * neg_sim (default: 1, no effect)")
        parser.add_argument("--views", type=non_negative_int, default=views,
                            help=f"random crop + flip views per image and step (0: the whole image; default: {views})")
        parser.add_argument("--pad", type=non_negative_int, default=pad,
                            help=f"reflect padding before cropping views (pixels; default: {pad})")
        parser.add_argument("--antialias", action="store_true",
                            help="resize images to the CLIP's input with an antialiased filter (default: plain "
                                 "bilinear, as the reference; use it when images are much larger than the CLIP input)")
    parser.add_argument("--device", default=None, help="force a device (default: cuda, then mps, then cpu)")
    parser.add_argument("--out", required=True, help="output folder, e.g. runs/edit1")
    add_overwrite_flag(parser)
    # checked by probe.cli before any work: --out writable, its earlier results kept unless --overwrite
    parser.set_defaults(_writes=lambda a: [a.out], _results=lambda a: [Path(a.out) / "config.json"])


def add_loop_arguments(parser: argparse.ArgumentParser, defaults: OptimizeConfig | None = None) -> None:
    """The loop's options; ``defaults`` (default: the reference's, ``OptimizeConfig()``) sets their defaults,
    e.g. the text-guided recipe for ``edit`` and ``generate``."""
    from probe.commands._args import non_negative_int, positive_int

    d = defaults or OptimizeConfig()
    parser.add_argument("--iterations", type=positive_int, default=d.iterations,
                        help=f"optimizer steps (default: {d.iterations})")
    parser.add_argument("--lr", type=float, default=d.lr, help=f"Adam learning rate (default: {d.lr})")
    parser.add_argument("--ema", type=float, default=d.ema_decay, dest="ema_decay",
                        help=f"EMA decay of the tokens, the result is the EMA (0: off; default: {d.ema_decay})")
    parser.add_argument("--noise", type=float, default=d.noise,
                        help="token noise scale s, decaying as s/2 (1 + cos(pi min(1, 1.5 i / (iters - 1)))) "
                             f"(default: {d.noise})")
    parser.add_argument("--reg", type=float, default=d.reg_weight, dest="reg_weight",
                        help=f"weight of the L2 regularizer on the tokens (default: {d.reg_weight})")
    parser.add_argument("--reg-target", choices=("seed", "zero"), default=d.reg_target,
                        help=f"regularize towards the seed tokens or zero (default: {d.reg_target})")
    parser.add_argument("--post-quantization", action="store_true", default=d.post_quantization,
                        dest="post_quantization",
                        help="optimize the quantized tokens and decode them unquantized (the reference's "
                             "optimize_post_quantization_tokens)")
    parser.add_argument("--patience", type=non_negative_int, default=d.early_stop_patience, dest="early_stop_patience",
                        help="stop an image when its held-out score (--heldout-clip) has not improved for this many "
                             "evaluations (0: never; default: %(default)s)")
    parser.add_argument("--heldout-every", type=positive_int, default=d.heldout_every, dest="heldout_every",
                        help="steps between held-out evaluations (default: %(default)s)")
    parser.add_argument("--milestones", type=positive_int, default=d.milestones,
                        help="grid columns between input and result")
    parser.add_argument("--seed", type=int, default=d.seed, help="random seed (default: 0)")
    parser.add_argument("--amp", action="store_true", default=d.amp,
                        help="autocast on CUDA (default: off, as the reference)")
    parser.add_argument("--amp-dtype", choices=("float16", "bfloat16"), default=d.amp_dtype, dest="amp_dtype",
                        help="autocast type: float16 with a GradScaler (the reference's) or bfloat16 "
                             "(default: %(default)s)")
    parser.add_argument("--no-progress", action="store_false", dest="progress", help="hide the progress bar")


def config_from_args(args: argparse.Namespace) -> OptimizeConfig:
    return OptimizeConfig(**{f.name: getattr(args, f.name) for f in fields(OptimizeConfig) if hasattr(args, f.name)})


def load_tok(args: argparse.Namespace) -> Any:
    from probe.tokenizers import load_tokenizer

    return load_tokenizer(args.tokenizer, device=args.device, random_init=args.random_init)


def load_images(specs: list[str], resolution: int, *, seed: int = 0) -> torch.Tensor:
    """Images ``[B, 3, R, R]`` from image files, folders of images, or ``world:N`` (N images of the synthetic
    attribute world sampled with ``seed``), ``world:N:SEED``, or ``WORLD:N[:SEED]`` for any world of
    :mod:`probe.worlds` by name."""
    from probe.data.transforms import load_as_tensor

    out: list[torch.Tensor] = []
    for spec in specs:
        world = _world_spec(spec, seed)
        if world is not None:
            out.extend(_world_images(*world, resolution))
            continue
        path = Path(spec)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
            if not files:
                raise UsageError(f"image folder {path} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        elif path.is_file():
            files = [path]
        else:
            raise UsageError(f"image {spec!r} not found (give image files, folders, or world:N)")
        out.extend(load_as_tensor(f, resolution) for f in files)
    if not out:
        raise UsageError("no input images; give files, folders or world:N")
    return torch.stack(out)


#: the world ``world:N`` samples
DEFAULT_WORLD = "attribute"


def _world_spec(spec: str, seed: int) -> tuple[str, int, int] | None:
    """``(world name, n, seed)`` of a ``world:N[:SEED]`` / ``WORLD:N[:SEED]`` spec; ``None`` for a path."""
    from probe import worlds

    name, sep, rest = spec.partition(":")
    if not sep or Path(spec).exists() or (name != "world" and name not in worlds.available()):
        return None
    parts = rest.split(":")
    try:
        n, s = int(parts[0]), int(parts[1]) if len(parts) > 1 else seed
    except (IndexError, ValueError):
        raise UsageError(f"image spec {spec!r}: expected {name}:N or {name}:N:SEED") from None
    if len(parts) > 2 or n < 1:
        raise UsageError(f"image spec {spec!r}: expected {name}:N or {name}:N:SEED with N >= 1")
    return (DEFAULT_WORLD if name == "world" else name), n, s


def _world_images(name: str, n: int, seed: int, resolution: int) -> torch.Tensor:
    """``n`` images ``[n, 3, R, R]`` of the world ``name`` (:func:`probe.worlds.get`)."""
    from probe import worlds

    if name == DEFAULT_WORLD and name not in worlds.available():
        # until the attribute world is registered in probe.worlds, its renderer is read directly
        from probe.data.world import sample
    else:
        sample = worlds.get(name).sample
    images, _ = sample(n, seed=seed, resolution=resolution)
    return images


def box_mask(n: int, size: int, box: str) -> torch.Tensor:
    """``known [n, 1, size, size]``: 0 inside the box ``x0,y0,x1,y1`` (fractions of the side), 1 outside."""
    try:
        x0, y0, x1, y1 = (float(v) for v in box.split(","))
    except ValueError:
        raise UsageError(f"--box {box!r}: expected four fractions x0,y0,x1,y1, e.g. 0.25,0.25,0.75,0.75") from None
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
        raise UsageError(f"--box {box!r}: need 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1")
    from probe.optimize.tasks import box_known

    return box_known(size, torch.tensor([[x0, y0, x1, y1]]).expand(n, -1))


def prompts_arg(prompts: list[str], n_images: int) -> list[str] | str:
    if len(prompts) not in (1, n_images):
        raise UsageError(f"--prompt: {len(prompts)} prompts for {n_images} images (give 1 or {n_images})")
    return prompts[0] if len(prompts) == 1 else prompts


def heldout_from_args(args: argparse.Namespace, prompts: list[str] | str, device: torch.device) -> Any:
    if not getattr(args, "heldout_clip", None):
        return None
    from probe.optimize.objectives import ClipText, HeldOut, load_clip

    return HeldOut(ClipText(load_clip(args.heldout_clip, device=device), prompts), name=f"heldout:{args.heldout_clip}")


def settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Every option of the command line (for ``config.json``)."""
    rest = {k: v for k, v in vars(args).items() if not k.startswith("_") and k != "command"}
    return {"command": args.command, **rest}
