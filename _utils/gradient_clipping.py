"""Global-norm gradient clipping that is right under fastai's `MixedPrecision`."""
from __future__ import annotations

import torch
from fastai.callback.core import Callback
from fastai.callback.fp16 import MixedPrecision


class GradientClipping(Callback):
    """Clip gradients to a global L2 norm of `clip` before each optimizer step.

    Runs in `before_step` just after `MixedPrecision`, whose `before_step` has already
    unscaled the gradients through `GradScaler.step` (and skipped the step on overflow): the
    gradients are unscaled exactly once, and the norm is that of the true gradients.
    """
    order = MixedPrecision.order + 1

    def __init__(self, clip: float = 1.0):
        if not clip or clip <= 0:
            raise ValueError(f"clip must be a positive number, got {clip!r}")
        self.clip = clip

    def before_step(self) -> None:
        # parameters without a gradient (frozen layers) are skipped by torch itself
        torch.nn.utils.clip_grad_norm_(self.learn.model.parameters(), self.clip, foreach=True)
