"""Stop a run that has gone bad instead of training on NaNs for hours."""
from __future__ import annotations

import torch
from fastai.callback.core import Callback

from pretrain._utils.steps import step_done
from pretrain.run.log_cb import CSVLogger


class NonFiniteLossError(ValueError):
    """Training stopped after too many consecutive non-finite losses."""


class StopOnNonFinite(Callback):
    """Counts consecutive non-finite losses on the device (no per-step host sync) and checks
    the count every `check_every` steps: once `max_consecutive` are reached, training stops
    with a message naming the step. Under fp16 loss scaling, single overflow steps are normal
    (GradScaler skips them) and never reach the limit. Checkpoints are never written while the
    loss is non-finite (SaveCheckpoints), so the last one saved is good.
    """
    order = CSVLogger.order + 1  # after the logger has seen the step's loss

    def __init__(self, max_consecutive: int = 20, check_every: int = 10):
        if max_consecutive < 1:
            raise ValueError(f"max_consecutive must be positive, got {max_consecutive}")
        self.max_consecutive, self.check_every = max_consecutive, check_every

    @classmethod
    def from_config(cls, c) -> StopOnNonFinite:
        """Stop after `c.max_nonfinite` consecutive non-finite losses, checked every `c.log_every` steps."""
        return cls(c.max_nonfinite, c.log_every)

    def before_fit(self) -> None:
        self.bad = None

    def after_batch(self) -> None:
        if not self.training:
            return
        finite = torch.isfinite(self.learn.loss.detach())
        self.bad = (~finite).long() if self.bad is None else torch.where(finite, 0, self.bad + 1)
        step = step_done(self.learn)  # the one host sync, at step boundaries only (not mid-accumulation)
        if step is not None and step % min(self.check_every, self.max_consecutive) == 0 and int(self.bad) >= self.max_consecutive:
            raise NonFiniteLossError(f"stopped at step {step}: {int(self.bad)} consecutive non-finite "
                                     f"losses; lower the learning rate or check the data, then resume from the last checkpoint")
