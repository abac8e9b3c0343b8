import math
from pathlib import Path

import pytest
import torch

from pretrain.config import get_config
from pretrain.log_cb import CSVLogger, read_log
from pretrain.train import pretrain


class FakeRun:
    def __init__(self):
        self.logged, self.finished = [], False

    def log(self, values, step):
        self.logged.append((step, values))

    def finish(self):
        self.finished = True


def test_wandb_gets_the_csv_rows(tmp_path, monkeypatch):
    run = FakeRun()
    monkeypatch.setattr('pretrain.train.wandb_run', lambda c: run)
    c = get_config('tiny', steps=6, bs=16, num_workers=0, num_proc=1, log_every=3, device='cpu', save_points=[],
                   data_dir=str(tmp_path / 'data'), checkpoint_dir=str(tmp_path / 'ckpt'))
    learn = pretrain(c)
    rows = read_log(Path(c.checkpoint_dir) / f'{c.run_name}.csv')
    assert [step for step, _ in run.logged] == [r['step'] for r in rows] == [3, 6]
    last = next(cb for cb in learn.cbs if isinstance(cb, CSVLogger)).last_row  # what StepProgress shows
    assert last['step'] == 6 and all(math.isclose(last[k], rows[-1][k], rel_tol=1e-5, abs_tol=1e-6) for k in rows[-1])
    for (_, values), row in zip(run.logged, rows):
        assert all(math.isclose(values[k], row[k], rel_tol=1e-5, abs_tol=1e-6) for k in values)
    assert run.finished


def test_wandb_offline_needs_no_network(tmp_path, monkeypatch):
    pytest.importorskip('wandb')
    monkeypatch.setenv('WANDB_DIR', str(tmp_path))
    monkeypatch.setenv('WANDB_SILENT', 'true')
    c = get_config('tiny', steps=2, bs=16, num_workers=0, num_proc=1, log_every=1, device='cpu', save_points=[],
                   logger='wandb', wandb_mode='offline',
                   data_dir=str(tmp_path / 'data'), checkpoint_dir=str(tmp_path / 'ckpt'))
    pretrain(c)
    runs = list((tmp_path / 'wandb').glob('offline-run-*/run-*.wandb'))
    assert len(runs) == 1 and runs[0].stat().st_size > 0


def test_unknown_wandb_mode():
    with pytest.raises(ValueError, match="unknown wandb_mode 'cloud'"):
        get_config('tiny', wandb_mode='cloud')


def test_recorder_reads_the_device_only_at_log_steps(tiny_config, tokenizer, monkeypatch):
    """fastai's Recorder copies the loss to the host every step (`to_detach` -> `.cpu()`) and
    keeps a tensor per step; the run's `StepRecorder` does neither: between log steps no
    `.cpu()` or `.item()` happens at all."""
    from fastai.callback.core import Callback
    from fastai.data.core import DataLoaders

    from pretrain.get_dataloaders import get_dataloader
    from pretrain.log_cb import StepRecorder
    from pretrain.train import build_learner, preprocess, set_seed
    reads = []
    for name in ('cpu', 'item'):
        def counting(self, *args, _orig=getattr(torch.Tensor, name), **kwargs):
            reads.append(1)
            return _orig(self, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, name, counting)
    c = tiny_config
    c.steps, c.log_every = 8, 4
    ds = preprocess(c, tokenizer)
    set_seed(c.seed)
    learn = build_learner(c, DataLoaders(get_dataloader(c, tokenizer, ds), path='.'), tokenizer)
    assert isinstance(learn.recorder, StepRecorder)
    per_step = []

    class Mark(Callback):
        order = 69  # after the other callbacks' after_batch, before RunSteps (70) ends the fit

        def before_batch(self):
            self.start = len(reads)

        def after_batch(self):
            per_step.append(len(reads) - self.start)
    learn.add_cb(Mark())
    learn.fit(9999)
    assert len(per_step) == 8
    assert [n for i, n in enumerate(per_step, 1) if i % 4] == [0] * 6, per_step
    assert learn.recorder.losses == [] and learn.recorder.lrs == []
