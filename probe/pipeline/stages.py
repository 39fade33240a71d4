"""The stage adapters of ``tokenprobe run``: each calls the library and writes its outputs under the run folder
(:class:`probe.report.RunPaths`).

A stage gets a :class:`StageContext` holding the config and what the stages before it produced (the token
store, the probe result, the swap outputs), hands its own results on in it, and returns the files it wrote
(its done marker records them; :mod:`probe.pipeline.cache`). The files are for the user and for a second run,
which reads them back only for the stages it reuses.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probe.progress import StageBar
from probe.pipeline.config import RunConfig, RunConfigError, expand
from probe.pipeline.world import world_attributes, world_manifest, world_of, world_settings
from probe.report.layout import RunPaths


class StageSkipped(Exception):
    """Raised by a stage that has nothing to do (e.g. no attribute has a measurer); the message goes to the report."""


@dataclass
class StageContext:
    """What a stage adapter gets: the config, the run folder, and what earlier stages produced."""

    config: RunConfig
    paths: RunPaths
    attributes: list[str] = field(default_factory=list)
    world: dict[str, Any] | None = None  # world settings of a world run (to re-render rows); None otherwise
    store: Any = None  # probe.TokenStore
    probes: Any = None  # probe.probes.ProbeResult (None when reused from disk: read paths.probes)
    swap: Any = None  # probe.swap.distributed.SwapOutputs (None when reused from disk: read paths.swap)
    notes: list[str] = field(default_factory=list)  # what a stage wants said in the report (joined into its note)
    _tokenizer: Any = None
    _clip: Any = None  # (model, tokenizer) of swap.clip, loaded on first use

    @property
    def tokenizer(self) -> Any:
        """The tokenizer, loaded on first use (a reused tokenize stage does not need it)."""
        if self._tokenizer is None:
            import probe

            self._tokenizer = probe.load_tokenizer(expand(self.config.tokenizer), device=self.config.device,
                                                   random_init=self.config.random_init)
        return self._tokenizer

    def after_tokenize(self) -> None:
        """Open the store (when reused) and settle the run's attributes."""
        from probe.store import TokenStore

        if self.store is None:
            self.store = TokenStore.open(self.paths.store)
        self.world = world_of(self.store)
        self.attributes = _attributes(self)
        unknown = sorted(set(self.config.swap.attributes or []) - set(self.attributes))
        if unknown:  # said before the probes run, not after
            raise RunConfigError(f"swap.attributes: {unknown} are not among the run's attributes {self.attributes}")


# --------------------------------------------------------------------------------------------- tokenize, probes
def _manifest(ctx: StageContext, resolution: int) -> Any:
    """The manifest the run tokenizes (see :class:`probe.pipeline.config.DataConfig`)."""
    from probe.data.manifest import load_manifest

    cfg = ctx.config
    if cfg.data.manifest is None:
        world = world_settings(expand(cfg.tokenizer))
        return world_manifest(int(cfg.data.images or 4000), cfg.seed, resolution, world)
    manifest = load_manifest(expand(cfg.data.manifest))
    if cfg.data.images is not None:
        manifest = dataclasses.replace(manifest, size=int(cfg.data.images))
    return manifest


def stage_tokenize(ctx: StageContext) -> list[Path]:
    from probe.encode import tokenize_manifest

    tok = ctx.tokenizer
    manifest = _manifest(ctx, int(tok.image_size))
    ctx.store = tokenize_manifest(manifest, tok, ctx.paths.store, device=ctx.config.device,
                                  batch_size=ctx.config.data.batch_size, num_workers=ctx.config.data.num_workers)
    return [ctx.paths.store / "header.json"]


def _attributes(ctx: StageContext) -> list[str]:
    if ctx.config.data.attributes:
        missing = sorted(set(ctx.config.data.attributes) - set(ctx.store.attribute_names))
        if missing:
            raise RunConfigError(f"data.attributes: {missing} not in the store (it has {ctx.store.attribute_names})")
        return list(ctx.config.data.attributes)
    if ctx.world is not None:
        from probe import worlds

        name = worlds.of_store(ctx.store).name  # the store's own world (attribute, sprites, ...)
        return [a for a in world_attributes(ctx.world, name) if a in ctx.store.attribute_names]
    return list(ctx.store.attribute_names)


