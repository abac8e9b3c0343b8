"""Learning-rate schedules, as a fastai callback that sets the optimizer's hyper-parameters
before every batch from the number of steps already taken."""
from __future__ import annotations

from fastai.callback.core import Callback
from fastai.callback.schedule import combined_cos

from pretrain._utils.steps import optimizer_step
from pretrain.config import SCHEDULES, check_allowed, setting



def lr_at(step: int, schedule: str, lr_max: float, total_steps: int, warmup_steps: int = 10_000) -> float:
    """The learning rate for the update that follows `step` earlier updates (0 for the first).

    - original_linear (Google's): linear decay from `lr_max` to 0 over `total_steps`,
      *multiplied by* the warmup factor min(1, step / warmup_steps): both act at once.
    - separate_linear: linear warmup to `lr_max`, then linear decay to 0 over the rest.
    - one_cycle: fastai's `fit_one_cycle` (cosine up for 25% of steps from lr_max/25, cosine
      down to lr_max/1e5).
    - adjusted_one_cycle: the same, warming up over `warmup_steps` from lr_max/1e5.
    """
    if schedule == 'original_linear':
        decayed = lr_max * max(0.0, 1 - step / total_steps)
        return decayed * (min(1.0, step / warmup_steps) if warmup_steps else 1.0)
    if schedule == 'separate_linear':
        if step < warmup_steps:
            return lr_max * step / warmup_steps
        return lr_max * max(0.0, 1 - (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if schedule in ('one_cycle', 'adjusted_one_cycle'):
        pct_start, div = one_cycle_shape(schedule, total_steps, warmup_steps)
        return combined_cos(pct_start, lr_max / div, lr_max, lr_max / 1e5)(min(1.0, step / total_steps))
    check_allowed('schedule', schedule, SCHEDULES)
    raise AssertionError(f'schedule {schedule!r} has no formula')  # a name added to SCHEDULES alone


def one_cycle_shape(schedule: str, total_steps: int, warmup_steps: int) -> tuple[float, float]:
    """(pct_start, div) of fastai's one-cycle: its defaults, or warmup-adjusted."""
    if schedule == 'adjusted_one_cycle':
        return min(1.0, warmup_steps / total_steps), 1e5
    return 0.25, 25.0


def mom_at(step: int, schedule: str, total_steps: int, warmup_steps: int = 10_000) -> float | None:
    """fastai's one-cycle also cycles Adam's beta1 (0.95 -> 0.85 -> 0.95); None for linear schedules."""
    if schedule not in ('one_cycle', 'adjusted_one_cycle'):
        return None
    pct_start, _ = one_cycle_shape(schedule, total_steps, warmup_steps)
    return combined_cos(pct_start, 0.95, 0.85, 0.95)(min(1.0, step / total_steps))


class StepScheduler(Callback):
    """Sets `lr` (and `mom` for one-cycle) before each training batch from `learn.train_iter`,
    the number of steps taken, so the schedule is right however many (fake) epochs `fit` gets.
    The values used are kept in `self.hps` for plotting."""
    order = 60  # where fastai's ParamScheduler runs

    def __init__(self, schedule: str, lr_max: float, total_steps: int, warmup_steps: int = 10_000):
        check_allowed('schedule', schedule, SCHEDULES)
        if total_steps < 1:
            raise ValueError(f"total_steps must be positive, got {total_steps}")
        self.schedule, self.lr_max, self.total_steps, self.warmup_steps = schedule, lr_max, total_steps, warmup_steps

    def before_fit(self) -> None:
        self.hps = {'lr': [], 'mom': []}

    def before_batch(self) -> None:
        if not self.training:
            return
        step = optimizer_step(self.learn)  # the update this batch contributes to
        lr = lr_at(step, self.schedule, self.lr_max, self.total_steps, self.warmup_steps)
        self.opt.set_hyper('lr', lr)
        self.hps['lr'].append(lr)
        mom = mom_at(step, self.schedule, self.total_steps, self.warmup_steps)
        if mom is not None:
            self.opt.set_hyper('mom', mom)
            self.hps['mom'].append(mom)


def get_scheduler(c) -> StepScheduler:
    """The schedule named by `c.schedule`, peaking at `c.lr`, over `c.steps` steps, warming up
    over `c.warmup_steps` (10,000 in the recipe)."""
    return StepScheduler(*(setting(c, k) for k in ('schedule', 'lr', 'steps', 'warmup_steps')))
