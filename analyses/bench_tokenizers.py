"""Encode / decode throughput (images/s) of TiTok presets (random weights), optionally beside the
reference code and the opt-in fast paths.

Plain throughput (CPU, two threads):

    python analyses/bench_tokenizers.py --presets titok-s128 titok-b64 titok-l32 --batch-sizes 1 8

Beside the official modeling code (a checkout of bytedance/1d-tokenizer that you supply; it needs
its own dependencies ``einops`` and ``omegaconf``), and with the fast paths:

    python analyses/bench_tokenizers.py --threads 2 --reference /path/to/1d-tokenizer \\
        --paths fp32 bf16 bf16+compile --batch-sizes 1 4

With ``--reference`` or ``--paths`` the contestants (our fp32 path, the reference, each fast
path) are timed interleaved, one call each in turn per repeat, so that a machine whose load
changes over the run slows them alike; the table gives images/s, the speed ratios against the
reference (``*_x_ref``) and against our fp32 path (``*_x_fp32``), the share of tokens equal to our
fp32 tokens on the same images, the largest difference of the quantized latents (VAE: posterior
means) and the largest pixel difference of the decode of our fp32 tokens (VAE: latents).
The reference is built from its own classes, with our random weights loaded into it (the state
dicts have one layout). Each cell: ``--warmup`` untimed calls, the median of ``--repeats``.
"""
from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
import types
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from probe.device import resolve_device
from probe.tokenizers import build_tokenizer, list_presets
from probe.tokenizers.config import TiTokConfig, model_size

