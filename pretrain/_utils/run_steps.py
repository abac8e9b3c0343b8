"""Stop a fastai fit after an exact number of steps and save checkpoints along the way."""
from __future__ import annotations

import os
from pathlib import Path

from fastai.callback.core import Callback, CancelEpochException, CancelFitException
from fastai.learner import save_model


class RunSteps(Callback):
    """Run exactly `n_steps` training steps, however many epochs `fit` was given.

    `save_points`: fractions of `n_steps` (e.g. the seed's 0.0625 ... 1.0) or step counts;
    at each, the Learner is saved (model + optimizer, fastai's `.pth` format) as
    `base_name.format(percent=...)` under `learn.path/learn.model_dir`, e.g.
    `vanilla_11081_6.25%.pth`. Saves are atomic: written to a temporary file, flushed to disk,
    then renamed. With `no_val`, validation is skipped (pre-training has no validation set).
    """
    order = 70  # last: the logger (55) has seen this step before a stop is raised

    def __init__(self, n_steps: int, save_points: list[float | int] | None = None, base_name: str | None = None,
                 no_val: bool = True):
        if n_steps < 1:
            raise ValueError(f"n_steps must be positive, got {n_steps}")
        points: dict[int, list[str]] = {}
        for s in save_points or []:
            if isinstance(s, float) and not 0 < s <= 1 or isinstance(s, int) and not 1 <= s <= n_steps:
                raise ValueError(f"save point {s!r} is outside the run of {n_steps} steps")
            # a fraction of a short run may round to step 0: save after the first step instead
            step = s if isinstance(s, int) else max(1, int(n_steps * s))
            percent = s * 100 if isinstance(s, float) else step / n_steps * 100
            points.setdefault(step, []).append(f'{percent}%')
        if points and (not base_name or '{percent}' not in base_name):
            raise ValueError("base_name must contain '{percent}', e.g. 'vanilla_11081_{percent}'")
        self.n_steps, self.save_points, self.base_name, self.no_val = n_steps, points, base_name, no_val

    def before_train(self) -> None:
        self.learn.pct_train = self.train_iter / self.n_steps  # fit's epoch count is fake

    def after_batch(self) -> None:
        if not self.training:
            return
        # TrainEvalCallback (order -10) has already counted this step in train_iter
        self.learn.pct_train = self.train_iter / self.n_steps
        for percent in self.save_points.get(self.train_iter, []):
            self.save(self.base_name.format(percent=percent))
        if self.train_iter >= self.n_steps:
            raise CancelFitException()

    def after_train(self) -> None:
        if self.no_val and self.train_iter < self.n_steps:
            raise CancelEpochException()  # skip validation, start the next (fake) epoch

    def save(self, name: str) -> Path:
        path = Path(self.learn.path) / self.learn.model_dir / f'{name}.pth'
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + '.tmp')
        save_model(tmp, self.learn.model, getattr(self.learn, 'opt', None), with_opt=True)
        with open(tmp, 'rb+') as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return path
