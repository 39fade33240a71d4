"""Benchmark of test-time token optimization (``probe.optimize``) on the embedded default world.

Sections (``--sections``, all by default):

- ``generate``: text-guided generation with ``world-clip`` from random world seed images, one run per
  (prompt, seed) over every shape x ``--colours``; the oracle judges whether it reads the prompted shape
  and colour (vs the seeds' own rate); the held-out score is the oracle's soft prompt score
  (:class:`probe.worlds.attribute.OraclePromptScore`), never optimized. ``--inits`` adds the paper's
  CLIP top-1 seed choice;
- ``ablation``: the same generation on ``world-32-continuous`` (VQ vs continuous tokens);
- ``inpaint``: a square hole over the object or over the background; PSNR on the hidden region of
  the result vs decoding the masked image, with and without token reset (and the plain
  reconstruction of the full image as a ceiling);
- ``position``: edits of lighting (to ``--lighting-target``), both blurs and the background hue, each
  restricted to the position world-32's swap validation confirmed (``--map`` to read them from a map):
  exhaustive code search vs the gradient loop at that position vs the gradient loop over all
  positions; the oracle both scores the objective and reads the result; whether each image reached
  its target (within the tolerance of :data:`POSITION_EDITS`) and the drift of every other attribute;
- ``speed``: the loop's time per step vs a bare step (quantize + decode fwd/bwd + objective fwd/bwd +
  Adam), marginal cost per step between runs of n and 3n steps, wall clock and process CPU time
  (on a machine shared with other jobs the CPU time is the figure to trust), batch 1 and 64.

Writes CSVs, ``summary.json`` and example grids under ``--out``; prints a summary table.

    python analyses/optimize_world.py --out runs/optimize_world             # results: analyses/optimize/README.md
    python analyses/optimize_world.py --sections speed --threads 2
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch


def _timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def generation(tok_name: str, args, clip, oracle, seeds_img: torch.Tensor, init: str) -> pd.DataFrame:
    from probe import load_tokenizer
    from probe.data.world import SHAPES
    from probe.optimize import HeldOut, OptimizeConfig
    from probe.optimize.tasks import generate, write_run
    from probe.worlds.attribute import OraclePromptScore, oracle_reads
    from probe.worlds.attribute import prompts as world_prompts

    tok = load_tokenizer(tok_name, device="cpu")
    prompts = world_prompts(SHAPES, args.colours.split(","))
    rows = [p for p in prompts for _ in range(args.samples)]
    cfg = OptimizeConfig(iterations=args.iterations, lr=args.lr, ema_decay=args.ema, noise=args.noise, reg_weight=args.reg,
                         seed=args.seed, heldout_every=max(args.iterations // 10, 1), progress=False)
    heldout = HeldOut(OraclePromptScore(oracle, rows))
    res, wall, cpu = _timed(lambda: generate(tok, prompts, args.samples, clip=clip, seed_images=seeds_img, init=init,
                                             n_views=args.views, pad=args.pad, config=cfg, heldout=heldout))
    write_run(Path(args.out) / f"generate_{tok_name}_{init}", res, inputs=res.seed_images, labels=rows,
              settings={"tokenizer": tok_name, "init": init, **vars(args), **cfg.to_dict()})
    before, after = oracle_reads(oracle, res.seed_images, rows), oracle_reads(oracle, res.images, rows)
    h = res.history
    first, last = h[h.step == 0].set_index("row"), h[h.step == res.steps].set_index("row")
    df = pd.DataFrame({
        "tokenizer": tok_name, "init": init, "prompt": rows, "sample": [i % args.samples for i in range(len(rows))],
        "seed_success": before.success, "success": after.success, "shape_ok": after.shape_ok,
        "colour_ok": after.colour_ok, "seed_heldout": heldout(res.seed_images).numpy(),
        "heldout": last.heldout.to_numpy(), "seed_clip_loss": first.objective.to_numpy(),
        "clip_loss": last.objective.to_numpy(), "changed": last.changed.to_numpy(),
    })
    df.attrs["wall_s"], df.attrs["cpu_s"] = wall, cpu
    return df


def inpainting(args) -> pd.DataFrame:
    from probe import load_tokenizer
    from probe.data.world import sample
    from probe.measure.fidelity import psnr
    from probe.optimize import OptimizeConfig
    from probe.optimize.tasks import box_known, inpaint, masked_images, write_run

    tok = load_tokenizer("world-32", device="cpu")
    images, f = sample(args.inpaint_n, seed=args.seed + 2, resolution=tok.image_size)
    side = 0.34  # ~11 px of 32: larger than most objects' half, smaller than the image
    cx, cy = f.obj_x.to_numpy(), f.obj_y.to_numpy()
    regions = {
        "object": np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], 1),
        # the background: the corner farthest from the object
        "background": np.stack([np.where(cx > 0.5, 0.02, 0.98 - side), np.where(cy > 0.5, 0.02, 0.98 - side)], 1),
    }
    regions["background"] = np.concatenate([regions["background"], regions["background"] + side], 1)
    with torch.no_grad():
        full = tok.decode(tok.encode(images).quantized)
    rows = []
    for region, boxes in regions.items():
        known = box_known(tok.image_size, torch.tensor(boxes, dtype=torch.float32))
        hole = 1 - known
        with torch.no_grad():
            masked = tok.decode(tok.encode(masked_images(images, known)).quantized)
        rows.append({"region": region, "method": "decode masked image", "psnr": psnr(masked, images, hole).numpy().mean()})
        rows.append({"region": region, "method": "reconstruction of the full image (ceiling)",
                     "psnr": psnr(full, images, hole).numpy().mean()})
        for every in (0, args.reset_every):
            cfg = OptimizeConfig(iterations=args.inpaint_iterations, lr=args.inpaint_lr, seed=args.seed, progress=False)
            res = inpaint(tok, images, known, reset_every=every, config=cfg)
            name = f"optimize, reset every {every}" if every else "optimize, no reset"
            rows.append({"region": region, "method": name, "psnr": psnr(res.images, images, hole).numpy().mean(),
                         "known_psnr": psnr(res.images, images, known).numpy().mean()})
            if region == "object":
                write_run(Path(args.out) / f"inpaint_{region}_reset{every}", res, inputs=masked_images(images, known),
                          settings={"region": region, "reset_every": every, **cfg.to_dict()})
    return pd.DataFrame(rows)


# attribute -> (the position world-32's swap validation confirmed, how the target is set, tolerance)
# Tolerances: 0.05 for lighting (the issue's), the same share of the factor's range (0.05 / 0.75) for the
# blurs, 0.05 of the hue circle for the background hue.
POSITION_EDITS = {
    "lighting": {"position": 26, "target": "fixed 0.8", "tol": 0.05},
    "bg_blur": {"position": 4, "target": "far end 0.015 / 0.065", "tol": 0.05 * 0.08 / 0.75},
    "global_blur": {"position": 4, "target": "far end 0.01 / 0.03", "tol": 0.05 * 0.05 / 0.75},
    "bg_hue": {"position": 7, "target": "hue + 1/3", "tol": 0.05},
}


def edit_targets(attribute: str, before: np.ndarray, lighting_target: float) -> np.ndarray:
    """Per image: the target of an edit of ``attribute`` given its reading before (hues in [0, 1))."""
    if attribute == "lighting":
        return np.full(len(before), lighting_target)
    if attribute == "bg_blur":
        return np.where(before < 0.04, 0.065, 0.015)
    if attribute == "global_blur":
        return np.where(before < 0.02, 0.03, 0.01)
    if attribute == "bg_hue":
        return np.mod(before + 1 / 3, 1.0)
    raise KeyError(attribute)


def edit_positions(args) -> dict[str, list[int]]:
    """The position(s) of each edited attribute: from ``--map`` (a validated or semantic map JSON), else
    :data:`POSITION_EDITS` (the positions world-32's swap validation confirmed)."""
    from probe.optimize.tasks import load_position_map
    from probe.swap import top_positions

    if not args.map:
        return {a: [v["position"]] for a, v in POSITION_EDITS.items()}
    smap = load_position_map(args.map)
    return {a: top_positions(smap, a, args.k) for a in POSITION_EDITS}


def position_edits(args) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Restricted search / restricted gradient / unrestricted gradient edits of each attribute in
    ``--position-attributes``: -> (one row per (edit, attribute read, image), summary per edit)."""
    from probe import load_tokenizer
    from probe.data.world import sample
    from probe.measure import oracle_measurers
    from probe.optimize import OptimizeConfig
    from probe.optimize.tasks import position_edit

    tok = load_tokenizer("world-32", device="cpu")
    positions = edit_positions(args)
    images, _ = sample(args.position_n, seed=args.seed + 5_000_003, resolution=tok.image_size)
    ms = oracle_measurers(device="cpu")
    rows, summary = [], []
    for attribute in args.position_attributes.split(","):
        measurer = ms[attribute]
        others = {k: v for k, v in ms.items() if k != attribute}
        with torch.no_grad():
            before = measurer(tok.decode(tok.encode(images).quantized))
        if measurer.kind == "circular":
            before = np.mod(np.arctan2(before[:, 1].numpy(), before[:, 0].numpy()) / (2 * np.pi), 1.0)
        else:
            before = before.numpy()
        target = edit_targets(attribute, before, args.lighting_target)
        tol = POSITION_EDITS[attribute]["tol"]
        runs = (("restricted search", positions[attribute], "search"),
                ("restricted gradient", positions[attribute], "gradient"),
                ("unrestricted gradient", None, "gradient"))
        for label, pos, method in runs:
            cfg = OptimizeConfig(iterations=args.position_iterations, lr=args.position_lr, seed=args.seed,
                                 progress=False)
            t0, c0 = time.perf_counter(), time.process_time()
            _, drift = position_edit(tok, images, attribute, torch.tensor(target, dtype=torch.float32),
                                     measurer=measurer, positions=pos, others=others, config=cfg, method=method)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            drift["edit"], drift["edited"] = label, attribute
            rows.append(drift)
            mine = drift[drift.attribute == attribute].sort_values("row")
            err = np.abs(mine.after.to_numpy() - target)
            if measurer.kind == "circular":
                err = np.minimum(err, 1 - err)
            other = drift[drift.attribute != attribute]
            summary.append({"attribute": attribute, "edit": label, "positions": "all" if pos is None else str(pos),
                            "target": POSITION_EDITS[attribute]["target"], "tol": tol,
                            "reached": float((err <= tol).mean()), "reached_0.05": float((err <= 0.05).mean()),
                            "abs_error": float(err.mean()), "moved": float(mine.drift.mean()),
                            "drift_others": float(other.drift.mean()),
                            **{f"drift_{k}": float(v) for k, v in other.groupby("attribute").drift.mean().items()},
                            "cpu_s_per_image": cpu / len(images), "wall_s": wall})
            print(json.dumps(summary[-1], default=float), flush=True)
    return pd.concat(rows, ignore_index=True), pd.DataFrame(summary)


def speed(args, clip) -> pd.DataFrame:
    """Seconds per step of the loop and of a bare step, as the marginal cost between runs of n and 3n steps
    (the loop's fixed costs, decoding the seed, the milestones and the result, are reported apart)."""
    from probe import load_tokenizer
    from probe.data.world import sample
    from probe.optimize import ClipText, OptimizeConfig, optimize

    tok = load_tokenizer("world-32", device="cpu")
    rows = []
    batches = [int(b) for b in args.speed_batches.split(",")]
    for b in batches:
        images, _ = sample(b, seed=args.seed + 4, resolution=tok.image_size)
        obj = ClipText(clip, "a photo of a red star.")
        with torch.no_grad():
            seed = tok.encode(images).features.float()

        def bare(n):
            z = seed.clone().requires_grad_(True)
            opt = torch.optim.Adam([z], lr=0.1)
            for _ in range(n):
                q, _ = tok.quantize(z)
                loss = obj(tok.decode(q, clamp=False)).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

        def loop(n):
            optimize(tok, obj, seed, config=OptimizeConfig(iterations=n, progress=True, milestones=2))

        bare(2)  # warm up
        n = args.speed_steps
        times: dict = {}
        for r in range(args.repeats):  # interleaved, so load changes on the shared machine hit all alike
            order = [("bare", bare), ("loop", loop)]
            for name, fn in (order if r % 2 == 0 else order[::-1]):
                for steps in (n, 3 * n):
                    _, wall, cpu = _timed(lambda: fn(steps))
                    times.setdefault((name, steps), []).append((wall, cpu))
        for name in ("bare", "loop"):
            med = {k: (np.median([w for w, _ in v]), np.median([c for _, c in v])) for k, v in times.items() if k[0] == name}
            per_wall = (med[(name, 3 * n)][0] - med[(name, n)][0]) / (2 * n)
            per_cpu = (med[(name, 3 * n)][1] - med[(name, n)][1]) / (2 * n)
            rows.append({"batch": b, "mode": name, "wall_s_per_step": per_wall, "cpu_s_per_step": per_cpu,
                         "fixed_wall_s": med[(name, n)][0] - n * per_wall, "it_per_s": 1 / per_wall,
                         "images_per_s": b / per_wall})
    df = pd.DataFrame(rows)
    for b in batches:
        sub = df[df.batch == b].set_index("mode")
        sel = (df.batch == b) & (df["mode"] == "loop")
        df.loc[sel, "overhead_wall"] = sub.loc["loop", "wall_s_per_step"] / sub.loc["bare", "wall_s_per_step"] - 1
        df.loc[sel, "overhead_cpu"] = sub.loc["loop", "cpu_s_per_step"] / sub.loc["bare", "cpu_s_per_step"] - 1
    return df


def main() -> None:
    from probe.optimize.tasks import GENERATE_DEFAULTS, GENERATE_VIEWS

    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/optimize_world")
    ap.add_argument("--sections", default="generate,ablation,inpaint,position,speed")
    ap.add_argument("--colours", default="red,green,blue", help="object colours of the prompts")
    ap.add_argument("--samples", type=int, default=4, help="random seed images per prompt")
    ap.add_argument("--inits", default="random", help="seed choices to run: random, top1 (comma-separated)")
    ap.add_argument("--seed-set", type=int, default=256, help="world images in the seed set")
    # generation defaults: the text-guided recipe of probe.optimize.tasks (GENERATE_DEFAULTS, GENERATE_VIEWS)
    ap.add_argument("--iterations", type=int, default=GENERATE_DEFAULTS.iterations)
    ap.add_argument("--lr", type=float, default=GENERATE_DEFAULTS.lr)
    ap.add_argument("--views", type=int, default=GENERATE_VIEWS["n_views"], help="random crop + flip views per step")
    ap.add_argument("--pad", type=int, default=GENERATE_VIEWS["pad"], help="reflect padding before the crops (pixels)")
    ap.add_argument("--ema", type=float, default=GENERATE_DEFAULTS.ema_decay)
    ap.add_argument("--noise", type=float, default=GENERATE_DEFAULTS.noise)
    ap.add_argument("--reg", type=float, default=GENERATE_DEFAULTS.reg_weight, help="regularizer towards the seed")
    ap.add_argument("--inpaint-n", type=int, default=32)
    ap.add_argument("--inpaint-iterations", type=int, default=150)
    ap.add_argument("--inpaint-lr", type=float, default=0.05)
    ap.add_argument("--reset-every", type=int, default=25)
    ap.add_argument("--position-n", type=int, default=32, help="held-out world images per position edit")
    ap.add_argument("--position-attributes", default="lighting,bg_blur,global_blur,bg_hue")
    ap.add_argument("--position-iterations", type=int, default=100)
    ap.add_argument("--position-lr", type=float, default=0.05)
    ap.add_argument("--lighting-target", type=float, default=0.8)
    ap.add_argument("--map", default=None, help="validated or semantic map JSON for the edited positions "
                    "(default: the positions world-32's swap validation confirmed, POSITION_EDITS)")
    ap.add_argument("--k", type=int, default=1, help="positions taken from the map")
    ap.add_argument("--speed-steps", type=int, default=20)
    ap.add_argument("--speed-batches", default="1,64")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sections = set(args.sections.split(","))
    summary: dict = {"args": vars(args), "threads": torch.get_num_threads()}

    from probe import zoo
    from probe.data.world import sample
    from probe.optimize import load_clip

    clip = load_clip("world-clip", device="cpu")
    oracle = zoo.load("world-oracle", device="cpu")
    seeds_img, _ = sample(args.seed_set, seed=args.seed + 1, resolution=32)

    gens = []
    for tok_name, sec in (("world-32", "generate"), ("world-32-continuous", "ablation")):
        if sec not in sections:
            continue
        for init in args.inits.split(","):
            df = generation(tok_name, args, clip, oracle, seeds_img, init)
            gens.append(df)
            summary[f"generate/{tok_name}/{init}"] = {
                "runs": len(df), "success": float(df.success.mean()), "seed_success": float(df.seed_success.mean()),
                "shape_ok": float(df.shape_ok.mean()), "colour_ok": float(df.colour_ok.mean()),
                "heldout": float(df.heldout.mean()), "seed_heldout": float(df.seed_heldout.mean()),
                "clip_loss": float(df.clip_loss.mean()), "seed_clip_loss": float(df.seed_clip_loss.mean()),
                "wall_s": df.attrs["wall_s"], "cpu_s": df.attrs["cpu_s"]}
            print(tok_name, init, json.dumps(summary[f"generate/{tok_name}/{init}"]), flush=True)
    if gens:
        pd.concat(gens).to_csv(out / "generate.csv", index=False)
    if "inpaint" in sections:
        df = inpainting(args)
        df.to_csv(out / "inpaint.csv", index=False)
        summary["inpaint"] = df.to_dict("records")
        print(df.to_string(index=False), flush=True)
    if "position" in sections:
        df, summ = position_edits(args)
        df.to_csv(out / "position.csv", index=False)
        summ.to_csv(out / "position_summary.csv", index=False)
        summary["position"] = summ.to_dict("records")
        cols = ["attribute", "edit", "positions", "reached", "reached_0.05", "abs_error", "moved", "drift_others"]
        print(summ[cols].to_string(index=False), flush=True)
    if "speed" in sections:
        df = speed(args, clip)
        df.to_csv(out / "speed.csv", index=False)
        summary["speed"] = df.to_dict("records")
        print(df.to_string(index=False), flush=True)
    with open(out / "summary.json", "w") as fh:
        json.dump(summary, fh, indent=2, default=lambda x: None if isinstance(x, float) and math.isnan(x) else float(x))


if __name__ == "__main__":
    main()
