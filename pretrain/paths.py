"""Where a relative path points: one rule for every path a config, a command or a data name
gives; and the temporary names a writer uses before renaming (pulls in nothing heavy, so worker
processes and the config can import it)."""
from __future__ import annotations

import glob
import os
import re
import shutil
import socket
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def repo_path(p: str | Path) -> Path:
    """`p` with `~` expanded; a relative path is taken from the working directory when it exists
    there, otherwise from the repository, so `data/...` and `checkpoints/...` resolve the same
    from a notebook, a command run elsewhere, or a worker process."""
    p = Path(p).expanduser()
    return p if p.is_absolute() or p.exists() else REPO_ROOT / p


# ---- temporary files: one per writer ------------------------------------------------------------
# `{base}.{host}-{pid}.{suffix}`: two processes writing the same file at once (two runs building one
# cache) never share a temporary file, and a leftover names the writer that died mid-write
_HOST = socket.gethostname().replace(os.sep, '_')


def temp_sibling(base: Path, suffix: str) -> Path:
    """This process's temporary name for writing `base` (a file or a directory), beside it:
    `{base}.{host}-{pid}.{suffix}`, renamed onto its final name once complete."""
    base = Path(base)
    return base.with_name(f'{base.name}.{_HOST}-{os.getpid()}.{suffix}')


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
