"""The attribute oracle (``world-oracle``): a small CNN that reads every world factor.

``probe.zoo.load("world-oracle")`` returns a :class:`WorldOracle`; ``oracle.predict(images)``
gives a DataFrame, ``oracle(images)`` a dict of differentiable tensors.
"""
from probe.oracle.evaluate import circular_error, evaluate_oracle, score_predictions
from probe.oracle.model import OracleConfig, WorldOracle, load_zoo_oracle

__all__ = [
           "OracleConfig",
           "WorldOracle",
           "circular_error",
           "evaluate_oracle",
           "load_zoo_oracle",
           "score_predictions",
]
