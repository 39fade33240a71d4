"""Calibration of the verdict on planted tokenizers: false confirmations, power, interval coverage.

One replicate of a :class:`Case` runs the whole protocol on a fresh planted world
(:mod:`probe.tokenizers.planted`) whose true transfers are known:

1. draw discovery and confirmation pairs on disjoint images (:func:`probe.swap.split.split_pairs`);
2. test visibility on the pairs' reconstructions against the originals (:mod:`probe.swap.visibility`);
3. sweep every single position on the discovery pairs (:func:`probe.swap.engine.patch`), movement along the
   label direction; the family is the ``k`` best positions and the set of the best two;
4. re-run the family on the confirmation pairs with the random-position, same-end and all-but-tested
   controls, and judge it (:func:`probe.swap.verdict.judge`);
5. record, per mapping, its truth, verdict and whether each interval method's unadjusted interval covers
   the truth.

:func:`rates` turns the replicates into the benchmark's rates: false confirmation per attribute (any
mapping whose true transfer is below the confirm threshold called confirmed), power (the true position
confirmed), coverage per interval method.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from probe.swap.engine import patch
from probe.swap.intervals import METHODS, ratio_interval
from probe.swap.confirm import judge_table, label_geometry, movement
from probe.swap.split import split_pairs
from probe.swap.verdict import VerdictConfig
from probe.tokenizers import planted

#: the controls run on the confirmation pairs of a replicate
CONTROLS = ("none", "random_position", "same_end", "all_except")


@dataclass(frozen=True)
class Case:
    """One calibration setting.

    Attributes:
        scenario: a :func:`probe.tokenizers.planted.scenario` name.
        label: the label column the pairs are drawn for (``a``, ``b``, ``coin``, ``shuffled``).
        pairs: discovery pairs and confirmation pairs (each).
        noise, tails: the decoder's noise (see :class:`probe.tokenizers.planted.PlantedSpec`).
        k: single positions the discovery sweep passes on (plus the set of the best two).
        images: images per replicate (default ``max(256, 8 * pairs)``).
    """

    scenario: str = "single"
    label: str = "a"
    pairs: int = 64
    noise: float = 0.3
    tails: str = "normal"
    k: int = 3
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
    kind = "categorical" if case.label == "coin" else "continuous"
    pairs = split_pairs(labels, case.label, kind, discovery=case.pairs, confirmation=case.pairs, seed=seed)
    q = tok.codebook[torch.as_tensor(tokens)]
    geo = label_geometry(tok, q, meas, pairs, rule=r, seed=seed,
                         originals=lambda rows: planted.originals(spec, labels.iloc[rows]))
    vis, dirs = geo.visibility, geo.directions
    pairs = pairs.assign(pair=np.arange(len(pairs)))
    disc, conf = pairs[pairs["split"] == "discovery"], pairs[pairs["split"] == "confirmation"]

    def take(frame: pd.DataFrame, col: str) -> torch.Tensor:
        return q[torch.as_tensor(frame[col].to_numpy(dtype=np.int64).copy())]

    n_tok = spec.n_tokens
    sweep = patch(tok, take(disc, "recipient"), take(disc, "donor"), [[p] for p in range(n_tok)], [meas],
                  controls=("none",), pair_ids=disc["pair"].to_numpy(), progress=False, seed=seed)
    sweep = movement(sweep, dirs, pairs["pair"])
    disc_t = sweep.groupby("positions")[["moved", "gap"]].sum()
    ranked = (disc_t["moved"] / disc_t["gap"]).sort_values(ascending=False, kind="stable")
    top = [int(p) for p in ranked.index[: case.k]]
    family = [[p] for p in top] + ([sorted(top[:2])] if len(top) > 1 else [])

    tab = patch(tok, take(conf, "recipient"), take(conf, "donor"), family, [meas], controls=CONTROLS,
                same_end_donors=take(conf, "same_end_donor"), pair_ids=conf["pair"].to_numpy(), progress=False,
                seed=seed)
    tab = movement(tab, dirs, pairs["pair"])
    verdicts = judge_table(tab, r, status=vis.status)
    tested = {k: (g["moved"].to_numpy(), g["gap"].to_numpy())
              for k, g in tab[tab["control"] == "none"].groupby("positions", sort=False)}
    out = []
    for _, row in verdicts.iterrows():
        label = row["positions"]
        truth = planted.truth(spec, case.label, [int(p) for p in label.split("+")])
        rec = {"rep": seed, "positions": label, "set_size": label.count("+") + 1, "truth": truth,
               "transfer": row["transfer"], "ci_low_adj": row["ci_low_adj"], "family_size": row["family_size"],
               "verdict": row["verdict"], "failed": row["failed"], "status": vis.status,
               "visible_p": vis.p_value, "kept": vis.kept}
        x, y = tested[label]
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

