"""Where a relative path points: one rule for every path a config, a command or a data name
gives, and the temporary names a writer uses before renaming (pulls in nothing heavy, so worker
processes and the config can import it).

The rule, for a relative path:
1. it exists in the working directory: taken from there;
2. it names data the repository ships (`SHIPPED`: the sample and documentation corpora, their
   tokenizers, the fine-tuning tasks): taken from the repository, so they are found from a
   notebook or a command in any directory once the package is installed (`pip install -e .`);
3. anything else, above all what a run writes (`data_dir` caches, `checkpoint_dir`, a new
   tokenizer, a built corpus): the working directory. Nothing is written into the clone
   unless the working directory is the clone or an absolute path points there.
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import socket
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# the directories of shipped data (tracked by git), relative to REPO_ROOT
SHIPPED = ('data/sample', 'data/docs_ja', 'data/tasks')


def is_shipped(p: str | Path) -> bool:
    """Whether the relative path `p` is one of `SHIPPED` or lies inside one."""
    parts = Path(p).parts
    return any(parts[:len(Path(s).parts)] == Path(s).parts for s in SHIPPED)


def repo_path(p: str | Path) -> Path:
    """`p` with `~` expanded; a relative path is taken from the working directory when it exists
    there, from the repository when it names shipped data (`SHIPPED`), else from the working
    directory (returned relative): `data/sample/...` and `data/tasks/...` resolve the same from
    a notebook, a command run elsewhere or a worker process, and outputs land where the user is."""
    p = Path(p).expanduser()
    if p.is_absolute() or p.exists() or not is_shipped(p):
        return p
    return REPO_ROOT / p


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
