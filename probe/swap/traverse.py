"""Traversals: set one position to each of many codes on a batch of images and measure every attribute.

The interventional twin of a latent traversal: it shows what a position can do (the range of an attribute
it reaches), not only what one donor did. :func:`traverse` returns one row per (code, image, measurer);
:func:`response_curve` one row per (code, measurer) with the mean, quartiles and the images' own value
(``baseline``); :func:`probe.viz.swap.traversal_figure` draws it.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from probe.progress import StageBar
from probe.swap.engine import _Decoder, as_quantized
from probe.swap.movement import reading_scalar
from probe.tokenizers.base import Tokenizer, paste_tokens

if TYPE_CHECKING:
    from probe.measure.base import Measurer


def codes_used(tokens: np.ndarray, position: int) -> np.ndarray:
    """The codes a store uses at ``position`` (sorted): ``tokens [M, N]``."""
    return np.unique(np.asarray(tokens)[:, position])


def traverse(tokenizer: Tokenizer, tokens: torch.Tensor | np.ndarray, position: int, measurers: Mapping[str, Measurer], *,
             codes: Sequence[int] | np.ndarray | None = None, masks: torch.Tensor | None = None, batch: int = 256,
             progress: bool | StageBar = True) -> pd.DataFrame:
    """Set ``position`` of every image in ``tokens`` (``[B, N]`` ids or ``[B, N, C]`` vectors) to each code.

    Args:
        codes: code ids (default: every code of ``tokenizer.codebook``; e.g. :func:`codes_used` for the
            codes a store uses there). Needs a VQ model.
        measurers: attribute -> measurer; each decoded image is measured by all of them.

    Returns:
        DataFrame ``code, image, measured, value`` (vector measurers: their first component is not
        meaningful alone, so circular ones are given as an angle in turns and categorical ones as the
        argmax class index; :func:`probe.swap.movement.reading_scalar`), plus ``baseline`` (the unedited
        image's value). :func:`response_curve` summarises it per code.

    Examples:
        Position 26 of four images through every code the store uses there:

        >>> table = traverse(tok, store.tokens[:4], 26, {"lighting": measurer_for("lighting")},
        ...                  codes=codes_used(store.tokens, 26))  # doctest: +SKIP
        >>> response_curve(table).attrs["range"]  # doctest: +SKIP
    """
    from probe.progress import inner_bar

    q = as_quantized(tokenizer, tokens)
    book = tokenizer.codebook.detach().to(q.device).float()
    if len(book) == 0:
        raise ValueError("traverse needs a tokenizer with a codebook (a VQ model)")
    codes = np.arange(len(book)) if codes is None else np.asarray(codes, dtype=np.int64)
    names = list(measurers)
    meas = [measurers[a] for a in names]
    b = len(q)
    bar = inner_bar(progress, b * (len(codes) + 1), "traversal decodes")
    dec = _Decoder(tokenizer, meas, batch, bar)
    try:
        base = dec.measure(q, masks)
        per = max(1, batch // b)
        frames = []
        for s in range(0, len(codes), per):
            chunk = codes[s : s + per]
            # each code as a donor that holds it at every position, pasted at ``position``
            code_q = book[torch.as_tensor(chunk, device=q.device)].repeat_interleave(b, 0)[:, None]
            qq = paste_tokens(q.repeat(len(chunk), 1, 1), code_q.expand(-1, q.shape[1], -1), position)
            mk = None if masks is None else masks.repeat(len(chunk), 1, 1, 1)
            vals = dec.measure(qq, mk)
            for k, a in enumerate(names):
                frames.append(pd.DataFrame({
                    "code": np.repeat(chunk, b), "image": np.tile(np.arange(b), len(chunk)), "measured": a,
                    "value": reading_scalar(meas[k].kind, vals[k]),
                    "baseline": np.tile(reading_scalar(meas[k].kind, base[k]), len(chunk))}))
    finally:
        bar.close()
    out = pd.concat(frames, ignore_index=True)
    out.attrs["position"] = int(position)
    return out


def response_curve(table: pd.DataFrame) -> pd.DataFrame:
    """Per (code, measured): ``mean``, ``q25``, ``q75`` of the values over images and the images' mean
    ``baseline``; plus ``range`` per measured attribute (max - min of the means) in ``.attrs``."""
    g = table.groupby(["measured", "code"], sort=True)
    out = g["value"].agg(mean="mean", q25=lambda v: v.quantile(0.25), q75=lambda v: v.quantile(0.75))
    out["baseline"] = g["baseline"].mean()
    out = out.reset_index()
    out.attrs["range"] = (out.groupby("measured")["mean"].max() - out.groupby("measured")["mean"].min()).to_dict()
    return out
