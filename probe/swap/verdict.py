"""The verdict rule, stated once: :class:`VerdictConfig` (thresholds + :meth:`VerdictConfig.text`) and :func:`decide`.

Everything a verdict reads comes from an attribute's *confirmation* pairs (pairs that share no image with
the discovery pairs the mapping was selected on), and every movement is measured along the direction the
labels define (:mod:`probe.swap.visibility`), so it is signed: a paste that moves the wrong way counts
against the mapping. Per mapping (a position or a position set):

1. untestable first: ``not visible`` / ``not reconstructed`` when the attribute's visibility test fails
   (the measurer does not tell the labels' ends apart on the reconstructions, or the reconstructions keep
   less than ``min_kept`` of the originals' gap); never confirmed, whatever the transfer;
2. the level: the transfer's family-wise one-sided lower bound (:mod:`probe.swap.familywise`) at or above
   ``confirm`` -> confirmed, at or above ``weak`` -> weak, else rejected;
3. the controls gate it: the transfer must exceed each control's movement toward the donor's end by at
   least ``min_effect`` (transfer units; point estimates on the same pairs):

   - ``random_position`` (the same donor at a random other position set of the same size) and
     ``same_end`` (a donor from the recipient's own end at the tested positions): failing either rejects;
   - ``self`` (the recipient's own tokens decoded again; only run for a stochastic decoder, as the
     distance moved): failing it rejects;
   - ``all_except`` (every other position pasted) and ``swap_back`` (the movement left after swapping
     back through pixel space): failing either turns confirmed into weak (the attribute is carried
     elsewhere as well, or the paste does not survive re-encoding).

Controls that cannot fail are not run: a self-swap of a deterministic decoder reproduces the recipient's
decode exactly, and the reconstruction ceiling is the visibility test's ``kept`` (against the originals).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from probe.swap.familywise import FAMILYWISE_TEXT, adjusted_lower_bounds
from probe.swap.intervals import DEFAULT_METHOD, METHODS, N_BOOT, ratio_interval, ratio_point

#: controls whose failure rejects a mapping
REJECTING_GATES = ("random_position", "same_end", "self")
#: controls whose failure turns confirmed into weak
CONFIRMING_GATES = ("all_except", "swap_back")
#: every control that gates a verdict
GATES = REJECTING_GATES + CONFIRMING_GATES
#: verdicts of an attribute the verdict cannot test
UNTESTABLE = ("not visible", "not reconstructed")
#: every verdict, best first
VERDICTS = ("confirmed", "weak", "rejected", *UNTESTABLE)


@dataclass(frozen=True)
class VerdictConfig:
    """Thresholds of the verdict (the rule itself: the module docstring, :meth:`text` and :func:`decide`).

    Attributes:
        confirm: confirmed when the family-wise lower bound of the transfer is at or above this.
        weak: weak when the bound is at or above this (and not confirmed).
        min_effect: the margin (transfer units) by which the transfer must exceed every control's movement.
        alpha: family-wise one-sided error rate of "confirmed" per attribute.
        method: interval method (:data:`probe.swap.intervals.METHODS`).
        level: two-sided level of the unadjusted interval shown beside the bound.
        visible_alpha: level of the visibility permutation test.
        min_kept: the least share of the originals' gap the reconstructions must keep.
        specific: ``specific`` when no other measured attribute moves by more than this fraction of its own
            gap beyond what a random-position paste moves it; else ``entangled`` (a property shown beside the
            verdict, not a gate).
        n_boot, seed: bootstrap resamples and seed (bootstrap methods only).
    """

    confirm: float = 0.5
    weak: float = 0.15
    min_effect: float = 0.25
    alpha: float = 0.05
    method: str = DEFAULT_METHOD
    level: float = 0.95
    visible_alpha: float = 0.01
    min_kept: float = 0.1
    specific: float = 0.25
    n_boot: int = N_BOOT
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown interval method {self.method!r}; known: {list(METHODS)}")
        if not self.weak <= self.confirm:
            raise ValueError(f"weak ({self.weak}) must not exceed confirm ({self.confirm})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        """The rule in one paragraph: printed in ``--help``, the validated map file and the report."""
        return (
            f"Verdicts use confirmation pairs only (no image shared with the discovery pairs that selected the "
            f"mapping); movement is measured along the direction the labels define (donor's end minus "
            f"recipient's end), signed. An attribute is untestable ('not visible') unless its measurer separates "
            f"the labels' ends on the reconstructions (permutation test, p <= {self.visible_alpha:g}), and "
            f"'not reconstructed' when the reconstructions keep less than {self.min_kept:g} of the originals' "
            f"gap. Confirmed: the transfer's lower bound >= {self.confirm:g} ({FAMILYWISE_TEXT}, "
            f"alpha = {self.alpha:g}, {self.method} interval) and the transfer exceeds the movement of every "
            f"control run by >= {self.min_effect:g}; weak: bound >= {self.weak:g}, or confirmed but the "
            f"all-but-tested or swap-back control moves within {self.min_effect:g} of it; rejected: otherwise, "
            f"or when the random-position, same-end-donor or (stochastic decoders) self control moves within "
            f"{self.min_effect:g} of it. Specific: no other measured attribute moves more than {self.specific:g} of "
            f"its own gap beyond a random-position paste; else entangled (shown, not a gate).")


def decide(transfer: float, lower: float, controls: Mapping[str, float], rule: VerdictConfig | None = None, *,
           status: str = "testable") -> dict[str, str]:
    """The verdict of one mapping.

    Args:
        transfer: the point transfer (confirmation pairs).
        lower: its family-wise one-sided lower bound.
        controls: control name -> its movement toward the donor's end in transfer units (only the
            controls run; names outside :data:`GATES` are ignored).
        status: the attribute's visibility status (:class:`probe.swap.visibility.Visibility`).

    Returns:
        ``verdict`` (one of :data:`VERDICTS`), ``gated_by`` (the controls that took part, comma-joined) and
        ``failed`` (those the transfer did not beat by ``min_effect``).

    Examples:
        >>> decide(0.7, 0.58, {"random_position": 0.02, "same_end": 0.05})["verdict"]
        'confirmed'
        >>> decide(0.7, 0.58, {"random_position": 0.6})["verdict"]
        'rejected'
        >>> decide(0.7, 0.58, {"all_except": 0.6})["verdict"]
        'weak'
        >>> decide(0.9, 0.8, {}, status="not visible")["verdict"]
        'not visible'
    """
    r = rule or VerdictConfig()
    ran = {k: float(v) for k, v in controls.items() if k in GATES and v is not None and np.isfinite(v)}
    gated_by = ",".join(k for k in GATES if k in ran)
    if status != "testable":
        return {"verdict": status if status in UNTESTABLE else "not visible", "gated_by": "", "failed": ""}
    failed = [k for k in GATES if k in ran and not (np.isfinite(transfer) and transfer - ran[k] >= r.min_effect)]
    if not np.isfinite(lower) or lower < r.weak:
        verdict = "rejected"
    elif lower >= r.confirm:
        verdict = "confirmed"
    else:
        verdict = "weak"
    if verdict != "rejected" and any(k in REJECTING_GATES for k in failed):
        verdict = "rejected"
    elif verdict == "confirmed" and any(k in CONFIRMING_GATES for k in failed):
        verdict = "weak"
    return {"verdict": verdict, "gated_by": gated_by, "failed": ",".join(failed)}


def control_transfer(moved: np.ndarray, gap: np.ndarray) -> float:
    """A control's movement in transfer units: ``sum(moved) / sum(gap)`` with ``gap`` the tested pairs' gap."""
    x, y = np.asarray(moved, float), np.asarray(gap, float)
    ok = np.isfinite(x) & np.isfinite(y)
    return float(ratio_point(x[ok], y[ok])) if ok.any() else np.nan


def judge(tested: Mapping[str, tuple[np.ndarray, np.ndarray]],
          controls: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]] | None = None,
          rule: VerdictConfig | None = None, *, status: str = "testable", family_size: int | None = None) -> pd.DataFrame:
    """Verdicts of one attribute's family of mappings, from their confirmation pairs.

    Args:
        tested: mapping label (``"7"``, ``"3+7"``) -> ``(moved [n], gap [n])`` of the tested swaps, along the
            label direction.
        controls: mapping label -> control name -> ``(moved [k], gap [k])``: the control's movement toward
            the donor's end and the tested gap of the same pairs (``self``: the distance moved).
        status: the attribute's visibility status.
        family_size: the number of mappings tested for the attribute (default ``len(tested)``).

    Returns:
        One row per mapping: ``positions, n_pairs, transfer, ci_low, ci_high`` (unadjusted, at ``level``),
        ``family_size, ci_low_adj`` (the family-wise one-sided bound), ``<control>`` (each control's
        movement in transfer units), ``gated_by, failed, verdict``.
    """
    r = rule or VerdictConfig()
    labels = list(tested)
    m = len(labels) if family_size is None else int(family_size)
    lows = adjusted_lower_bounds([tested[k] for k in labels], alpha=r.alpha, method=r.method, family_size=m,
                                 n_boot=r.n_boot, seed=r.seed)
    rows = []
    for label, low_adj in zip(labels, lows):
        x, y = (np.asarray(a, float) for a in tested[label])
        ci = ratio_interval(x, y, method=r.method, level=r.level, n_boot=r.n_boot, seed=r.seed)
        ctrl = {c: control_transfer(*v) for c, v in ((controls or {}).get(label, {}) or {}).items()}
        row = {"positions": label, "n_pairs": int(ci.n), "transfer": ci.point, "ci_low": ci.low,
               "ci_high": ci.high, "family_size": m, "ci_low_adj": float(low_adj), **ctrl}
        row.update(decide(ci.point, float(low_adj), ctrl, r, status=status))
        rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs["rule"] = r.text()
    return out


def best_verdict(verdicts: Sequence[str]) -> str:
    """The best of several verdicts (by :data:`VERDICTS` order); ``"rejected"`` for none."""
    order = {v: i for i, v in enumerate(VERDICTS)}
    return min(verdicts, key=lambda v: order.get(v, len(order))) if len(verdicts) else "rejected"
