"""Step counting shared by the callbacks: fastai counts batches, the recipe counts optimizer steps."""


def optimizer_step(learn) -> int:
    """Optimizer steps taken: fastai counts batches in `train_iter`; with gradient accumulation
    (`learn.grad_accum` micro-batches per step) a step is that many batches."""
    return learn.train_iter // getattr(learn, 'grad_accum', 1)


def at_step_boundary(learn) -> bool:
    """Whether the batch just done completed an optimizer step."""
    return learn.train_iter % getattr(learn, 'grad_accum', 1) == 0
