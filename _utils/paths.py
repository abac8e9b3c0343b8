"""Where a relative path points: one rule for every path a config, a command or a data name
gives (pulls in nothing heavy, so worker processes and the config can import it).

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
