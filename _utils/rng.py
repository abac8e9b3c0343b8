"""Every random number generator a run uses (python, numpy, torch CPU and CUDA): seeding them,
saving and restoring them for checkpoints, and borrowing them for an evaluation that must not
disturb training's stream. Used by pre-training and fine-tuning alike."""
from __future__ import annotations

import random
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
import torch


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) RNGs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def capture_rng() -> dict[str, Any]:
    """Every global RNG state as tensors and plain values (python's is a tuple of ints; numpy's
    key, an ndarray, becomes an int64 tensor of shape (624,))."""
    kind, key, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    return {'python': random.getstate(),
            'numpy': {'kind': kind, 'key': torch.from_numpy(key.astype(np.int64)), 'pos': int(pos),
                      'has_gauss': int(has_gauss), 'cached_gaussian': float(cached_gaussian)},
            'torch': torch.get_rng_state(),
            'cuda': torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def restore_rng(state: dict[str, Any]) -> None:
    """Set the global RNGs to a `capture_rng` state."""
    random.setstate(state['python'])
    n = state['numpy']
    np.random.set_state((n['kind'], n['key'].numpy().astype(np.uint32), n['pos'], n['has_gauss'],
                         n['cached_gaussian']))
    torch.set_rng_state(state['torch'])
    if state.get('cuda') is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


@contextmanager
def isolated_rng(seed: int) -> Iterator[None]:
    """Seed torch's global RNGs (CPU and every CUDA device) for the block, then put their
    states back: evaluation draws its own numbers and training's stream goes on as if it never ran."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
