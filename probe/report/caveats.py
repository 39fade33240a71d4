"""The honest caveats of a tokenizer, for the report: what its results can and cannot be taken to show.

They come from the tokenizer's own record, so every tokenizer gets its own: a shipped model's zoo JSON
(``probe/zoo/NAME.json``) may hold a ``caveats`` list of sentences, and facts are derived from its
``training`` and ``metrics`` fields (how it was trained, its measured single-token swaps). Tokenizers that
are not shipped (real TiTok checkpoints) get the general caveat of probing any tokenizer.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

#: Said of every tokenizer.
GENERAL = (
    "A probe's top position is a correlation, not a cause: read the validated map (swaps), not the probe "
    "ranking, and treat attributes the swap stage did not test as hypotheses."
)


def tokenizer_caveats(spec: str) -> list[str]:
    """Sentences to show for tokenizer ``spec`` (a zoo name, preset, hub id or path)."""
    from probe import zoo

    out: list[str] = []
    if spec in zoo.available():
        cfg = zoo.config(spec)
        out.extend(str(c) for c in cfg.get("caveats", []))
        pairs = (cfg.get("training", {}).get("train_config", {}) or {}).get("pairs")
        if pairs and pairs != "none" and not any("pair" in c for c in out):
            out.append(f"Trained with image pairs (pairs={pairs!r}): single-position semantics were encouraged by "
                       "the training objective, not found in a plain reconstruction tokenizer.")
    else:
        out.append(f"{spec} is not a shipped model: there is no ground truth for its attributes here, so only the "
                   "swap stage can say which positions cause them.")
    out.append(GENERAL)
    return out


def training_facts(spec: str) -> dict[str, Any]:
    """How a shipped tokenizer was trained and measured (empty for other tokenizers)."""
    from probe import zoo

    if spec not in zoo.available():
        return {}
    cfg = zoo.config(spec)
    tr, m = cfg.get("training", {}), cfg.get("metrics", {})
    facts = {"training command": tr.get("command"), "steps": tr.get("steps"), "wall minutes": tr.get("wall_minutes"),
             "held-out PSNR (dB)": m.get("heldout_psnr_db"), "codes used": m.get("codes_used"),
             "metrics measured by": m.get("measured_by")}
    return {k: v for k, v in facts.items() if v is not None}


def localization_table(spec: str) -> pd.DataFrame:
    """The shipped model's recorded single-token swaps per factor (the swap engine's transfer): top position by
    eta-squared and its transfer, the best position by transfer and the mean over the others (empty for other
    tokenizers)."""
    from probe import zoo

    if spec not in zoo.available():
        return pd.DataFrame()
    loc = zoo.config(spec).get("metrics", {}).get("localization", {})
    rows = [{"factor": f, "top position (eta2)": v.get("top_position"), "top eta2": v.get("top_eta2"),
             "transfer at it": v.get("transfer_top"), "best position (transfer)": v.get("best_position"),
             "best transfer": v.get("best_transfer"), "transfer, other positions": v.get("others_mean")}
            for f, v in loc.items()]
    return pd.DataFrame(rows)


def declared_table(spec: str) -> pd.DataFrame:
    """The mapping a shipped model declares (its zoo JSON's ``declared_semantics``: positions, the swap floor it
    must reach, what was measured): the answer a validated map of this tokenizer should agree with."""
    from probe import zoo

    if spec not in zoo.available():
        return pd.DataFrame()
    declared = zoo.config(spec).get("declared_semantics", {})
    rows = [{"attribute": a, "positions": "+".join(str(p) for p in v.get("positions", [])),
             "floor": v.get("floor"), "measured": v.get("measured"), "others_mean": v.get("others_mean"),
             "note": v.get("note", "")}
            for a, v in declared.items() if not a.startswith("_") and isinstance(v, dict)]
    return pd.DataFrame(rows)
