"""Dynamic masking for the generator's masked-LM task, on the batch's device, no host sync."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from pretrain.config import max_predictions_per_seq, setting  # max_predictions_per_seq: the seed imported it from here


@dataclass(frozen=True)
class MaskSpec:
    """How a run masks its batches, derived once from the config and shared by the training
    callback, held-out evaluation and the benchmark: the fraction of real tokens chosen, the
    slots per row (Google's count is capped there, and the static path has exactly that many),
    what becomes of a chosen token (ELECTRA: 85% [MASK], 15% kept, none replaced; BERT:
    80/10/10), and whether each row gets Google's exact count or a Bernoulli draw per token."""
    mask_prob: float
    max_predictions: int | None  # None: Google's max_predictions_per_seq of the batch's length
    replace_prob: float
    original_prob: float
    exact_count: bool

    @classmethod
    def from_config(cls, c) -> MaskSpec:
        electra_style = setting(c, 'electra_mask_style')
        return cls(setting(c, 'mask_prob'), setting(c, 'max_predictions'), 0.0 if electra_style else 0.1,
                   0.15 if electra_style else 0.1, setting(c, 'exact_mask_count'))

    def apply(self, input_ids: torch.Tensor, mask_token_id: int, vocab_size: int, special_ids: torch.Tensor,
              pad_token_id: int | None, ignore_index: int = -100) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`mask_tokens` with this specification: input_ids (B, L) -> (masked inputs (B, L), labels
        (B, L), chosen positions (B, L) bool); `special_ids` (the never-masked ids, on the batch's
        device)."""
        return mask_tokens(input_ids, mask_token_id, vocab_size, special_ids, self.mask_prob, self.replace_prob,
                           self.original_prob, ignore_index, pad_token_index=pad_token_id, exact_count=self.exact_count,
                           max_predictions=mask_slots(self.mask_prob, self.max_predictions, input_ids.shape[1]))


def mask_slots(mask_prob: float, max_predictions: int | None, max_length: int | None) -> int | None:
    """Mask slots per row for a `MaskSpec`: `max_predictions` when set, else Google's
    `max_predictions_per_seq` for `max_length`; None when neither is known (the batch's length decides)."""
    return max_predictions or (max_predictions_per_seq(mask_prob, max_length) if max_length else None)


def never_masked(hf_tokenizer) -> list[int]:
    """Google's non-candidates: [CLS], [SEP], [MASK] and padding. Other special tokens ([UNK],
    [unusedN]) are real input and may be masked, as in the original."""
    return [hf_tokenizer.cls_token_id, hf_tokenizer.sep_token_id, hf_tokenizer.mask_token_id, hf_tokenizer.pad_token_id]


def choose_positions(inputs: torch.Tensor, candidates: torch.Tensor, num_real: torch.Tensor,
                     mlm_probability: float, max_predictions: int) -> torch.Tensor:
    """Google's rule: per row, max(1, min(N, round(num_real * p))) positions drawn uniformly
    without replacement among `candidates`.

    inputs (B, L) ids, candidates (B, L) bool, num_real (B,) count of non-pad tokens.
    Returns a (B, L) bool mask.
    """
    k = torch.round(num_real.float() * mlm_probability).clamp(1, max_predictions)
    k = torch.minimum(k, candidates.sum(1).float())
    # a random score per position, non-candidates last; the k lowest ranks are chosen
    scores = torch.rand(inputs.shape, device=inputs.device).masked_fill(~candidates, 2.0)
    ranks = scores.argsort(dim=1).argsort(dim=1)
    return ranks < k.unsqueeze(1)


def mask_tokens(inputs: torch.Tensor, mask_token_index: int, vocab_size: int,
                special_token_indices: Sequence[int] | torch.Tensor, mlm_probability: float = 0.15,
                replace_prob: float = 0.1, original_prob: float = 0.1, ignore_index: int = -100,
                pad_token_index: int | None = None, max_predictions: int | None = None,
                exact_count: bool = False,
                orginal_prob: float | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Choose positions to predict and corrupt them.

    Of the chosen positions, `replace_prob` get a random token, `original_prob` keep theirs and
    the rest become [MASK] (ELECTRA: 0 / 0.15 / 0.85; BERT: 0.1 / 0.1 / 0.8). Special tokens
    are never chosen.

    With `exact_count`, each row gets Google's fixed count (`choose_positions`, which needs
    `pad_token_index` and `max_predictions`); otherwise each token is chosen independently with
    probability `mlm_probability` (the usual PyTorch approximation).

    inputs: (B, L) token ids. Returns (masked inputs (B, L), labels (B, L) with `ignore_index`
    where not chosen, chosen positions (B, L) bool). `inputs` is not modified. `orginal_prob`,
    the seed's spelling, is still accepted for `original_prob`.
    """
    if orginal_prob is not None:
        original_prob = orginal_prob
    device = inputs.device
    special = (special_token_indices.to(device) if isinstance(special_token_indices, torch.Tensor)
               else torch.tensor(sorted(set(special_token_indices)), device=device))
    candidates = ~torch.isin(inputs, special)
    if exact_count:
        if pad_token_index is None or max_predictions is None:
            raise ValueError("exact_count masking needs pad_token_index and max_predictions")
        num_real = (inputs != pad_token_index).sum(1)
        mlm_mask = choose_positions(inputs, candidates, num_real, mlm_probability, max_predictions)
    else:
        mlm_mask = torch.bernoulli(torch.full(inputs.shape, mlm_probability, device=device)).bool() & candidates

    labels = inputs.masked_fill(~mlm_mask, ignore_index)
    # one uniform draw per position decides: [MASK], random token or original token
    u = torch.rand(inputs.shape, device=device)
    mask_prob = 1 - replace_prob - original_prob
    to_mask = mlm_mask & (u < mask_prob)
    to_random = mlm_mask & (u >= mask_prob) & (u < mask_prob + replace_prob)
    random_words = torch.randint(vocab_size, inputs.shape, device=device, dtype=inputs.dtype)
    masked = inputs.masked_fill(to_mask, mask_token_index)
    masked = torch.where(to_random, random_words, masked)
    return masked, labels, mlm_mask
