"""Calibration of the verdict on planted tokenizers: false confirmations, power, interval coverage.

One replicate of a :class:`Case` runs the whole protocol of :func:`probe.swap.validate` on a fresh planted
world (:mod:`probe.tokenizers.planted`) whose true transfers are known: discovery and confirmation pairs on
disjoint images, the visibility gate (against the originals), the discovery sweep of every position and the
greedy set search, the confirmation of the selected family with the random-position, same-end and
all-but-tested controls, the family-wise bound and the rule. It records, per mapping of the confirmed family,
its truth, verdict and whether each interval method's unadjusted interval covers the truth.

:func:`rates` turns the replicates into the benchmark's rates: false confirmation per attribute (any mapping
whose true transfer is below the confirm threshold called confirmed), power (the true position confirmed),
coverage per interval method.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from probe.swap.intervals import METHODS, ratio_interval
from probe.swap.run import SwapConfig, SwapData
from probe.swap.validated import validate
from probe.swap.verdict import VerdictConfig
from probe.tokenizers import planted

#: the controls run on the confirmation pairs of a replicate
CONTROLS = ("none", "same_end", "random_position", "all_except")


@dataclass(frozen=True)
class Case:
    """One calibration setting.

    Attributes:
        scenario: a :func:`probe.tokenizers.planted.scenario` name.
        label: the label column the pairs are drawn for (``a``, ``b``, ``coin``, ``shuffled``).
        pairs: discovery pairs and confirmation pairs (each).
        noise, tails: the decoder's noise (see :class:`probe.tokenizers.planted.PlantedSpec`).
        max_set, pool: the greedy search's largest set and pool (:class:`probe.swap.run.SwapConfig`).
        images: images per replicate (default ``max(256, 8 * pairs)``).
    """

    scenario: str = "single"
    label: str = "a"
    pairs: int = 64
    noise: float = 0.3
    tails: str = "normal"
    max_set: int = 4
    pool: int = 4
    images: int | None = None


def replicate(case: Case, seed: int, rule: VerdictConfig | None = None,
              methods: Sequence[str] = METHODS) -> pd.DataFrame:
    """One replicate of ``case`` on a world seeded ``seed``: one row per mapping of the confirmed family
    (``rep, positions, truth, transfer, ci_low_adj, verdict, status, covered_<method>``...)."""
    r = rule or VerdictConfig()
    spec = planted.scenario(case.scenario, noise=case.noise, tails=case.tails, seed=seed)
    tok = planted.PlantedTokenizer(spec)
    tokens, labels = planted.sample(spec, case.images or max(256, 8 * case.pairs), seed=seed)
    meas = planted.measurers(spec)[case.label]
    kinds = {c: ("categorical" if c == "coin" else "continuous") for c in labels.columns}
    data = SwapData(tok.codebook[torch.as_tensor(tokens)], labels, kinds,
                    originals=lambda rows: planted.originals(spec, labels.iloc[np.asarray(rows)]))
    cfg = SwapConfig(pairs=case.pairs, discovery_pairs=case.pairs, seed=seed, controls=CONTROLS, verdict=r,
                     greedy_pairs=case.pairs, max_set=case.max_set, pool=case.pool)
    vmap = validate(tok, data, {case.label: meas}, config=cfg, progress=False)
    conf = vmap.confirmation
    vis = conf.table.attrs["visibility"][case.label]
    tested = conf.table[(conf.table["control"] == "none") & (conf.table["measurer"] == case.label)]
    out = []
    for _, row in conf.summary.iterrows():
        label = str(row["positions"])
        truth = planted.truth(spec, case.label, [int(p) for p in label.split("+")])
        rec = {"rep": seed, "positions": label, "set_size": int(row["set_size"]), "truth": truth,
               "transfer": row["transfer"], "ci_low_adj": row["ci_low_adj"], "family_size": row["family_size"],
               "verdict": row["verdict"], "failed": row["failed"], "status": vis["status"],
               "visible_p": vis["p_value"], "kept": vis["kept"]}
        t = tested[tested["positions"] == label]
        x, y = t["moved"].to_numpy(float), t["gap"].to_numpy(float)
        for mth in methods:
            ci = ratio_interval(x, y, method=mth, level=r.level, n_boot=r.n_boot, seed=seed)
            rec[f"covered_{mth}"] = bool(ci.low <= truth <= ci.high)
        out.append(rec)
    return pd.DataFrame(out)


def simulate(case: Case, reps: int, *, rule: VerdictConfig | None = None, seed: int = 0,
             methods: Sequence[str] = METHODS) -> pd.DataFrame:
    """``reps`` replicates of ``case`` (world seeds ``seed .. seed + reps - 1``), stacked, with the case's
    settings as columns."""
    frames = [replicate(case, seed + i, rule, methods) for i in range(reps)]
    out = pd.concat(frames, ignore_index=True)
    for k, v in case.__dict__.items():
        out[k] = v
    return out


def rates(results: pd.DataFrame, rule: VerdictConfig | None = None) -> dict[str, float]:
    """Per-replicate rates of :func:`simulate`'s rows.

    - ``false_confirmation``: share of replicates where any mapping with truth below ``confirm`` is confirmed;
    - ``power``: share of replicates where a single position with truth at or above ``confirm`` is confirmed
      (a replicate whose discovery missed it counts as a miss; NaN when no replicate tested one);
    - ``power_any``: the same for any mapping, sets included;
    - ``coverage_<method>``: share of mappings whose unadjusted interval covers the truth (real attributes
      only: under a null label the direction is chance and the truth is no estimand);
    - ``untestable``: share of replicates whose attribute was not testable.
    """
    r = rule or VerdictConfig()
    by = results.groupby("rep")
    false = by.apply(lambda g: bool(((g["truth"] < r.confirm) & (g["verdict"] == "confirmed")).any()),
                     include_groups=False)
    out = {"reps": int(by.ngroups), "false_confirmation": float(false.mean()),
           "untestable": float(by["status"].first().ne("testable").mean())}
    for name, pick in (("power", results["set_size"] == 1), ("power_any", results["set_size"] >= 1)):
        real = pick & (results["truth"] >= r.confirm)
        if real.any():
            hit = (real & (results["verdict"] == "confirmed")).groupby(results["rep"]).any()
            out[name] = float(hit.mean())
        else:
            out[name] = np.nan
    # coverage where the truth is the estimand: real attributes (a null label's direction is chance)
    real = results[~results["label"].isin(planted.NULL_LABELS)] if "label" in results else results
    for c in results.columns:
        if c.startswith("covered_"):
            out["coverage_" + c.removeprefix("covered_")] = float(real[c].mean()) if len(real) else np.nan
    return out

