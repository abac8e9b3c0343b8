"""Long runs that survive: resume after SIGKILL gives the uninterrupted run's weights and log,
a kill during a save leaves the previous checkpoint loadable, wrong checkpoints are refused."""
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pretrain.checkpoint import find_resume, load_checkpoint
from pretrain.config import get_config
from pretrain.health import NonFiniteLossError
from pretrain.log_cb import read_log
from pretrain.models import ELECTRALoss
from pretrain.train import pretrain

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, 'PYTHONPATH': str(REPO)}


def tiny(tmp, name, size='tiny', **kw):
    return get_config(size, **{**dict(steps=24, bs=16, num_workers=0, num_proc=1, device='cpu', log_every=2,
                                        save_points=[0.5, 1.0], save_every=3, keep_last=2, export=False,
                                        data_dir=str(tmp / 'data'), checkpoint_dir=str(tmp / name)), **kw})


def cli_args(c):
    keys = ('steps', 'bs', 'num_workers', 'num_proc', 'device', 'log_every', 'save_every', 'keep_last', 'export',
            'data_dir', 'checkpoint_dir')
    return ['--size', 'tiny', '--save_points', '0.5', '1.0'] + [a for k in keys for a in (f'--{k}', str(c[k]))]


def wait_for(predicate, proc, timeout=120):
    start = time.time()
    while not predicate():
        assert proc.poll() is None, proc.stderr.read()[-2000:] if proc.stderr else 'the run ended early'
        assert time.time() - start < timeout
        time.sleep(0.05)


def final_weights(c):
    return load_checkpoint(Path(c.checkpoint_dir) / f'{c.run_name}_100.0%.pth')['model']


def test_sigkill_then_resume_equals_the_uninterrupted_run(tmp_path):
    reference = tiny(tmp_path, 'uninterrupted')
    pretrain(reference)

    c = tiny(tmp_path, 'killed')
    kill_after = random.Random().choice([3, 6, 9, 12, 15])
    proc = subprocess.Popen([sys.executable, '-m', 'pretrain'] + cli_args(c), cwd=REPO, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ckpt = Path(c.checkpoint_dir)
    wait_for(lambda: (ckpt / f'{c.run_name}_step{kill_after}.pth').exists(), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (ckpt / f'{c.run_name}_100.0%.pth').exists()  # really interrupted

    c.resume = 'latest'
    learn = pretrain(c)
    assert learn.train_iter == 24
    ref_w, got_w = final_weights(reference), final_weights(c)
    for k in ref_w:
        assert torch.allclose(ref_w[k], got_w[k], atol=1e-6), k
    ref_log = read_log(ckpt.parent / 'uninterrupted' / f'{c.run_name}.csv')
    got_log = read_log(ckpt / f'{c.run_name}.csv')
    assert [r['step'] for r in got_log] == [r['step'] for r in ref_log] == list(range(2, 25, 2))
    for a, b in zip(ref_log, got_log):
        assert all(abs(a[k] - b[k]) <= 1e-6 for k in a), (a, b)
    periodic = sorted(p.name for p in ckpt.glob('*_step*.pth'))
    assert periodic == [f'{c.run_name}_step21.pth', f'{c.run_name}_step24.pth']  # keep_last=2


def test_kill_during_a_save_keeps_the_previous_checkpoint(tmp_path):
    proc = subprocess.Popen([sys.executable, str(REPO / 'tests' / 'save_crash_driver.py'), str(tmp_path)],
                            cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ckpt = tmp_path / 'ckpt'
    stalled = ckpt / 'vanilla_11081_step12.pth.tmp'  # not an earlier save's own brief .tmp
    wait_for(stalled.exists, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    latest = find_resume('latest', ckpt, 'vanilla_11081')
    assert latest.name == 'vanilla_11081_step8.pth'  # the 3rd save (step 12) never completed
    assert load_checkpoint(latest)['step'] == 8
    with pytest.raises(ValueError, match='cannot be read'):
        load_checkpoint(stalled)
    c = tiny(tmp_path, 'ckpt', steps=10, resume='latest', save_every=None, data_dir=str(tmp_path / 'data'))
    assert pretrain(c).train_iter == 10


def test_a_checkpoint_of_another_model_or_vocabulary_is_refused(tmp_path):
    c = tiny(tmp_path, 'run', steps=2, save_every=None)
    pretrain(c)
    path = str(Path(c.checkpoint_dir) / f'{c.run_name}_100.0%.pth')
    other = tiny(tmp_path, 'other', steps=4, save_every=None, size='small', bs=4, max_length=64, resume=path)
    with pytest.raises(ValueError, match='was made for another model .*discriminator.hidden_size: checkpoint 32 vs config 256'):
        pretrain(other)

    from pretrain.corpus import load_corpus
    from pretrain.tokenizer import train_tokenizer
    texts = load_corpus('sample')['text']
    tok_dir = tmp_path / 'tok'
    train_tokenizer(texts, tok_dir, vocab_size=4000, min_frequency=3, num_unused=10)
    mismatched = tiny(tmp_path, 'other2', steps=4, save_every=None, tokenizer=str(tok_dir), resume=path)
    with pytest.raises(ValueError, match='another (model|vocabulary)'):
        pretrain(mismatched)

    (tmp_path / 'junk.pth').write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError, match='cannot be read'):
        load_checkpoint(tmp_path / 'junk.pth')
    with pytest.raises(ValueError, match='does not exist'):
        load_checkpoint(tmp_path / 'missing.pth')
    with pytest.raises(ValueError, match='no readable checkpoint'):
        find_resume('latest', tmp_path / 'empty', 'x')


def test_non_finite_losses_stop_the_run_and_keep_the_last_good_checkpoint(tmp_path, monkeypatch):
    real_call = ELECTRALoss.__call__
    calls = []

    def poisoned(self, pred, targ):
        calls.append(1)
        loss = real_call(self, pred, targ)
        return loss * float('nan') if len(calls) > 7 else loss

    monkeypatch.setattr(ELECTRALoss, '__call__', poisoned)
    c = tiny(tmp_path, 'nan', steps=40, save_every=2, keep_last=10, max_nonfinite=5, log_every=2)
    with pytest.raises(NonFiniteLossError, match='stopped at step 12: 5 consecutive non-finite losses'):
        pretrain(c)
    latest = find_resume('latest', Path(c.checkpoint_dir), c.run_name)
    state = load_checkpoint(latest)
    assert state['step'] == 6
    assert all(torch.isfinite(v).all() for v in state['model'].values() if v.is_floating_point())


def test_resume_of_a_finished_run_or_past_the_end(tmp_path, capsys):
    c = tiny(tmp_path, 'done', steps=4, save_every=None, save_points=[1.0])
    pretrain(c)
    path = Path(c.checkpoint_dir) / f'{c.run_name}_100.0%.pth'
    c.resume = 'latest'
    assert pretrain(c) is None
    assert 'already finished at step 4' in capsys.readouterr().out
    shorter = tiny(tmp_path, 'done', steps=2, resume=str(path))
    with pytest.raises(ValueError, match='is at step 4 but the run has steps=2'):
        pretrain(shorter)
