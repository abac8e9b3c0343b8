"""The seed notebook's training step, rebuilt here as the baseline of `python -m pretrain.tools.bench
--compare-seed`: the design the seed trains with, on the same synthetic batches and sizes as
our benchmark (`synthetic_examples`, `SyntheticVocab`), so that the ratio of the two is what this project's step bought.

    python -m pretrain.tools.bench_seed --size small --steps 200 --warmup 30 [--bs B] [--max_length L]
        [--vocab_size V] [--device D] [--num_workers N]

What the seed does, and this step does too (its costs, not its known bugs):
- a fastai `Learner` fed by a fastai `DataLoader` that reads rows one by one and pads each batch
  with `pad_sequence` on the host (the seed's MySortedDL);
- masking in a callback, on the device: each token masked with probability `mask_prob`
  (Bernoulli, so the count varies), special tokens spared, 85% [MASK] and 15% kept;
- token types built in Python from the first segments' lengths (`.tolist()`: a host sync);
- the generator's logits over the whole vocabulary at every position, the masked rows picked by
  boolean indexing, Gumbel-max sampling in fp32 with `torch.distributions.Gumbel`;
- fastai's `CrossEntropyLossFlat` for the generator, BCE-with-logits over the non-pad tokens for
  the discriminator, weights 1 and 50;
- fastai's per-parameter `Optimizer` (a chain of Python callbacks for every tensor): decoupled
  weight decay and Adam without bias correction, the linear warm-up and decay as a fastai
  `ParamScheduler`, fastai's default callbacks (Recorder, progress bar);
- fp16 autocast with a GradScaler (initial scale 2^11) on CUDA, fp32 elsewhere; clipping to a
  global norm of 1 (`_utils.gradient_clipping`, the seed's import).

Prints one line `RESULT {json}`: steps_per_s, ms_per_step, flops_per_step (one forward and
backward, counted by torch's FlopCounterMode), tflops_achieved, peak_mem_gb, warmup_s.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from functools import partial

import datasets
import numpy as np
import torch
from fastai.callback.core import Callback, CancelFitException
from fastai.callback.schedule import ParamScheduler
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.optimizer import Optimizer, average_grad, average_sqr_grad, step_stat, weight_decay
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from _utils.cli import run_command
from _utils.gradient_clipping import GradientClipping

from pretrain.config import electra_configs, get_config


class SyntheticVocab:
    """What both benchmarks need of a tokenizer, for a vocabulary of random ids (BERT's ids for
    the special tokens)."""
    pad_token_id, unk_token_id, cls_token_id, sep_token_id, mask_token_id = 0, 100, 101, 102, 103
    all_special_ids = [0, 100, 101, 102, 103]
    name_or_path = 'synthetic'

    def __init__(self, vocab_size: int = 30522):
        self.vocab_size = vocab_size

    def __len__(self) -> int:
        return self.vocab_size

    def get_vocab(self) -> dict[str, int]:
        return {f'[{i}]': i for i in range(self.vocab_size)}


def synthetic_examples(n: int, max_length: int, vocab_size: int, seed: int = 0) -> datasets.Dataset:
    """`n` full-length examples [CLS] A [SEP] B [SEP] of random ids: what both benchmarks step on
    (speed does not depend on the text)."""
    if vocab_size <= 104:
        raise ValueError(f"vocab_size must exceed the 104 ids kept for special tokens, got {vocab_size}")
    rng = np.random.default_rng(seed)
    ids = rng.integers(104, vocab_size, size=(n, max_length), dtype=np.int32)
    half = max_length // 2
    ids[:, 0], ids[:, half - 1], ids[:, -1] = 101, 102, 102
    return datasets.Dataset.from_dict({'input_ids': ids.tolist(), 'sentA_length': [half] * n})


class RowByRowLoader(DataLoader):
    """Batches as the seed's loader makes them: one dataset row per item, each batch padded on
    the host with `pad_sequence`. Yields (input_ids [B, L], first segment lengths [B])."""

    def __init__(self, dataset, pad_id: int, **kwargs):
        super().__init__(dataset, **kwargs)
        self.pad_id, self.n_inp = pad_id, 2  # fastai hands both tensors to the masking callback

    def create_item(self, i: int) -> tuple[torch.Tensor, int]:
        row = self.dataset[i]
        return torch.tensor(row['input_ids']), row['sentA_length']

    def create_batch(self, items: list) -> tuple[torch.Tensor, torch.Tensor]:
        ids, lengths = zip(*items)
        return pad_sequence(list(ids), batch_first=True, padding_value=self.pad_id), torch.tensor(lengths)


def bernoulli_masking(ids: torch.Tensor, mask_id: int, special_ids: list[int], mask_prob: float,
                      keep_prob: float = 0.15) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The seed's masking of `ids` [B, L]: each non-special token chosen with probability
    `mask_prob`; of those, all but a `keep_prob` share become [MASK]. Returns the masked ids,
    the labels (the original id where chosen, else -100) and the chosen positions, all [B, L]."""
    spared = torch.zeros_like(ids, dtype=torch.bool)
    for special in special_ids:  # one comparison per special id, as the seed writes it
        spared |= ids == special
    chosen = torch.bernoulli(torch.full(ids.shape, mask_prob, device=ids.device).masked_fill(spared, 0.0)).bool()
    labels = ids.clone()
    labels[~chosen] = -100
    to_mask = torch.bernoulli(torch.full(ids.shape, 1.0 - keep_prob, device=ids.device)).bool() & chosen
    masked = ids.clone()
    masked[to_mask] = mask_id
    return masked, labels, chosen


