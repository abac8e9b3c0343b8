"""The seed notebook's step (pretrain/tools/bench_seed.py), the baseline of `--compare-seed`: it runs
on the batches and sizes of our benchmark and keeps the seed's design."""
import pytest
import torch

from pretrain.tools.bench import run_bench
from pretrain.tools.bench_seed import SyntheticVocab, bernoulli_masking, main, run_seed_step, warmup_then_decay


def test_seed_step_runs_on_cpu_with_the_full_vocabulary_logits():
    seed = run_seed_step('tiny', steps=2, warmup=1, vocab_size=3000, device='cpu', num_workers=0)
    ours = run_bench('tiny', steps=2, warmup=1, vocab_size=3000, device='cpu')
    assert seed['steps_per_s'] > 0 and seed['precision'] == 'fp32' and (seed['bs'], seed['max_length']) == (32, 64)
    # the generator's logits at every position (ours: at the masked ones only) cost the most
    assert seed['flops_per_step'] > 2 * ours['flops_per_step']


def test_bernoulli_masking_spares_special_tokens_and_keeps_some_chosen():
    torch.manual_seed(0)
    tok = SyntheticVocab(3000)
    ids = torch.randint(104, 3000, (64, 128))
    ids[:, 0], ids[:, 63], ids[:, -1], ids[:3, 100:] = 101, 102, 102, 0  # [CLS], [SEP]s, padding
    masked, labels, chosen = bernoulli_masking(ids, tok.mask_token_id, tok.all_special_ids, 0.15)
    special = torch.isin(ids, torch.tensor(tok.all_special_ids))
    assert not chosen[special].any() and (labels[chosen] == ids[chosen]).all() and (labels[~chosen] == -100).all()
    assert (masked[~chosen] == ids[~chosen]).all()
    assert chosen.sum() / (~special).sum() == pytest.approx(0.15, abs=0.01)  # a Bernoulli count, not a fixed one
    assert (masked[chosen] == tok.mask_token_id).float().mean() == pytest.approx(0.85, abs=0.03)


def test_schedule_warms_up_then_decays_linearly():
    lr = lambda step: warmup_then_decay(step / 1000, lr=1.0, warmup_steps=100, total_steps=1000)
    assert (lr(0), lr(50), lr(100), lr(550), lr(1000)) == pytest.approx((0, 0.5 * 0.95, 0.9, 0.45, 0))


def test_bad_sizes_give_one_line(capsys):
    assert main(['--size', 'huge', '--device', 'cpu']) == 2
    assert capsys.readouterr().err.startswith("error: unknown size 'huge'")
