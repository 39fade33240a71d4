"""The swap engine (user story 3): copy-paste token swaps measured on decoded images.

So far it holds the pixel measurers of the world's attributes (:mod:`probe.swap.measurers`) and the
single-token paste between an attribute's two ends (:mod:`probe.swap.paste`), shared by the tokenizer's
localization analysis (``analyses/world_tokenizer/localization.py``) and the tests of the shipped models.
Pair sampling at scale, controls and the tidy results table are still to come.
"""
from probe.swap.measurers import MEASURERS, hue_vector, luminance, moved_fraction
from probe.swap.paste import decode, end_groups, moved_by_paste, paste

__all__ = ["MEASURERS", "decode", "end_groups", "hue_vector", "luminance", "moved_by_paste", "moved_fraction", "paste"]
