"""Reading checkpoints safely: every read uses `torch.load(weights_only=True)`, so a file someone
sends you cannot run code when it is resumed, exported, inspected or scanned. A file that would
need more is refused in one line naming what it would import. Format 1 (before checkpoints held
only tensors and plain values) differs only by numpy's RNG state, pickled as an ndarray; it is still
read, with numpy's array constructors allowed for that one read (see `_read`)."""
from __future__ import annotations

import pickletools
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = 'electra-pretrain-checkpoint/2'
OLD_FORMATS = ('electra-pretrain-checkpoint/1',)


def _numpy_array_globals() -> list[Any]:
    """What unpickling a numpy RNG state (format 1) calls: numpy's array and dtype constructors,
    under the names numpy 1 (`numpy.core`) and numpy 2 (`numpy._core`) pickle them with, and the
    class of the uint32 dtype (the unpickler sets its state).

    torch does not allow these by default because it does not control numpy's code; they build
    an array or a dtype from plain values and call nothing else (an object array's items are
    unpickled by the same restricted unpickler). They are allowed only while reading a file whose
    pickle, scanned without running it, names nothing beyond them."""
    reconstruct = np.zeros(0).__reduce__()[0]
    return [(reconstruct, 'numpy.core.multiarray._reconstruct'), (reconstruct, 'numpy._core.multiarray._reconstruct'),
            np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def _global_names(allowed: list[Any]) -> set[str]:
    return {a[1] if isinstance(a, tuple) else f'{a.__module__}.{a.__qualname__}' for a in allowed}


_STRING_OPS = {'STRING', 'BINSTRING', 'SHORT_BINSTRING', 'UNICODE', 'BINUNICODE', 'SHORT_BINUNICODE', 'BINUNICODE8'}


def _pickle_globals(path: Path) -> list[str]:
    """The `module.name` of every class or function a bare pickle file would import, found by
    `pickletools` without running anything; [] if it names none or is not a pickle.

    Protocol 4+ names a global by two strings pushed before STACK_GLOBAL (possibly fetched back
    from the memo), so the last two pushed values and the memoized strings are tracked."""
    names: set[str] = set()
    last: list[Any] = []  # the two values pushed most recently (strings; None for anything else)
    memo: dict[int, Any] = {}
    try:
        with open(path, 'rb') as f:
            for op, arg, _ in pickletools.genops(f):
                if op.name in ('GLOBAL', 'INST'):
                    names.add(arg.replace(' ', '.'))
                elif op.name == 'STACK_GLOBAL':
                    names.add('.'.join(last) if len(last) == 2 and None not in last else 'an unnamed global')
                if op.name == 'MEMOIZE':
                    memo[len(memo)] = last[-1] if last else None
                elif op.name in ('PUT', 'BINPUT', 'LONG_BINPUT'):
                    memo[arg] = last[-1] if last else None
                elif op.name not in ('FRAME', 'PROTO'):
                    value = arg if op.name in _STRING_OPS else memo.get(arg) if 'GET' in op.name else None
                    last = [*last[-1:], value]
    except Exception:  # not a pickle, or a damaged one: what was read until then still counts
        pass
    return sorted(names)


def _upgrade(state: dict[str, Any]) -> dict[str, Any]:
    """A format-1 state in format 2's shape (numpy's RNG state as in `capture_rng`)."""
    rng = dict(state.get('rng') or {})
    if isinstance(rng.get('numpy'), tuple):
        kind, key, pos, has_gauss, cached_gaussian = rng['numpy'][:5]
        rng['numpy'] = {'kind': kind, 'key': torch.from_numpy(np.asarray(key).astype(np.int64)), 'pos': int(pos),
                        'has_gauss': int(has_gauss), 'cached_gaussian': float(cached_gaussian)}
    return {**state, 'rng': rng, 'format': FORMAT}


def _unreadable(path: Path, e: Exception | None = None) -> ValueError:
    why = f' ({type(e).__name__})' if e is not None else ''
    return ValueError(f"{str(path)!r} cannot be read as a checkpoint{why}: not a checkpoint, or a damaged one (then "
                      f"use an earlier checkpoint of the run)")


def _refused(path: Path, unsafe: list[str]) -> ValueError:
    names = ', '.join(sorted(unsafe)[:3]) + (f' and {len(unsafe) - 3} more' if len(unsafe) > 3 else '')
    return ValueError(f"{str(path)!r} refused: it needs unsafe unpickling (it would import {names}) but an "
                      f"electra-pretrain checkpoint holds only tensors and plain values, so it is foreign or altered; "
                      f"do not load it unless you trust it - use another checkpoint of the run, or re-run")


def _not_ours(path: Path) -> ValueError:
    return ValueError(f"{str(path)!r} is not an electra-pretrain checkpoint (format {FORMAT})")


def _read(path: Path, mmap: bool = False) -> Any:
    """`torch.load(path, weights_only=True)`, or a one-line `ValueError`: the file is damaged or
    foreign, or it needs unpickling that can run code (refused, naming what it would import).

    Only torch's zip format is unpickled at all (that is what `torch.save` writes); a bare pickle
    is scanned, never loaded. A format-1 checkpoint needs numpy's array constructors (its numpy
    RNG state is an ndarray): when a scan of its pickle finds nothing else, it is read with just
    those allowed."""
    if not zipfile.is_zipfile(path):
        unsafe = _pickle_globals(path)
        raise (_refused(path, unsafe) if unsafe else _unreadable(path)) from None
    try:
        return torch.load(path, map_location='cpu', weights_only=True, mmap=mmap)
    except Exception as e:  # torch raises RuntimeError/EOFError/UnpicklingError for damaged files
        error = e
    try:  # a static scan of the pickle: what did the restricted unpickler refuse?
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:
        unsafe = []
    if not unsafe:
        raise _unreadable(path, error) from None
    allowed = _numpy_array_globals()
    beyond = set(unsafe) - _global_names(allowed)
    if beyond:
        raise _refused(path, sorted(beyond)) from None
    try:
        with torch.serialization.safe_globals(allowed):
            state = torch.load(path, map_location='cpu', weights_only=True, mmap=mmap)
    except Exception as e:
        raise _unreadable(path, e) from None
    if not isinstance(state, dict) or state.get('format') not in OLD_FORMATS:
        raise _not_ours(path)
    return _upgrade(state)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint safely (`weights_only`); a missing, truncated, foreign or code-carrying
    file is a one-line `ValueError`. A format-1 checkpoint comes back in format 2's shape."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"checkpoint {str(path)!r} is a directory; give one of its checkpoint files (.pth), or "
                         f"resume 'latest' for the run's latest checkpoint in checkpoint_dir")
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} does not exist")
    return read_checkpoint(path)


def read_checkpoint(path: Path, mmap: bool = False) -> dict[str, Any]:
    """A checkpoint file's state, read safely (`_read`; with `mmap` the weights stay on disk), or
    a one-line `ValueError` when it is not one."""
    state = _read(path, mmap)
    if not isinstance(state, dict) or state.get('format') != FORMAT:
        raise _not_ours(path)
    return state