class BernoulliMasking(Callback):
    """Masks each batch before the forward; the model gets (masked ids, first segment lengths,
    chosen positions, labels) and the loss the labels."""

    def __init__(self, mask_id: int, special_ids: list[int], mask_prob: float):
        self.mask_id, self.special_ids, self.mask_prob = mask_id, special_ids, mask_prob

    def before_batch(self) -> None:
        ids, lengths = self.xb
        masked, labels, chosen = bernoulli_masking(ids, self.mask_id, self.special_ids, self.mask_prob)
        self.learn.xb, self.learn.yb = (masked, lengths, chosen, labels), (labels,)


class FullVocabELECTRA(nn.Module):
    """Generator and discriminator as the seed runs them: full-vocabulary generator logits at
    every position, then boolean indexing (a data-dependent shape, so a host sync)."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module, pad_id: int, device: torch.device):
        super().__init__()
        self.generator, self.discriminator, self.pad_id = generator, discriminator, pad_id
        self.gumbel = torch.distributions.gumbel.Gumbel(torch.tensor(0.0, device=device), torch.tensor(1.0, device=device))

    def forward(self, masked: torch.Tensor, lengths: torch.Tensor, chosen: torch.Tensor, labels: torch.Tensor):
        """masked, chosen, labels: [B, L]; lengths: [B]. Returns the chosen positions' generator
        logits [M, V], the ids with the generator's samples in [B, L], the discriminator's
        logits [B, L], which tokens were replaced [B, L], the non-pad mask [B, L] and `chosen`."""
        non_pad = masked != self.pad_id
        width = masked.shape[1]
        # token types from Python lists: the lengths come back to the host every step
        token_types = torch.tensor([[0] * n + [1] * (width - n) for n in lengths.tolist()], device=masked.device)
        logits = self.generator(masked, non_pad, token_types)[0]  # [B, L, V]: every position
        chosen_logits = logits[chosen, :]
        with torch.no_grad():
            sampled = (chosen_logits.float() + self.gumbel.sample(chosen_logits.shape)).argmax(dim=-1)
            generated = masked.clone()
            generated[chosen] = sampled
            replaced = chosen.clone()
            replaced[chosen] = sampled != labels[chosen]
        disc_logits = self.discriminator(generated, non_pad, token_types)[0]
        return chosen_logits, generated, disc_logits, replaced, non_pad, chosen


class WeightedLosses:
    """The generator's cross-entropy on the chosen positions plus `disc_weight` times the
    discriminator's BCE on the non-pad tokens."""

    def __init__(self, gen_weight: float = 1.0, disc_weight: float = 50.0):
        self.gen_weight, self.disc_weight = gen_weight, disc_weight
        self.gen_loss, self.disc_loss = CrossEntropyLossFlat(), nn.BCEWithLogitsLoss()

    def __call__(self, out: tuple, labels: torch.Tensor) -> torch.Tensor:
        chosen_logits, _, disc_logits, replaced, non_pad, chosen = out
        gen = self.gen_loss(chosen_logits.float(), labels[chosen])
        disc = self.disc_loss(disc_logits.masked_select(non_pad).float(), replaced.masked_select(non_pad).float())
        return self.gen_weight * gen + self.disc_weight * disc


