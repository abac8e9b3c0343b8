"""Data-parallel training with torch.distributed: one process per device, launched with
`torchrun --nproc_per_node N -m pretrain ...`; NCCL on GPUs, gloo on CPU."""
from __future__ import annotations

import os
from typing import Callable, TypeVar

import torch
import torch.distributed as dist
from fastai.callback.core import Callback
from torch.nn.parallel import DistributedDataParallel

T = TypeVar('T')


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DistributedDataParallel wrapper (or the model itself): its forward
    does not wait for the other processes, and it has the model's own attributes."""
    return getattr(model, 'module', model)


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def init_distributed(c) -> tuple[int, int]:
    """Join the process group that torchrun describes (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_*);
    on CUDA each process takes device LOCAL_RANK. Returns (rank, world_size); (0, 1) alone."""
    n = int(os.environ.get('WORLD_SIZE', '1'))
    if n <= 1:
        return 0, 1
    on_cuda = str(c.device).startswith('cuda')
    if on_cuda:
        local = int(os.environ.get('LOCAL_RANK', '0'))
        torch.cuda.set_device(local)
        c.device = f'cuda:{local}'
    if not dist.is_initialized():
        dist.init_process_group('nccl' if on_cuda else 'gloo')
    return dist.get_rank(), dist.get_world_size()


def rank0_first(fn: Callable[[], T]) -> T:
    """Run `fn` on rank 0, then on the others (which then find rank 0's caches)."""
    if world_size() == 1:
        return fn()
    if rank() == 0:
        result = fn()
        dist.barrier()
    else:
        dist.barrier()
        result = fn()
    return result


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class DataParallel(Callback):
    """Wraps the model in `DistributedDataParallel` for the fit: gradients are averaged over
    processes in backward (the loss normalises by global counts, see `models.global_counts`)."""
    order = 11  # after MixedPrecision sets up, before any batch

    def before_fit(self) -> None:
        device = next(self.learn.model.parameters()).device
        self.learn.model = DistributedDataParallel(self.learn.model,
                                                   device_ids=[device.index] if device.type == 'cuda' else None)

    def after_fit(self) -> None:
        self.learn.model = self.learn.model.module
