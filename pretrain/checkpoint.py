"""Training checkpoints that a run can resume from exactly, written atomically.

A checkpoint is one `torch.save` file holding the model, the optimizer, the grad scaler, the
step, every RNG (python, numpy, torch CPU/CUDA, the dataloader's shuffling and its position in
the epoch), the state of callbacks that keep some (the CSV logger's running sums), the config,
and a signature of the model architecture and vocabulary that a resume must match.
"""
from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastai.callback.core import Callback

from .tokenizer import vocab_hash

FORMAT = 'electra-pretrain-checkpoint/1'
ARCH_KEYS = ('vocab_size', 'embedding_size', 'hidden_size', 'num_hidden_layers', 'num_attention_heads',
             'intermediate_size', 'max_position_embeddings', 'type_vocab_size')


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    return getattr(model, 'module', model)


def model_signature(electra_model) -> dict[str, dict[str, Any]]:
    """The architecture values a checkpoint's weights depend on, for both models."""
    m = unwrap(electra_model)
    return {name: {k: getattr(getattr(m, name).config, k) for k in ARCH_KEYS}
            for name in ('generator', 'discriminator')}


def capture_rng() -> dict[str, Any]:
    return {'python': random.getstate(), 'numpy': np.random.get_state(), 'torch': torch.get_rng_state(),
            'cuda': torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if state.get('cuda') is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def atomic_torch_save(obj: Any, path: Path) -> None:
    """`torch.save` to a temporary file, fsync, then rename: a reader (or a crash) never sees
    a half-written checkpoint under `path`."""
    tmp = path.with_name(path.name + '.tmp')
    with open(tmp, 'wb') as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(learn, path: str | Path) -> Path:
    """Everything needed to resume `learn` after its current step, to `path` (atomically).

    The data position is the start-of-epoch RNG state of the training loader plus the number of
    batches already taken in this epoch.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
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
        'callbacks': {type(cb).__name__: cb.state_dict() for cb in learn.cbs if hasattr(cb, 'state_dict')},
        'config': dict(getattr(learn, 'config', None) or {}),
        'signature': model_signature(model) if hasattr(model, 'discriminator') else None,
        'model_configs': {name: getattr(model, name).config.to_dict() for name in ('generator', 'discriminator')}
                         if hasattr(model, 'discriminator') else None,
        'vocab': getattr(learn, 'vocab_hash', None),
    }
    atomic_torch_save(state, path)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint; a missing, truncated or foreign file is a `ValueError`."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location='cpu', weights_only=False)
    except Exception as e:  # torch raises RuntimeError/EOFError/UnpicklingError for damaged files
        raise ValueError(f"{str(path)!r} cannot be read as a checkpoint ({type(e).__name__}): not a checkpoint, or a "
                         f"damaged one (then use an earlier checkpoint of the run)") from None
    if not isinstance(state, dict) or state.get('format') != FORMAT:
        raise ValueError(f"{str(path)!r} is not an electra-pretrain checkpoint (format {FORMAT})")
    return state


def check_compatible(state: dict[str, Any], electra_model, hf_tokenizer=None, path: str = 'checkpoint') -> None:
    """Refuse a checkpoint made for another architecture or vocabulary, naming the difference."""
    saved, current = state.get('signature'), model_signature(electra_model)
    if saved is not None and saved != current:
        diffs = [f"{part}.{k}: checkpoint {saved[part][k]} vs config {current[part][k]}"
                 for part in current for k in current[part] if saved[part].get(k) != current[part][k]]
        raise ValueError(f"{path} was made for another model ({'; '.join(diffs)}); use the config it was trained with")
    if hf_tokenizer is not None and state.get('vocab') and state['vocab'] != vocab_hash(hf_tokenizer):
        raise ValueError(f"{path} was trained with another vocabulary than tokenizer {hf_tokenizer.name_or_path!r}; "
                         f"use the tokenizer of the run (config key 'tokenizer')")


def checkpoints_of(run_dir: str | Path, run_name: str) -> list[tuple[int, Path]]:
    """(step, path) of the complete checkpoints of a run, oldest first (temporary files skipped)."""
    found = []
    for p in Path(run_dir).glob(f'{glob_escape(run_name)}_*.pth'):
        try:
            # mmap: only the small 'step' entry is read, not the weights
            found.append((int(torch.load(p, map_location='cpu', weights_only=False, mmap=True)['step']), p))
        except Exception:
            continue  # unreadable: not a candidate for resuming
    return sorted(found)


def glob_escape(name: str) -> str:
    return re.sub(r'([\[\]*?])', r'[\1]', name)


def find_resume(resume: str | Path, run_dir: str | Path, run_name: str) -> Path:
    """The checkpoint to resume from: a path, or 'latest' (the highest step of `run_name`)."""
    if str(resume) != 'latest':
        return Path(resume)
    found = checkpoints_of(run_dir, run_name)
    if not found:
        raise ValueError(f"resume='latest' but {run_dir} holds no readable checkpoint of run {run_name!r}")
    return found[-1][1]


class ResumeCallback(Callback):
    """Puts a fit back where a checkpoint left it. Model and optimizer are loaded before `fit`
    (by `resume`); this restores what the fit itself resets: the step counter (after fastai's
    TrainEvalCallback zeroes it), the grad scaler (after MixedPrecision creates it), and the RNGs
    at the first batch, after the dataloader has started its epoch and before masking."""
    order = -5  # after TrainEvalCallback (-10), before MaskedLMCallback (-1)

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
    for cb in learn.cbs:
        if hasattr(cb, 'load_state_dict') and type(cb).__name__ in state.get('callbacks', {}):
            cb.load_state_dict(state['callbacks'][type(cb).__name__])
    learn.add_cb(ResumeCallback(state))
    return state['step']