def stage_probes(ctx: StageContext) -> list[Path]:
    import probe

    cfg = ctx.config
    ctx.probes = probe.run_probes(ctx.store, attributes_subset=ctx.attributes, permutations=cfg.probes.permutations,
                                  seed=cfg.seed)
    paths = ctx.probes.save(ctx.paths.probes, figures=cfg.probes.figures, figures_dir=ctx.paths.figures,
                            title=f"tokenprobe: {cfg.name}")
    return list(paths.values())


def _semantic_map(ctx: StageContext) -> Any:
    from probe.probes.semantic_map import SemanticMap

    if ctx.probes is not None:
        return ctx.probes.semantic_map
    return SemanticMap.from_dict(json.loads(ctx.paths.semantic_map.read_text()))


# --------------------------------------------------------------------------------------------- reconstruction
def stage_reconstruction(ctx: StageContext) -> list[Path]:
    """PSNR and SSIM of the tokenizer's reconstructions of ``reconstruction.images`` of the run's images, and per
    attribute with a measurer the share of the originals' gap the reconstructions keep; writes
    ``reconstruction/``."""
    from probe.data.rematerialise import rematerialise
    from probe.measure.reconstruction import image_fidelity
    from probe.tokenizers.base import decode_batched, encode_batched
    from probe.viz.save import save_figure
    from probe.viz.swap import image_grid_figure

    c, paths, tok = ctx.config.reconstruction, ctx.paths, ctx.tokenizer
    rows = _rows(ctx, c.images, ctx.config.seed)
    images, masks = rematerialise(ctx.store, rows, resolution=int(tok.image_size), masks=True)
    recon = decode_batched(tok, encode_batched(tok, images, batch=ctx.config.data.batch_size).quantized,
                           batch=ctx.config.data.batch_size)
    fidelity = image_fidelity(images, recon)
    fidelity.insert(1, "row", rows)
    paths.reconstruction.mkdir(parents=True, exist_ok=True)
    fidelity.to_csv(paths.reconstruction_images, index=False)
    kept = _kept_gaps(ctx, rows, images, recon, masks)
    kept.to_csv(paths.reconstruction_attributes, index=False)
    summary = {"images": len(rows), "psnr": float(fidelity["psnr"].mean()), "ssim": float(fidelity["ssim"].mean()),
               "psnr_median": float(fidelity["psnr"].median()), "tokenizer": ctx.config.tokenizer,
               "random_init": ctx.config.random_init, "seed": ctx.config.seed}
    paths.reconstruction_summary.write_text(json.dumps(summary, indent=2))
    k = min(6, len(rows))
    fig = image_grid_figure({"original": images[:k], "reconstruction": recon[:k]}, by_row=True)
    ctx.notes.append(f"PSNR {summary['psnr']:.1f} dB, SSIM {summary['ssim']:.2f} on {len(rows)} images"
                     + (" (random weights)" if ctx.config.random_init else ""))
    return [paths.reconstruction_images, paths.reconstruction_attributes, paths.reconstruction_summary,
            save_figure(fig, paths.reconstruction_examples.with_suffix(""))[0]]


