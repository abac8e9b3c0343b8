"""Where a relative path points: one rule for every path a config, a command or a data name
gives (pulls in nothing heavy, so worker processes and the config can import it)."""
from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def repo_path(p: str | Path) -> Path:
    """`p` with `~` expanded; a relative path is taken from the working directory when it exists
    there, otherwise from the repository, so `data/...` and `checkpoints/...` resolve the same
    from a notebook, a command run elsewhere, or a worker process."""
    p = Path(p).expanduser()
    return p if p.is_absolute() or p.exists() else REPO_ROOT / p
