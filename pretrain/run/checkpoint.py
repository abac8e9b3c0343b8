"""Training checkpoints that a run can resume from exactly, written atomically, read safely.

A checkpoint is one `torch.save` file holding the model, the optimizer, the grad scaler, the
step, every RNG (python, numpy, torch CPU/CUDA, the dataloader's shuffling and its position in
the epoch), the state of callbacks that keep some (the CSV logger's running sums), the config,
and a signature of the model architecture and vocabulary that a resume must match.

Everything in it is a tensor or a plain value (dict, list, tuple, str, int, float, bool, None),
so every read uses `torch.load(weights_only=True)`: a file someone sends you cannot run code
when it is resumed, exported, inspected or scanned. A file that would need more is refused.
Format 1 (before this rule) differs only by numpy's RNG state, pickled as an ndarray; it is
still read, with numpy's array constructors allowed for that one read (see `_read`).
"""
from __future__ import annotations

import errno as errno_codes
import os
import pickletools
import sys
import zipfile
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import torch
from fastai.callback.core import Callback, TrainEvalCallback

from pretrain.run.distributed import unwrap
from pretrain.run.flops import flops_per_step
from _utils.rng import capture_rng, restore_rng  # noqa: F401  (tests import them from here)
from _utils.atomic import atomic_write
from _utils.paths import repo_path
from pretrain.run.run_dir import RunDir
from pretrain.prepare.vocab import vocab_hash

FORMAT = 'electra-pretrain-checkpoint/2'
OLD_FORMATS = ('electra-pretrain-checkpoint/1',)
ARCH_KEYS = ('vocab_size', 'embedding_size', 'hidden_size', 'num_hidden_layers', 'num_attention_heads',
             'intermediate_size', 'max_position_embeddings', 'type_vocab_size')


class CheckpointSaveError(OSError, ValueError):
    """A checkpoint could not be written (disk full, directory not writable...). An `OSError`
    for callers handling disk faults, and a `ValueError` so the command line prints its one line."""


def model_signature(electra_model) -> dict[str, dict[str, Any]]:
    """The architecture values a checkpoint's weights depend on, for each model inside (`PARTS`:
    generator and discriminator, or the MLM baseline's one model)."""
    m = unwrap(electra_model)
    return {name: {k: getattr(getattr(m, name).config, k) for k in ARCH_KEYS} for name in m.PARTS}