DEFAULT_PRESETS = ["titok-s128", "titok-b64", "titok-l32"]
PATHS = {"fp32": ("fp32", False), "bf16": ("bf16", False), "fp32+compile": ("fp32", True),
         "bf16+compile": ("bf16", True)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def time_call(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> float:
    """Median wall seconds of ``fn`` over ``repeats`` calls after ``warmup`` untimed calls."""
    return time_interleaved({"fn": fn}, device, warmup, repeats)["fn"]


def time_interleaved(fns: dict[str, Callable[[], object]], device: torch.device, warmup: int,
                     repeats: int) -> dict[str, float]:
    """Median wall seconds of each function, the functions called in turn within each repeat."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    _sync(device)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


# ---- the reference code -------------------------------------------------------------------------
def _official_config(cfg: TiTokConfig) -> dict[str, Any]:
    """Our config in the official layout (``{"model": {"vq_model": ...}, "dataset": ...}``)."""
    enc = model_size(cfg.enc_width, cfg.enc_depth, cfg.enc_heads)
    dec = model_size(cfg.dec_width, cfg.dec_depth, cfg.dec_heads)
    if enc is None or dec is None or cfg.image_size != 256:
        raise ValueError("not an official architecture")
    vq = {"vit_enc_model_size": enc, "vit_dec_model_size": dec, "vit_enc_patch_size": cfg.enc_patch_size,
          "vit_dec_patch_size": cfg.dec_patch_size, "num_latent_tokens": cfg.num_latent_tokens,
          "token_size": cfg.token_size, "codebook_size": cfg.codebook_size, "use_l2_norm": cfg.use_l2_norm,
          "commitment_cost": 0.25, "quantize_mode": cfg.quantize_mode, "is_legacy": cfg.is_legacy,
          "finetune_decoder": cfg.finetune_decoder}
    return {"model": {"vq_model": vq}, "dataset": {"preprocessing": {"crop_size": cfg.image_size}}}


def import_reference(root: Path) -> types.ModuleType:
    """``modeling.titok`` of a bytedance/1d-tokenizer checkout at ``root``.

    Only the inference modules are imported: the packages ``modeling``, ``modeling.modules`` and
    ``modeling.quantizer`` are registered empty so that their ``__init__`` files (which pull in the
    training losses, LPIPS, diffusion) do not run; ``accelerate`` (used for multi-GPU training
    only) is stubbed when missing.
    """
    root = root.expanduser().resolve()
    if not (root / "modeling" / "titok.py").is_file():
        raise SystemExit(f"--reference {root}: no modeling/titok.py there; pass a checkout of bytedance/1d-tokenizer")
    for dep in ("einops", "omegaconf"):
        try:
            importlib.import_module(dep)
        except ImportError:
            raise SystemExit(f"--reference: the reference code needs {dep!r}; install it (pip install einops omegaconf)") from None
    try:
        importlib.import_module("accelerate.utils.operations")
    except ImportError:
        for name in ("accelerate", "accelerate.utils", "accelerate.utils.operations"):
            sys.modules.setdefault(name, types.ModuleType(name))
        sys.modules["accelerate.utils.operations"].gather = lambda t: t  # type: ignore[attr-defined]
    for pkg in ("modeling", "modeling.modules", "modeling.quantizer"):
        mod = types.ModuleType(pkg)
        mod.__path__ = [str(root / pkg.replace(".", "/"))]
        sys.modules[pkg] = mod
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # its torch.cuda.amp.autocast decorators
        return importlib.import_module("modeling.titok")


class Reference:
    """The reference TiTok with our weights, behind our encode / decode calls."""

    def __init__(self, ours: nn.Module, module: types.ModuleType) -> None:
        self.model = module.TiTok(_official_config(ours.config)).to(ours.latent_tokens.device)
        self.model.load_state_dict(ours.state_dict(), strict=True)
        self.model.eval()
        self.discrete = ours.is_discrete

    @torch.inference_mode()
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """-> (indices ``[B, N]`` or None, latents ``[B, N, C]``: the codes / the posterior mean)."""
        z_q, result = self.model.encode(x)
        if self.discrete:
            return result["min_encoding_indices"].reshape(x.shape[0], -1), z_q.flatten(2).transpose(1, 2)
        return None, result.mean.flatten(2).transpose(1, 2)

    @torch.inference_mode()
    def decode(self, indices: torch.Tensor | None, latents: torch.Tensor) -> torch.Tensor:
        if self.discrete:
            return self.model.decode_tokens(indices).clamp(0.0, 1.0)
        return self.model.decode_tokens(latents.transpose(1, 2).unsqueeze(2)).clamp(0.0, 1.0)


# ---- our paths ------------------------------------------------------------------------------------
class Ours:
    """One of our compute paths (``PATHS``) on a tokenizer, behind the same calls as :class:`Reference`."""

    def __init__(self, model: nn.Module, path: str) -> None:
        precision, compile_ = PATHS[path]
        self.model = model
        self.path = path
        self.precision, self.compile = precision, compile_

    def _configure(self) -> None:
        self.model.configure_inference(precision=self.precision, compile=self.compile)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        self._configure()
        enc = self.model.encode(x)
        return enc.indices, enc.quantized

    def decode(self, indices: torch.Tensor | None, latents: torch.Tensor) -> torch.Tensor:
        self._configure()
        if indices is not None:
            return self.model.decode_indices(indices)
        with torch.inference_mode():
            return self.model.decode(latents)


def compare_preset(name: str, batch_sizes: list[int], device: torch.device, *, paths: list[str],
                   reference: types.ModuleType | None, warmup: int, repeats: int, seed: int = 0
                   ) -> list[dict[str, object]]:
    """Rows ``{preset, batch, path, encode_img_s, decode_img_s, *_x_ref, *_x_fp32, token_agreement,
    max_pixel_diff}``, one per contestant: our fp32 path, each of ``paths``, the reference."""
    model = build_tokenizer(name, seed=seed, device=device)
    contestants: dict[str, Any] = {p: Ours(model, p) for p in dict.fromkeys(["fp32", *paths])}
    if reference is not None:
        try:
            contestants["reference"] = Reference(model, reference)
        except ValueError:
            print(f"  {name}: no official counterpart; reference skipped", file=sys.stderr, flush=True)
    gen = torch.Generator().manual_seed(seed)
    rows: list[dict[str, object]] = []
    for b in sorted(batch_sizes):
        x = torch.rand(b, 3, model.image_size, model.image_size, generator=gen).to(device)
        base_idx, base_feat = contestants["fp32"].encode(x)
        base_img = contestants["fp32"].decode(base_idx, base_feat)
        out: dict[str, dict[str, object]] = {}
        for k, c in contestants.items():
            idx, feat = c.encode(x)  # also the warm-up (and the compile) of each path
            img = c.decode(base_idx, base_feat)
            agree = float((idx == base_idx).float().mean()) if idx is not None else float("nan")
            out[k] = {"token_agreement": round(agree, 4),
                      "max_latent_diff": float((feat.float() - base_feat).abs().max()),
                      "max_pixel_diff": float((img.float() - base_img).abs().max())}
        t_enc = time_interleaved({k: (lambda c=c: c.encode(x)) for k, c in contestants.items()},
                                 device, warmup, repeats)
        t_dec = time_interleaved({k: (lambda c=c: c.decode(base_idx, base_feat)) for k, c in contestants.items()},
                                 device, warmup, repeats)
        for k in contestants:
            row: dict[str, object] = {"preset": name, "batch": b, "path": k,
                                      "encode_img_s": round(b / t_enc[k], 3), "decode_img_s": round(b / t_dec[k], 3)}
            if "reference" in contestants:
                row["encode_x_ref"] = round(t_enc["reference"] / t_enc[k], 3)
                row["decode_x_ref"] = round(t_dec["reference"] / t_dec[k], 3)
            row["encode_x_fp32"] = round(t_enc["fp32"] / t_enc[k], 3)
            row["decode_x_fp32"] = round(t_dec["fp32"] / t_dec[k], 3)
            row.update(out[k])
            rows.append(row)
            print(f"  {name} batch {b} {k}: encode {row['encode_img_s']} img/s, decode {row['decode_img_s']} img/s,"
                  f" tokens equal {out[k]['token_agreement']}, max pixel diff {out[k]['max_pixel_diff']:.2e}",
                  file=sys.stderr, flush=True)
    model.configure_inference()
    return rows


# ---- plain throughput -------------------------------------------------------------------------------
def bench_preset(name: str, batch_sizes: list[int], device: torch.device, *, warmup: int, repeats: int,
                 max_cell_seconds: float, dtype: torch.dtype = torch.float32, seed: int = 0
                 ) -> list[dict[str, object]]:
    """Rows ``{preset, batch, encode_img_s, decode_img_s, ...}`` for one preset."""
    model = build_tokenizer(name, seed=seed, device=device).to(dtype)
    params_m = sum(p.numel() for p in model.parameters()) / 1e6
    size = model.image_size
    gen = torch.Generator().manual_seed(seed)
    rows: list[dict[str, object]] = []
    per_image_s: float | None = None  # from the previous batch size, to predict the next cell
    for b in sorted(batch_sizes):
        row: dict[str, object] = {"preset": name, "params_M": round(params_m, 2), "batch": b, "device": str(device)}
        predicted = None if per_image_s is None else per_image_s * b * (warmup + repeats)
        if predicted is not None and predicted > max_cell_seconds:
            row.update(encode_img_s="skipped", decode_img_s="skipped",
                       note=f"predicted {predicted:.0f}s > --max-cell-seconds {max_cell_seconds:.0f}")
            rows.append(row)
            print(f"  {name} batch {b}: skipped (predicted {predicted:.0f}s)", file=sys.stderr, flush=True)
            continue
        x = torch.rand(b, 3, size, size, generator=gen).to(device)
        enc = model.encode(x)
        if model.is_discrete:
            def decode() -> object:
                return model.decode_indices(enc.indices)
        else:
            def decode() -> object:
                with torch.inference_mode():
                    return model.decode(model.quantize(enc.features)[0])
        t_enc = time_call(lambda: model.encode(x), device, warmup, repeats)
        t_dec = time_call(decode, device, warmup, repeats)
        per_image_s = (t_enc + t_dec) / b
        row.update(encode_img_s=round(b / t_enc, 3), decode_img_s=round(b / t_dec, 3), note="")
        rows.append(row)
        print(f"  {name} batch {b}: encode {b / t_enc:.3f} img/s, decode {b / t_dec:.3f} img/s",
              file=sys.stderr, flush=True)
    del model
    return rows


def bench_rows(quick: bool = True) -> list[dict[str, object]]:
    """Rows for analyses/bench.py: encode and decode images/s per preset (random weights) on the default device;
    quick: titok-tiny at batch 8, one repeat (titok-l32 takes minutes per cell on a shared CPU; --full runs the
    default presets). The reference implementation is not installed here, so there is no ratio against it."""
    torch.set_num_threads(1)
    device = resolve_device(None)
    presets = ["titok-tiny"] if quick else DEFAULT_PRESETS
    rows = []
    for name in presets:
        for r in bench_preset(name, [8], device, warmup=1, repeats=1 if quick else 3, max_cell_seconds=600.0):
            for op in ("encode", "decode"):
                rows.append({"case": f"{name} {op} batch {r['batch']}", "throughput": r[f"{op}_img_s"],
                             "unit": "images/s", "device": r["device"]})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", nargs="+", default=DEFAULT_PRESETS, choices=list_presets(), metavar="PRESET",
                    help=f"presets to run (default: {' '.join(DEFAULT_PRESETS)}; any of {', '.join(list_presets())})")
    ap.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8, 32])
    ap.add_argument("--device", default=None, help="force a device (default: cuda, then mps, then cpu)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for torch (default 1: a shared machine)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-cell-seconds", type=float, default=600.0,
                    help="skip a cell predicted (from the previous batch size) to take longer than this")
    ap.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32",
                    help="cast the whole model (plain throughput mode only)")
    ap.add_argument("--reference", type=Path, default=None, metavar="PATH",
                    help="a checkout of bytedance/1d-tokenizer: time its code beside ours on the same weights")
    ap.add_argument("--paths", nargs="+", default=[], choices=list(PATHS),
                    help="our compute paths to time beside our fp32 path (TiTok.configure_inference)")
    ap.add_argument("--csv", type=Path, default=None, help="also write the table here")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}", file=sys.stderr)
    rows = []
    if args.reference is not None or args.paths:
        reference = import_reference(args.reference) if args.reference is not None else None
        for name in args.presets:
            rows += compare_preset(name, args.batch_sizes, device, paths=args.paths, reference=reference,
                                   warmup=args.warmup, repeats=args.repeats)
    else:
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        for name in args.presets:
            rows += bench_preset(name, args.batch_sizes, device, warmup=args.warmup, repeats=args.repeats,
                                 max_cell_seconds=args.max_cell_seconds, dtype=getattr(torch, args.dtype))
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(table.to_string(index=False))
    if args.csv is not None:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
