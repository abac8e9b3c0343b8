import math
from pathlib import Path

import pytest
import torch

from pretrain.config import get_config
from pretrain.run.log_cb import CSVLogger, read_log
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


def wandb_history(run_file: Path) -> dict[int, dict]:
    """step -> values of the history rows in an offline W&B run file (`run-*.wandb`): W&B's record
    log (a 7-byte header, then LevelDB-style records of at most 32 KiB blocks: crc32, length,
    type - full, first, middle, last) of `Record` protobufs, read here without wandb's servers."""
    import json
    import struct
    from wandb.proto import wandb_internal_pb2
    data, block, pos, parts, history = run_file.read_bytes(), 32768, 7, [], {}
    assert data[:4] == b':W&B'
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a record header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack('<IHB', data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        parts = [chunk] if kind in (1, 2) else parts + [chunk]
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b''.join(parts))
            if record.WhichOneof('record_type') == 'history':
                history[record.history.step.num] = {i.key or '/'.join(i.nested_key): json.loads(i.value_json)
                                                    for i in record.history.item}
    return history


def test_wandb_offline_holds_the_csv_values_at_the_same_steps(tmp_path, monkeypatch):
    """With no network, W&B writes an offline run whose history has every value of both CSV logs
    (training and held-out, `valid/...`), at the CSVs' steps."""
    pytest.importorskip('wandb')
    from pretrain.run.run_dir import RunDir
    monkeypatch.setenv('WANDB_DIR', str(tmp_path))
    monkeypatch.setenv('WANDB_SILENT', 'true')
    c = get_config('tiny', steps=4, bs=8, num_workers=0, num_proc=1, log_every=2, device='cpu', save_points=[],
                   logger='wandb', wandb_mode='offline', valid_size=8, eval_every=2, export=False, plot=False,
                   data_dir=str(tmp_path / 'data'), checkpoint_dir=str(tmp_path / 'ckpt'))
    pretrain(c)
    import wandb
    wandb.teardown()  # W&B's service writes the run file on its own; its shutdown has written everything
    runs = list((tmp_path / 'wandb').glob('offline-run-*/run-*.wandb'))
    assert len(runs) == 1
    history = wandb_history(runs[0])
    run = RunDir.from_config(c)
    for prefix, rows in (('', read_log(run.train_csv)), ('valid/', read_log(run.valid_csv))):
        assert [r['step'] for r in rows] == [2, 4]
        for row in rows:
            logged = history[int(row['step'])]
            for k, v in row.items():
                if k != 'step':  # the CSV keeps 6 digits
                    assert math.isclose(logged[prefix + k], v, rel_tol=1e-5, abs_tol=2e-6), (k, logged[prefix + k], v)


def test_a_broken_wandb_setup_fails_in_one_line_before_the_data_work(tmp_path, monkeypatch, capsys):
    """No API key for an online run (HOME without a .netrc, no WANDB_API_KEY): one line, and no
    preprocessing done first."""
    pytest.importorskip('wandb')
    from pretrain.__main__ import main
    monkeypatch.setenv('HOME', str(tmp_path))
    monkeypatch.setenv('WANDB_DIR', str(tmp_path))
    monkeypatch.delenv('WANDB_API_KEY', raising=False)
    monkeypatch.delenv('WANDB_MODE', raising=False)
    args = ['--size', 'tiny', '--steps', '2', '--num_workers', '0', '--num_proc', '1', '--device', 'cpu',
            '--logger', 'wandb', '--wandb_mode', 'online', '--data_dir', str(tmp_path / 'data'),
            '--checkpoint_dir', str(tmp_path / 'ckpt')]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: Weights & Biases could not start') and 'wandb login' in err and '\n' not in err
    assert not (tmp_path / 'data' / 'preprocess').exists()
    monkeypatch.setitem(__import__('sys').modules, 'wandb', None)  # not installed: `import wandb` fails
    assert main(args) == 2
    assert 'needs the wandb package: pip install wandb' in capsys.readouterr().err


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
    from pretrain.run.log_cb import StepRecorder
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
