"""Training of the shipped models, apart from the models themselves.

- :mod:`probe.training.loop`: the one training loop every recipe runs (step/time budget, learning-rate
  schedule, optimizer step, gradient clipping, logging, checkpoint and resume);
- :mod:`probe.training.schedule`: the budget progress and the warm-up + cosine learning rate;
- :mod:`probe.training.losses`: the recipes' losses; :mod:`probe.training.perceptual` (the oracle-based
  perceptual distance) and :mod:`probe.training.adversarial` (the patch discriminator);
- recipes: :mod:`probe.training.tokenizer` (world tokenizers: ``world-32``, ``world-32-continuous``),
  :mod:`probe.training.clip` with its batches :mod:`probe.training.clip_data` (``world-clip``),
  :mod:`probe.training.oracle` (``world-oracle``).

The models live in ``probe.tokenizers``, ``probe.clip`` and ``probe.oracle``; the rendered world training
sets are cached by ``probe.data.world_cache``.
"""
