"""Long runs that survive: resume after SIGKILL gives the uninterrupted run's weights and log,
a kill during a save leaves the previous checkpoint loadable, wrong checkpoints are refused,
a checkpoint that would run code is refused on every read path, and a save that fails (full
disk, read-only directory) says so in one line and keeps the previous checkpoint."""
import contextlib
import errno
import io
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import pretrain.run.checkpoint as checkpoint
from pretrain.__main__ import main
from _utils.rng import capture_rng, restore_rng
from pretrain.run.checkpoint import CheckpointSaveError, alias_checkpoint, atomic_torch_save
from pretrain.run.checkpoint_files import find_resume
from pretrain.run.safe_load import FORMAT, load_checkpoint
from pretrain.config import get_config
from pretrain.run.health import NonFiniteLossError
from pretrain.run.log_cb import read_log
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
    kill_after = 9  # a periodic checkpoint mid-run (fixed, so a failure reproduces)
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
    # step 24's two names hold one file, stored once; pruning a periodic name keeps the other
    assert os.path.samefile(ckpt / f'{c.run_name}_100.0%.pth', ckpt / f'{c.run_name}_step24.pth')
    assert (ckpt / f'{c.run_name}_50.0%.pth').is_file() and not (ckpt / f'{c.run_name}_step12.pth').exists()


