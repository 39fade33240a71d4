"""``tokenprobe run CONFIG.yaml``: the whole pipeline of one run config, ending in an HTML report."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "run"
HELP = "run the pipeline of a run config: tokenize -> probes -> swap validation -> edits -> HTML report"
DESCRIPTION = (
    "Run every stage of CONFIG.yaml (see probe.pipeline.RunConfig; analyses/demo.yaml is the embedded default, "
    "analyses/titok-l32-imagenet.yaml the paper's analysis): tokenize (resumable), probe every position x "
    "attribute, validate the probe map by token swaps, one copy-paste edit per confirmed mapping, one text-guided "
    "generation and one inpainting, and write a self-contained report.html in the run folder. A second run "
    "reuses every finished stage whose settings did not change."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="the run config YAML")
    add_common_arguments(parser)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared with ``tokenprobe demo``."""
    from probe.commands._args import add_resume_flags

    parser.add_argument("--out", type=Path, default=None, help="run folder (default: the config's 'out')")
    parser.add_argument("--device", default=None, help="force a device (default: the config's, else cuda, mps, cpu)")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set data.images=512 --set swap.pairs=8 (repeatable)")
    parser.add_argument("--force", action="store_true",
                        help="redo every stage instead of reusing finished ones (replaces their results)")
    add_resume_flags(parser, "results of other settings in the run folder (the store too, when its data or "
                             "tokenizer settings changed); stages whose settings did not change are still reused")
    parser.add_argument("--keep-going", action="store_true",
                        help="exit 0 when an optional stage (swap, optimize) fails; without it the run still "
                             "writes its report, then exits 1 naming the failed stage")


def run(args: argparse.Namespace) -> int:
    return run_config(args.config, args, command="run")


#: exit code of a run whose optional stage failed (its report is written; --keep-going gives 0)
EXIT_STAGE_FAILED = 1


def run_config(path: Path, args: argparse.Namespace, *, command: str) -> int:
    """Load ``path`` with the common options applied, run it, print the stages and where the report is.

    Exit codes: 0 done; 2 a mistake in the config or the command line (one line, before any work); 1 an
    optional stage failed (after the report, one line naming the stage and its error file) unless
    ``--keep-going``."""
    from probe.pipeline import load_run_config, run_pipeline

    cfg = load_run_config(path, args.settings, out=str(args.out) if args.out else None, device=args.device)
    if cfg.random_init:
        print(f"RANDOM WEIGHTS: {cfg.tokenizer} is built with random weights (a plumbing check); what this run "
              "finds carries no semantics.")
    res = run_pipeline(cfg, force=args.force, overwrite=args.no_resume)
    print_result(res)
    if res.failed and not args.keep_going:
        for s in res.failed:
            print(f"error: {s.note}; the report shows what the other stages found (--keep-going: exit 0 "
                  "anyway)", file=sys.stderr)
        return EXIT_STAGE_FAILED
    return 0


def print_result(res) -> None:
    """The semantic map (validated when the swap stage ran), the stage table and where the report is."""
    import json

    import pandas as pd

    from probe.report.html import ERASED, VALIDATED_COLUMNS

    paths = res.paths
    if res.config.random_init:
        print(f"RANDOM WEIGHTS: {res.config.tokenizer} was built with random weights (a plumbing check); its "
              "reconstructions, maps and verdicts carry no semantics.")
    if paths.reconstruction_summary.exists():
        rec = json.loads(paths.reconstruction_summary.read_text())
        print(f"\nReconstruction on {rec['images']} of the run's images: PSNR {rec['psnr']:.1f} dB, SSIM "
              f"{rec['ssim']:.3f}")
        kept = pd.read_csv(paths.reconstruction_attributes, keep_default_na=False, na_values=[""])
        if len(kept) and "kept" in kept:
            shares = ", ".join(f"{r.attribute} {r.kept:.2f}" for r in kept.dropna(subset=["kept"]).itertuples())
            print(f"share of each attribute's gap the reconstructions keep: {shares}")
            erased = [str(r.attribute) for r in kept.dropna(subset=["kept"]).itertuples() if r.kept < ERASED]
            if erased:
                print(f"warning: the reconstructions erase {', '.join(erased)} (< {ERASED:.0%} of the gap kept): "
                      "swap verdicts on them say nothing about the tokens")
    if paths.validated_map.exists():
        title = "Validated semantic map (copy-paste swaps)"
        df = pd.read_csv(paths.validated_map, keep_default_na=False, na_values=[""])
        df = df[[c for c in VALIDATED_COLUMNS if c in df.columns]]
    elif paths.summary.exists():
        title = "Probe map (unvalidated: the probes' ranking)"
        df = pd.read_csv(paths.summary, keep_default_na=False, na_values=[""])
        df = df.drop(columns=["rank_by", "q_at_bound"], errors="ignore")
    else:
        title, df = "", None
    if df is not None:
        with pd.option_context("display.width", 160, "display.max_columns", 20, "display.float_format",
                               "{:.3g}".format):
            print(f"\n{title}:\n{df.to_string(index=False)}")
    print(f"\n{'stage':<14} {'status':<8} {'seconds':>8}  note")
    for s in res.stages:
        print(f"{s.stage:<14} {s.status:<8} {s.seconds:>8.1f}  {s.note}")
    print(f"\nrun folder: {res.paths.root}  ({res.seconds:.1f} s)")
    print(f"report:     {res.report.resolve()}")
