"""Exact gradient accumulation: `grad_accum` k micro-batches per optimizer step give the
gradient of one batch holding all their rows.

ELECTRA's loss is a mean over masked positions (generator) plus a mean over non-pad tokens
(discriminator). The average of k micro-batch means is not the mean over the step's batch when
the micro-batches hold different numbers of masked or real tokens, so each micro-batch's sums
must be divided by the counts of the *whole step*, known before its first backward. As Hugging
Face's Trainer (`num_items_in_batch`), the step's micro-batches are read ahead: `LookAhead`
hands fastai the micro-batches one by one while showing the whole group, and
`AccumulationMaskedLM` masks the whole group at its first micro-batch. Masking is random (and
with the Bernoulli style so is the number of masked tokens), so the counts exist only once the
masks are drawn: drawing them all first makes the counts exact in both mask styles and on the
static-shape path. fastai keeps the loop: its `GradientAccumulation` divides each micro-batch's
loss by k and steps (clipping, loss scaling) every k micro-batches.

The denominators given to the loss are the step's totals over micro-batches and ranks divided
by k * world size (the mean count of one micro-batch on one rank), so averaging over
micro-batches (loss / k) and over ranks (DDP) gives exactly the mean over the whole step, as
`models.global_counts` does for ranks alone. Each micro-batch's logged loss is then on the
scale of a mean and the mean of the k logged losses is the step's loss.
"""
from __future__ import annotations

from itertools import islice
from typing import Iterator

import torch
from fastai.callback.training import GradientAccumulation
from fastai.torch_core import to_device

from pretrain.masked_lm_cb import MaskedLMCallback
from pretrain.models import global_counts, loss_counts
from pretrain.run.distributed import unwrap


class LookAhead:
    """A training loader read `k` batches at a time. Iterating yields its batches one by one;
    while a batch is out, `group` holds the k batches of its step and `index` its place there.

    The batches of an epoch's end that do not fill a step are dropped, as `drop_last` drops a
    partial batch (every step has k micro-batches, and with k micro-batches of bs / k rows the
    rows trained on are those of the k = 1 run)."""

    def __init__(self, dl, k: int):
        self.dl, self.k = dl, k
        self.group: list = []
        self.index = 0

    def __len__(self) -> int:
        return len(self.dl) // self.k * self.k

    def __iter__(self) -> Iterator:
        batches = iter(self.dl)
        while len(group := list(islice(batches, self.k))) == self.k:
            self.group = group
            for self.index, batch in enumerate(group):
                yield batch


class AccumulationMaskedLM(MaskedLMCallback):
    """`MaskedLMCallback` for `k` micro-batches per optimizer step (ELECTRA only): it masks a
    step's micro-batches together at the first one and gives each micro-batch the loss
    denominators of the whole step: yb = (labels (B, L), counts (2,)), which `ELECTRALoss` takes
    as its `counts`. Use it with fastai's `GradientAccumulation` (loss / k, a step every k)."""

    def __init__(self, k: int, **kwargs):
        if k < 2:
            raise ValueError(f"AccumulationMaskedLM is for 2 or more micro-batches per step, got {k}; use MaskedLMCallback")
        super().__init__(**kwargs)
        if not self.for_electra:
            raise ValueError("AccumulationMaskedLM needs for_electra=True: only ELECTRALoss takes a step's counts")
        self.k = k
        self.masked: list[tuple[tuple, tuple]] = []
        self.counts: torch.Tensor | None = None

    def before_train(self) -> None:
        # fastai has just set learn.dl to the training loader; it iterates whatever learn.dl is
        self.learn.dl = LookAhead(self.learn.dl, self.k)

    def before_batch(self) -> None:
        dl = self.learn.dl
        if not self.training or not isinstance(dl, LookAhead):
            return super().before_batch()  # evaluation: one batch at a time, its own counts
        if dl.index == 0:  # ResumeCallback (order -5) has already restored the RNGs
            self.masked = [self.mask(*batch) for batch in to_device(dl.group, self.xb[0].device)]
            model = unwrap(self.learn.model)
            total = sum(loss_counts(xb[2], xb[0] != model.pad_token_id, model.n_slots(xb[0].shape[1]))
                        for xb, _ in self.masked)
            self.counts = global_counts(total) / self.k  # one all-reduce per step under DDP
        xb, yb = self.masked[dl.index]
        self.learn.xb, self.learn.yb = xb, (*yb, self.counts)


def accumulate(learn, k: int):
    """Make `learn` take `k` micro-batches per optimizer step, the one place that decides it:
    `learn.grad_accum` (every step count is in optimizer steps: pretrain/_utils/steps.py), its
    `MaskedLMCallback` rebuilt as `AccumulationMaskedLM` with the same settings, and fastai's
    `GradientAccumulation` (loss / k per micro-batch, a step every k). Returns `learn`."""
    learn.grad_accum = k
    if k > 1:
        for cb in [cb for cb in learn.cbs if type(cb) is MaskedLMCallback]:
            learn.remove_cb(cb)
            learn.add_cb(AccumulationMaskedLM(k, **cb.settings))
        learn.add_cb(GradientAccumulation(n_acc=learn.dls.train.bs * k))
    return learn
