"""Test-time token optimization: composable objectives, the loop, and tasks built on them
(edit, generate, inpaint, copy-paste, position-restricted edits)."""
from probe.optimize.loop import OptimizeConfig, OptimizeResult, StepInfo, noise_scale, optimize
from probe.optimize.objectives import (
    ClipModel,
    ClipText,
    HeldOut,
    Lambda,
    MaskedReconstruction,
    MeasurerTarget,
    Objective,
    load_clip,
    random_views,
)

__all__ = [
    "ClipModel",
    "ClipText",
    "HeldOut",
    "Lambda",
    "MaskedReconstruction",
    "MeasurerTarget",
    "Objective",
    "OptimizeConfig",
    "OptimizeResult",
    "StepInfo",
    "load_clip",
    "noise_scale",
    "optimize",
    "random_views",
]
