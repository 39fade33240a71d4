"""``tokenprobe info``: what is installed (versions, device, tokenizer presets, shipped models and manifests)."""
from __future__ import annotations

import argparse
import importlib

NAME = "info"
HELP = "print versions, the device that would be used, tokenizer presets, shipped models and manifests"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, help="force a device (default: cuda, then mps, then cpu)")


def run(args: argparse.Namespace) -> int:
    import torch

    import probe
    from probe.device import resolve_device

    print(f"tokenprobe {probe.__version__}")
    for pkg in ("torch", "torchvision", "open_clip", "sklearn", "pandas", "datasets", "safetensors"):
        try:
            mod = importlib.import_module(pkg)
            print(f"  {pkg:<12} {getattr(mod, '__version__', '?')}")
        except Exception as exc:  # an optional extra that failed to import is worth seeing, not fatal
            print(f"  {pkg:<12} not importable ({type(exc).__name__}: {exc})")
    print(f"device: {resolve_device(args.device)} (torch threads: {torch.get_num_threads()})")
    try:
        from probe.tokenizers import list_presets

        print("tokenizer presets: " + ", ".join(list_presets()))
    except ImportError:
        print("tokenizer presets: (probe.tokenizers not available)")
    from probe import zoo

    names = zoo.available()
    print("shipped models: " + (", ".join(names) if names else "(none)"))
    from probe.data.manifest import shipped_manifests

    print("shipped manifests (tokenize --manifest NAME): " + (", ".join(shipped_manifests()) or "(none)"))
    return 0
