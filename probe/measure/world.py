"""A world tokenizer and the world it was trained on, for measuring it on held-out images of that world.

``spec`` is anything :func:`probe.load_tokenizer` loads (a shipped name such as ``world-32``, a folder or a
weights file), or what ``tokenprobe train-tokenizer`` writes: a run folder (its ``model.json`` +
``model.safetensors``) or a zoo-style ``NAME.json`` beside ``NAME.safetensors``. The world is the record's
``world_overrides`` (``{}`` = the default world).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch


def _zoo_style_record(spec: str) -> tuple[dict[str, Any], Path] | None:
    """(record, weights) of a training run folder or a zoo-style ``.json``; None for anything else."""
    p = Path(spec)
    if p.is_dir() and (p / "model.json").exists():
        return json.loads((p / "model.json").read_text()), p / "model.safetensors"
    if p.suffix == ".json" and p.exists():
        return json.loads(p.read_text()), p.with_suffix(".safetensors")
    return None


def tokenizer_world(spec: str) -> dict[str, Any]:
    """The world overrides a world tokenizer was trained with (``{}``: the default world, or not a world model)."""
    from probe import zoo

    rec = _zoo_style_record(spec)
    if rec is None:
        rec = (zoo.config(spec), None) if spec in zoo.available() else ({}, None)
    return dict(rec[0].get("world_overrides") or {})


def load_world_tokenizer(spec: str, *, device: str | torch.device | None = "cpu") -> tuple[torch.nn.Module, dict]:
    """``(tokenizer in eval mode, its world overrides)`` for ``spec`` (see the module docstring)."""
    import probe

    rec = _zoo_style_record(spec)
    if rec is None:
        return probe.load_tokenizer(spec, device=device).eval(), tokenizer_world(spec)
    # probe.load_tokenizer reads tokenizer folders (config.json); a training run folder's model.json is the zoo
    # format, which the zoo's own loader reads
    from probe.tokenizers.loading import load_zoo_tokenizer

    record, weights = rec
    if not weights.exists():
        raise FileNotFoundError(f"{spec}: no weights file {weights} beside its record")
    return load_zoo_tokenizer(record, weights, device=device).eval(), dict(record.get("world_overrides") or {})
