"""Measurement of attributes on images (decoded or original): one interface, three families.

A :class:`Measurer` has a ``name``, a ``kind`` (``continuous`` -> ``[B]``, ``categorical`` -> class
probabilities ``[B, K]`` with ``.classes``, ``circular`` -> unit vectors ``[B, 2]``) and is called as
``measurer(images [B, 3, H, W] in [0, 1], masks=None)``; ``masks [B, 1, H, W]`` are object masks, used by the
measurers that need them (world object hue, background sharpness) and ignored by the others.

Families (:mod:`probe.measure.analytic`, :mod:`probe.measure.oracle`, :mod:`probe.measure.clip`):

- ``analytic``: closed-form pixel statistics, no model: ``luminance``, ``contrast``, ``colourfulness``,
  ``hue``, ``laplacian_variance``, ``hf_energy``, and the world's ``lighting``, ``bg_blur``, ``global_blur``,
  ``obj_hue``;
- ``oracle``: the shipped attribute oracle (``world-oracle``), one measurer per attribute it reads
  (``shape`` categorical; ``obj_hue``, ``bg_hue`` circular; the other world factors continuous);
- ``clip``: CLIP zero-shot class probabilities over prompt sets, with any open_clip model (the shipped
  ``world-clip`` by default).

Specs. A manifest (or any caller) names a measurer with a string ``"<family>:<name>"``:

- ``"analytic:lighting"``, ``"analytic:hf_energy"``: the analytic measurer of that name;
- ``"oracle:shape"``, ``"oracle:bg_hue"``: the oracle's reading of that attribute;
- ``"clip:shape"``, ``"clip:obj_hue"``: the world CLIP's zero-shot task for that world attribute;
- ``"clip:a dark photo|a bright photo"``: an inline prompt set, one class per ``|``-separated prompt.

Options that are not part of the name (``device``; for CLIP ``model`` = an open_clip architecture and
``pretrained`` = a tag or a local weights file) are keyword arguments of :func:`get_measurer` /
:func:`measurer_for`. :func:`register` adds a family. :func:`measurer_for` gives the default measurer of an
attribute (its world's, :mod:`probe.worlds`, else the analytic one of that name). :mod:`probe.tokenizers.base` is the one batched encode / decode helper.
"""
from probe.measure.analytic import ANALYTIC_NAMES, analytic, hue_vector, luminance
from probe.measure.base import KINDS, FunctionMeasurer, Measurer
from probe.tokenizers.base import decode_batched, encode_batched
from probe.measure.clip import ClipMeasurer, world_clip_measurer
from probe.measure.oracle import OracleMeasurer, oracle_measurers
from probe.measure.registry import families, get_measurer, measurer_for, register

__all__ = [
    "ANALYTIC_NAMES",
    "KINDS",
    "ClipMeasurer",
    "FunctionMeasurer",
    "Measurer",
    "OracleMeasurer",
    "analytic",
    "decode_batched",
    "encode_batched",
    "families",
    "get_measurer",
    "hue_vector",
    "luminance",
    "measurer_for",
    "oracle_measurers",
    "register",
    "world_clip_measurer",
]
