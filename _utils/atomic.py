"""Files and directories that appear whole or not at all: each writer writes under a temporary
name of its own beside the target (`{name}.{host}-{pid}.{suffix}`), then renames it over the
target. A reader, a crash or a second writer at the same moment sees the old version or the new
one, never half of one; a writer that died mid-write leaves a temporary name that the next writer
of that target removes."""
from __future__ import annotations

import glob
import os
import re
import shutil
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

_HOST = socket.gethostname().replace(os.sep, '_')


def temp_sibling(base: Path, suffix: str) -> Path:
    """This process's temporary name for writing `base` (a file or a directory), beside it:
    `{base}.{host}-{pid}.{suffix}`, renamed onto its final name once complete."""
    base = Path(base)
    return base.with_name(f'{base.name}.{_HOST}-{os.getpid()}.{suffix}')


def write_probe(directory: Path) -> None:
    """Write one byte to a probe file in `directory` and remove it; an `OSError` when that fails
    (read-only, full, not ours). A byte, not an empty file: a full disk still creates empty files."""
    probe = Path(directory) / f'.write-test.{_HOST}-{os.getpid()}'
    try:
        with open(probe, 'wb') as f:
            f.write(b'0')
    finally:
        try:
            probe.unlink(missing_ok=True)
        except OSError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, someone else's
        return True
    return True


def remove_stale_temps(base: Path, suffix: str) -> None:
    """Delete the temporary files or directories of `base` (`temp_sibling`) left by writers that
    died mid-write: those of this host whose process is gone, and the untagged `{base}.{suffix}`
    of earlier versions. A live writer's, or another host's, is left alone."""
    base = Path(base)
    pattern = re.compile(re.escape(base.name) + r'(?:\.(.+)-(\d+))?\.' + re.escape(suffix))
    for p in base.parent.glob(f'{glob.escape(base.name)}*.{suffix}'):
        m = pattern.fullmatch(p.name)
        if m is None or (m[2] is not None and (m[1] != _HOST or _alive(int(m[2])))):
            continue
        try:
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink(missing_ok=True)
        except OSError:
            pass  # e.g. removed by another process meanwhile


def _fsync(path: Path) -> None:
    """Make `path`'s content (a file) or a rename in it (a directory) durable; a no-op where the
    system does not allow it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """`write(tmp)` this writer's temporary file beside `path`, fsync it, rename it over `path`
    and fsync the directory. Whatever `write` or the disk raises propagates after the temporary
    file is removed (Ctrl-C too), with `path` as it was: callers word the one-line error."""
    path = Path(path)
    tmp = temp_sibling(path, 'tmp')
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(path, 'tmp')
        write(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # e.g. the directory became read-only: the write's own error is the one to report
        raise
    _fsync(path.parent)
    return path


def atomic_alias(src: str | Path, path: str | Path) -> Path:
    """`path` as a second name of the complete file `src`, atomically: a hard link (no second copy
    on disk), or a copy where the file system has no hard links."""
    def write(tmp: Path) -> None:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
    return atomic_write(path, write)


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """The path of a temporary directory of this writer's beside `path` (not created: the block
    creates and fills it). When the block ends without an error it replaces `path`: an earlier
    version is moved aside, put back if the rename fails, and deleted after. On an error the
    temporary directory is deleted and `path` is as it was."""
    path = Path(path)
    tmp, old = temp_sibling(path, 'partial'), temp_sibling(path, 'old')
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ('partial', 'old'):
        remove_stale_temps(path, suffix)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        yield tmp
        if path.exists():
            path.rename(old)
        try:
            tmp.rename(path)
        except OSError:
            if old.exists():
                old.rename(path)  # keep the previous version rather than nothing
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