def adam_step_uncorrected(p: torch.Tensor, lr: float, grad_avg: torch.Tensor, sqr_avg: torch.Tensor, eps: float,
                          **kwargs) -> torch.Tensor:
    """Adam's update without dividing the moving averages by 1 - beta^t (Google's optimizer)."""
    p.data.addcdiv_(grad_avg, sqr_avg.sqrt() + eps, value=-lr)
    return p


def per_parameter_adam(params, lr: float, wd: float = 0.01) -> Optimizer:
    """fastai's `Optimizer` with the seed's chain of per-tensor callbacks."""
    steppers = [weight_decay, partial(average_grad, dampening=True), average_sqr_grad, step_stat, adam_step_uncorrected]
    return Optimizer(params, steppers, lr=lr, mom=0.9, sqr_mom=0.999, eps=1e-6, wd=wd)


def warmup_then_decay(pct: float, lr: float, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up to `lr` over `warmup_steps`, linear decay to 0 at `total_steps`."""
    step = round(pct * total_steps)
    return lr * min(1.0, step / warmup_steps) * (1 - step / total_steps)


class TimedSteps(Callback):
    """Feeds the schedule the fraction of the recipe's steps done, times the steps after
    `warmup` (synchronising the device only at the two ends) and stops after `warmup + steps`."""
    order = ParamScheduler.order - 1

    def __init__(self, warmup: int, steps: int, total_steps: int):
        self.warmup, self.steps, self.total_steps = warmup, steps, total_steps

    def before_fit(self) -> None:
        self.t_start, self.t0, self.t1 = time.perf_counter(), None, None

    def before_batch(self) -> None:
        if self.training:
            self.learn.pct_train = self.learn.train_iter / self.total_steps

    def after_batch(self) -> None:
        if self.learn.train_iter == self.warmup:
            _sync()
            self.t0 = time.perf_counter()
        if self.learn.train_iter == self.warmup + self.steps:
            _sync()
            self.t1 = time.perf_counter()
            raise CancelFitException


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run_seed_step(size: str = 'small', steps: int = 200, warmup: int = 30, bs: int | None = None,
                  max_length: int | None = None, vocab_size: int = 30522, device: str | None = None,
                  num_workers: int | None = None) -> dict:
    """Time `steps` of the seed's step after `warmup` ones, on the synthetic examples and sizes
    of `pretrain.tools.bench.run_bench`; returns the figures as a dict."""
    if steps < 1 or warmup < 1:
        raise ValueError(f"steps and warmup must be at least 1, got {steps} and {warmup}")
    c = get_config(size, **{k: v for k, v in dict(bs=bs, max_length=max_length, device=device,
                                                    num_workers=num_workers).items() if v is not None})
    dev = torch.device(c.device)
    tok = SyntheticVocab(vocab_size)
    dset = synthetic_examples(c.bs * (warmup + steps), c.max_length, vocab_size, c.seed)
    torch.manual_seed(c.seed)
    torch.backends.cudnn.benchmark = True
    from transformers import ElectraForMaskedLM, ElectraForPreTraining
    disc_config, gen_config = electra_configs(c, tok)
    generator, discriminator = ElectraForMaskedLM(gen_config), ElectraForPreTraining(disc_config)
    discriminator.electra.embeddings = generator.electra.embeddings  # the seed's embedding sharing
    generator.generator_lm_head.weight = generator.electra.embeddings.word_embeddings.weight
    model = FullVocabELECTRA(generator, discriminator, tok.pad_token_id, dev)
    loader = RowByRowLoader(dset, tok.pad_token_id, bs=c.bs, shuffle=True, drop_last=True,
                            num_workers=c.num_workers, device=dev)
    timer = TimedSteps(warmup, steps, c.steps)
    masking = BernoulliMasking(tok.mask_token_id, tok.all_special_ids, c.mask_prob)
    cuda = dev.type == 'cuda'
    with tempfile.TemporaryDirectory() as tmp:
        learn = Learner(DataLoaders(loader, path=tmp), model, loss_func=WeightedLosses(),
                        opt_func=partial(per_parameter_adam, wd=0.01), cbs=[masking, timer])
        if cuda:
            learn.to_fp16(init_scale=2.0 ** 11)
            torch.cuda.reset_peak_memory_stats()
        learn.add_cb(GradientClipping(1.0))
        schedule = partial(warmup_then_decay, lr=c.lr, warmup_steps=c.warmup_steps, total_steps=c.steps)
        learn.fit(9999, cbs=[ParamScheduler({'lr': schedule})])
    seconds = timer.t1 - timer.t0
    flops = _step_flops(model, loader, masking, cuda)
    return {'device': torch.cuda.get_device_name(dev) if cuda else 'cpu', 'size': size, 'bs': c.bs,
            'max_length': c.max_length, 'vocab_size': vocab_size, 'precision': 'fp16' if cuda else 'fp32',
            'steps_per_s': steps / seconds, 'ms_per_step': 1000 * seconds / steps, 'flops_per_step': flops,
            'tflops_achieved': flops * steps / seconds / 1e12,
            'peak_mem_gb': torch.cuda.max_memory_allocated(dev) / 2**30 if cuda else None,
            'warmup_s': timer.t0 - timer.t_start}


def _step_flops(model: FullVocabELECTRA, loader: RowByRowLoader, masking: BernoulliMasking, cuda: bool) -> int:
    """FLOPs of one forward and backward of the model and loss on one batch."""
    from torch.utils.flop_counter import FlopCounterMode
    ids, lengths = next(iter(loader))
    masked, labels, chosen = bernoulli_masking(ids, masking.mask_id, masking.special_ids, masking.mask_prob)
    with FlopCounterMode(display=False) as counter:
        with torch.autocast('cuda', torch.float16, enabled=cuda):
            loss = WeightedLosses()(model(masked, lengths, chosen, labels), labels)
        loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog='python -m pretrain.tools.bench_seed', description=__doc__.split('\n\n')[0])
    p.add_argument('--size', default='small', help='the architecture and batch of this recipe (default: small)')
    p.add_argument('--steps', type=int, default=200, help='timed steps (default: 200)')
    p.add_argument('--warmup', type=int, default=30, help='steps before the timing starts (default: 30)')
    p.add_argument('--bs', type=int, help="batch size (default: the size's)")
    p.add_argument('--max_length', type=int, help="tokens per row (default: the size's)")
    p.add_argument('--vocab_size', type=int, default=30522, help='vocabulary of the random ids (default: 30522)')
    p.add_argument('--device', help='default: cuda:0 when CUDA is available, else cpu')
    p.add_argument('--num_workers', type=int, help='dataloader workers (default: 3, at most the CPU count)')
    args = p.parse_args(argv)
    def run() -> int:
        r = run_seed_step(args.size, args.steps, args.warmup, args.bs, args.max_length, args.vocab_size, args.device,
                          args.num_workers)
        print('RESULT ' + json.dumps(r))
        return 0
    return run_command(run)


if __name__ == '__main__':
    sys.exit(main())
