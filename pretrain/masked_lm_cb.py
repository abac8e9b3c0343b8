"""The callback that turns each clean batch into the generator's masked-LM inputs."""
from __future__ import annotations

from typing import Sequence

import torch
from fastai.callback.core import Callback

from pretrain.config import setting
from pretrain.mask_tokens import MaskSpec, mask_slots, never_masked


class MaskedLMCallback(Callback):
    """Masks `(input_ids, sentA_lengths)` batches before the model sees them.

    For ELECTRA (`for_electra=True`) the model gets `(masked_inputs, sentA_lengths,
    is_mlm_applied, labels)` and the loss `(labels,)`. Masking is redrawn every batch
    (dynamic masking) on the batch's device. Passing `pad_tok_id` selects Google's exact count
    per row, capped at `max_predictions` (the config's; None: Google's `max_predictions_per_seq`
    of `max_length`, or of the batch's length); without it, each token is chosen independently
    with `mlm_probability`.
    """
    order = -1  # before the model runs, after the batch is on its device

    def __init__(self, mask_tok_id: int, special_tok_ids: Sequence[int], vocab_size: int,
                 mlm_probability: float = 0.15, replace_prob: float = 0.1, original_prob: float = 0.1,
                 ignore_index: int = -100, for_electra: bool = False, pad_tok_id: int | None = None,
                 max_length: int | None = None, exact_count: bool | None = None, max_predictions: int | None = None):
        if not 0 <= replace_prob + original_prob <= 1:
            raise ValueError(f"replace_prob + original_prob must be in [0, 1], got {replace_prob + original_prob}")
        if exact_count and pad_tok_id is None:
            raise ValueError("exact_count=True needs pad_tok_id to count each row's real tokens")
        # what it was built with, so gradient accumulation can rebuild it as AccumulationMaskedLM
        self.settings = dict(mask_tok_id=mask_tok_id, special_tok_ids=special_tok_ids, vocab_size=vocab_size,
                             mlm_probability=mlm_probability, replace_prob=replace_prob, original_prob=original_prob,
                             ignore_index=ignore_index, for_electra=for_electra, pad_tok_id=pad_tok_id,
                             max_length=max_length, exact_count=exact_count, max_predictions=max_predictions)
        self.mask_tok_id, self.special_tok_ids, self.vocab_size = mask_tok_id, list(special_tok_ids), vocab_size
        self.ignore_index, self.for_electra, self.pad_tok_id = ignore_index, for_electra, pad_tok_id
        exact_count = pad_tok_id is not None if exact_count is None else exact_count
        self.spec = MaskSpec(mlm_probability, mask_slots(mlm_probability, max_predictions, max_length),
                             replace_prob, original_prob, exact_count)

    @classmethod
    def from_config(cls, c, hf_tokenizer) -> MaskedLMCallback:
        """The recipe's masking for config `c`: ELECTRA's style (85% [MASK], 15% kept) or BERT's
        (80/10/10), Google's exact count per row capped at `c.max_predictions`, never masking
        [CLS] [SEP] [MASK] [PAD]. Under gradient accumulation `prepare_learner` swaps it for
        `AccumulationMaskedLM`, which masks a step's micro-batches together (pretrain/grad_accum.py)."""
        spec = MaskSpec.from_config(c)
        settings = dict(mask_tok_id=hf_tokenizer.mask_token_id, special_tok_ids=never_masked(hf_tokenizer),
                        vocab_size=len(hf_tokenizer), mlm_probability=spec.mask_prob, replace_prob=spec.replace_prob,
                        original_prob=spec.original_prob, for_electra=True, pad_tok_id=hf_tokenizer.pad_token_id,
                        max_length=setting(c, 'max_length'), exact_count=spec.exact_count,
                        max_predictions=spec.max_predictions)
        return cls(**settings)

    def before_batch(self) -> None:
        self.learn.xb, self.learn.yb = self.mask(*self.xb)

    def mask(self, input_ids: torch.Tensor, sentA_lengths: torch.Tensor) -> tuple[tuple, tuple]:
        """(xb, yb) of one clean batch, input_ids (B, L), sentA_lengths (B,): for ELECTRA
        xb = (masked_inputs (B, L), sentA_lengths, is_mlm_applied (B, L) bool, labels (B, L)),
        else (masked_inputs, sentA_lengths); yb = (labels,) with `ignore_index` where not masked."""
        if getattr(self, '_special', None) is None or self._special.device != input_ids.device:
            # built once per device: a host-to-device copy every step would be a sync
            self._special = torch.tensor(sorted(set(self.special_tok_ids)), device=input_ids.device)
        masked_inputs, labels, is_mlm_applied = self.spec.apply(input_ids, self.mask_tok_id, self.vocab_size,
                                                                self._special, self.pad_tok_id, self.ignore_index)
        if self.for_electra:
            return (masked_inputs, sentA_lengths, is_mlm_applied, labels), (labels,)
        return (masked_inputs, sentA_lengths), (labels,)
