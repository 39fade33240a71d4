"""Every setting of the probe suite, with its documented default, in one place."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: All probes ``run_probes`` knows, in the order they appear in the table.
ALL_PROBES: tuple[str, ...] = (
    "mi",  # plug-in mutual information token id <-> attribute (nats), permutation null
    "ami",  # adjusted mutual information (sklearn semantics, arithmetic normalisation)
    "ami_max",  # per attribute: the largest AMI over positions, tested against the permuted maxima (family-wise)
    "cramers_v",  # Cramer's V of the token id x attribute contingency table
    "eta2_features",  # multivariate eta^2 of the pre-quantization features between attribute groups
    "eta2_codebook",  # the same for the codebook embeddings of the tokens
    "var_logratio",  # partition (one level vs the rest): log(within-variance in / out)
    "spearman_max",  # continuous attributes: strongest |Spearman rho| over feature coordinates
    "linear_r2",  # continuous attributes: cross-validated ridge R^2 from the position's features
    "linear_acc_features",  # CV balanced accuracy of a linear probe on the position's features
    "linear_acc_ids",  # CV balanced accuracy of a linear probe on the position's one-hot token id
    "linear_acc_all",  # CV balanced accuracy of a linear probe on all positions' features
    "disentanglement",  # MIG, modularity, DCI, SAP (disentanglement_lib definitions)
)

#: the probes that read only the pre-quantization features: all a continuous tokenizer's store (no token ids) has
FEATURE_PROBES: tuple[str, ...] = ("eta2_features", "var_logratio", "spearman_max", "linear_r2",
                                   "linear_acc_features", "linear_acc_all")


@dataclass
class ProbeConfig:
    """Settings of :func:`probe.probes.run_probes`.

    Attributes:
        permutations: label permutations for the null distributions (>= 200 recommended). The
            smallest attainable permutation p-value is ``1 / (permutations + 1)``.
        seed: seeds the permutations, the subsamples and the cross-validation folds.
        probes: which of :data:`ALL_PROBES` to run.
        tail: ``"gamma"``: when no permuted statistic reaches the observed one, the p-value is the
            upper tail of a gamma distribution moment-matched to the permutation null (a Pearson
            type III style approximation, as used for MRPP), capped at ``1 / (permutations + 1)``;
            otherwise the plain permutation p-value ``(1 + #null >= obs) / (1 + permutations)``.
            Cramer's V always uses the plain permutation p-value (its null is heavy-tailed on sparse
            tables). ``"none"``: always the plain permutation p-value (then a grid of m cells needs about
            ``m / alpha`` permutations before any q-value can fall below alpha).
        n_bins: quantile bins for continuous attributes in the group statistics (MI, eta^2, ...).
        max_categorical_levels: an integer / float attribute with at most this many distinct values
            is treated as categorical; a string attribute with more levels is skipped (an id).
        max_partition_levels: categorical attributes with at most this many levels also get the
            one-level-vs-rest variance change (``var_logratio``); binary ones get one partition.
        cv_folds: folds of the cross-validated linear probes.
        ridge_alpha: ridge penalty of the linear probes (on standardized features).
        linear_max_samples: rows subsampled (seeded) for the linear probes and DCI (None: all).
        dci_importance: ``"linear"`` (|ridge weights| on standardized codebook embeddings, the
            Lasso-style importance of Eastwood & Williams; fast) or ``"gbt"`` (disentanglement_lib's
            sklearn ``GradientBoostingClassifier()`` feature importances; slow).
        dci_num_train / dci_num_test: disentanglement_lib's defaults (10000 / 5000), capped by M.
        alpha: the q-value threshold the semantic map calls significant.
        rank_by: the probe that ranks positions in the semantic map (chance-corrected ``"ami"``;
            plain MI is biased upward by about (K-1)(L-1)/2M nats with K codes, L levels).
    """

    permutations: int = 200
    seed: int = 0
    probes: tuple[str, ...] = ALL_PROBES
    tail: str = "gamma"
    n_bins: int = 5
    max_categorical_levels: int = 20
    max_partition_levels: int = 10
    cv_folds: int = 5
    ridge_alpha: float = 1.0
    linear_max_samples: int | None = 20000
    dci_importance: str = "linear"
    dci_num_train: int = 10000
    dci_num_test: int = 5000
    alpha: float = 0.05
    rank_by: str = "ami"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [p for p in self.probes if p not in ALL_PROBES]
        if unknown:
            raise ValueError(f"unknown probe(s) {unknown}; known: {list(ALL_PROBES)}")
        if self.permutations < 0:
            raise ValueError(f"permutations must be >= 0, got {self.permutations}")
        if self.tail not in ("gamma", "none"):
            raise ValueError(f"tail must be 'gamma' or 'none', got {self.tail!r}")
        if self.dci_importance not in ("linear", "gbt"):
            raise ValueError(f"dci_importance must be 'linear' or 'gbt', got {self.dci_importance!r}")
        if self.n_bins < 2:
            raise ValueError(f"n_bins must be >= 2, got {self.n_bins}")
        if self.cv_folds < 2:
            raise ValueError(f"cv_folds must be >= 2, got {self.cv_folds}")
        self.probes = tuple(self.probes)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["probes"] = list(self.probes)
        return d
