"""StepProgress: one line over the run in optimizer steps, plain lines in a log, a '\\r' line in a
terminal, the losses the logger already read, no host sync of its own, resume and grad_accum."""
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from fastai.callback.core import Callback
from fastai.callback.progress import ProgressCallback
from fastai.data.core import DataLoaders

import pretrain.run.progress as progress
from pretrain.get_dataloaders import get_dataloader
from pretrain.run.log_cb import CSVLogger, read_log
from pretrain.run.progress import StepProgress, detect_mode, format_line
from pretrain.train import build_learner, preprocess, pretrain, set_seed

LINE = re.compile(r'^step (\d+)/(\d+) \((\d+)%\) \| (\S+) steps/s \| (ETA|took) \S+( \| gen (\S+) disc (\S+))?$')


@pytest.fixture(autouse=True)
def no_forced_mode(monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)


def quick(c, **overrides):
    c.update(export=False, plot=False, save_points=[], **overrides)
    return c


def learner(c, tokenizer, **progress_args):
    set_seed(c.seed)
    dls = DataLoaders(get_dataloader(c, tokenizer, preprocess(c, tokenizer)), path='.')
    learn = build_learner(c, dls, tokenizer)
    if progress_args:
        progress.replace_progress(learn, **progress_args)
    return learn


def test_plain_lines_in_a_log(tiny_config, capsys):
    c = quick(tiny_config)  # 12 steps, log_every 4; pytest's captured stdout is not a TTY
    learn = pretrain(c)
    out = capsys.readouterr().out
    assert '\r' not in out and 'epoch' not in out.lower()
    assert not any(line.startswith('[') for line in out.splitlines())  # fastai's per-epoch log row
    assert not any(isinstance(cb, ProgressCallback) for cb in learn.cbs)
    lines = [m for m in map(LINE.match, out.splitlines()) if m]
    assert [int(m[1]) for m in lines] == list(range(1, 13))  # every max(1, 12 // 20) steps, then the final
    assert {m[2] for m in lines} == {'12'} and lines[-1][5] == 'took' and lines[-2][5] == 'ETA'
    rows = read_log(Path(c.checkpoint_dir) / f'{c.run_name}.csv')
    for m in lines:  # the losses are those of the latest CSV row at that step
        logged = [r for r in rows if r['step'] <= int(m[1])]
        if not logged:
            assert m[6] is None
        else:
            assert (m[7], m[8]) == (f"{logged[-1]['gen_loss']:.4g}", f"{logged[-1]['disc_loss']:.4g}")


def test_one_redrawn_line_in_a_terminal(tiny_config, tokenizer, capsys, monkeypatch):
    learn = learner(quick(tiny_config), tokenizer)
    monkeypatch.setattr(sys.stdout, 'isatty', lambda: True)
    assert detect_mode() == 'tty'
    learn.step_progress.tty_every = 0  # redraw at every step
    capsys.readouterr()
    learn.fit(9999)
    out = capsys.readouterr().out
    assert out.count('\n') == 1 and out.endswith('\n') and 'epoch' not in out.lower()
    frames = out.rstrip('\n').split('\r')[1:]
    assert len(frames) == 1 + 11 + 1  # the start, steps 1..11, the final line
    assert frames[0].startswith('[--------------------] step 0/12 (0%)')
    assert frames[-1].startswith('[####################] step 12/12 (100%)') and 'took' in frames[-1]
    assert all(len(b) >= len(a.rstrip()) for a, b in zip(frames, frames[1:]))  # a shorter line is padded over


def test_mode_is_forced_by_the_environment(monkeypatch):
    monkeypatch.setenv(progress.ENV, 'plain')
    assert detect_mode() == 'plain'
    monkeypatch.setenv(progress.ENV, 'bars')
    with pytest.raises(ValueError, match='PRETRAIN_PROGRESS'):
        detect_mode()
    with pytest.raises(ValueError, match='unknown progress mode'):
        StepProgress('bars')


SYNCS = ('item', 'tolist', '__float__', '__int__', '__bool__', '__index__', '__format__', 'cpu', 'numpy')


