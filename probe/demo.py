"""The main job on the embedded default: world images -> tokens -> probes -> semantic map.

``tokenprobe demo`` runs it end to end offline on 2 CPU cores in a few minutes:

1. render a labelled set of the synthetic attribute world, with the world settings the shipped
   tokenizer was trained on (from its zoo entry);
2. tokenize it into a :class:`~probe.store.TokenStore` (resumable: a second run reuses it);
3. run the probe suite per token position x attribute (:func:`probe.run_probes`);
4. write the tables, the semantic map and the figures under ``out`` (:meth:`ProbeResult.save`, the
   same writer ``tokenprobe probe`` uses) and return them.

What the demo shows depends on how ``world-32`` was trained (:data:`READING_NOTE`): its one-position
semantics were encouraged by one-factor image pairs, not found by compression alone.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

#: Printed with the demo's table: what the shipped world-32 was trained to do, and so how to read it
#: (analyses/world_tokenizer/README.md; figures/compression_sweep.csv).
READING_NOTE = (
    "Note: world-32's single-position semantics were encouraged in training by one-factor image pairs (weak\n"
    "supervision after Locatello et al. 2020); in the compression sweep, compression alone did not localize\n"
    "lighting within its budget (~4,000 steps per model; analyses/world_tokenizer/README.md). Read this map as\n"
    "the probes finding what that training put there, not as 1D tokens localizing attributes on their own."
)


@dataclass
class DemoConfig:
    """Settings of :func:`run_demo` (the defaults are the documented demo).

    Attributes:
        out: run folder; the store goes to ``out/store``, probe outputs to ``out/probes``.
        tokenizer: any spec :func:`probe.load_tokenizer` takes; default the shipped ``world-32``.
        images: number of world images to render and tokenize.
        permutations: permutations per permutation test.
        seed: seed of the world sample and of the probes.
        device: ``None`` picks cuda, then mps, then cpu.
        batch_size: images per forward pass.
        figures: also draw the figures (PNG + SVG).
        random_init: build the tokenizer preset with random weights (plumbing checks only:
            random weights carry no semantics).
    """

    out: Path = Path("runs/demo")
    tokenizer: str = "world-32"
    images: int = 4000
    permutations: int = 200
    seed: int = 0
    device: str | None = None
    batch_size: int = 128
    figures: bool = True
    random_init: bool = False


@dataclass
class DemoResult:
    store: Any
    probes: Any  # probe.probes.ProbeResult
    summary: pd.DataFrame  # one row per attribute (SemanticMap.summary): top position, effect, q, family-wise answer
    paths: dict[str, Path] = field(default_factory=dict)


def world_settings(tokenizer_spec: str) -> dict[str, Any]:
    """The WorldConfig fields a shipped tokenizer was trained on (``{}`` if it is not shipped)."""
    from probe import zoo

    if tokenizer_spec not in zoo.available():
        return {}
    return dict(zoo.config(tokenizer_spec).get("world", {}))


def world_manifest(size: int, seed: int, resolution: int, world: dict[str, Any]) -> Any:
    """A manifest of ``size`` world images with every rendered factor (and ``null_factor``) as attribute."""
    from probe.data.manifest import manifest_from_dict

    config = {k: v for k, v in world.items() if k != "resolution"}
    return manifest_from_dict(
        {"name": "world-demo", "source": {"type": "world", "config": {**config, "resolution": resolution}},
         "size": size, "seed": seed, "resolution": resolution},
        where="<demo manifest>",
    )


def run_demo(cfg: DemoConfig | None = None) -> DemoResult:
    """Run the demo and return its data; see the module docstring."""
    import probe
    from probe.data.world import WorldConfig, factor_specs
    from probe.encode import tokenize_manifest

    cfg = cfg or DemoConfig()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tokenizer = probe.load_tokenizer(cfg.tokenizer, device=cfg.device, random_init=cfg.random_init)
    world = world_settings(cfg.tokenizer)
    manifest = world_manifest(cfg.images, cfg.seed, int(tokenizer.image_size), world)
    store = tokenize_manifest(manifest, tokenizer, out / "store", device=cfg.device, batch_size=cfg.batch_size,
                              num_workers=0)
    t_tok = time.perf_counter() - t0

    wcfg = WorldConfig.from_dict(world)
    # probe the factors themselves; continuous ones are quantile-binned by the probes
    attributes = [n for n, s in factor_specs(wcfg).items() if s.role != "nuisance"]
    result = probe.run_probes(store, attributes_subset=attributes, permutations=cfg.permutations, seed=cfg.seed)
    paths = result.save(out / "probes", figures=cfg.figures, figures_dir=out / "figures", title="tokenprobe demo")
    paths["probe_config"] = paths.pop("config")  # "config" is the run's own config.json below
    run_config = {**{k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
                  "world": world, "tokenize_seconds": round(t_tok, 1),
                  "total_seconds": round(time.perf_counter() - t0, 1)}
    (out / "config.json").write_text(json.dumps(run_config, indent=2))
    paths["config"] = out / "config.json"
    return DemoResult(store=store, probes=result, summary=result.summary, paths=paths)

