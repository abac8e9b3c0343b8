"""Held-out pre-training metrics as pure functions on tensors: the generator's masked-LM
accuracy and loss, the discriminator's accuracy, loss, precision / recall of the "replaced"
class and ROC-AUC.

Discriminator functions take (B, L) tensors with a (B, L) bool `non_pad` mask, or flat (N,)
tensors with `non_pad=None` (every position counts). A ratio with an empty denominator (no
masked position, no predicted or actual "replaced" token, one class only for AUC) is nan:
undefined, not 0.
"""
from __future__ import annotations

import math

import torch

from pretrain.models import ElectraOutput, gen_logits_at_masks
import torch.nn.functional as F


def _check_same_shape(**tensors: torch.Tensor) -> None:
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"shapes differ: {shapes}; pass tensors of one shape")


def _select(values: torch.Tensor, targets: torch.Tensor, non_pad: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat (N,) values and bool targets at the non-pad positions."""
    if non_pad is None:
        _check_same_shape(values=values, targets=targets)
        return values.reshape(-1), targets.reshape(-1).bool()
    _check_same_shape(values=values, targets=targets, non_pad=non_pad)
    non_pad = non_pad.bool()
    return values[non_pad], targets.bool()[non_pad]


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    num, den = num.double(), den.double()
    return num / den if den > 0 else torch.tensor(math.nan, dtype=torch.float64)


def mlm_accuracy(gen_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Fraction of masked positions whose most likely token is the original one.

    gen_logits (M, V) at the M masked positions (`ELECTRAModel`'s first output), targets (M,)
    the original ids there (`labels[is_mlm_applied]`). nan when M == 0.
    """
    if gen_logits.ndim != 2 or targets.shape != gen_logits.shape[:1]:
        raise ValueError(f"gen_logits must be (M, V) and targets (M,), got {tuple(gen_logits.shape)} and "
                         f"{tuple(targets.shape)}")
    return _ratio((gen_logits.argmax(-1) == targets).sum(), torch.tensor(targets.numel()))


def mlm_loss(gen_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Generator cross-entropy, mean over the M masked positions: gen_logits (M, V), targets (M,).
    nan when M == 0."""
    if gen_logits.ndim != 2 or targets.shape != gen_logits.shape[:1]:
        raise ValueError(f"gen_logits must be (M, V) and targets (M,), got {tuple(gen_logits.shape)} and "
                         f"{tuple(targets.shape)}")
    if targets.numel() == 0:
        return torch.tensor(math.nan, dtype=torch.float64)
    return F.cross_entropy(gen_logits.float(), targets).double()


def disc_loss(disc_logits: torch.Tensor, is_replaced: torch.Tensor, non_pad: torch.Tensor | None = None) -> torch.Tensor:
    """Discriminator sigmoid cross-entropy, mean over non-pad tokens (no label smoothing).

    disc_logits, is_replaced (and non_pad): (B, L), or flat (N,) without non_pad."""
    logits, targets = _select(disc_logits, is_replaced, non_pad)
    if targets.numel() == 0:
        return torch.tensor(math.nan, dtype=torch.float64)
    return F.binary_cross_entropy_with_logits(logits.float(), targets.float()).double()


def disc_accuracy(disc_logits: torch.Tensor, is_replaced: torch.Tensor, non_pad: torch.Tensor | None = None) -> torch.Tensor:
    """Fraction of non-pad tokens where (logit > 0) equals `is_replaced`; shapes as `disc_loss`."""
    logits, targets = _select(disc_logits, is_replaced, non_pad)
    return _ratio(((logits > 0) == targets).sum(), torch.tensor(targets.numel()))


def replaced_precision_recall(disc_logits: torch.Tensor, is_replaced: torch.Tensor,
                              non_pad: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(precision, recall) of the "replaced" class, predicted where logit > 0; shapes as
    `disc_loss`. Precision is nan when nothing is predicted replaced, recall when nothing is."""
    logits, targets = _select(disc_logits, is_replaced, non_pad)
    predicted = logits > 0
    true_pos = (predicted & targets).sum()
    return _ratio(true_pos, predicted.sum()), _ratio(true_pos, targets.sum())


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """1-based ranks of a flat tensor (N,), tied values sharing the mean of their ranks
    (float64, (N,)): [10, 20, 20, 30] -> [1, 2.5, 2.5, 4]."""
    if values.ndim != 1:
        raise ValueError(f"average_ranks needs a flat (N,) tensor, got shape {tuple(values.shape)}")
    order = values.argsort(stable=True)
    _, group, counts = torch.unique_consecutive(values[order], return_inverse=True, return_counts=True)
    last = counts.cumsum(0).double()  # rank of the last member of each group of equal values
    group_rank = last - (counts.double() - 1) / 2  # mean of first..last
    ranks = torch.empty(values.numel(), dtype=torch.float64, device=values.device)
    ranks[order] = group_rank[group]
    return ranks


def roc_auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the ROC curve of `scores` (N,) for bool `labels` (N,), by the Mann-Whitney
    rank sum: the chance a random positive scores above a random negative, ties counting 1/2.
    nan when only one class is present."""
    scores, labels = scores.reshape(-1), labels.reshape(-1).bool()
    if scores.shape != labels.shape:
        raise ValueError(f"scores and labels differ in size: {scores.numel()} vs {labels.numel()}")
    if torch.isnan(scores).any():
        raise ValueError("scores contain nan; the model's logits diverged")
    n_pos = int(labels.sum())
    n_neg = labels.numel() - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    rank_sum = average_ranks(scores.double())[labels].sum().item()
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def disc_auc(disc_logits: torch.Tensor, is_replaced: torch.Tensor, non_pad: torch.Tensor | None = None) -> float:
    """ROC-AUC of the discriminator's logits for "replaced" over non-pad tokens; shapes as `disc_loss`."""
    logits, targets = _select(disc_logits, is_replaced, non_pad)
    return roc_auc(logits, targets)


def mean_pairwise_cosine(states: torch.Tensor) -> float:
    """Mean cosine similarity over all pairs of distinct rows of `states` (N, H): 1 when every
    state points one way (collapsed), near 0 for random directions. Exact and O(N * H): with unit
    rows u, the sum over all pairs is |sum u|^2 - N. nan for fewer than 2 rows."""
    n = states.shape[0]
    if states.ndim != 2:
        raise ValueError(f"states must be (N, H), got shape {tuple(states.shape)}")
    if n < 2:
        return math.nan
    total = F.normalize(states.double(), dim=-1).sum(0)
    return ((total @ total - n) / (n * (n - 1))).item()


def electra_metrics(pred: tuple, labels: torch.Tensor) -> dict[str, float]:
    """Every metric of one `ELECTRAModel` forward: `pred` is its output tuple (gen logits (M, V),
    generated (B, L), disc logits (B, L), is_replaced (B, L), non_pad (B, L), is_mlm_applied
    (B, L)), `labels` (B, L) the original ids at masked positions.

    Returns gen_loss, disc_loss, gen_acc, disc_acc, disc_precision, disc_recall, disc_auc.
    """
    pred = ElectraOutput(pred)
    disc_logits, is_replaced, non_pad = pred.disc_logits, pred.is_replaced, pred.attention_mask
    gen_logits, targets = gen_logits_at_masks(pred.mlm_gen_logits, pred.is_mlm_applied), labels[pred.is_mlm_applied]
    precision, recall = replaced_precision_recall(disc_logits, is_replaced, non_pad)
    return {'gen_loss': mlm_loss(gen_logits, targets).item(),
            'disc_loss': disc_loss(disc_logits, is_replaced, non_pad).item(),
            'gen_acc': mlm_accuracy(gen_logits, targets).item(),
            'disc_acc': disc_accuracy(disc_logits, is_replaced, non_pad).item(),
            'disc_precision': precision.item(), 'disc_recall': recall.item(),
            'disc_auc': disc_auc(disc_logits, is_replaced, non_pad)}
