"""How every command of the project ends on a bad input: one line, `error: ...`, and an exit status;
never a traceback."""
from __future__ import annotations

import sys
from typing import Callable


def first_line(e: BaseException) -> str:
    """An exception's first message line, for a one-line error that wraps it; its type's name when
    it has no message (a bare KeyError or StopIteration)."""
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def error_line(e: BaseException) -> str:
    """The one line an error is reported as: an OSError as `path: reason`; a message that fastai
    prefixed with the callback it came from, by its last line; white space collapsed."""
    if isinstance(e, OSError) and e.strerror:
        text = f'{e.filename}: {e.strerror}' if e.filename else e.strerror
    else:
        lines = str(e).strip().splitlines() or [type(e).__name__]
        text = lines[-1]
    return 'error: ' + ' '.join(text.split())


def run_command(func: Callable[[], int], errors: tuple[type[BaseException], ...] = (ValueError, OSError),
                status: int = 2, interrupted: str | None = None) -> int:
    """`func()`'s exit status; one of `errors` is printed as `error_line` on stderr and gives
    `status`; Ctrl-C prints `interrupted` (how to continue) and gives 130."""
    try:
        return func()
    except KeyboardInterrupt:
        if interrupted:
            print(interrupted, file=sys.stderr)
        return 130
    except errors as e:
        print(error_line(e), file=sys.stderr)
        return status
