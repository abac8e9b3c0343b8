"""One run per name, and the file-system checks a run makes before any work.

A pre-training run holds an exclusive OS lock (`fcntl.flock`) on `{run_name}.lock` in its
checkpoint directory from its start to its end. A second process starting the same run name
stops at once with one line naming the holder's pid, instead of interleaving its log and
checkpoints with the first one's. The OS drops the lock when the holder exits, crash and
SIGKILL included, so a lock file left behind never blocks a later run.

A new run whose name already has files (checkpoints, logs, plot, export) is refused unless it
continues them (`resume`) or replaces them (`overwrite`, done only once the lock is held).
"""
from __future__ import annotations

import errno
import fcntl
import os
import shutil
import socket
import sys
import time
from pathlib import Path

from _utils.atomic import write_probe
from _utils.paths import repo_path
from pretrain.run.run_dir import RunDir

# lock files this process holds: path -> [fd, holders]. The demo holds its run around
# pretrain(), which claims it again: a second flock of the file from this process would conflict
_HELD: dict[str, list[int]] = {}


def _exists(p: Path) -> bool:
    try:
        return p.exists()
    except OSError:  # e.g. inside a directory we may not read: mkdir below says why
        return False


def writable_dir(path: str | Path, key: str) -> Path:
    """`path` (`repo_path`), created if missing, checked by writing a one-byte probe file in it.

    Each fault is a one-line `ValueError` naming the config key, the path and the fix: a file
    where a directory is expected, a directory that cannot be created, or one that cannot be
    written (read-only, full, not ours)."""
    p = repo_path(path)
    nearest = next(q for q in (p, *p.parents) if _exists(q))
    if not nearest.is_dir():
        where = '' if nearest == p else f": {str(nearest)!r}"
        raise ValueError(f"{key} {str(path)!r}{where} is a file, not a directory; give a directory (--{key} DIR)")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"cannot create {key} {str(path)!r} in {str(nearest)!r} ({e.strerror or e}); "
                         f"give a directory you can write to (--{key} DIR)") from None
    try:
        write_probe(p)
    except OSError as e:
        raise ValueError(f"{key} {str(path)!r} is not writable ({e.strerror or e}); make it writable or free "
                         f"space on it, or give another directory (--{key} DIR)") from None
    return p


class RunLock:
    """An exclusive `flock` on a run's lock file, re-entrant within a process.

    `acquire` raises a one-line `ValueError` naming the holder's pid when another process holds
    it; `release` removes the file and unlocks. `nested` is True when this process already held
    the lock (the outer holder did the run's checks)."""

    def __init__(self, path: str | Path, run_name: str = ''):
        self.path, self.run_name = Path(path), run_name or Path(path).stem
        self.held = self.nested = False

    @property
    def _key(self) -> str:
        return os.path.abspath(self.path)

    def acquire(self) -> RunLock:
        if self._key in _HELD:
            _HELD[self._key][1] += 1
            self.held = self.nested = True
            return self
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise ValueError(f"cannot create the run's lock file {str(self.path)!r} ({e.strerror or e}); make "
                                 f"{str(self.path.parent)!r} writable or give another checkpoint_dir") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise ValueError(f"run {self.run_name} is already being trained by {self.holder()} (lock "
                                     f"{str(self.path)!r}); wait for it to end, or name this run otherwise "
                                     f"(--base_run_name NAME or --seed N)") from None
                # a file system without locks (some network mounts): run, but say what is not guarded
                print(f"warning: cannot lock {str(self.path)!r} ({e.strerror or e}); a second run of "
                      f"{self.run_name} started now would not be stopped", file=sys.stderr)
                self.held = False
                return self
            try:  # the holder before us removes the file as it releases: then lock the new file
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f'{os.getpid()} {socket.gethostname()}\n'.encode())
        _HELD[self._key] = [fd, 1]
        self.held = True
        return self

    def holder(self, wait_s: float = 1.0) -> str:
        """'pid N' (and its host when not this one) from the lock file; the holder writes it just
        after locking, so an empty file is read again for up to `wait_s`."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fields = self.path.read_text().split()
            except OSError:
                fields = []
            if fields or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if not fields:
            return 'another process'
        pid, host = fields[0], (fields[1] if len(fields) > 1 else '')
        return f'pid {pid}' + (f' on {host}' if host and host != socket.gethostname() else '')

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        entry = _HELD.get(self._key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1]:
            return
        del _HELD[self._key]
        try:  # removed while still locked: a process that opened it meanwhile sees another inode and retries
            self.path.unlink(missing_ok=True)
        except OSError:
            pass
        fcntl.flock(entry[0], fcntl.LOCK_UN)
        os.close(entry[0])

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _names(files: list[Path]) -> str:
    names = [p.name + ('/' if p.is_dir() else '') for p in files]
    return ', '.join(names[:3]) + (f' and {len(names) - 3} more' if len(names) > 3 else '')


def _remove(files: list[Path]) -> None:
    for p in files:
        try:
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink(missing_ok=True)
        except OSError as e:
            raise ValueError(f"overwrite: cannot delete {str(p)!r} ({e.strerror or e}); delete it by hand or "
                             f"name this run otherwise") from None


def claim_run(c, rank: int = 0) -> RunLock | None:
    """What a run checks before any work, in one place: `data_dir` writable (every rank: each
    may write caches), then on rank 0 `checkpoint_dir` writable, the run name locked for the
    run's lifetime, and its earlier files kept (refused: neither `resume` nor `overwrite`),
    continued (`resume`) or deleted (`overwrite`). Returns the held lock (release it when the
    run ends), or None on other ranks. Every fault is a one-line `ValueError`."""
    writable_dir(c.data_dir, 'data_dir')
    if rank:
        return None
    run = RunDir(writable_dir(c.checkpoint_dir, 'checkpoint_dir'), c.run_name)
    lock = RunLock(run.lock, c.run_name).acquire()
    if lock.nested:
        return lock
    try:
        existing = run.files()
        if existing and c.get('overwrite'):
            _remove(existing)
            print(f"overwrite: deleted run {c.run_name}'s earlier files in {run.directory} ({_names(existing)})")
        elif existing and not c.get('resume'):
            raise ValueError(f"run {c.run_name} already has files in {str(run.directory)!r} ({_names(existing)}); "
                             f"continue it with --resume latest, replace them with --overwrite true, or name this "
                             f"run otherwise (--base_run_name NAME or --seed N)")
    except BaseException:
        lock.release()
        raise
    return lock
