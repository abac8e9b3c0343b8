"""What a step is: `bs` examples, split over the processes and the `grad_accum` micro-batches of
gradient accumulation (pretrain/grad_accum.py makes a Learner accumulate); fastai counts batches,
the recipe counts optimizer steps, and every callback asks here."""
from __future__ import annotations

from pretrain.config import check_accumulation, setting


def micro_batch_size(c, world_size: int = 1) -> int:
    """Examples per micro-batch of one process: the step's `bs` over `world_size` processes and
    `grad_accum` micro-batches (a one-line error when it does not split evenly)."""
    bs, k = setting(c, 'bs'), setting(c, 'grad_accum')
    check_accumulation(bs, k, world_size)
    return bs // (world_size * k)


def optimizer_step(learn) -> int:
    """Optimizer steps taken: fastai counts batches in `train_iter`; with gradient accumulation
    (`learn.grad_accum` micro-batches per step) a step is that many batches."""
    return learn.train_iter // getattr(learn, 'grad_accum', 1)


def at_step_boundary(learn) -> bool:
    """Whether the batch just done completed an optimizer step."""
    return learn.train_iter % getattr(learn, 'grad_accum', 1) == 0


def step_done(learn) -> int | None:
    """The optimizer step a training batch just completed (from `after_batch`), else None (a
    validation batch, or a micro-batch that does not end a step)."""
    return optimizer_step(learn) if learn.training and at_step_boundary(learn) else None
