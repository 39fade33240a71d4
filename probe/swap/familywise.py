"""Family-wise lower bounds: "confirmed" holds its error rate over everything tested for one attribute.

The family of an attribute is every mapping (position or position set) whose verdict is read from its
confirmation pairs: the candidates a discovery sweep selected, the probes' top positions, the greedy set.
Each gets a one-sided lower bound of its transfer at level ``1 - alpha / m`` (Bonferroni), so all ``m``
bounds hold together with probability at least ``1 - alpha`` whatever the dependence between the
mappings (they share pairs): the chance that any mapping whose true transfer is below the threshold is
called confirmed stays at or below ``alpha``.

Why Bonferroni and not Holm's step-down or a max-statistic bootstrap: the verdict reads a bound, and
Bonferroni's bounds are simultaneous bounds one can print; Holm's step-down only sharpens the decision
after the first rejection (for an attribute's best mapping it is the same test) and has no matching
interval; a max-statistic bootstrap gains little when the mappings are nearly independent (different
positions) and its own calibration at 16 pairs is doubtful. The calibration benchmark
(``analyses/bench_verdicts.py``) measures the resulting error rate and power.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from probe.swap.intervals import DEFAULT_METHOD, N_BOOT, lower_bound

#: the family-wise method, as printed beside the verdict thresholds
FAMILYWISE_TEXT = ("family-wise: Bonferroni over the m mappings tested for an attribute on its confirmation "
                   "pairs (each lower bound one-sided at level 1 - alpha/m)")


def familywise_alpha(alpha: float, m: int) -> float:
    """The per-mapping one-sided level of a family of ``m`` mappings (``alpha / m``; ``alpha`` for ``m <= 1``)."""
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    return alpha / max(int(m), 1)


def adjusted_lower_bounds(groups: Sequence[tuple[np.ndarray, np.ndarray]], *, alpha: float = 0.05,
                          method: str = DEFAULT_METHOD, family_size: int | None = None, n_boot: int = N_BOOT,
                          seed: int = 0) -> np.ndarray:
    """Family-wise lower bounds ``[m]`` of the transfers of ``groups`` (per mapping ``(moved [n], gap [n])``).

    Args:
        groups: one ``(moved, gap)`` per mapping of the family (pairs may differ in number).
        alpha: the family-wise one-sided error rate.
        method: the interval method (:data:`probe.swap.intervals.METHODS`).
        family_size: ``m`` (default ``len(groups)``; larger when more mappings were tested than passed here).

    Examples:
        >>> import numpy as np
        >>> gap = np.ones(64)
        >>> moved = 0.7 + np.random.default_rng(0).normal(0, 0.2, (3, 64))
        >>> lb = adjusted_lower_bounds([(m, gap) for m in moved])
        >>> bool((lb < 0.7).all() and (lb > 0.55).all())
        True
    """
    m = len(groups) if family_size is None else int(family_size)
    if m < len(groups):
        raise ValueError(f"family_size {m} is smaller than the {len(groups)} mappings given")
    a = familywise_alpha(alpha, m)
    if not groups:
        return np.zeros(0)
    sizes = {np.asarray(x).shape for x, _ in groups}
    if len(sizes) == 1 and all(np.isfinite(np.asarray(x, float)).all() and np.isfinite(np.asarray(y, float)).all()
                               for x, y in groups):
        x = np.stack([np.asarray(x, float) for x, _ in groups])
        y = np.stack([np.asarray(y, float) for _, y in groups])
        return np.asarray(lower_bound(x, y, alpha=a, method=method, n_boot=n_boot, seed=seed), float)
    return np.array([lower_bound(x, y, alpha=a, method=method, n_boot=n_boot, seed=seed) for x, y in groups], float)
