"""Gradient accumulation: k micro-batches per optimizer step give the step of one big batch,
and every step count (schedule, stop, log, checkpoints) is in optimizer steps."""
import torch
from fastai.callback.progress import ProgressCallback
from fastai.data.core import DataLoaders

import pretrain.masked_lm_cb as masked_lm_cb
import pretrain.train as train
from pretrain.bench import SyntheticVocab, synthetic_examples
from pretrain.config import get_config
from pretrain.get_dataloaders import get_dataloader
from pretrain.log_cb import read_log
from pretrain.models import ELECTRAModel
from pretrain.scheduler import StepScheduler, lr_at


def fixed_mask(inputs, mask_token_index, vocab_size, special_token_indices, *args, **kwargs):
    """The same three positions in every row: equal counts in every micro-batch."""
    chosen = torch.zeros_like(inputs, dtype=torch.bool)
    chosen[:, [3, 7, 11]] = True
    return inputs.masked_fill(chosen, mask_token_index), inputs.masked_fill(~chosen, -100), chosen


def run(tmp_path, monkeypatch, grad_accum, steps=2):
    monkeypatch.setattr(masked_lm_cb, 'mask_tokens', fixed_mask)
    monkeypatch.setattr(ELECTRAModel, 'sample', lambda self, logits: logits.argmax(-1))
    real_configs = train.electra_configs

    def no_dropout(c, tok):
        configs = real_configs(c, tok)
        for cfg in configs:
            cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = 0.0
        return configs
    monkeypatch.setattr(train, 'electra_configs', no_dropout)
    c = get_config('tiny', steps=steps, bs=8, grad_accum=grad_accum, warmup_steps=0, lr=1e-2, num_workers=0,
                   device='cpu', static_shapes=True, save_points=[1.0], export=False, plot=False, log_every=1,
                   checkpoint_dir=str(tmp_path / f'k{grad_accum}'))
    tok = SyntheticVocab(500)
    train.set_seed(c.seed)
    learn = train.build_learner(c, DataLoaders(get_dataloader(c, tok, synthetic_examples(64, 64, 500)), path='.'), tok)
    learn.remove_cb(ProgressCallback)
    init = {k: v.clone() for k, v in learn.model.state_dict().items()}
    learn.fit(9999)
    return c, learn, init


def test_k_micro_batches_equal_one_big_batch(tmp_path, monkeypatch):
    _, big, init = run(tmp_path, monkeypatch, 1)
    c, acc, init2 = run(tmp_path, monkeypatch, 2)
    assert acc.dls.train.bs == 4 and big.dls.train.bs == 8
    assert acc.train_iter == 4 and big.train_iter == 2  # batches; both took 2 optimizer steps
    moved = 0
    for (k, a), b in zip(big.model.state_dict().items(), acc.model.state_dict().values()):
        assert torch.equal(init[k], init2[k])
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4), k
        moved += not torch.allclose(a, init[k], atol=1e-4)
    assert moved > 20
    sched = next(cb for cb in acc.cbs if isinstance(cb, StepScheduler))
    assert sched.hps['lr'] == [lr_at(i // 2, 'original_linear', 1e-2, 2, 0) for i in range(4)]
    rows = read_log(tmp_path / 'k2' / f'{c.run_name}.csv')
    assert [r['step'] for r in rows] == [1, 2]
    state = torch.load(tmp_path / 'k2' / f'{c.run_name}_100.0%.pth', weights_only=False)
    assert (state['step'], state['train_iter']) == (2, 4)