def _kept_gaps(ctx: StageContext, rows: Any, images: Any, recon: Any, masks: Any) -> Any:
    """Per attribute with a measurer: the share of the originals' gap the reconstructions keep, as the swap
    verdict measures it (:func:`probe.swap.visibility.kept_gap`; a row with a ``note`` for an attribute that cannot
    be paired or measured). ``gap_reconstruction`` is the reconstructions' gap along the originals' direction."""
    import pandas as pd
    import torch

    import numpy as np

    from probe import worlds
    from probe.swap.pairs import PairConfig, sample_pairs
    from probe.swap.run import store_kinds
    from probe.swap.visibility import kept_gap, mean_gap

    kinds = store_kinds(ctx.store)
    world = worlds.of_store(ctx.store)
    circular = world.circular() if world is not None else ()
    attrs = ctx.store.attributes.iloc[rows].reset_index(drop=True)
    out = []
    for a, m in _measurers_of(ctx, ctx.attributes)[0].items():
        try:
            pairs = sample_pairs(attrs, a, kinds.get(a, "continuous"),
                                 PairConfig(n=ctx.config.reconstruction.pairs, seed=ctx.config.seed),
                                 circular=a in circular)
        except ValueError as e:
            out.append({"attribute": a, "measurer": getattr(m, "name", str(m)), "note": str(e)})
            continue
        with torch.no_grad():
            before, after = m(images, masks=masks).float().cpu(), m(recon, masks=masks).float().cpu()
        # the images of the pairs with their end labels: the swap verdict's own measure of what is kept
        # (probe.swap.visibility.kept_gap: the reconstructions' end gap along the originals' direction, signed)
        idx = np.concatenate([pairs["recipient"].to_numpy(), pairs["donor"].to_numpy()])
        ends = np.concatenate([pairs["recipient_end"].to_numpy(object), pairs["donor_end"].to_numpy(object)])
        orig, rec = before[idx].numpy(), after[idx].numpy()
        g0, share = mean_gap(orig, ends), kept_gap(rec, orig, ends)
        out.append({"attribute": a, "measurer": getattr(m, "name", str(m)), "gap_original": g0,
                    "gap_reconstruction": share * g0, "kept": share, "pairs": len(pairs), "note": ""})
    return pd.DataFrame(out, columns=["attribute", "measurer", "gap_original", "gap_reconstruction", "kept", "pairs",
                                      "note"])


# --------------------------------------------------------------------------------------------- swap
def _measurer(ctx: StageContext, attribute: str) -> Any:
    """The measurer of ``attribute``: the config's spec (``swap.measurers``), else the manifest's, else the
    default (:func:`probe.measure.measurer_for`)."""
    from probe.measure import get_measurer, measurer_for

    from probe.data.manifest import declared_measurers

    spec = ctx.config.swap.measurers.get(attribute) or declared_measurers(ctx.store.manifest).get(attribute)
    return get_measurer(spec) if spec else measurer_for(attribute)


def _measurers_of(ctx: StageContext, attributes: list[str]) -> tuple[dict[str, Any], list[str]]:
    """(attribute -> measurer, attributes without one) for ``attributes`` (spec from the config, else the
    manifest's, else the default, else CLIP zero-shot for a categorical one when ``swap.clip`` is set)."""
    out, without = {}, []
    for a in attributes:
        try:
            out[a] = _measurer(ctx, a)
        except (KeyError, ValueError):
            if ctx.config.swap.measurers.get(a):
                raise RunConfigError(f"swap.measurers.{a}: {ctx.config.swap.measurers[a]!r} is not a measurer "
                                     "spec") from None
            zero_shot = _zero_shot(ctx, a)
            if zero_shot is None:
                without.append(a)
            else:
                out[a] = zero_shot
    return out, without


def _zero_shot(ctx: StageContext, attribute: str) -> Any:
    """CLIP zero-shot over ``attribute``'s values (``swap.clip``, ``swap.clip_prompt``) for a categorical
    attribute with at least two values; ``None`` otherwise."""
    c = ctx.config.swap
    if not c.clip:
        return None
    import pandas as pd

    from probe.measure.clip import ClipMeasurer
    from probe.swap.run import store_kinds

    if store_kinds(ctx.store).get(attribute) != "categorical":
        return None
    values = sorted(str(v) for v in pd.unique(ctx.store.attributes[attribute].dropna()))
    if len(values) < 2:
        return None
    if ctx._clip is None:  # one CLIP for every zero-shot attribute of the run
        from probe.optimize.objectives import load_clip

        try:
            loaded = load_clip(expand(c.clip), device=ctx.config.device)
        except (RuntimeError, ValueError) as exc:
            raise RunConfigError(f"swap.clip: {exc}") from None
        ctx._clip = (loaded.model, loaded.tokenizer)
    prompts = {v: c.clip_prompt.format(value=v.replace("_", " ")) for v in values}
    return ClipMeasurer(prompts, name=attribute, clip=ctx._clip)


def _measurers(ctx: StageContext) -> dict[str, Any]:
    """attribute -> measurer for the swap stage's attributes that have one."""
    wanted = ctx.config.swap.attributes
    if wanted:
        unknown = sorted(set(wanted) - set(ctx.attributes))
        if unknown:
            raise RunConfigError(f"swap.attributes: {unknown} are not among the run's attributes {ctx.attributes}")
    out, without = _measurers_of(ctx, wanted or ctx.attributes)
    if without:
        how = "set swap.measurers" + ("" if ctx.config.swap.clip else ", or swap.clip for categorical ones")
        ctx.notes.append(f"not validated (no measurer; {how}): {', '.join(without)}")
    return out


