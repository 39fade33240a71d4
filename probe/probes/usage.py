"""Codebook usage per position: how many codes a position uses and how evenly."""
from __future__ import annotations

import numpy as np
import pandas as pd


def code_counts(tokens: np.ndarray, num_codes: int | None = None) -> np.ndarray:
    """``[N, K]`` how often each code appears at each position of ``tokens [M, N]`` (K: ``num_codes``, else the
    largest id + 1)."""
    tokens = np.asarray(tokens)
    n_pos = tokens.shape[1]
    k = int(num_codes if num_codes is not None else tokens.max() + 1)
    return np.bincount((tokens + np.arange(n_pos)[None, :] * k).ravel(), minlength=n_pos * k).reshape(n_pos, k)


def codebook_usage(tokens: np.ndarray, num_codes: int | None = None) -> pd.DataFrame:
    """Per position of ``tokens [M, N]``: ``used_codes``, ``perplexity`` (exp of the id entropy, nats),
    ``top1_share`` (frequency of the most common code) and ``usage_fraction`` (used / K)."""
    counts = code_counts(tokens, num_codes)
    n_pos, k = counts.shape
    p = counts / len(tokens)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(p > 0, p * np.log(p), 0.0).sum(1)
    used = (counts > 0).sum(1)
    return pd.DataFrame({
        "position": np.arange(n_pos),
        "used_codes": used,
        "perplexity": np.exp(ent),
        "top1_share": p.max(1),
        "usage_fraction": used / k,
    })


def code_frequencies(tokens: np.ndarray, num_codes: int | None = None) -> np.ndarray:
    """``[N, K]`` code frequencies per position of ``tokens [M, N]``, each row sorted in decreasing order
    (rank-frequency)."""
    return -np.sort(-code_counts(tokens, num_codes), axis=1) / len(tokens)
