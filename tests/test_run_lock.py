"""One run per name: the run lock (held by another process, released by a crash, exclusive under a
race), the refusal to start over a run's files unless resuming or overwriting, and every
file-system fault of the run's directories as one line before any work."""
import errno
import multiprocessing
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from _utils import atomic
from pretrain.__main__ import main
from pretrain.config import get_config
from pretrain.run.log_cb import read_log
from pretrain.run.run_dir import RunDir
from pretrain.run.run_lock import RunLock, claim_run, writable_dir
from pretrain.train import pretrain

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, 'PYTHONPATH': str(REPO), 'OMP_NUM_THREADS': '1'}


def config(tmp, **kw):
    return get_config('tiny', **{**dict(steps=4, bs=8, num_workers=0, num_proc=1, device='cpu', log_every=2,
                                        save_points=[0.5, 1.0], plot=False, export=False,
                                        data_dir=str(tmp / 'data'), checkpoint_dir=str(tmp / 'ckpt')), **kw})


def cli(c, *extra):
    keys = ('size', 'steps', 'bs', 'num_workers', 'num_proc', 'device', 'log_every', 'plot', 'export', 'data_dir',
            'checkpoint_dir')
    return [a for k in keys for a in (f'--{k}', str(c[k]))] + ['--save_points', '0.5', '1.0', *extra]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and '\n' not in err, err
    return err