def stage_swap(ctx: StageContext) -> list[Path]:
    """Validate the probe map by swaps (every position when ``swap.sweep``, else the probes' candidates);
    writes ``swap/``: tables, the validated map, the causal heatmap, image grids of the confirmed mappings, a
    traversal (:func:`probe.swap.distributed.validate_and_write`)."""
    from probe.swap import SwapConfig, SwapData
    from probe.swap.distributed import validate_and_write
    from probe.swap.verdict import UNTESTABLE

    c, seed, tok = ctx.config.swap, ctx.config.seed, ctx.tokenizer
    measurers = _measurers(ctx)
    if not measurers:
        raise StageSkipped("swap validation did not run: no attribute of this run has a measurer (swap.measurers)")
    data = SwapData.from_store(ctx.store, tok)
    disc = c.discovery_pairs or c.pairs
    # swap.sweep asks for every single position (the full causal heatmap), not attribution first
    cfg = SwapConfig(pairs=c.pairs, discovery_pairs=disc, seed=seed, control_pairs=c.control_pairs,
                     greedy_pairs=min(64, disc), max_set=max(1, c.max_set), mode="exhaustive")
    attrs = list(measurers)
    with StageBar("swap") as bar:  # one bar for the stage: sweeps, greedy sets, confirmation, traversal
        ctx.swap = validate_and_write(tok, data, measurers, _semantic_map(ctx), ctx.paths.swap, attributes=attrs,
                                      config=cfg, candidates=None if c.sweep else c.candidates,
                                      greedy=c.max_set > 1, grids=c.grids, progress=bar,
                                      record={"sweep": c.sweep, "candidates": c.candidates}, estimate=c.sweep)
        written = list(ctx.swap.paths.values())
        if c.sweep:  # where in the image each position acts (every position was swapped anyway)
            from probe.swap.spatial import spatial_maps

            bar.phase("spatial maps")
            maps = spatial_maps(tok, data.quantized, masks=data.masks, n=min(64, len(data.quantized)), seed=seed)
            written += list(maps.save(ctx.paths.swap).values())
        if c.traversals:
            bar.phase("traversal")
            written += _traversal(ctx, data, measurers, ctx.swap.confirmed, bar)
    if ctx.swap.result.summary.empty:
        ctx.notes.append("nothing tested: the probes named no candidate position (swap.sweep: true tests every "
                         "position)")
    ctx.notes.append(f"{ctx.swap.confirmed['attribute'].nunique()} of {len(attrs)} attributes confirmed")
    answers = ctx.swap.answers
    lost = answers[answers["verdict"].isin(UNTESTABLE)] if "verdict" in answers else answers.iloc[:0]
    if len(lost):  # the tokenizer loses them, or their measurer does not see them: said, never confirmed
        ctx.notes.append("not testable: " + ", ".join(f"{a} ({v})" for a, v in zip(lost["attribute"], lost["verdict"])))
    return written


def _traversal(ctx: StageContext, data: Any, measurers: dict[str, Any], confirmed: Any,
               progress: StageBar | bool = True) -> list[Path]:
    """The first confirmed single position set to every code the store uses there, 4 images, every attribute
    measured (VQ tokenizers only)."""
    single = confirmed[~confirmed["positions"].astype(str).str.contains("+", regex=False)]
    if single.empty or not getattr(ctx.tokenizer, "is_discrete", False):
        return []
    import numpy as np
    import torch

    from probe.swap.traverse import codes_used, response_curve, traverse
    from probe.viz.save import save_figure
    from probe.viz.swap import traversal_figure

    row = single.iloc[0]
    pos, attr = int(row["positions"]), str(row["attribute"])
    rows = torch.arange(min(4, len(data.quantized)))
    masks = None if data.masks is None else data.masks[rows]
    table = traverse(ctx.tokenizer, data.quantized[rows], pos, measurers,
                     codes=codes_used(np.asarray(ctx.store.tokens), pos), masks=masks, progress=progress)
    curve = response_curve(table)
    stem = ctx.paths.traversal(pos).with_suffix("")
    table.to_csv(stem.with_suffix(".csv"), index=False)
    fig = traversal_figure(curve, order_by=attr if attr in set(curve["measured"]) else None)
    return [stem.with_suffix(".csv"), save_figure(fig, stem)[0]]


