"""Turn a token store or plain arrays into what the probes need: ids, representations, labels.

Anything with ``.tokens`` and ``.attributes`` (a :class:`probe.TokenStore`, or a stand-in) is
accepted; ``.features``, ``.codebook`` and ``.header`` are used when present.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from probe.store import TokenStore

#: DataFrame columns that are bookkeeping, never attributes.
RESERVED_COLUMNS = ("ref", "index")


@dataclass
class Attribute:
    """One attribute, encoded for the probes.

    Attributes:
        name: the column name.
        kind: ``"categorical"`` or ``"continuous"``.
        labels: ``[M]`` int32 group labels ``0..L-1`` (continuous: quantile bins); -1 where missing.
        levels: ``L`` level names (continuous: the bin intervals).
        values: ``[M]`` float64 raw values for continuous attributes (NaN where missing), else None.
    """

    name: str
    kind: str
    labels: np.ndarray
    levels: list[str]
    values: np.ndarray | None = None

    @property
    def num_levels(self) -> int:
        return len(self.levels)

    @property
    def valid(self) -> np.ndarray:
        """``[M]`` bool: rows where the attribute is known."""
        return self.labels >= 0


@dataclass
class ProbeInput:
    """Validated inputs. ``tokens [M, N]`` int64, ``features [M, N, C]`` (any float dtype, may be
    memory-mapped) or None, ``codebook [K, C]`` float32 or None, ``num_codes`` K."""

    tokens: np.ndarray
    attributes: list[Attribute]
    features: np.ndarray | None
    codebook: np.ndarray | None
    num_codes: int
    header: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    #: False for a continuous tokenizer's store (``tokens`` then all 0: there are no ids, only ``features``)
    ids: bool = True

    @property
    def num_images(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def num_positions(self) -> int:
        return int(self.tokens.shape[1])


def _is_store(obj: Any) -> bool:
    return hasattr(obj, "tokens") and hasattr(obj, "attributes") and not isinstance(obj, np.ndarray)


def encode_attribute(
    name: str, column: pd.Series, *, n_bins: int, max_levels: int, declared: str | None = None
) -> Attribute | str:
    """Encode one column; returns an :class:`Attribute`, or a string saying why it was skipped.

    ``declared`` is the store header's type (``string|bool|int64|float64``) when known.
    """
    col = column.reset_index(drop=True)
    nonnull = col.dropna()
    if len(nonnull) == 0:
        return "all values missing"
    nunique = int(nonnull.nunique())
    if nunique < 2:
        return f"a single value ({nonnull.iloc[0]!r})"
    numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
    if declared in ("string", "bool") or not numeric:
        if nunique > max_levels * 5 and declared != "bool":
            return f"{nunique} distinct non-numeric values (an identifier?)"
        cat = pd.Categorical(col)
        return Attribute(name, "categorical", cat.codes.astype(np.int32), [str(c) for c in cat.categories])
    if nunique <= max_levels:
        cat = pd.Categorical(col)
        return Attribute(name, "categorical", cat.codes.astype(np.int32), [str(c) for c in cat.categories])
    values = col.to_numpy(dtype=np.float64, na_value=np.nan)
    binned = pd.qcut(values, n_bins, duplicates="drop")
    codes = np.asarray(binned.codes, dtype=np.int32)
    return Attribute(name, "continuous", codes, [str(c) for c in binned.categories], values)


def prepare_inputs(
    store_or_tokens: TokenStore | np.ndarray,
    attributes: pd.DataFrame | None = None,
    *,
    features: np.ndarray | None = None,
    codebook: np.ndarray | None = None,
    attributes_subset: Sequence[str] | None = None,
    n_bins: int = 5,
    max_levels: int = 20,
) -> ProbeInput:
    """Validate and encode the inputs of :func:`probe.probes.run_probes`."""
    header: dict[str, Any] = {}
    if _is_store(store_or_tokens):
        store = store_or_tokens
        tokens = store.tokens
        if attributes is None:
            attributes = store.attributes
        if features is None:
            features = getattr(store, "features", None)
        if codebook is None:
            codebook = getattr(store, "codebook", None)
        header = dict(getattr(store, "header", None) or {})
    else:
        tokens = store_or_tokens
    if attributes is None:
        raise ValueError("run_probes needs attributes: pass a DataFrame (one row per image) or a store")
    if not isinstance(attributes, pd.DataFrame):
        attributes = pd.DataFrame(attributes)
    tokens = np.asarray(tokens)
    if tokens.ndim != 2:
        raise ValueError(f"tokens must be [M, N], got shape {tokens.shape}")
    if not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(f"tokens must be integer ids, got dtype {tokens.dtype}")
    tokens = tokens.astype(np.int64, copy=False)
    m, n = tokens.shape
    if len(attributes) != m:
        raise ValueError(f"attributes has {len(attributes)} rows but tokens has {m} images")
    ids = True
    if m and tokens.min() < 0:
        if not ((tokens == -1).all() and features is not None):
            raise ValueError(f"tokens holds a negative id ({tokens.min()}); a continuous tokenizer's store holds "
                             "-1 everywhere, with its features")
        # a continuous tokenizer's store: no ids, only features (the feature probes run; see run_probes)
        ids, tokens = False, np.zeros_like(tokens)
    if features is not None and (features.ndim != 3 or features.shape[:2] != (m, n)):
        raise ValueError(f"features must be [M={m}, N={n}, C], got shape {features.shape}")
    if codebook is not None:
        codebook = np.asarray(codebook, dtype=np.float32)
        if codebook.ndim != 2:
            raise ValueError(f"codebook must be [K, C], got shape {codebook.shape}")
        if m and tokens.max() >= codebook.shape[0]:
            raise ValueError(f"token id {tokens.max()} is out of range for a codebook of {codebook.shape[0]} codes")
        num_codes = int(codebook.shape[0])
    else:
        size = (header.get("layout") or {}).get("codebook_size")
        num_codes = int(max(int(tokens.max()) + 1 if m else 1, size or 0))

    declared: dict[str, str] = dict(header.get("attributes") or {})
    names = [c for c in attributes.columns if c not in RESERVED_COLUMNS]
    if attributes_subset is not None:
        missing = [a for a in attributes_subset if a not in attributes.columns]
        if missing:
            raise ValueError(f"attribute(s) {missing} not found; available: {names}")
        names = list(attributes_subset)
    encoded: list[Attribute] = []
    skipped: dict[str, str] = {}
    for name in names:
        res = encode_attribute(
            str(name), attributes[name], n_bins=n_bins, max_levels=max_levels, declared=declared.get(name)
        )
        if isinstance(res, str):
            skipped[str(name)] = res
        else:
            encoded.append(res)
    if not encoded:
        raise ValueError(f"no usable attribute among {names} (skipped: {skipped})")
    return ProbeInput(tokens, encoded, features, codebook, num_codes, header, skipped, ids)
