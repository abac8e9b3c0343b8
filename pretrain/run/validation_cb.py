"""Held-out evaluation during pre-training: every N steps, the generator's and discriminator's
metrics on a fixed validation set, with a fixed mask and a fixed sampling seed, so the curve
moves only when the weights do."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import datasets
import numpy as np
import torch
from fastai.callback.core import Callback

from pretrain._utils.steps import optimizer_step, step_done
from pretrain.run.distributed import rank, unwrap
from pretrain.get_dataloaders import pad_batch
from pretrain.run.log_cb import MLM_VALID_COLUMNS, VALID_COLUMNS, CSVLogger, start_csv
from pretrain.mask_tokens import MaskSpec, mask_slots, never_masked
from pretrain.models import gen_logits_at_masks, pad_mask_and_token_types
from pretrain.run.metrics import (disc_accuracy, disc_auc, disc_loss, mean_pairwise_cosine, mlm_accuracy, mlm_loss,
                      replaced_precision_recall)
from _utils.rng import isolated_rng
from pretrain.run.run_dir import RunDir

HEALTH_ROWS = 64


def valid_columns(model: torch.nn.Module) -> list[str]:
    """The held-out log's columns for a model: `VALID_COLUMNS` for ELECTRA, `MLM_VALID_COLUMNS`
    for the MLM baseline."""
    return VALID_COLUMNS if 'discriminator' in unwrap(model).PARTS else MLM_VALID_COLUMNS


def split_validation(dset: datasets.Dataset, n_or_fraction: int | float, seed: int = 0) -> tuple[datasets.Dataset, datasets.Dataset]:
    """(train, valid) from a processed dataset, split by document: whole documents, taken in a
    random order drawn from `seed`, are held out until they hold at least `n_or_fraction`
    examples (a count, or a fraction in (0, 1) of all examples). No document has examples on
    both sides; both sides keep the dataset's order.

    Documents are the runs of equal `doc_id` (the column `ELECTRADataProcessor` writes), so
    corpora concatenated after processing (each numbering its documents from 0) split correctly.
    """
    n_total = len(dset)
    if isinstance(n_or_fraction, bool) or not isinstance(n_or_fraction, (int, float)):
        raise ValueError(f"valid size must be a count or a fraction in (0, 1), got {n_or_fraction!r}")
    if isinstance(n_or_fraction, float):
        if not 0 < n_or_fraction < 1:
            raise ValueError(f"a valid fraction must be in (0, 1), got {n_or_fraction}; pass an int for a count")
        n_valid = max(1, round(n_or_fraction * n_total))
    else:
        n_valid = n_or_fraction
    if not 1 <= n_valid < n_total:
        raise ValueError(f"cannot hold out {n_valid} of {n_total} examples: keep at least one for each of "
                         f"training and validation (use a smaller valid size or a bigger corpus)")
    if 'doc_id' not in dset.column_names:
        raise ValueError("the dataset has no doc_id column, so whole documents cannot be held out; "
                         "build it with ELECTRADataProcessor (pretrain.train.preprocess)")
    doc_ids = dset.select_columns(['doc_id']).with_format('numpy')[:]['doc_id']  # one column, not the examples
    starts = np.flatnonzero(np.r_[True, doc_ids[1:] != doc_ids[:-1]])  # first example of each document
    sizes = np.diff(np.r_[starts, n_total])
    order = np.random.default_rng(seed).permutation(len(starts))
    # documents, in the seeded order, until the held-out examples reach n_valid
    n_docs = int(np.searchsorted(np.cumsum(sizes[order]), n_valid)) + 1
    if n_docs >= len(starts):
        raise ValueError(f"cannot hold out {n_valid} of {n_total} examples as whole documents: the examples come "
                         f"from {len(starts)} document(s) and one must stay for training (use a smaller valid size "
                         f"or a corpus with more documents; a .txt corpus needs a blank line between documents)")
    held_out = np.zeros(len(starts), dtype=bool)
    held_out[order[:n_docs]] = True
    is_valid = np.repeat(held_out, sizes)
    print(f"held out {int(is_valid.sum())} examples from {n_docs} whole documents (asked {n_valid}); "
          f"{n_total - int(is_valid.sum())} examples from {len(starts) - n_docs} documents for training")
    return dset.select(np.flatnonzero(~is_valid)), dset.select(np.flatnonzero(is_valid))


class HeldOutEval(Callback):
    """Evaluates `learn.model` (an `ELECTRAModel`) on `valid_dset` (columns `input_ids`,
    `sentA_length`) every `every` training steps and once more at the end of the fit, appending
    a row of `VALID_COLUMNS` to `csv_path` (started afresh at the start of fit) and logging the
    same values to `wandb_run` (keys `valid/...`) if given.

    The masked inputs are drawn once, from `seed`, and reused; the generator's sampling is
    reseeded from `seed` at every evaluation: two evaluations of the same weights give the same
    numbers. Evaluation runs in eval mode, without gradients, in fp32, and restores the
    model's mode and the global RNG states afterwards. Losses carry no label smoothing. Under
    torch.distributed only rank 0 evaluates and writes.

    Mask settings are `MaskedLMCallback`'s (ELECTRA style by default: 85% [MASK], 15% kept;
    `exact_count` with Google's per-row count).
    """
    # before CSVLogger, whose after_fit finishes a shared W&B run (and so before RunSteps, which
    # ends the fit from after_batch at the last step)
    order = CSVLogger.order - 5

    def __init__(self, valid_dset: datasets.Dataset, every: int, hf_tokenizer, csv_path: str | Path,
                 mask_prob: float = 0.15, replace_prob: float = 0.0, original_prob: float = 0.15,
                 exact_count: bool = True, max_length: int | None = None, bs: int = 32, seed: int = 0,
                 wandb_run=None, max_predictions: int | None = None):
        missing = {'input_ids', 'sentA_length'} - set(valid_dset.column_names)
        if missing:
            raise ValueError(f"the validation set lacks column(s) {', '.join(sorted(missing))}; "
                             f"build it with ELECTRADataProcessor and split_validation")
        if len(valid_dset) == 0:
            raise ValueError("the validation set is empty; hold out at least one example")
        for name, value in (('every', every), ('bs', bs)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0 < mask_prob < 1:
            raise ValueError(f"mask_prob must be in (0, 1), got {mask_prob!r}")
        if not 0 <= replace_prob + original_prob <= 1:
            raise ValueError(f"replace_prob + original_prob must be in [0, 1], got {replace_prob + original_prob}")
        self.valid_dset, self.every, self.csv_path, self.wandb_run = valid_dset, every, Path(csv_path), wandb_run
        self.mask_tok_id, self.pad_tok_id = hf_tokenizer.mask_token_id, hf_tokenizer.pad_token_id
        self.special_tok_ids, self.vocab_size = never_masked(hf_tokenizer), len(hf_tokenizer)
        self.max_length, self.bs, self.seed = max_length, bs, seed
        # the training callback's masking; max_predictions None: Google's count for max_length
        self.spec = MaskSpec(mask_prob, mask_slots(mask_prob, max_predictions, max_length),
                             replace_prob, original_prob, exact_count)
        self.masked_batches: list[tuple[torch.Tensor, ...]] | None = None
        self.last_step: int | None = None

    @classmethod
    def from_config(cls, c, valid_dset: datasets.Dataset, hf_tokenizer, csv_path: str | Path | None = None,
                    every: int | None = None, wandb_run=None) -> 'HeldOutEval':
        """The evaluation matching a run config: its masking, batch size, seed and max length;
        every `every` (default `c.eval_every`) steps; logging to `{checkpoint_dir}/{run_name}_valid.csv`."""
        every = every if every is not None else c.get('eval_every')
        if every is None:
            raise ValueError("held-out evaluation needs eval_every (steps between evaluations) in the config")
        if csv_path is None:
            csv_path = RunDir.from_config(c).valid_csv
        spec = MaskSpec.from_config(c)  # the training callback's masking
        return cls(valid_dset, every, hf_tokenizer, csv_path, mask_prob=spec.mask_prob, replace_prob=spec.replace_prob,
                   original_prob=spec.original_prob, exact_count=spec.exact_count, max_length=c.max_length, bs=c.bs,
                   seed=c.seed or 0, wandb_run=wandb_run, max_predictions=spec.max_predictions)

    # ---- fastai events -----------------------------------------------------------------
    def state_dict(self) -> dict:
        return {}  # nothing to carry: the mask is rebuilt from the seed

    def load_state_dict(self, state: dict) -> None:
        self.resumed = True

    def before_fit(self) -> None:
        self.last_step = None
        self.columns = valid_columns(self.learn.model)
        if rank() == 0:  # when resuming, keep the rows up to the checkpoint's step
            start_csv(self.csv_path, self.columns, optimizer_step(self.learn) if getattr(self, 'resumed', False) else None)
        self.resumed = False

    def after_batch(self) -> None:
        step = step_done(self.learn)
        if step is not None and step % self.every == 0:
            self.evaluate_and_log()

    def after_fit(self) -> None:
        if self.last_step != optimizer_step(self.learn):  # the final weights, unless just evaluated
            self.evaluate_and_log()

    def evaluate_and_log(self) -> None:
        if rank() == 0:  # the replicas hold the same weights
            # the module inside a DistributedDataParallel wrapper: its forward would wait for the other processes
            model = unwrap(self.learn.model)
            self.write_row(optimizer_step(self.learn), self.evaluate(model))
        self.last_step = optimizer_step(self.learn)

    # ---- evaluation --------------------------------------------------------------------
    def build_masked_batches(self) -> list[tuple[torch.Tensor, ...]]:
        """The validation set as CPU batches (masked_inputs (B, L), sentA_length (B,),
        is_mlm_applied (B, L), labels (B, L)), in dataset order, masked once from `seed`."""
        arrow = self.valid_dset.with_format('arrow')
        batches = []
        with isolated_rng(self.seed):
            for start in range(0, len(self.valid_dset), self.bs):
                input_ids, sentA = pad_batch(arrow[start:start + self.bs], self.pad_tok_id, self.max_length)
                masked, labels, is_mlm = self.spec.apply(input_ids, self.mask_tok_id, self.vocab_size,
                                                         torch.tensor(self.special_tok_ids), self.pad_tok_id)
                batches.append((masked, sentA, is_mlm, labels))
        return batches

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        """Metrics of `model` (an `ELECTRAModel`, or the MLM baseline's `MLMModel`) over the whole
        validation set: every column of `valid_columns(model)` but `step`."""
        if self.masked_batches is None:
            self.masked_batches = self.build_masked_batches()
        device = next(model.parameters()).device
        electra = 'discriminator' in model.PARTS
        was_training = model.training
        model.eval()
        gen_sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss * M, accuracy * M, M
        disc_logits, replaced = [], []
        try:
            with isolated_rng(self.seed):
                for batch in self.masked_batches:
                    masked, sentA, is_mlm, labels = (t.to(device) for t in batch)
                    out = model(masked, sentA, is_mlm, labels)  # an ElectraOutput (MLMOutput)
                    gen_logits, targets = gen_logits_at_masks(out.mlm_gen_logits, is_mlm), labels[is_mlm]
                    if targets.numel():  # a batch of very short rows may have nothing masked
                        n = torch.tensor(float(targets.numel()), dtype=torch.float64, device=device)
                        gen_sums += torch.stack([mlm_loss(gen_logits, targets) * n, mlm_accuracy(gen_logits, targets) * n, n])
                    if electra:
                        disc_logits.append(out.disc_logits[out.attention_mask].float())
                        replaced.append(out.is_replaced[out.attention_mask])
            cosine = self.token_cosine(model.finetuned_encoder, device)
        finally:
            model.train(was_training)
        loss_sum, acc_sum, n_masked = gen_sums.tolist()
        metrics = {'gen_loss': loss_sum / n_masked if n_masked else math.nan,
                   'gen_acc': acc_sum / n_masked if n_masked else math.nan, 'token_cosine': cosine}
        if electra:
            logits, replaced = torch.cat(disc_logits).cpu(), torch.cat(replaced).cpu()
            precision, recall = replaced_precision_recall(logits, replaced)
            metrics.update({'disc_loss': disc_loss(logits, replaced).item(),
                            'disc_acc': disc_accuracy(logits, replaced).item(),
                            'disc_precision': precision.item(), 'disc_recall': recall.item(),
                            'disc_auc': disc_auc(logits, replaced), 'replaced_rate': replaced.float().mean().item()})
        return metrics

    def token_cosine(self, encoder: torch.nn.Module, device: torch.device) -> float:
        """The representation-health signal: the mean cosine between the token states (the
        encoder's last layer, every non-pad token) of the first `HEALTH_ROWS` held-out rows, read
        unmasked. A fine-tuning head reads these states; when they collapse towards one direction
        it has little left to tell inputs apart."""
        states, rows = [], 0
        for masked, sentA, is_mlm, labels in self.masked_batches:
            take = min(len(masked), HEALTH_ROWS - rows)
            if take <= 0:
                break
            ids = torch.where(is_mlm[:take], labels[:take], masked[:take]).to(device)  # the original text
            attention_mask, token_type_ids = pad_mask_and_token_types(ids, sentA[:take].to(device), self.pad_tok_id)
            hidden = encoder(ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
            states.append(hidden[attention_mask].float())
            rows += take
        return mean_pairwise_cosine(torch.cat(states))

    def write_row(self, step: int, metrics: dict[str, float]) -> None:
        columns = getattr(self, 'columns', VALID_COLUMNS)
        with self.csv_path.open('a', newline='') as f:
            csv.writer(f).writerow([step] + [f'{metrics[k]:.6f}' for k in columns[1:]])
        if self.wandb_run is not None:
            self.wandb_run.log({f'valid/{k}': v for k, v in metrics.items()}, step=step)