def test_no_host_sync_of_its_own(tiny_config, tokenizer, capsys, monkeypatch):
    """Every way Python reads a tensor's value is counted: the progress callback's own events
    read none, and a run with a line at every step reads tensors exactly as often, step by step,
    as one without any display (the losses come from the logger's read every `log_every` steps)."""
    reads = []
    for name in SYNCS:
        def counting(self, *args, _orig=getattr(torch.Tensor, name), _name=name, **kwargs):
            reads.append(_name)
            return _orig(self, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, name, counting)
    own = []
    for event in ('before_fit', 'after_batch', 'after_fit'):
        def wrapped(self, _orig=getattr(StepProgress, event)):
            n = len(reads)
            _orig(self)
            own.append(len(reads) - n)
        monkeypatch.setattr(StepProgress, event, wrapped)

    def reads_per_step(**progress_args):
        learn = learner(quick(tiny_config, steps=8), tokenizer, **progress_args)
        marks = []

        class Mark(Callback):
            def before_batch(self):
                marks.append(len(reads))
        learn.add_cb(Mark())
        learn.fit(9999)
        return [b - a for a, b in zip(marks, marks[1:])]

    shown = reads_per_step(mode='plain', plain_every=0)  # a line after every step
    assert len(own) == 1 + 8 + 1 and not any(own)
    assert capsys.readouterr().out.count('step ') == 8
    assert reads_per_step(mode='off') == shown


def test_resume_counts_from_the_resumed_step(tiny_config, capsys):
    c = quick(tiny_config, steps=10)
    c.save_points = [6]
    pretrain(c)
    capsys.readouterr()
    c = quick(tiny_config, steps=10)
    c.resume = str(Path(c.checkpoint_dir) / f'{c.run_name}_60%.pth')
    learn = pretrain(c)
    out = capsys.readouterr().out
    assert learn.step_progress.start_step == 6
    steps = [int(m[1]) for m in map(LINE.match, out.splitlines()) if m]
    assert steps == [7, 8, 9, 10]


def test_rate_eta_and_losses_in_optimizer_steps(monkeypatch):
    """grad_accum 2, resumed at step 10 of 100: 10 steps in 5 s is 2 steps/s, 80 left, ETA 40 s;
    the losses shown are the logger's last row."""
    clock = [1000.0]
    monkeypatch.setattr(progress.time, 'monotonic', lambda: clock[0])
    lines = []
    logger = CSVLogger('unused.csv')  # only its last_row is read
    learn = SimpleNamespace(train_iter=20, grad_accum=2, training=True, logger=print, cbs=[logger])
    cb = StepProgress('plain', stream=SimpleNamespace(write=lines.append, flush=lambda: None), n_steps=100)
    cb.learn = learn
    cb.before_fit()
    assert learn.logger is not print and lines == []
    for _ in range(20):
        learn.train_iter += 1
        clock[0] += 0.25
        if learn.train_iter == 36:
            logger.last_row = {'step': 18, 'gen_loss': 5.125, 'disc_loss': 0.40625}
        cb.after_batch()
    assert lines == ['step 15/100 (15%) | 2 steps/s | ETA 0:00:42\n',
                     'step 20/100 (20%) | 2 steps/s | ETA 0:00:40 | gen 5.125 disc 0.4062\n']
    cb.after_fit()
    assert learn.logger is print
    assert lines[-1] == 'step 20/100 (20%) | 2 steps/s | took 0:00:05 | gen 5.125 disc 0.4062\n'


def test_format_line():
    assert format_line(150, 300, 9.8, 15.3, {'gen_loss': 5.12, 'disc_loss': 0.41}) == \
        'step 150/300 (50%) | 9.8 steps/s | ETA 0:00:15 | gen 5.12 disc 0.41'
    assert format_line(0, 1_000_000, None, None, None) == 'step 0/1000000 (0%) | ? steps/s | ETA ?'
    assert 'ETA 1 day, 3:46:40' in format_line(0, 1_000_000, 10.0, 100_000.0, None)
