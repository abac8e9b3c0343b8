"""Gradient accumulation: k micro-batches per optimizer step give the gradient and the step of
one big batch of the same rows, even when the micro-batches hold unequal numbers of masked and
real tokens; every step count (schedule, stop, log, checkpoints) is in optimizer steps."""
import datasets
import numpy as np
import pytest
import torch
from fastai.callback.core import Callback
from fastai.callback.progress import ProgressCallback
from fastai.callback.training import GradientAccumulation
from fastai.data.core import DataLoaders

import pretrain.mask_tokens as mask_tokens
import pretrain.train as train
from pretrain.tools.bench import SyntheticVocab
from pretrain.run.checkpoint import resume
from pretrain.config import get_config
from pretrain.get_dataloaders import get_dataloader
from pretrain.grad_accum import AccumulationMaskedLM, LookAhead
from pretrain.run.log_cb import read_log
from pretrain.models import ELECTRAModel, loss_counts
from pretrain.scheduler import StepScheduler, lr_at

PAD, VOCAB, L = 0, 500, 64


def varied_examples(n: int, seed: int = 0) -> datasets.Dataset:
    """`n` examples [CLS] A [SEP] B [SEP] of random ids and random lengths (12 to L tokens), so
    batches hold unequal numbers of real tokens."""
    rng = np.random.default_rng(seed)
    rows, sentA = [], []
    for length in rng.integers(12, L + 1, size=n):
        ids = rng.integers(104, VOCAB, size=int(length))
        ids[0], ids[length // 2 - 1], ids[-1] = 101, 102, 102
        rows.append(ids.tolist())
        sentA.append(int(length) // 2)
    return datasets.Dataset.from_dict({'input_ids': rows, 'sentA_length': sentA})


def content_mask(inputs, mask_token_index, vocab_size, special_token_indices, *args, **kwargs):
    """Positions chosen by token and place, not by the RNG: a row gets the same mask in a big
    batch and in a micro-batch, and rows get unequal counts."""
    positions = torch.arange(inputs.shape[1])[None]
    chosen = ~torch.isin(inputs, special_token_indices) & ((inputs * 7 + positions) % 5 == 0)
    return inputs.masked_fill(chosen, mask_token_index), inputs.masked_fill(~chosen, -100), chosen


class Record(Callback):
    """The masked micro-batches and the loss's denominators of every batch, and the gradients
    of the first step as the optimizer gets them (before clipping)."""
    order = GradientAccumulation.order + 1  # before_step: reached only at a step's last micro-batch

    def before_fit(self) -> None:
        self.xbs, self.counts, self.grads = [], [], None

    def before_batch(self) -> None:  # after the masking callback (order -1)
        self.xbs.append(self.xb)
        self.counts.append(self.yb[1] if len(self.yb) > 1 else None)

    def before_step(self) -> None:
        if self.grads is None:
            self.grads = {n: p.grad.clone() for n, p in self.learn.model.named_parameters() if p.grad is not None}


def deterministic(monkeypatch):
    """No dropout and argmax sampling: the model is a function of its inputs."""
    monkeypatch.setattr(ELECTRAModel, 'sample', lambda self, logits: logits.argmax(-1))
    real_configs = train.electra_configs

    def no_dropout(c, tok):
        configs = real_configs(c, tok)
        for cfg in configs:
            cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = 0.0
        return configs
    monkeypatch.setattr(train, 'electra_configs', no_dropout)


def learner(tmp_path, name, n_examples=20, **kw):
    c = get_config('tiny', **{**dict(steps=3, bs=8, warmup_steps=0, lr=1e-2, num_workers=0, device='cpu',
                                     save_points=[1.0], export=False, plot=False, log_every=1,
                                     checkpoint_dir=str(tmp_path / name)), **kw})
    train.set_seed(c.seed)
    tok = SyntheticVocab(VOCAB)
    learn = train.build_learner(c, DataLoaders(get_dataloader(c, tok, varied_examples(n_examples)), path='.'), tok)
    learn.remove_cb(ProgressCallback)
    learn.add_cb(Record())
    return c, learn


def fit(tmp_path, name, **kw):
    c, learn = learner(tmp_path, name, **kw)
    init = {k: v.clone() for k, v in learn.model.state_dict().items()}
    learn.fit(9999)
    return c, learn, init


def assert_same_grads(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        # 1e-6, absolute or relative: float32 sums taken in another order differ by ~1e-7 of their size
        assert torch.allclose(a[name], b[name], atol=1e-6, rtol=1e-6), (name, (a[name] - b[name]).abs().max())


@pytest.mark.parametrize('static_shapes', [True, False])
def test_k_micro_batches_with_unequal_counts_equal_one_big_batch(tmp_path, monkeypatch, static_shapes):
    """20 examples: an epoch is 2 steps of 8 rows (5 micro-batches of 4: the 5th, which fills no
    step, is dropped, as the big batch drops those 4 rows), so 3 steps cross an epoch."""
    deterministic(monkeypatch)
    monkeypatch.setattr(mask_tokens, 'mask_tokens', content_mask)  # where MaskSpec.apply finds it
    _, big, init = fit(tmp_path, 'k1', grad_accum=1, static_shapes=static_shapes)
    c, acc, init2 = fit(tmp_path, 'k2', grad_accum=2, static_shapes=static_shapes)
    rec, big_rec = acc.cbs.filter(lambda cb: isinstance(cb, Record))[0], big.cbs.filter(lambda cb: isinstance(cb, Record))[0]
    first, second = (loss_counts(xb[2], xb[0] != PAD, acc.model.n_slots(xb[0].shape[1]))
                     for xb in rec.xbs[:2])
    assert (first != second).all()  # unequal masked and non-pad counts: per-micro-batch means would differ
    assert torch.equal(rec.counts[0], (first + second) / 2) and torch.equal(rec.counts[1], rec.counts[0])
    assert acc.dls.train.bs == 4 and big.dls.train.bs == 8
    assert acc.train_iter == 6 and big.train_iter == 3  # batches; both took 3 optimizer steps
    assert_same_grads(big_rec.grads, rec.grads)
    moved = 0
    for (k, a), b in zip(big.model.state_dict().items(), acc.model.state_dict().values()):
        assert torch.equal(init[k], init2[k])
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4), k
        moved += not torch.allclose(a, init[k], atol=1e-4)
    assert moved > 20
    # the logged losses are the big batch's (the mean of the k micro-batches' is the step's loss)
    big_log, acc_log = read_log(tmp_path / 'k1' / f'{c.run_name}.csv'), read_log(tmp_path / 'k2' / f'{c.run_name}.csv')
    assert [r['step'] for r in acc_log] == [1, 2, 3]
    for a, b in zip(big_log, acc_log):
        assert all(abs(a[k] - b[k]) <= 1e-6 * max(1.0, abs(a[k])) for k in ('gen_loss', 'disc_loss', 'loss', 'lr')), (a, b)
    sched = next(cb for cb in acc.cbs if isinstance(cb, StepScheduler))
    assert sched.hps['lr'] == [lr_at(i // 2, 'original_linear', 1e-2, 3, 0) for i in range(6)]
    state = torch.load(tmp_path / 'k2' / f'{c.run_name}_100.0%.pth', weights_only=True)
    assert (state['step'], state['train_iter']) == (3, 6)


def cat_batches(xbs: list[tuple]) -> tuple:
    """The micro-batches (masked_inputs, sentA, is_mlm_applied, labels) as one batch, padded to
    the longest."""
    length = max(xb[0].shape[1] for xb in xbs)

    def pad(t, value):
        return torch.cat([t, torch.full((t.shape[0], length - t.shape[1]), value, dtype=t.dtype)], 1)
    return (torch.cat([pad(xb[0], PAD) for xb in xbs]), torch.cat([xb[1] for xb in xbs]),
            torch.cat([pad(xb[2], False) for xb in xbs]), torch.cat([pad(xb[3], -100) for xb in xbs]))


@pytest.mark.parametrize('exact_mask_count,static_shapes', [(True, True), (True, False), (False, False)])
def test_the_step_of_randomly_masked_micro_batches_is_the_big_batch_step(tmp_path, monkeypatch, exact_mask_count,
                                                                           static_shapes):
    """With the real random masking in both styles (Google's exact count per row, the seed's
    Bernoulli draw; static shapes need the exact count) the accumulated gradient is that of one
    batch of the micro-batches' rows with the same masks."""
    deterministic(monkeypatch)
    c, learn, init = fit(tmp_path, 'k4', steps=1, bs=16, grad_accum=4, exact_mask_count=exact_mask_count,
                         static_shapes=static_shapes)
    rec = learn.cbs.filter(lambda cb: isinstance(cb, Record))[0]
    counts = [loss_counts(xb[2], xb[0] != PAD) for xb in rec.xbs]
    assert len({tuple(n.tolist()) for n in counts}) == 4  # unequal counts in every micro-batch
    learn.model.load_state_dict(init)
    learn.model.zero_grad()
    big = cat_batches(rec.xbs)
    learn.loss_func(learn.model(*big), big[3]).backward()
    assert_same_grads({n: p.grad for n, p in learn.model.named_parameters() if p.grad is not None}, rec.grads)


def test_resume_with_grad_accum_equals_the_uninterrupted_run(tmp_path):
    """Real masking, sampling and dropout: resumed mid-epoch at step 1, the run crosses an epoch
    (whose partial step is dropped) and ends with the uninterrupted run's weights."""
    c, full, _ = fit(tmp_path, 'full', steps=4, grad_accum=2, save_points=[1, 1.0])
    c2, again = learner(tmp_path, 'resumed', steps=4, grad_accum=2, save_points=[1.0])
    assert resume(again, tmp_path / 'full' / f'{c.run_name}_25%.pth') == 1
    again.fit(9999)
    assert again.train_iter == full.train_iter == 8
    for (k, a), b in zip(full.model.state_dict().items(), again.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_look_ahead_yields_whole_steps_and_bad_settings_are_refused():
    ahead = LookAhead(list(range(7)), 3)
    seen = [(b, list(ahead.group), ahead.index) for b in ahead]
    assert len(ahead) == 6 and [b for b, _, _ in seen] == [0, 1, 2, 3, 4, 5]  # 6 fills no step: dropped
    assert seen[4] == (4, [3, 4, 5], 1)
    settings = dict(mask_tok_id=103, special_tok_ids=[0, 101, 102, 103], vocab_size=VOCAB, pad_tok_id=PAD)
    with pytest.raises(ValueError, match='2 or more micro-batches'):
        AccumulationMaskedLM(1, for_electra=True, **settings)
    with pytest.raises(ValueError, match='for_electra=True'):
        AccumulationMaskedLM(2, **settings)
