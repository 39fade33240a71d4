"""Text-guided generation on the attribute world: does optimizing a CLIP top-1 seed make it better?

For every setting (``--settings``), every prompt ``a photo of a {colour} {shape}.`` of ``--colours``
and every seed set (``--seed-sets`` sets of ``--seed-set-size`` world images, each drawn with its own
seed), the seed is the set's CLIP top-1 image for the prompt (the paper's seed choice) and
:func:`probe.optimize.tasks.generate` optimizes it for ``world-clip``. The world-oracle, a different
model trained on labels, judges seed and result: success = it reads the prompted shape and colour.

Sections:

- ``study``: the settings grid on the study prompts (default colours red, green, blue);
- ``eval``: the settings in ``--eval-settings`` (default: the shipped defaults) on prompts outside the
  study's (default colours yellow, cyan, magenta) and other seed sets;
- ``stop``: the stopping rule (``early_stop_patience`` on a held-out score, per image) against fixed
  iteration counts, at the default settings on the eval prompts: oracle success, steps used, time.
  Held-out scores: ``clip-plain`` (world-clip on the whole image, another prompt template: the same
  model, so only weakly held out) and ``oracle-soft`` (the oracle's soft prompt score: a second model,
  but the judge's own, so its success figure is an upper bound).

Writes ``<section>.csv`` (one row per run) and ``summary.csv`` under ``--out``; prints the tables.
Results and the commands that produced them: ``analyses/optimize/README.md``.

    python analyses/optimize_generation.py --out runs/optimize_generation            # ~15 min, 1 thread
    python analyses/optimize_generation.py --sections eval --out runs/optimize_generation
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

# name:key=value,...  (views / pad go to generate(), the rest to OptimizeConfig)
STUDY = [
    "plain:",
    "views:views=4,pad=3",
    "views+ema:views=4,pad=3,ema_decay=0.9",
    "views+ema+noise:views=4,pad=3,ema_decay=0.9,noise=0.1",
    "views+ema+reg:views=4,pad=3,ema_decay=0.9,reg_weight=2",
    "views+ema+noise+reg:views=4,pad=3,ema_decay=0.9,noise=0.1,reg_weight=2",
    "views+ema+noise+reg10:views=4,pad=3,ema_decay=0.9,noise=0.1,reg_weight=10",
    "views+ema+noise+reg+lr.03:views=4,pad=3,ema_decay=0.9,noise=0.1,reg_weight=2,lr=0.03",
    "views8+ema+noise+reg:views=8,pad=3,ema_decay=0.9,noise=0.1,reg_weight=2",
]


def parse_setting(spec: str) -> tuple[str, dict, dict]:
    """``name:key=value,...`` -> (name, generate kwargs, OptimizeConfig kwargs)."""
    name, _, rest = spec.partition(":")
    gen, cfg = {"n_views": 0, "pad": 0}, {}  # no views unless the setting asks
    for item in filter(None, rest.split(",")):
        k, _, v = item.partition("=")
        if k in ("views", "pad"):
            gen["n_views" if k == "views" else "pad"] = int(v)
        else:
            cfg[k] = int(v) if k in ("iterations", "early_stop_patience", "heldout_every") else float(v)
    return name, gen, cfg


def default_setting() -> str:
    """The shipped generation defaults as a setting string."""
    from probe.optimize.tasks import GENERATE_DEFAULTS, GENERATE_VIEWS

    d = GENERATE_DEFAULTS
    return (f"default:views={GENERATE_VIEWS['n_views']},pad={GENERATE_VIEWS['pad']},iterations={d.iterations},"
            f"lr={d.lr},ema_decay={d.ema_decay},noise={d.noise},reg_weight={d.reg_weight}")


def heldout_scorer(kind: str, clip, oracle, rows: list[str]):
    from probe.optimize import ClipText, HeldOut
    from probe.worlds.attribute import OraclePromptScore
    from probe.worlds.attribute import parse_prompt as parse_world_prompt

    if kind == "oracle-soft":
        return HeldOut(OraclePromptScore(oracle, rows), name="oracle-soft")
    other = [f"a {c} {s}" for s, c in (parse_world_prompt(p) for p in rows)]  # another template
    return HeldOut(ClipText(clip, other), name="clip-plain")


def run_setting(spec: str, colours: list[str], seed_sets: list[int], args, tok, clip, oracle, *,
                heldout: str | None = None, extra: dict | None = None) -> pd.DataFrame:
    from probe.data.world import SHAPES, sample
    from probe.optimize import OptimizeConfig
    from probe.optimize.tasks import clip_top1, generate
    from probe.worlds.attribute import oracle_reads
    from probe.worlds.attribute import prompts as world_prompts

    name, gen_kw, cfg_kw = parse_setting(spec)
    cfg_kw = {"iterations": args.iterations, **cfg_kw, **(extra or {})}
    prompts = world_prompts(SHAPES, colours)
    out = []
    for s in seed_sets:
        images, _ = sample(args.seed_set_size, seed=s, resolution=tok.image_size)
        pick = clip_top1(clip, images, prompts)
        rows = [p for p in prompts for _ in range(args.samples)]
        idx = pick.repeat_interleave(args.samples)
        cfg = OptimizeConfig(**cfg_kw, seed=args.seed + s, progress=False)
        ho = heldout_scorer(heldout, clip, oracle, rows) if heldout else None
        t0, c0 = time.perf_counter(), time.process_time()
        res = generate(tok, rows, 1, clip=clip, seed_images=images, seed_index=idx, config=cfg, heldout=ho, **gen_kw)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        before, after = oracle_reads(oracle, res.seed_images, rows), oracle_reads(oracle, res.images, rows)
        out.append(pd.DataFrame({"setting": name, "seed_set": s, "prompt": rows, "seed_index": idx.numpy(),
                                 "seed_success": before.success, "success": after.success,
                                 "shape_ok": after.shape_ok, "colour_ok": after.colour_ok,
                                 "steps": res.row_steps, "wall_s": wall / len(rows), "cpu_s": cpu / len(rows),
                                 "heldout": heldout or ""}))
    return pd.concat(out, ignore_index=True)


def summarize(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    g = df.groupby(by, sort=False)
    out = g.agg(runs=("success", "size"), seed_success=("seed_success", "mean"), success=("success", "mean"),
                shape_ok=("shape_ok", "mean"), colour_ok=("colour_ok", "mean"), steps=("steps", "mean"),
                cpu_s_per_run=("cpu_s", "mean")).reset_index()
    out["gain"] = out.success - out.seed_success
    return out


def main() -> None:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/optimize_generation")
    ap.add_argument("--sections", default="study,eval,stop")
    ap.add_argument("--settings", nargs="*", default=STUDY, help="study settings, name:key=value,...")
    ap.add_argument("--eval-settings", nargs="*", default=None,
                    help="settings run on the eval prompts (default: the shipped defaults and 'plain:')")
    ap.add_argument("--colours", default="red,green,blue", help="colours of the study prompts")
    ap.add_argument("--eval-colours", default="yellow,cyan,magenta", help="colours of the eval prompts")
    ap.add_argument("--seed-sets", default="11,12,13,14,15", help="world seeds of the study's seed sets")
    ap.add_argument("--eval-seed-sets", default="21,22,23,24,25", help="world seeds of the eval seed sets")
    ap.add_argument("--seed-set-size", type=int, default=256)
    ap.add_argument("--samples", type=int, default=1, help="runs per (prompt, seed set)")
    ap.add_argument("--iterations", type=int, default=100, help="steps where a setting does not say")
    ap.add_argument("--stop-patience", type=int, default=3, help="held-out evaluations without improvement")
    ap.add_argument("--stop-every", type=int, default=5, help="steps between held-out evaluations")
    ap.add_argument("--stop-fixed", default="25,50,100,200", help="fixed iteration counts to compare ('' for none)")
    ap.add_argument("--stop-heldouts", default="clip-plain,oracle-soft",
                    help="held-out scores the stopping rule reads ('' for none)")
    ap.add_argument("--stop-max", type=int, default=200, help="iteration budget of the stopping-rule runs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sections = set(args.sections.split(","))

    from probe import load_tokenizer, zoo
    from probe.optimize import load_clip

    tok = load_tokenizer("world-32", device="cpu")
    clip = load_clip("world-clip", device="cpu")
    oracle = zoo.load("world-oracle", device="cpu")
    ints = lambda s: [int(x) for x in s.split(",")]  # noqa: E731
    summaries = []
    if "study" in sections:
        df = pd.concat([run_setting(s, args.colours.split(","), ints(args.seed_sets), args, tok, clip, oracle)
                        for s in args.settings], ignore_index=True)
        df.to_csv(out / "study.csv", index=False)
        summ = summarize(df, ["setting"]).assign(section="study")
        summaries.append(summ)
        print(summ.to_string(index=False), flush=True)
    if "eval" in sections:
        settings = args.eval_settings or [default_setting(), "plain:", "views+ema:views=4,pad=3,ema_decay=0.9"]
        df = pd.concat([run_setting(s, args.eval_colours.split(","), ints(args.eval_seed_sets), args, tok, clip, oracle)
                        for s in settings], ignore_index=True)
        df.to_csv(out / "eval.csv", index=False)
        summ = summarize(df, ["setting"]).assign(section="eval")
        summaries.append(summ)
        print(summ.to_string(index=False), flush=True)
    if "stop" in sections:
        spec = default_setting()
        parts = []
        for n in ints(args.stop_fixed) if args.stop_fixed else []:
            parts.append(run_setting(spec, args.eval_colours.split(","), ints(args.eval_seed_sets), args, tok, clip,
                                     oracle, extra={"iterations": n}).assign(rule=f"fixed {n}"))
        for kind in filter(None, args.stop_heldouts.split(",")):
            parts.append(run_setting(spec, args.eval_colours.split(","), ints(args.eval_seed_sets), args, tok, clip,
                                     oracle, heldout=kind,
                                     extra={"iterations": args.stop_max, "early_stop_patience": args.stop_patience,
                                            "heldout_every": args.stop_every}).assign(rule=f"stop on {kind}"))
        df = pd.concat(parts, ignore_index=True)
        df.to_csv(out / "stop.csv", index=False)
        summ = summarize(df, ["rule"]).assign(section="stop")
        summaries.append(summ)
        print(summ.to_string(index=False), flush=True)
    if summaries:
        pd.concat(summaries, ignore_index=True).to_csv(out / "summary.csv", index=False)


if __name__ == "__main__":
    main()
