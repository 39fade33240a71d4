"""The check of every input before any work: the manifest's images, the CLIP weights, the tokenizer (all
offline; one error lists everything missing)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from probe.pipeline.config import RunConfig, RunConfigError, expand


def _clip_problem(spec: str) -> str | None:
    """What is missing for CLIP model ``spec`` to load offline (``None`` when nothing is)."""
    from probe import zoo

    if spec in zoo.available():
        return None
    if spec.startswith("local-dir:") or Path(spec).expanduser().exists():
        folder = Path(spec.removeprefix("local-dir:")).expanduser()
        return None if folder.exists() else f"optimize.clip: the folder {folder} does not exist"
    from huggingface_hub import try_to_load_from_cache

    if spec.startswith("hf-hub:"):
        repo, filename = spec.removeprefix("hf-hub:"), "open_clip_config.json"
    elif ":" in spec:
        import open_clip

        name, tag = spec.split(":", 1)
        if Path(tag).expanduser().exists():
            return None  # a local weights file
        pcfg = open_clip.get_pretrained_cfg(name, tag)
        if not pcfg:
            return (f"optimize.clip: open_clip has no pretrained weights {tag!r} for model {name!r} "
                    "(see open_clip.list_pretrained())")
        repo = pcfg.get("hf_hub", "").rstrip("/")
        if not repo:
            return None  # weights from a URL: open_clip's own cache; cannot be checked cheaply here
        filename = pcfg.get("file") or "open_clip_model.safetensors"
    else:
        return (f"optimize.clip: {spec!r} is not a shipped model, a local-dir:FOLDER, an hf-hub:OWNER/NAME id "
                "or an open_clip ARCH:PRETRAINED pair")
    cached = try_to_load_from_cache(repo, filename)
    if not isinstance(cached, str):
        return (f"optimize.clip: CLIP weights {spec} ({repo}/{filename}) are not in the Hugging Face cache "
                f"({os.environ.get('HF_HOME', '~/.cache/huggingface')}); download them once with network access "
                "(hf download " + repo + "), or set optimize.clip to local-dir:FOLDER")
    return None


def preflight(cfg: RunConfig) -> Any:
    """Check, before any work, that what the run needs is there: the device, the manifest's images, the CLIP
    weights and the tokenizer. Raises one :class:`RunConfigError` listing everything missing; returns the tokenizer when it
    had to be loaded to check it (else ``None``).

    A tokenizer from the hub is only looked up in the local cache when something else is missing already, so a
    run that cannot start does not wait for downloads first."""
    problems = []
    from probe.device import DeviceError, resolve_device

    try:
        resolve_device(cfg.device)
    except DeviceError as e:
        problems.append(f"device: {e}")
    if cfg.data.manifest is not None:
        from probe.data.dataset import build_source
        from probe.data.manifest import load_manifest

        try:
            build_source(load_manifest(expand(cfg.data.manifest)), n_world=1)
        except Exception as e:  # noqa: BLE001 - every reason a manifest cannot open is reported the same way
            problems.append(f"data.manifest: {e}")
    if cfg.optimize.enabled and cfg.optimize.generate:
        p = _clip_problem(expand(cfg.optimize.clip))
        if p:
            problems.append(p)
    spec = expand(cfg.tokenizer)
    from probe import zoo
    from probe.tokenizers.presets import PRESETS

    tokenizer = None
    if spec in zoo.available() or (spec in PRESETS and cfg.random_init):
        pass  # shipped or built: nothing to fetch
    elif problems and not Path(spec).expanduser().exists():
        from huggingface_hub import try_to_load_from_cache

        repo = PRESETS[spec].hub_id if spec in PRESETS else spec
        if spec.startswith(("/", ".", "~")) or spec.count("/") != 1:
            problems.append(f"tokenizer: {spec!r} does not exist (a folder with config.json + model.safetensors, "
                            "a weight file, a preset, a shipped model or a hub id OWNER/NAME)")
        elif repo is None or not isinstance(try_to_load_from_cache(repo, "config.json"), str):
            problems.append(f"tokenizer: {spec!r} is not a local folder or file, and the hub repository {repo} is "
                            "not in the Hugging Face cache; download it once (hf download REPO --local-dir FOLDER) "
                            "and set the tokenizer to that folder (e.g. TOKENPROBE_TITOK_L32=FOLDER)")
    else:
        import probe

        try:
            tokenizer = probe.load_tokenizer(spec, device=cfg.device, random_init=cfg.random_init)
        except Exception as e:  # noqa: BLE001 - every reason it cannot load is reported the same way
            problems.append(f"tokenizer: {e}")
    if problems:
        raise RunConfigError("the run cannot start; missing:\n  - " + "\n  - ".join(problems))
    return tokenizer
