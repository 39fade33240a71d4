"""The swap engine (user story 3): copy-paste token swaps measured on decoded images.

So far it holds the pixel measurers of the world's attributes (:mod:`probe.swap.measurers`), shared by the
tokenizer's localization analysis (``analyses/world_tokenizer/localization.py``) and the tests of the shipped
models. Pair sampling, batched swap-and-decode, controls and the tidy results table are still to come.
"""
from probe.swap.measurers import MEASURERS, hue_vector, luminance, moved_fraction

__all__ = ["MEASURERS", "hue_vector", "luminance", "moved_fraction"]
