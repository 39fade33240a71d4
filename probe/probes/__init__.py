"""Statistical probes of token positions x attributes, disentanglement metrics, the semantic map.

Entry point: :func:`run_probes` (a token store or plain arrays) -> :class:`ProbeResult`.
Modules, one job each: ``data`` (inputs), ``information`` (MI / AMI / Cramer's V), ``stats``
(eta^2, variance change, rank correlation), ``linear`` (cross-validated linear probes),
``significance`` (permutation p, BH q), ``disentanglement`` (MIG, modularity, DCI, SAP),
``semantic_map``, ``run`` (the orchestration), ``kernels`` (compiled inner loops).
"""
from probe.probes.config import ALL_PROBES, ProbeConfig
from probe.probes.run import ALL_POSITIONS, TABLE_COLUMNS, ProbeResult, heatmap_frame, run_probes
from probe.probes.semantic_map import SemanticMap

__all__ = [
    "ALL_POSITIONS",
    "ALL_PROBES",
    "ProbeConfig",
    "ProbeResult",
    "SemanticMap",
    "TABLE_COLUMNS",
    "heatmap_frame",
    "run_probes",
]
