"""Stop a fastai fit after an exact number of steps (`RunSteps`) and save checkpoints along the way
(`SaveCheckpoints`)."""
from __future__ import annotations


from fastai.callback.core import Callback, CancelEpochException, CancelFitException

from pretrain.run.checkpoint_files import SaveCheckpoints
from pretrain._utils.steps import optimizer_step, step_done


class RunSteps(Callback):
    """Run exactly `n_steps` training steps, however many epochs `fit` was given; with `no_val`,
    validation is skipped. Checkpoints are `SaveCheckpoints`' (a callback of its own); the
    seed's call pattern `RunSteps(n_steps, save_points, base_name)` still saves: RunSteps then
    adds that callback to the learner itself."""
    order = 70  # last: the logger (55) has seen this step and the checkpoint (69) is written before a stop

    def __init__(self, n_steps: int, save_points: list[float | int] | None = None, base_name: str | None = None,
                 no_val: bool = True, save_every: int | None = None, keep_last: int | None = None, rank: int = 0):
        if n_steps < 1:
            raise ValueError(f"n_steps must be positive, got {n_steps}")
        self.n_steps, self.no_val = n_steps, no_val
        self.saver = (SaveCheckpoints(n_steps, save_points, base_name, save_every, keep_last, rank)
                      if save_points or save_every else None)

    @classmethod
    def from_config(cls, c, rank: int = 0) -> RunSteps:
        """`c.steps` steps, checkpoints `{run_name}_{percent}` at `c.save_points` and every
        `c.save_every` steps (keeping `c.keep_last`), written by rank 0 only."""
        return cls(c.steps, c.save_points, c.run_name + '_{percent}', save_every=c.save_every,
                   keep_last=c.keep_last, rank=rank)

    def after_create(self) -> None:
        if self.saver is not None and self.saver not in self.learn.cbs:
            self.learn.add_cb(self.saver)

    def before_fit(self) -> None:
        self.after_create()  # also when RunSteps came in through fit(cbs=...)

    def before_train(self) -> None:
        self.learn.pct_train = optimizer_step(self.learn) / self.n_steps  # fit's epoch count is fake

    def after_batch(self) -> None:
        # TrainEvalCallback (order -10) has already counted this batch in train_iter
        step = step_done(self.learn)
        if step is None:
            return
        self.learn.pct_train = step / self.n_steps
        if step >= self.n_steps:
            raise CancelFitException()

    def after_train(self) -> None:
        if self.no_val and optimizer_step(self.learn) < self.n_steps:
            raise CancelEpochException()  # skip validation, start the next (fake) epoch