def plain(obj: Any) -> Any:
    """`obj` with the containers and values a config or callback state may hold made plain:
    dict subclasses (MyConfig) -> dict, paths -> str, numpy scalars -> Python numbers, numpy
    arrays -> tensors. Anything else is kept; `atomic_torch_save` refuses what a safe load
    would refuse."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if type(obj) in (list, tuple):  # not a namedtuple: its class would have to be unpickled
        return type(obj)(plain(v) for v in obj)
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    return obj


def _defines(obj: Any, method: str) -> bool:
    # fastai callbacks forward unknown attributes to the Learner and on to the model, so
    # `hasattr(cb, 'state_dict')` is true for all of them (it is the model's): ask the class
    return callable(getattr(type(obj), method, None))


def _os_error(e: BaseException | None) -> OSError | None:
    """The OSError behind a failed write: torch turns one raised inside `torch.save` into a
    RuntimeError ('unexpected pos ...') whose context is the OSError."""
    while e is not None:
        if isinstance(e, OSError) and e.errno is not None:
            return e
        e = e.__cause__ or e.__context__
    return None


def _save_error(path: Path, e: Exception) -> CheckpointSaveError:
    os_error = _os_error(e)
    cause = (os_error.strerror or os.strerror(os_error.errno) if os_error is not None
             else f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}")
    err = CheckpointSaveError(f"cannot save checkpoint {str(path)!r}: {cause}; earlier checkpoints are untouched - "
                              f"free disk space or make {str(path.parent)!r} writable (config key checkpoint_dir), "
                              f"then resume")
    err.errno = os_error.errno if os_error is not None else errno_codes.EIO  # one message arg: fastai rewrites args
    return err


class _Unsafe(Exception):
    """The written pickle would need unsafe unpickling: raised before the rename, so it never appears."""


def atomic_torch_save(obj: Any, path: Path) -> None:
    """`torch.save` to `path` atomically (`_utils/atomic.py`): a reader (or a crash) never sees a
    half-written checkpoint, and a failed save leaves whatever `path` held before.

    A write fault (full disk, read-only directory) is a one-line `CheckpointSaveError` naming
    the file and the cause, with no temporary file left behind. An `obj` that a `weights_only`
    load would refuse (it holds some class instance) is a `ValueError` naming the classes, before
    anything replaces `path`.
    """
    path = Path(path)

    def write(tmp: Path) -> None:
        with open(tmp, 'wb') as f:
            torch.save(obj, f)
        # the readers' test, by a scan of the written pickle (nothing runs): refused files never appear
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(tmp))
        if unsafe:
            raise _Unsafe(', '.join(sorted(unsafe)))
    try:
        atomic_write(path, write)
    except _Unsafe as e:
        raise ValueError(f"checkpoint {str(path)!r} not saved: it would hold {e}, which a safe (weights_only) load "
                         f"refuses; callbacks' state_dict() must return tensors and plain values") from None
    except Exception as e:
        raise _save_error(path, e) from None


def save_checkpoint(learn, path: str | Path) -> Path:
    """Everything needed to resume `learn` after its current step, to `path` (atomically).

    The data position is the start-of-epoch RNG state of the training loader plus the number of
    batches already taken in this epoch.
    """
    path = Path(path)
    model = unwrap(learn.model)
    opt = getattr(learn.opt, 'opt', learn.opt)  # the torch optimizer inside fastai's OptimWrapper
    dl = learn.dls.train
    scaler = getattr(learn, 'scaler', None)
    state = {
        'format': FORMAT,
        'step': learn.train_iter // getattr(learn, 'grad_accum', 1),  # optimizer steps
        'train_iter': learn.train_iter,
        'model': model.state_dict(),
        'opt': opt.state_dict() if opt is not None else None,
        'scaler': scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        'rng': capture_rng(),
        'data': {'epoch_rng_state': getattr(dl, 'epoch_rng_state', None), 'batches_done': learn.iter + 1},
        'callbacks': {type(cb).__name__: plain(cb.state_dict()) for cb in learn.cbs if _defines(cb, 'state_dict')},
        'config': plain(dict(getattr(learn, 'config', None) or {})),
        'signature': model_signature(model) if hasattr(model, 'PARTS') else None,
        'model_configs': {name: plain(getattr(model, name).config.to_dict()) for name in model.PARTS}
                         if hasattr(model, 'PARTS') else None,
        'flops_per_step': flops_per_step(learn),
        'vocab': getattr(learn, 'vocab_hash', None),
    }
    atomic_torch_save(state, path)
    return path


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
        raise ValueError(f"{str(path)!r} is not an electra-pretrain checkpoint (format {FORMAT})")
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
    state = _read(path)
    if not isinstance(state, dict) or state.get('format') != FORMAT:
        raise ValueError(f"{str(path)!r} is not an electra-pretrain checkpoint (format {FORMAT})")
    return state


def check_compatible(state: dict[str, Any], electra_model, hf_tokenizer=None, path: str = 'checkpoint') -> None:
    """Refuse a checkpoint made for another architecture or vocabulary, naming the difference."""
    saved, current = state.get('signature'), model_signature(electra_model)
    if saved is not None and set(saved) != set(current):
        objective = lambda parts: 'mlm' if 'mlm' in parts else 'electra'
        raise ValueError(f"{path} was made with objective {objective(saved)!r}, this run is {objective(current)!r}; "
                         f"use the objective it was trained with")
    if saved is not None and saved != current:
        diffs = [f"{part}.{k}: checkpoint {saved[part][k]} vs config {current[part][k]}"
                 for part in current for k in current[part] if saved[part].get(k) != current[part][k]]
        raise ValueError(f"{path} was made for another model ({'; '.join(diffs)}); use the config it was trained with")
    if hf_tokenizer is not None and state.get('vocab') and state['vocab'] != vocab_hash(hf_tokenizer):
        raise ValueError(f"{path} was trained with another vocabulary than tokenizer {hf_tokenizer.name_or_path!r}; "
                         f"use the tokenizer of the run (config key 'tokenizer')")


# what makes a checkpoint this run's: its name, its data stream (corpus, seed, batch, length) and its
# length (the schedule decays to `steps`); the architecture and vocabulary are `check_compatible`'s
RUN_IDENTITY = ('run_name', 'datas', 'steps', 'seed', 'bs', 'max_length')


def _same_datas(a: list, b: list) -> bool:
    """The same corpora, a path however it is written (relative or absolute)."""
    def norm(d):
        p = repo_path(str(d))
        return str(p.resolve()) if p.exists() else str(d)
    return [norm(d) for d in a] == [norm(d) for d in b]


def check_same_run(state: dict[str, Any], c, path: str = 'checkpoint') -> None:
    """Refuse to resume a checkpoint of another run (another run name, corpus, seed, batch,
    length or step count than `c`), in one line naming the differences and both ways on: resume
    with the checkpoint's own settings, or continue pre-training from its weights (export, then
    `init_generator` / `init_discriminator`). A checkpoint without a config is not checked."""
    saved = state.get('config') or {}
    diffs = [f"{k} {saved[k]!r} (this run: {c[k]!r})" for k in RUN_IDENTITY
             if k in saved and c.get(k) is not None
             and not (_same_datas(saved[k], c[k]) if k == 'datas' else saved[k] == c[k])]
    if diffs:
        raise ValueError(f"{path} is a checkpoint of another run: {'; '.join(diffs)}; resume it with its own "
                         f"settings, or continue pre-training from its weights: `python -m pretrain export {path} DIR`, "
                         f"then --init_generator DIR/generator --init_discriminator DIR/discriminator")


def scan_checkpoints(run_dir: str | Path, run_name: str) -> tuple[list[tuple[int, Path]], list[str]]:
    """(step, path) of the readable checkpoints of a run, oldest first, and a one-line reason for
    each `{run_name}_*.pth` skipped (damaged, foreign, or refused as unsafe). Temporary files
    (`.pth.{host}-{pid}.tmp`) are not candidates."""
    found, skipped = [], []
    for p in RunDir(Path(run_dir), run_name).checkpoint_files():
        try:
            state = _read(p, mmap=True)  # mmap: the weights are not read, only the small entries
            if not isinstance(state, dict) or state.get('format') != FORMAT:
                raise ValueError(f"{str(p)!r} is not an electra-pretrain checkpoint (format {FORMAT})")
            found.append((int(state['step']), p))
        except ValueError as e:
            skipped.append(str(e))
        except Exception as e:  # a checkpoint-like dict without a usable step
            skipped.append(f"{str(p)!r} is not a usable checkpoint ({type(e).__name__})")
    return sorted(found), sorted(skipped)


def checkpoints_of(run_dir: str | Path, run_name: str) -> list[tuple[int, Path]]:
    """(step, path) of the readable checkpoints of a run, oldest first; each file skipped is a
    warning line on stderr (a refused or damaged file is never silently ignored)."""
    found, skipped = scan_checkpoints(run_dir, run_name)
    for reason in skipped:
        print(f'warning: skipped {reason}', file=sys.stderr)
    return found


def find_resume(resume: str | Path, run_dir: str | Path, run_name: str) -> Path:
    """The checkpoint to resume from: a path, or 'latest' (the highest step of `run_name`)."""
    if str(resume) != 'latest':
        return Path(resume)
    found, skipped = scan_checkpoints(run_dir, run_name)
    if not found:
        why = f" (skipped {len(skipped)}: {skipped[-1]})" if skipped else ''
        raise ValueError(f"resume='latest' but {run_dir} holds no readable checkpoint of run {run_name!r}{why}")
    for reason in skipped:
        print(f'warning: skipped {reason}', file=sys.stderr)
    return found[-1][1]


class ResumeCallback(Callback):
    """Puts a fit back where a checkpoint left it. Model and optimizer are loaded before `fit`
    (by `resume`); this restores what the fit itself resets: the step counter (after fastai's
    TrainEvalCallback zeroes it), the grad scaler (after MixedPrecision creates it), and the RNGs
    at the first batch, after the dataloader has started its epoch and before masking."""
    order = TrainEvalCallback.order + 5  # after fastai zeroes the step counter, before the masking callback (-1)

    def __init__(self, state: dict[str, Any]):
        self.state, self.pending = state, True

    def before_fit(self) -> None:
        self.learn.train_iter = self.state.get('train_iter', self.state['step'])
        self.learn.pct_train = 0.0

    def before_batch(self) -> None:
        if not self.pending or not self.training:
            return
        scaler = getattr(self.learn, 'scaler', None)
        if scaler is not None and self.state.get('scaler') is not None:
            scaler.load_state_dict(self.state['scaler'])
        restore_rng(self.state['rng'])
        self.pending = False
        self.learn.remove_cb(self)


def _to(obj: Any, device: torch.device) -> Any:
    """`obj` with every tensor in its dicts, lists and tuples moved to `device`."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _to(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to(v, device) for v in obj)
    return obj