def hold_lock_in_child(path: Path) -> subprocess.Popen:
    """A child process that holds the run lock `path` until killed."""
    code = ("import sys, time; from pretrain.run.run_lock import RunLock; RunLock(sys.argv[1]).acquire(); "
            "print('locked', flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, '-c', code, str(path)], cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == 'locked'
    return proc


# ---- the lock ----------------------------------------------------------------------------------

def test_a_run_held_by_another_process_stops_at_once_naming_its_pid(tmp_path, capsys):
    c = config(tmp_path)
    (tmp_path / 'ckpt').mkdir()
    lock = RunDir(tmp_path / 'ckpt', c.run_name).lock
    holder = hold_lock_in_child(lock)
    try:
        with pytest.raises(ValueError, match=rf"run vanilla_11081 is already being trained by pid {holder.pid} "
                                             rf"\(lock .*\); wait for it to end, or name this run otherwise"):
            pretrain(c)
        assert main(cli(c, '--overwrite', 'true')) == 2  # overwrite does not take a live run's name either
        assert f'pid {holder.pid}' in one_line_error(capsys)
        assert not (tmp_path / 'data' / 'preprocess').exists()  # stopped before any work
        assert sorted(p.name for p in (tmp_path / 'ckpt').iterdir()) == ['vanilla_11081.lock']
    finally:
        holder.send_signal(signal.SIGKILL)  # a crash: the OS drops the lock, the file stays
        holder.wait()
    assert lock.exists()
    assert pretrain(c).train_iter == 4  # the stale file blocks nothing
    assert not lock.exists()  # removed by the run that held it last


def test_the_lock_is_reentrant_within_a_process_and_released_by_its_last_holder(tmp_path):
    path = tmp_path / 'r.lock'
    outer = RunLock(path).acquire()
    inner = RunLock(path).acquire()  # the demo holds its run around pretrain(), which claims it again
    assert inner.nested and not outer.nested
    inner.release()
    assert path.exists() and RunLock(path).holder() == f'pid {os.getpid()}'
    outer.release()
    assert not path.exists()
    with RunLock(path):
        assert path.exists()
    assert not path.exists()


def _contend(path: str, marker: str, rounds: int, out) -> None:
    """Take the lock `rounds` times; while holding it, create `marker` exclusively: a second
    holder at the same moment would find it there."""
    overlaps = taken = 0
    while taken < rounds:
        try:
            lock = RunLock(path).acquire()
        except ValueError:
            continue
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.close(fd)
            os.unlink(marker)
        except FileExistsError:
            overlaps += 1
        lock.release()  # removes the lock file: the others must notice and lock the next one
        taken += 1
    out.put(overlaps)


def test_the_lock_is_exclusive_while_processes_race_for_it(tmp_path):
    ctx = multiprocessing.get_context('fork')
    out = ctx.Queue()
    procs = [ctx.Process(target=_contend, args=(str(tmp_path / 'r.lock'), str(tmp_path / 'marker'), 100, out))
             for _ in range(4)]
    for p in procs:
        p.start()
    overlaps = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join()
    assert overlaps == [0, 0, 0, 0]


def test_two_runs_of_one_name_started_together_leave_one_run(tmp_path):
    """The issue's race: the same command with another corpus, started at the same moment. One
    trains, the other stops with one line (the lock, or the first run's files); the log and the
    checkpoints are the winner's alone."""
    c = config(tmp_path, steps=20, save_points=[0.25, 1.0])
    procs = {data: subprocess.Popen([sys.executable, '-m', 'pretrain', *cli(c, '--datas', data)], cwd=REPO, env=ENV,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for data in ('sample', 'sample_en')}
    codes = {data: p.wait(timeout=300) for data, p in procs.items()}
    assert sorted(codes.values()) == [0, 2], codes
    winner = next(d for d, code in codes.items() if code == 0)
    loser = next(d for d in procs if d != winner)
    err = procs[loser].stderr.read().strip().splitlines()[-1]
    assert (f'already being trained by pid {procs[winner].pid}' in err
            or 'already has files' in err and '--overwrite true' in err), err
    run = RunDir(tmp_path / 'ckpt', c.run_name)
    assert [r['step'] for r in read_log(run.train_csv)] == list(range(2, 21, 2))  # one run's rows, in order
    import torch
    for p in run.checkpoint_files():
        assert torch.load(p, weights_only=True)['config']['datas'] == [winner]
    assert not list(run.directory.glob('*.tmp')) and not run.lock.exists()


# ---- a run's earlier files -----------------------------------------------------------------------

def plant_run_files(directory: Path, run_name: str) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    run = RunDir(directory, run_name)
    files = [run.train_csv, run.valid_csv, run.plot, run.checkpoint('50.0%'), run.checkpoint('step8'), run.demo_report]
    for f in files:
        f.write_text('earlier run')
    (run.export / 'discriminator').mkdir(parents=True)
    return files + [run.export]


def test_a_new_run_over_a_runs_files_is_refused_and_overwrite_deletes_only_that_run(tmp_path, capsys):
    c = config(tmp_path)
    mine = plant_run_files(tmp_path / 'ckpt', c.run_name)
    others = plant_run_files(tmp_path / 'ckpt', 'vanilla_11081_2') + plant_run_files(tmp_path / 'ckpt', 'other_1')
    with pytest.raises(ValueError, match=r"run vanilla_11081 already has files in .*ckpt' \(.* and 4 more\); continue "
                                         r"it with --resume latest, replace them with --overwrite true, or name"):
        claim_run(c)
    assert all(p.exists() for p in mine) and not RunDir(tmp_path / 'ckpt', c.run_name).lock.exists()

    capsys.readouterr()
    c.overwrite = True
    claim_run(c).release()
    assert "overwrite: deleted run vanilla_11081's earlier files" in capsys.readouterr().out
    assert not any(p.exists() for p in mine)
    assert all(p.exists() for p in others)  # another run's, even one whose name extends this one's

    plant_run_files(tmp_path / 'ckpt', 'resumed_1')
    claim_run(config(tmp_path, base_run_name='resumed', seed=1, resume='latest')).release()  # resuming keeps them
    assert RunDir(tmp_path / 'ckpt', 'resumed_1').train_csv.read_text() == 'earlier run'


def test_a_plain_rerun_is_refused_and_overwrite_starts_afresh(tmp_path, capsys):
    c = config(tmp_path)
    assert main(cli(c)) == 0
    run = RunDir(tmp_path / 'ckpt', c.run_name)
    before = {p.name: p.read_bytes() for p in run.files()}
    capsys.readouterr()
    assert main(cli(c, '--steps', '2')) == 2
    err = one_line_error(capsys)
    assert '--resume latest' in err and '--overwrite true' in err
    assert {p.name: p.read_bytes() for p in run.files()} == before  # untouched
    assert main(cli(c, '--steps', '2', '--overwrite', 'true')) == 0
    assert [r['step'] for r in read_log(run.train_csv)] == [2]  # the new run's log only
    assert [p.name for p in run.checkpoint_files()] == ['vanilla_11081_100.0%.pth', 'vanilla_11081_50.0%.pth']
    assert main(cli(c, '--resume', 'latest', '--overwrite', 'true')) == 2
    assert 'overwrite deletes the run' in one_line_error(capsys)


# ---- file-system faults ------------------------------------------------------------------------

def test_a_file_where_a_directory_is_expected(tmp_path, capsys):
    f = tmp_path / 'file'
    f.write_text('x')
    with pytest.raises(ValueError, match=r"^checkpoint_dir '.*file' is a file, not a directory; give a directory "
                                         r"\(--checkpoint_dir DIR\)$"):
        writable_dir(f, 'checkpoint_dir')
    with pytest.raises(ValueError, match=r"^data_dir '.*file/sub': '.*file' is a file, not a directory"):
        writable_dir(f / 'sub', 'data_dir')
    c = config(tmp_path, checkpoint_dir=str(f))
    assert main(cli(c)) == 2
    assert 'is a file, not a directory' in one_line_error(capsys)
    assert not (tmp_path / 'data' / 'preprocess').exists()  # checked before preprocessing


def test_a_directory_that_cannot_be_created(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"^cannot create checkpoint_dir '/proc/ck' in '/proc' \(No such file or "
                                         r"directory\); give a directory you can write to \(--checkpoint_dir DIR\)$"):
        writable_dir('/proc/ck', 'checkpoint_dir')
    assert main(cli(config(tmp_path, checkpoint_dir='/proc/ck'))) == 2
    assert "cannot create checkpoint_dir '/proc/ck'" in one_line_error(capsys)
    assert main(cli(config(tmp_path, data_dir='/proc/data'))) == 2
    assert "cannot create data_dir '/proc/data'" in one_line_error(capsys)


@pytest.mark.parametrize('key', ['data_dir', 'checkpoint_dir'])
@pytest.mark.parametrize('code, reason', [(errno.EROFS, 'Read-only file system'), (errno.ENOSPC, 'No space left'),
                                          (errno.EACCES, 'Permission denied')])
def test_an_unwritable_directory_is_one_line_before_preprocessing(tmp_path, monkeypatch, capsys, key, code, reason):
    """Root writes through chmod, so the directory is made unwritable where it binds for root too:
    the probe's `open` (`_utils.atomic.write_probe`) fails for files in it, as a read-only mount, a full disk or a foreign
    directory would."""
    blocked = tmp_path / ('data' if key == 'data_dir' else 'ckpt')
    real_open = open

    def refusing_open(file, *args, **kwargs):
        if Path(file).parent == blocked:
            raise OSError(code, os.strerror(code), str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(atomic, 'open', refusing_open, raising=False)
    c = config(tmp_path)
    with pytest.raises(ValueError, match=rf"^{key} '.*{blocked.name}' is not writable \({reason}.*\); make it writable "
                                         rf"or free space on it, or give another directory \(--{key} DIR\)$"):
        pretrain(c)
    assert main(cli(c)) == 2
    assert 'is not writable' in one_line_error(capsys)
    assert os.listdir(blocked) == []  # no probe left, no lock, no log
    assert not (tmp_path / 'data' / 'preprocess').exists()  # nothing preprocessed
