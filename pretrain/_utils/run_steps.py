"""Stop a fastai fit after an exact number of steps (`RunSteps`) and save checkpoints along the way
(`SaveCheckpoints`)."""
from __future__ import annotations

from pathlib import Path

import torch
from fastai.callback.core import Callback, CancelEpochException, CancelFitException

from pretrain.run.checkpoint import save_checkpoint
from pretrain._utils.steps import optimizer_step, step_done


class SaveCheckpoints(Callback):
    """Checkpoint cadence: at each of `save_points`, fractions of `n_steps` (the seed's 0.0625 ...
    1.0) or step counts, a checkpoint `base_name.format(percent=...)`, e.g.
    `vanilla_11081_6.25%.pth`, under `learn.path/learn.model_dir`; with `save_every`, also every
    N steps as `..._step{N}.pth`, keeping the last `keep_last` of those. Checkpoints are complete
    training states (pretrain/checkpoint.py), written atomically, only by rank 0, and never while
    the loss is not finite (the last good one stays)."""
    order = 69  # after the logger and held-out evaluation, just before RunSteps (70) ends the fit

    def __init__(self, n_steps: int, save_points: list[float | int] | None = None, base_name: str | None = None,
                 save_every: int | None = None, keep_last: int | None = None, rank: int = 0):
        points: dict[int, list[str]] = {}
        for s in save_points or []:
            if isinstance(s, float) and not 0 < s <= 1 or isinstance(s, int) and not 1 <= s <= n_steps:
                raise ValueError(f"save point {s!r} is outside the run of {n_steps} steps")
            # a fraction of a short run may round to step 0: save after the first step instead
            step = s if isinstance(s, int) else max(1, int(n_steps * s))
            percent = s * 100 if isinstance(s, float) else step / n_steps * 100
            points.setdefault(step, []).append(f'{percent}%')
        if (points or save_every) and (not base_name or '{percent}' not in base_name):
            raise ValueError("base_name must contain '{percent}', e.g. 'vanilla_11081_{percent}'")
        if save_every is not None and save_every < 1 or keep_last is not None and keep_last < 1:
            raise ValueError(f"save_every and keep_last must be positive, got {save_every}, {keep_last}")
        self.save_points, self.base_name = points, base_name
        self.save_every, self.keep_last, self.rank = save_every, keep_last, rank

    def after_batch(self) -> None:
        step = step_done(self.learn)
        if step is None:
            return
        names = [self.base_name.format(percent=p) for p in self.save_points.get(step, [])]
        if self.save_every and step % self.save_every == 0:
            names.append(self.base_name.format(percent=f'step{step}'))
        if names and self.rank == 0 and bool(torch.isfinite(self.learn.loss)):  # one sync per save, not per step
            for name in names:
                self.save(name)
            self.prune()

    @property
    def directory(self) -> Path:
        return Path(self.learn.path) / self.learn.model_dir

    def save(self, name: str) -> Path:
        return save_checkpoint(self.learn, self.directory / f'{name}.pth')

    def prune(self) -> None:
        """Keep only the last `keep_last` periodic checkpoints (the fraction ones stay)."""
        if not self.keep_last:
            return
        prefix, suffix = self.base_name.split('{percent}')
        periodic = []
        for p in self.directory.glob('*.pth'):
            middle = p.stem[len(prefix):len(p.stem) - len(suffix)] if p.stem.startswith(prefix) and p.stem.endswith(suffix) else ''
            if middle.startswith('step') and middle[4:].isdigit():
                periodic.append((int(middle[4:]), p))
        for _, p in sorted(periodic)[:-self.keep_last]:
            p.unlink(missing_ok=True)


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
