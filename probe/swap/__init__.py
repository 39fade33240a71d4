"""The swap engine (user story 3): copy-paste token swaps measured on decoded images.

So far it holds the single-token paste between an attribute's two ends (:mod:`probe.swap.paste`), shared by the
tokenizer's localization analysis (:mod:`probe.swap.localization`) and the tests of the shipped models; the
measurers live in :mod:`probe.measure`. Pair sampling at scale, controls and the tidy results table are still to
come.
"""
from probe.swap.paste import end_groups, moved_by_paste, moved_fraction, paste

__all__ = ["end_groups", "moved_by_paste", "moved_fraction", "paste"]
