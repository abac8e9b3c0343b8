"""Training FLOPs of one optimizer step, counted, not estimated: torch's `FlopCounterMode` over
a forward and backward of the real model and loss on one row of fake tensors (shapes only: no
arithmetic, no memory, no draw from any RNG, no gradient left on the weights). ELECTRA and the
MLM baseline are counted the same way, so their runs compare at equal compute (the paper's
x-axis)."""
from __future__ import annotations

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils.flop_counter import FlopCounterMode

from pretrain.run.distributed import unwrap


def row_flops(model: torch.nn.Module, max_length: int, n_slots: int) -> int:
    """FLOPs of the forward and backward of `model` (an `ELECTRAModel` or `MLMModel`, or one
    inside a DistributedDataParallel wrapper) on one row of `max_length` tokens with `n_slots` mask
    slots (Google's `max_predictions_per_seq`: the generator's output layer runs on that many
    positions per row). Per-row costs add up, so a batch costs `bs` times this.

    The backward starts from the sum of the outputs that carry a gradient rather than from the
    loss: the counter counts matrix products and attention, the loss adds none, and its gradient
    reaches the logits as densely, so the count is the same without calling (or changing the state
    of) the run's loss object."""
    model = unwrap(model)
    saved_slots = model.max_predictions
    model.max_predictions = n_slots  # the static path: the count needs shapes that do not depend on data
    try:
        # attention as the matrix products it is: torch's counter has no formula for the fused CPU
        # kernel that SDPA picks without dropout, so a run with dropout 0 lost its attention FLOPs
        with FakeTensorMode(allow_non_fake_inputs=True), sdpa_kernel(SDPBackend.MATH), \
                FlopCounterMode(display=False) as counter:
            ids = torch.full((1, max_length), model.pad_token_id + 1, dtype=torch.long)
            is_mlm = torch.zeros(1, max_length, dtype=torch.bool)
            labels = torch.full((1, max_length), -100, dtype=torch.long)
            # the class's forward: eager even when `compile` has replaced the instance's
            out = type(model).forward(model, ids, torch.tensor([max_length // 2]), is_mlm, labels)
            params = [p for p in model.parameters() if p.requires_grad]
            surrogate = sum(t.float().sum() for t in out if t.requires_grad)
            # autograd.grad, not backward: the fake gradients must not land in the weights' .grad
            torch.autograd.grad(surrogate, params, allow_unused=True)
    finally:
        model.max_predictions = saved_slots
    return counter.get_total_flops()


def config_step_flops(model: torch.nn.Module, c) -> int:
    """FLOPs of one optimizer step of `model` under config `c` (a mapping: `bs` rows of `max_length`
    with `max_predictions` mask slots each)."""
    return c['bs'] * row_flops(model, c['max_length'], c['max_predictions'])


def flops_per_step(learn) -> int | None:
    """FLOPs of one optimizer step of a pre-training `Learner` (`bs` rows of `max_length`, all
    micro-batches and processes together), counted once and kept on the learner; None when it has
    no recorded config (`prepare_learner` records it)."""
    c = getattr(learn, 'config', None)
    if not c:
        return None
    if getattr(learn, 'flops_per_step', None) is None:
        learn.flops_per_step = config_step_flops(learn.model, c)
    return learn.flops_per_step