def resume(learn, checkpoint: str | Path | dict, hf_tokenizer=None, path: str = 'checkpoint') -> int:
    """Load a checkpoint (a path, or its loaded state) into `learn` so the next `fit` continues
    from its step exactly. Returns that step."""
    state = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
    path = path if isinstance(checkpoint, dict) else str(checkpoint)
    model = unwrap(learn.model)
    check_compatible(state, model, hf_tokenizer, str(path))
    model.load_state_dict(state['model'])
    if learn.opt is None:
        learn.create_opt()
    opt = getattr(learn.opt, 'opt', learn.opt)
    if state.get('opt') is not None:
        opt.load_state_dict(state['opt'])
    dl = learn.dls.train
    data = state.get('data') or {}
    if data.get('epoch_rng_state') is not None and hasattr(dl, 'skip_batches'):
        dl.rng.setstate(data['epoch_rng_state'])
        dl.skip_batches = data['batches_done']
    device = next(model.parameters()).device
    for cb in learn.cbs:
        if _defines(cb, 'load_state_dict') and type(cb).__name__ in state.get('callbacks', {}):
            # tensors come back on the CPU (map_location): the CSV logger adds its sums to device tensors
            cb.load_state_dict(_to(state['callbacks'][type(cb).__name__], device))
    learn.add_cb(ResumeCallback(state))
    return state['step']