# --------------------------------------------------------------------------------------------- optimize
def stage_optimize(ctx: StageContext) -> list[Path]:
    """A copy-paste edit per confirmed mapping, one text-guided generation, one inpainting; writes
    ``optimize/``."""
    from probe.optimize import OptimizeConfig

    c, seed = ctx.config.optimize, ctx.config.seed
    ctx.paths.optimize.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with StageBar("optimize", unit="steps") as bar:  # one bar: the generation's and the inpainting's steps
        for task, on in (("generate", c.generate), ("inpaint", c.inpaint)):
            if on:
                bar.expect(task, c.iterations)
        ocfg = OptimizeConfig(iterations=c.iterations, seed=seed, progress=bar)
        if c.copy_paste:
            written += _copy_paste(ctx, c.images)
        if c.generate:
            bar.phase("generate")
            written += _generate(ctx, ocfg)
        if c.inpaint:
            bar.phase("inpaint")
            written += _inpaint(ctx, ocfg)
    return written


def _swap_answers(ctx: StageContext) -> tuple[Any, Any] | None:
    """The confirmed mappings (one row per attribute) and the swap pairs: handed on by the swap stage, or read
    from ``swap/`` when that stage was reused (``None`` when it did not run)."""
    import pandas as pd

    if ctx.swap is not None:
        return ctx.swap.confirmed, ctx.swap.result.pairs
    pairs_path = ctx.paths.swap / "pairs.csv"
    if not ctx.paths.validated_map.exists() or not pairs_path.exists():
        return None
    vmap = pd.read_csv(ctx.paths.validated_map, keep_default_na=False, na_values=[""], dtype={"positions": str})
    confirmed = vmap[vmap["verdict"] == "confirmed"].drop_duplicates("attribute")
    return confirmed, pd.read_csv(pairs_path, keep_default_na=False, na_values=[""])


def _copy_paste(ctx: StageContext, n: int) -> list[Path]:
    """Per confirmed mapping, the donors' tokens at its positions pasted into ``n`` recipients: how much of the
    recipient-donor gap of the measured attribute the paste moves."""
    import pandas as pd

    from probe.data.rematerialise import rematerialise
    from probe.swap import copy_paste, movement
    from probe.swap.engine import parse_label
    from probe.viz.save import save_figure
    from probe.viz.swap import image_grid_figure

    answers = _swap_answers(ctx)
    if answers is None:
        ctx.notes.append("no copy-paste edits: no validated map (the swap stage did not run)")
        return []
    confirmed, pairs = answers
    if confirmed.empty:
        ctx.notes.append("no copy-paste edits: no mapping was confirmed")
        return []
    rows, written, size = [], [], int(ctx.tokenizer.image_size)
    for m in confirmed.itertuples():
        sub = pairs[pairs["attribute"] == m.attribute].head(n)
        target, t_masks = rematerialise(ctx.store, sub["recipient"].to_numpy(), resolution=size, masks=True)
        source, s_masks = rematerialise(ctx.store, sub["donor"].to_numpy(), resolution=size, masks=True)
        out = copy_paste(ctx.tokenizer, target, source, parse_label(m.positions))
        measurer = _measurer(ctx, m.attribute)
        read_t = measurer(out["target"], masks=t_masks)
        kind = getattr(measurer, "kind", "continuous")
        # signed: movement along the target-to-source direction, negative when the paste moves the wrong way
        mv = movement(kind, read_t, measurer(out["images"], masks=t_masks),
                      toward=measurer(out["source"], masks=s_masks))
        gap, moved = float(mv["gap"].mean()), float(mv["moved"].mean())
        rows.append({"attribute": m.attribute, "positions": m.positions, "images": len(sub), "gap": gap,
                     "moved": moved, "transfer": moved / gap if gap > 0 else float("nan"),
                     "swap_transfer": m.transfer})
        fig = image_grid_figure({"target": out["target"], "source": out["source"], f"pasted @{m.positions}":
                                 out["images"]}, f"{m.attribute} @ {m.positions}: moved {moved / max(gap, 1e-12):.2f}"
                                f" of the gap")
        written.append(save_figure(fig, ctx.paths.optimize_folder("copy_paste") / str(m.attribute))[0])
    pd.DataFrame(rows).to_csv(ctx.paths.optimize_table("copy_paste"), index=False)
    return [ctx.paths.optimize_table("copy_paste"), *written]