def test_kill_during_a_save_keeps_the_previous_checkpoint(tmp_path):
    proc = subprocess.Popen([sys.executable, str(REPO / 'tests' / 'save_crash_driver.py'), str(tmp_path)],
                            cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ckpt = tmp_path / 'ckpt'

    def stalled_save():  # the step-12 save's temporary file, not an earlier save's own brief one
        return next(ckpt.glob('vanilla_11081_step12.pth.*.tmp'), None)
    wait_for(lambda: stalled_save() is not None, proc)
    stalled = stalled_save()
    assert stalled.name.endswith(f'-{proc.pid}.tmp')  # named by its writer
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    latest = find_resume('latest', ckpt, 'vanilla_11081')
    assert latest.name == 'vanilla_11081_step8.pth'  # the 3rd save (step 12) never completed
    assert load_checkpoint(latest)['step'] == 8
    with pytest.raises(ValueError, match='cannot be read'):
        load_checkpoint(stalled)
    # the killed run's own settings (a resume of another step count is refused)
    c = tiny(tmp_path, 'ckpt', steps=40, resume='latest', save_every=None, data_dir=str(tmp_path / 'data'))
    assert pretrain(c).train_iter == 40


def test_a_checkpoint_of_another_model_or_vocabulary_is_refused(tmp_path):
    c = tiny(tmp_path, 'run', steps=2, save_every=None)
    pretrain(c)
    path = str(Path(c.checkpoint_dir) / f'{c.run_name}_50.0%.pth')  # mid-run: there is something to resume
    # the run's name, data and length, another architecture
    other = tiny(tmp_path, 'other', steps=2, save_every=None, size='small', max_length=64, resume=path)
    with pytest.raises(ValueError, match='was made for another model .*discriminator.hidden_size: checkpoint 32 vs config 256'):
        pretrain(other)

    from pretrain.prepare.corpus import load_corpus
    from pretrain.prepare.tokenizer import train_tokenizer
    texts = load_corpus('sample')['text']
    tok_dir = tmp_path / 'tok'
    train_tokenizer(texts, tok_dir, vocab_size=4000, min_frequency=3, num_unused=10)
    mismatched = tiny(tmp_path, 'other2', steps=2, save_every=None, tokenizer=str(tok_dir), resume=path)
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
    with pytest.raises(ValueError, match=r'is a checkpoint of another run: steps 4 \(this run: 2\)'):
        pretrain(shorter)


def test_a_checkpoint_of_another_run_is_refused_before_any_work(tiny_run, tmp_path, capsys):
    """The issue's case: `--base_run_name other --resume base_..._50.0%.pth` with another corpus and
    step count, refused in one line that names the differences and both ways on."""
    path = Path(tiny_run.checkpoint_dir) / f'{tiny_run.run_name}_50.0%.pth'
    other = tiny(tmp_path, 'ckpt', base_run_name='other', datas=['sample_en'], steps=50, bs=8, resume=str(path))
    with pytest.raises(ValueError, match=r"is a checkpoint of another run: run_name 'vanilla_11081' \(this run: "
                                         r"'other_11081'\); datas \['sample'\] \(this run: \['sample_en'\]\); steps 4 "
                                         r"\(this run: 50\); resume it with its own settings, or continue pre-training "
                                         r"from its weights: `python -m pretrain export .*`, then --init_generator "
                                         r"DIR/generator --init_discriminator DIR/discriminator$"):
        pretrain(other)
    assert not (tmp_path / 'data' / 'preprocess').exists()  # refused before the data work
    argv = ['--size', 'tiny', '--device', 'cpu', '--num_workers', '0', '--base_run_name', 'other', '--steps', '4',
            '--bs', '8', '--resume', str(path), '--data_dir', str(tmp_path / 'data'), '--checkpoint_dir',
            str(tmp_path / 'ckpt')]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert '\n' not in err and "run_name 'vanilla_11081' (this run: 'other_11081')" in err and 'steps' not in err


def test_the_same_run_is_recognised_however_its_corpus_path_is_written(tmp_path, monkeypatch):
    from pretrain.run.checkpoint import check_same_run
    monkeypatch.chdir(REPO)
    c = tiny(tmp_path, 'ckpt', datas=[str(REPO / 'data' / 'sample' / 'en.txt')])
    state = {'config': {**c, 'datas': ['data/sample/en.txt']}}
    check_same_run(state, c)  # relative and absolute: the same file
    check_same_run({'config': {}}, c)  # a checkpoint without a config is not checked
    with pytest.raises(ValueError, match=r"seed 1 \(this run: 11081\); bs 4 \(this run: 16\)"):
        check_same_run({'config': {**c, 'seed': 1, 'bs': 4}}, c)


def test_resume_names_a_directory_as_one(tmp_path):
    with pytest.raises(ValueError, match=r"checkpoint '.*' is a directory; give one of its checkpoint files \(.pth\), "
                                         r"or resume 'latest'"):
        load_checkpoint(tmp_path)


# ---- safe reading (weights_only) ---------------------------------------------------------------

def finished_checkpoint(tiny_run) -> Path:
    return Path(tiny_run.checkpoint_dir) / f'{tiny_run.run_name}_100.0%.pth'


def test_rng_states_are_plain_and_restore_every_generator(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.standard_normal()  # leaves a cached gaussian in numpy's state
    torch.save(capture_rng(), tmp_path / 'rng.pth')
    saved = torch.load(tmp_path / 'rng.pth', weights_only=True)  # tensors and plain values only

    def draws():
        return random.random(), np.random.rand(), np.random.standard_normal(), torch.rand(2).tolist()
    first = draws()
    restore_rng(saved)
    assert draws() == first


def test_a_checkpoint_holds_only_plain_state(tiny_run, tmp_path):
    path = finished_checkpoint(tiny_run)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(path)) == []
    state = torch.load(path, weights_only=True)
    assert state['format'] == FORMAT and type(state['config']) is dict
    # only callbacks with a state of their own (fastai forwards `state_dict` of the others to the model)
    assert {'CSVLogger', 'HeldOutEval'} <= set(state['callbacks']) and 'TrainEvalCallback' not in state['callbacks']
    with pytest.raises(ValueError, match=r"not saved: it would hold pathlib\.\w*Path, which a safe .* refuses"):
        atomic_torch_save({'format': FORMAT, 'where': tmp_path}, tmp_path / 'bad.pth')
    assert os.listdir(tmp_path) == []  # neither the checkpoint nor its .tmp


class Payload:
    """What a malicious checkpoint carries: unpickling it runs code (here: writes `marker`)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('pwned')",)


def write_malicious(kind: str, path: Path, marker: Path, good: dict) -> None:
    """A file that looks like a checkpoint (format, step, weights) but runs code when unpickled."""
    if kind == 'torch.save':
        torch.save({**good, 'step': 99, 'config': {'tokenizer': Payload(marker)}}, path)
    elif kind == 'bare pickle':
        path.write_bytes(pickle.dumps({'format': FORMAT, 'step': 99, 'config': Payload(marker)}))
    else:  # like format 1 (numpy RNG state, which is read with numpy's array constructors allowed) plus code
        torch.save({**good, 'format': 'electra-pretrain-checkpoint/1', 'step': 99,
                    'rng': {**good['rng'], 'numpy': np.random.get_state()}, 'callbacks': {'x': Payload(marker)}}, path)


@pytest.mark.parametrize('kind', ['torch.save', 'bare pickle', 'format-1 lookalike'])
def test_a_checkpoint_that_would_run_code_is_refused_on_every_read_path(kind, tiny_run, tmp_path, capsys):
    from pretrain.run.export import export
    from pretrain.tools.inspect import inspect_run
    from pretrain.train import pretrain
    run = tiny_run.run_name
    good = load_checkpoint(finished_checkpoint(tiny_run))
    marker = tmp_path / 'pwned'
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    bad = run_dir / f'{run}_step99.pth'  # the highest step: what 'latest' would pick
    write_malicious(kind, bad, marker, good)
    refused = r"refused: it needs unsafe unpickling \(it would import builtins\.exec\)"

    with pytest.raises(ValueError, match=refused):
        load_checkpoint(bad)
    with pytest.raises(ValueError, match=refused):
        export(bad, tmp_path / 'out')
    with pytest.raises(ValueError, match=refused):
        inspect_run(bad)
    with pytest.raises(ValueError, match="no readable checkpoint .*" + refused):
        find_resume('latest', run_dir, run)
    with pytest.raises(ValueError, match=refused):
        pretrain(tiny(tmp_path, 'run', steps=200, resume='latest'))
    for argv in (['inspect', str(bad)], ['export', str(bad), str(tmp_path / 'out')],
                 ['--size', 'tiny', '--device', 'cpu', '--num_workers', '0', '--steps', '200', '--resume', str(bad),
                  '--data_dir', str(tmp_path / 'data'), '--checkpoint_dir', str(run_dir)]):
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert '\n' not in err and err.startswith(f"error: {str(bad)!r} refused"), err

    # beside a good checkpoint, a directory scan skips it with a warning and takes the good one
    shutil.copy(finished_checkpoint(tiny_run), run_dir / f'{run}_100.0%.pth')
    capsys.readouterr()
    assert find_resume('latest', run_dir, run).name == f'{run}_100.0%.pth'
    assert inspect_run(run_dir)['step'] == 4
    warnings = capsys.readouterr().err.strip().splitlines()
    assert len(warnings) == 2 and all(w.startswith(f"warning: skipped {str(bad)!r} refused") for w in warnings)
    assert not marker.exists()

    with contextlib.suppress(Exception):  # the control: an unsafe load does run the payload
        torch.load(bad, weights_only=False)
    assert marker.read_text() == 'pwned'


def test_a_format_1_checkpoint_is_still_read_safely(tiny_run, tmp_path):
    state = load_checkpoint(finished_checkpoint(tiny_run))
    n = state['rng']['numpy']
    old = {**state, 'format': 'electra-pretrain-checkpoint/1',  # as the previous version wrote it
           'rng': {**state['rng'], 'numpy': (n['kind'], n['key'].numpy().astype(np.uint32), n['pos'], n['has_gauss'],
                                             n['cached_gaussian'])}}
    path = tmp_path / f'{tiny_run.run_name}_step4.pth'
    torch.save(old, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)  # numpy's ndarray is not allowed by default
    assert {'numpy.ndarray', 'numpy.dtype'} <= set(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))

    got = load_checkpoint(path)
    assert got['format'] == FORMAT and got['step'] == 4 and torch.equal(got['rng']['numpy']['key'], n['key'])
    assert find_resume('latest', tmp_path, tiny_run.run_name) == path
    restore_rng(got['rng'])
    from_old = np.random.rand(3)
    restore_rng(state['rng'])
    assert np.array_equal(np.random.rand(3), from_old)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)  # numpy was allowed for that one read only


# ---- faults while saving -------------------------------------------------------------------------

@contextlib.contextmanager
def read_only(directory: Path, monkeypatch):
    """`directory` made read-only. Root ignores the mode bits, so there the file creation is made
    to fail as the kernel would for anyone else."""
    directory.chmod(0o555)
    try:
        probe = directory / 'probe'
        try:
            probe.touch()
        except PermissionError:
            pass
        else:  # running as root
            probe.unlink()
            real_open = open

            def denied(file, mode='r', *args, **kwargs):
                if Path(file).parent == directory and any(m in mode for m in 'wax+'):
                    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))
                return real_open(file, mode, *args, **kwargs)
            monkeypatch.setattr(checkpoint, 'open', denied, raising=False)
        yield 'Permission denied'
    finally:
        monkeypatch.delattr(checkpoint, 'open', raising=False)
        directory.chmod(0o755)


@contextlib.contextmanager
def disk_full_part_way(limit: int = 100_000):
    """Writes past `limit` bytes of a file fail in the kernel (RLIMIT_FSIZE: EFBIG), as a full
    disk fails a write (ENOSPC) once some of the file is written."""
    resource = pytest.importorskip('resource')
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the signal kills the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield os.strerror(errno.EFBIG)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


@pytest.mark.parametrize('fault', ['read-only directory', 'a write fails part-way'])
def test_a_failed_save_is_one_line_and_keeps_the_previous_checkpoint(fault, tiny_run, tmp_path, monkeypatch):
    directory = tmp_path / 'ckpt'
    directory.mkdir()
    previous = directory / 'run_step2.pth'
    shutil.copy(finished_checkpoint(tiny_run), previous)
    state = load_checkpoint(previous)
    assert len(previous.read_bytes()) > 100_000  # so the limited write really fails part-way
    targets = [previous, directory / 'run_step4.pth']  # over the previous checkpoint, and beside it
    with (read_only(directory, monkeypatch) if fault == 'read-only directory' else disk_full_part_way()) as cause:
        for target in targets:
            with pytest.raises(CheckpointSaveError) as info:
                atomic_torch_save(state, target)
            message = str(info.value)
            assert '\n' not in message and message.startswith(f"cannot save checkpoint {str(target)!r}: {cause};")
            assert isinstance(info.value, OSError) and info.value.errno in (errno.EACCES, errno.EFBIG)
    assert sorted(os.listdir(directory)) == ['run_step2.pth']  # no .tmp, nothing half-written
    assert load_checkpoint(previous)['step'] == 4
    assert all(torch.equal(v, state['model'][k]) for k, v in load_checkpoint(previous)['model'].items())


def test_a_save_fault_during_training_stops_the_run_with_one_line(tmp_path, monkeypatch, capsys):
    real_save, calls = torch.save, []

    def disk_fills(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) < 2:
            return real_save(obj, f, *args, **kwargs)
        buf = io.BytesIO()
        real_save(obj, buf)
        f.write(buf.getvalue()[:len(buf.getvalue()) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, 'save', disk_fills)
    ckpt = tmp_path / 'ckpt'
    c = tiny(tmp_path, 'ckpt', steps=6, save_every=2)  # saves step 2, then 50% at step 3 (the disk is full)
    assert main(cli_args(c) + ['--plot', 'False']) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last == (f"error: cannot save checkpoint {str(ckpt / f'{c.run_name}_50.0%.pth')!r}: No space left on device; "
                    f"earlier checkpoints are untouched - free disk space or make {str(ckpt)!r} writable (config key "
                    f"checkpoint_dir), then resume")
    assert 'Traceback' not in err and len(calls) == 2  # the run stopped at the failed save
    assert sorted(p.name for p in ckpt.glob('*.pth*')) == [f'{c.run_name}_step2.pth']
    assert load_checkpoint(ckpt / f'{c.run_name}_step2.pth')['step'] == 2


def test_a_second_name_is_a_copy_where_links_fail_and_one_line_where_both_fail(tmp_path, monkeypatch):
    import shutil
    saved = tmp_path / 'run_100.0%.pth'
    saved.write_bytes(b'state')

    def no_links(*a):
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))
    monkeypatch.setattr(os, 'link', no_links)
    alias_checkpoint(saved, tmp_path / 'run_100%.pth')
    assert (tmp_path / 'run_100%.pth').read_bytes() == b'state'

    def full(*a):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(shutil, 'copyfile', full)
    with pytest.raises(CheckpointSaveError, match=r"^cannot save checkpoint '.*run_step2.pth': No space left on device; "
                                                  r"earlier checkpoints are untouched"):
        alias_checkpoint(saved, tmp_path / 'run_step2.pth')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['run_100%.pth', 'run_100.0%.pth']  # no temporary file
