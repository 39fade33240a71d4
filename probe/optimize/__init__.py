"""Test-time token optimization: composable objectives, the loop, and tasks built on them.

    from probe import load_tokenizer
    from probe.optimize import OptimizeConfig, generate, load_clip
    tok = load_tokenizer("world-32")
    res = generate(tok, "a photo of a red star.", 4, clip=load_clip("world-clip"), init="tokens",
                   config=OptimizeConfig(iterations=100))
    res.images, res.history  # [4, 3, 32, 32] in [0, 1]; one row per (step, image)

Modules: :mod:`~probe.optimize.objectives` (CLIP / SigLIP text, masked reconstruction, measurer
targets, the held-out scorer), :mod:`~probe.optimize.loop` (:func:`optimize`),
:mod:`~probe.optimize.tasks` (edit, generate, inpaint, position-restricted edits, run
output), :mod:`~probe.optimize.search` (exhaustive code search at a few positions), :mod:`probe.worlds`
(a world's prompts and its held-out judge).
"""
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
from probe.optimize.search import search_positions
from probe.optimize.tasks import (
    TokenReset,
    attribute_drift,
    edit,
    generate,
    inpaint,
    position_edit,
    write_run,
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
    "TokenReset",
    "attribute_drift",
    "edit",
    "generate",
    "inpaint",
    "load_clip",
    "noise_scale",
    "optimize",
    "position_edit",
    "random_views",
    "search_positions",
    "write_run",
]
