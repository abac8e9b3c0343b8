"""Batches of pre-training examples straight from Arrow: each batch is one gather of its rows
and one vectorised pad, no per-item Python."""
from __future__ import annotations

import random

import datasets
import numpy as np
import pyarrow.compute as pc
import torch
from fastai.data.load import DataLoader
from fastai.torch_core import to_device
from fastcore.basics import chunked

from pretrain.config import setting
from pretrain._utils.steps import micro_batch_size


def pad_batch(table, pad_idx: int, length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids (B, L) int64 padded with `pad_idx`, sentA_length (B,) int64) from an Arrow
    table with columns `input_ids` (lists) and `sentA_length`. L is `length` or the longest row."""
    col = table.column('input_ids').combine_chunks()
    lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
    values = col.flatten().to_numpy(zero_copy_only=False)
    L = int(lengths.max(initial=0)) if length is None else length
    if lengths.max(initial=0) > L:
        raise ValueError(f"an example has {lengths.max()} tokens, more than the padded length {L}")
    ids = np.full((len(lengths), L), pad_idx, dtype=np.int64)
    ids[np.arange(L)[None, :] < lengths[:, None]] = values  # row-major, so values land in order
    sentA = table.column('sentA_length').to_numpy().astype(np.int64)
    return torch.from_numpy(ids), torch.from_numpy(sentA)


class ElectraDataLoader(DataLoader):
    """A fastai `DataLoader` over a processed `Dataset` (columns `input_ids`, `sentA_length`)
    yielding `(input_ids (B, L), sentA_length (B,))`.

    Shuffling uses `self.rng` (seeded from `seed`), as fastai's does; each worker process gets
    whole batches of indices and fetches each batch from Arrow in one call. With
    `pad_to_max_length`, every batch is padded to `max_length` (static shapes).

    Data parallel: with `world_size` > 1, every rank shuffles with the same seed and takes every
    `world_size`-th example from `rank` on, so the union of the ranks' i-th batches is the i-th
    batch of one process with batch size `bs * world_size`; all ranks get the same number of
    batches. Resuming: `epoch_rng_state` is the RNG state an epoch started from and
    `skip_batches` drops that many batches from the next epoch (see pretrain/run/checkpoint.py).
    """

    def __init__(self, dataset: datasets.Dataset, bs: int, pad_idx: int, max_length: int | None = None,
                 pad_to_max_length: bool = False, shuffle: bool = True, drop_last: bool = False,
                 num_workers: int = 0, seed: int | None = None, rank: int = 0, world_size: int = 1, **kwargs):
        missing = {'input_ids', 'sentA_length'} - set(dataset.column_names)
        if missing:
            raise ValueError(f"the dataset lacks column(s) {', '.join(sorted(missing))}; build it with ELECTRADataProcessor")
        if len(dataset) == 0:
            raise ValueError("the dataset holds no examples: the corpus is empty or every line was filtered out")
        if pad_to_max_length and not max_length:
            raise ValueError("pad_to_max_length needs max_length")
        super().__init__(dataset, bs=bs, shuffle=shuffle, drop_last=drop_last, num_workers=num_workers,
                         n=len(dataset), **kwargs)
        self.pad_idx, self.max_length, self.pad_to_max_length = pad_idx, max_length, pad_to_max_length
        self.n_inp = 2  # both input_ids and sentA_length go to the model (fastai splits xb/yb by it)
        if seed is not None:
            self.rng = random.Random(seed)
        # torch's loader draws a base seed per epoch; a private generator keeps that draw out of the
        # global RNG, so masking and sampling see the same stream whether or not a run was resumed
        self.fake_l.generator = torch.Generator().manual_seed(seed or 0)
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.rank, self.world_size = rank, world_size
        self.epoch_rng_state, self.skip_batches = None, 0
        self.copy_to = None  # see `to`

    def __len__(self) -> int:
        if self.world_size == 1:
            return super().__len__()
        n = self.n // self.world_size
        return n // self.bs + (0 if self.drop_last or n % self.bs == 0 else 1)

    def __iter__(self):
        self.epoch_rng_state = self.rng.getstate()  # before fastai's per-epoch randomize()
        return super().__iter__()

    def to(self, device) -> None:
        """Send batches to `device`, copied by `after_batch`. fastai's own copy (made when
        `self.device` is set) blocks, which makes the host wait for the GPU to finish the
        previous step before each batch; from pinned memory the copy can be queued instead."""
        self.copy_to, self.device = device, None

    def after_batch(self, b):
        return b if self.copy_to is None else to_device(b, self.copy_to, non_blocking=self.pin_memory)

    def get_idxs(self):
        idxs = super().get_idxs()
        if self.world_size > 1:
            # equal shares (drop the remainder) so every rank takes the same number of steps
            idxs = idxs[self.rank::self.world_size][:len(idxs) // self.world_size]
        if self.skip_batches:
            idxs, self.skip_batches = idxs[self.skip_batches * self.bs:], 0
        return idxs

    def new(self, dataset=None, cls=None, **kwargs):
        kwargs = {'pad_idx': self.pad_idx, 'max_length': self.max_length, 'pad_to_max_length': self.pad_to_max_length,
                  'rank': self.rank, 'world_size': self.world_size, **kwargs}
        return super().new(dataset, cls, **kwargs)

    def create_batches(self, samps):
        arrow = self.dataset.with_format('arrow')
        for idxs in chunked(samps, self.bs, self.drop_last):
            yield pad_batch(arrow[list(idxs)], self.pad_idx, self.max_length if self.pad_to_max_length else None)


def get_dataloader(c, hf_tokenizer, dset: datasets.Dataset, rank: int = 0, world_size: int = 1) -> ElectraDataLoader:
    """The training loader of the config: `c.bs` examples per optimizer step over all
    `world_size` processes and `c.grad_accum` micro-batches, `c.num_workers` worker processes,
    shuffled with a RNG seeded from `c.seed`, pinned memory on CUDA. The last partial batch of
    an epoch is dropped: Google trains on fixed-size batches, and with static shapes every step
    then has one shape (a compiled step never recompiles)."""
    bs, max_length = setting(c, 'bs'), setting(c, 'max_length')
    if len(dset) < bs:
        raise ValueError(f"the corpus gives fewer examples ({len(dset)}) than one batch (bs={bs}); "
                         f"use a smaller bs or a bigger corpus")
    return ElectraDataLoader(dset, bs=micro_batch_size(c, world_size), pad_idx=hf_tokenizer.pad_token_id,
                             max_length=max_length, pad_to_max_length=setting(c, 'pad_to_max_length') or setting(c, 'static_shapes'),
                             shuffle=True, drop_last=True, num_workers=setting(c, 'num_workers'), seed=setting(c, 'seed'),
                             rank=rank, world_size=world_size,
                             pin_memory=torch.cuda.is_available() and 'cuda' in str(setting(c, 'device')))
