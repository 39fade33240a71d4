"""The main job on the embedded default: world images -> tokens -> probes -> semantic map.

``tokenprobe demo`` runs it end to end offline on 2 CPU cores in a few minutes:

1. render a labelled set of the synthetic attribute world, with the world settings the shipped
   tokenizer was trained on (from its zoo entry);
2. tokenize it into a :class:`~probe.store.TokenStore` (resumable: a second run reuses it);
3. run the probe suite per token position x attribute (:func:`probe.run_probes`);
4. write the tables, the semantic map and the figures under ``out`` and return them.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd


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
    summary: pd.DataFrame  # one row per attribute: top position, effect, q-value, runner-up
    paths: dict[str, Path] = field(default_factory=dict)


def world_settings(tokenizer_spec: str) -> dict[str, Any]:
    """The WorldConfig fields a shipped tokenizer was trained on (``{}`` if it is not shipped)."""
    from probe import zoo

    if tokenizer_spec not in zoo.available():
        return {}
    return dict(zoo.config(tokenizer_spec).get("world", {}))


def world_manifest(size: int, seed: int, resolution: int, world: dict[str, Any]) -> Any:
    """A manifest of ``size`` world images with every rendered factor (and the null) as attribute."""
    from probe.data.manifest import manifest_from_dict

    config = {k: v for k, v in world.items() if k != "resolution"}
    return manifest_from_dict(
        {"name": "world-demo", "source": {"type": "world", "config": {**config, "resolution": resolution}},
         "size": size, "seed": seed, "resolution": resolution},
        where="<demo manifest>",
    )


def summarize(semantic_map: Any, attributes: list[str], table: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per attribute: its top position, effect size and q-value, and the runner-up.

    ``q_value`` is the top cell's (Benjamini-Hochberg over the whole position x attribute grid). With the probe
    ``table`` holding ``ami_max`` rows, ``any_position_p`` is the family-wise permutation p-value of "some
    position carries the attribute" (the largest AMI over positions against the permuted maxima), and
    ``significant`` is ``any_position_p < 0.05``; without them, ``significant`` is the top cell's flag. The grid
    q-values let a chance cell through when many cells are real: the shipped world-32 (1024 codes) gives the
    never-rendered null a cell at q = 4e-5 on the demo's images, and ``any_position_p`` = 0.14.
    """
    fw = None
    if table is not None and "ami_max" in set(table["probe"]):
        fw = table[table["probe"] == "ami_max"].set_index("attribute")["p_value"]
    rows = []
    for attr in attributes:
        ranked = semantic_map.by_attribute.get(attr, [])
        row: dict[str, Any] = {"attribute": attr, "rank_by": semantic_map.rank_by}
        if ranked:
            top = ranked[0]
            row.update(top_position=top["position"], effect=top["effect"], q_value=top["q_value"],
                       significant=top["significant"])
            if fw is not None and attr in fw.index:
                row.update(any_position_p=float(fw[attr]), significant=bool(fw[attr] < 0.05))
            if len(ranked) > 1:
                row.update(second_position=ranked[1]["position"], second_effect=ranked[1]["effect"])
        rows.append(row)
    return pd.DataFrame(rows)


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
    paths = result.save(out / "probes")
    summary = summarize(result.semantic_map, attributes, result.table)
    summary.to_csv(out / "summary.csv", index=False)
    paths["summary"] = out / "summary.csv"
    if cfg.figures:
        paths.update(_figures(result, out / "figures"))
    run_config = {**{k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
                  "world": world, "tokenize_seconds": round(t_tok, 1),
                  "total_seconds": round(time.perf_counter() - t0, 1)}
    (out / "config.json").write_text(json.dumps(run_config, indent=2))
    paths["config"] = out / "config.json"
    return DemoResult(store=store, probes=result, summary=summary, paths=paths)


def _figures(result: Any, folder: Path) -> dict[str, Path]:
    """The ranking-probe heatmap and the one-page summary (PNG + SVG)."""
    from probe import viz

    paths: dict[str, Path] = {}
    rank_by = result.semantic_map.rank_by
    fig = viz.probe_heatmap(result.table, rank_by)
    paths["heatmap"] = viz.save_figure(fig, folder / f"heatmap_{rank_by}")[0]
    fig = viz.summary_figure(result.table, result.semantic_map, result.disentanglement, title="tokenprobe demo")
    paths["summary_page"] = viz.save_figure(fig, folder / "summary")[0]
    return paths
