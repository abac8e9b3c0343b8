"""Training checkpoints that a run can resume from exactly, written atomically.

A checkpoint is one `torch.save` file holding the model, the optimizer, the grad scaler, the
step, every RNG (python, numpy, torch CPU/CUDA, the dataloader's shuffling and its position in
the epoch), the state of callbacks that keep some (the CSV logger's running sums), the config,
and a signature of the model architecture and vocabulary that a resume must match. Everything in
it is a tensor or a plain value (dict, list, tuple, str, int, float, bool, None), so that every
read can be a safe one (`safe_load.py`); when and where checkpoints are written and found is
`checkpoint_files.py`'s.
"""
from __future__ import annotations

import errno as errno_codes
import os
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import torch
from fastai.callback.core import Callback, TrainEvalCallback

from pretrain.run.distributed import unwrap
from pretrain.run.flops import flops_per_step
from _utils.rng import capture_rng, restore_rng
from pretrain.run.safe_load import FORMAT, load_checkpoint
from _utils.atomic import atomic_alias, atomic_write
from _utils.paths import repo_path
from pretrain.prepare.vocab import vocab_hash

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


def alias_checkpoint(saved: Path, path: str | Path) -> Path:
    """The checkpoint `saved` under a second name `path` (a step with two save-point tags), stored
    once (`atomic_alias`); a fault is the same one-line `CheckpointSaveError` as a save's."""
    try:
        return atomic_alias(saved, path)
    except Exception as e:
        raise _save_error(Path(path), e) from None


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
