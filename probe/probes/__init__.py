"""Statistical probes of token positions x attributes, disentanglement metrics, the semantic map.

Entry point: :func:`run_probes` (a token store or plain arrays) -> :class:`ProbeResult`.
Modules, one job each: ``data`` (inputs), ``information`` (MI / AMI / Cramer's V), ``stats``
(eta^2, variance change, rank correlation), ``linear`` (cross-validated linear probes),
``significance`` (permutation p, BH q), ``disentanglement`` (MIG, modularity, DCI, SAP),
``semantic_map``, ``usage`` (codebook usage per position), ``synthetic`` (planted test data),
``units`` (the probes as registered units with one signature, in table order), ``run`` (the entry
point: every unit on every attribute, then q-values, metrics, the map), ``kernels`` (compiled inner loops).

Example::

    from probe.probes import run_probes
    res = run_probes(tokens, attributes_df, features=features, codebook=codebook)  # or run_probes(store)
    res.table                              # long table: position, attribute, probe, value, ..., q_value
    res.semantic_map.to_frame()            # one row per attribute x position: rank, effect, q, significant
    res.semantic_map.candidates("blur", 3) # its top significant positions, best first (for the swap engine)
    res.summary                            # one row per attribute: top position, family-wise answer
    res.heatmap("ami")                     # position x attribute frame
    res.save("runs/x/probes")              # every table and figure
"""
from probe.probes.config import ALL_PROBES, ProbeConfig
from probe.probes.run import (
    ALL_POSITIONS,
    TABLE_COLUMNS,
    ProbeResult,
    run_probes,
)
from probe.probes.semantic_map import SemanticMap
from probe.probes.usage import code_frequencies, codebook_usage

__all__ = [
    "ALL_POSITIONS",
    "ALL_PROBES",
    "TABLE_COLUMNS",
    "ProbeConfig",
    "ProbeResult",
    "SemanticMap",
    "code_frequencies",
    "codebook_usage",
    "run_probes",
]