def _rows(ctx: StageContext, n: int, seed: int) -> Any:
    """``min(n, rows)`` sorted row positions of the run's store, drawn with ``seed``."""
    import numpy as np

    return np.sort(np.random.default_rng(seed).choice(len(ctx.store), size=min(n, len(ctx.store)), replace=False))


def _images(ctx: StageContext, n: int, seed: int) -> Any:
    """``n`` images of the run's store rows, drawn with ``seed`` (re-rendered or re-read): ``[n, 3, H, W]``."""
    from probe.data.rematerialise import rematerialise

    return rematerialise(ctx.store, _rows(ctx, n, seed), resolution=int(ctx.tokenizer.image_size))


def _generate(ctx: StageContext, ocfg: Any) -> list[Path]:
    """One prompt, one sample, from the CLIP top-1 image of 256 of the run's images (the paper's protocol; more
    samples from the same seed would be identical without token noise)."""
    import pandas as pd

    from probe.optimize.tasks import generate, write_run

    c = ctx.config.optimize
    seeds = _images(ctx, 256, ctx.config.seed)
    res = generate(ctx.tokenizer, c.prompt, n=1, clip=expand(c.clip), seed_images=seeds, init="top1", config=ocfg)
    folder = write_run(ctx.paths.optimize_folder("generate"), res, inputs=res.seed_images, labels=[c.prompt],
                       settings={"prompt": c.prompt, "clip": c.clip, "init": "top1", **ocfg.to_dict()})
    h = res.history
    first = h[h["step"] == h["step"].min()].set_index("row")["objective"]
    last = h[h["step"] == h["step"].max()].set_index("row")
    table = pd.DataFrame({"prompt": c.prompt, "objective_seed": first, "objective_result": last["objective"],
                          "changed_tokens": last.get("changed")}).reset_index()
    table.to_csv(ctx.paths.optimize_table("generate"), index=False)
    return [ctx.paths.optimize_table("generate"), folder / "grid.png", folder / "history.csv"]


def _inpaint(ctx: StageContext, ocfg: Any) -> list[Path]:
    """A centred square hole (half the side) in ``optimize.images`` images; PSNR on the hole of the result
    against that of decoding the masked image (the seed)."""
    import pandas as pd
    import torch

    from probe.measure.fidelity import psnr
    from probe.optimize.tasks import inpaint, masked_images, write_run

    c = ctx.config.optimize
    images = _images(ctx, c.images, ctx.config.seed + 1)
    h = images.shape[-1]
    hole = slice(h // 4, h - h // 4)
    known = torch.ones(len(images), 1, h, h)
    known[..., hole, hole] = 0
    res = inpaint(ctx.tokenizer, images, known, reset_every=max(1, c.iterations // 4), config=ocfg)
    folder = write_run(ctx.paths.optimize_folder("inpaint"), res, inputs=masked_images(images, known),
                       settings={"hole": "centred square, half the side", **ocfg.to_dict()})
    table = pd.DataFrame({"psnr_hole_result": psnr(res.images.cpu(), images, region=1 - known).numpy(),
                          "psnr_hole_masked_decode": psnr(res.seed_images.cpu(), images, region=1 - known).numpy()})
    table.insert(0, "row", range(len(table)))
    table.to_csv(ctx.paths.optimize_table("inpaint"), index=False)
    return [ctx.paths.optimize_table("inpaint"), folder / "grid.png", folder / "history.csv"]


#: stage -> adapter (the report stage is the runner's own)
STAGE_FUNCS: dict[str, Callable[[StageContext], list[Path]]] = {
    "tokenize": stage_tokenize, "reconstruction": stage_reconstruction, "probes": stage_probes, "swap": stage_swap,
    "optimize": stage_optimize}
