"""Compiling the training step: the model's forward (and with it, through AOTAutograd, its
backward) as one `torch.compile` graph, replayed as CUDA graphs on a GPU.

Why: the seed's step is launch-bound on a GPU (../shared/BASELINES.md: ~2,900 kernel launches per
step, the GPU busy ~25 of 110 ms). Inductor fuses the element-wise kernels; mode
'reduce-overhead' records the fused forward and backward as CUDA graphs, so each replays as one
launch. That needs one graph with no breaks (`fullgraph`) and one shape per step, which the
static path gives (fixed mask slots, batches padded to `max_length`, the last partial batch
dropped). The optimizer stays eager: `ElectraAdam` updates every parameter with a few
multi-tensor (`foreach`) kernels, tens of launches per step against thousands in the model.
"""
from __future__ import annotations

import torch
from fastai.callback.core import Callback

from pretrain.masked_lm_cb import MaskedLMCallback

CUDA_GRAPH_MODES = ('reduce-overhead', 'max-autotune')  # torch.compile's modes that use CUDA graphs


def compile_mode(compile: bool | str, device: str | torch.device) -> str | None:
    """The `torch.compile` mode for config value `compile` on `device`: None when off; for True,
    'reduce-overhead' (CUDA graphs) on CUDA and 'default' elsewhere; a mode name is kept."""
    if compile is False:
        return None
    if compile is True:
        return 'reduce-overhead' if torch.device(device).type == 'cuda' else 'default'
    return compile


class CudaGraphSteps(Callback):
    """Marks the start of each batch for CUDA graph trees, so a replay may reuse the memory of
    the previous step's outputs (fastai keeps `learn.pred` alive until the next batch replaces it;
    nothing reads it after that)."""
    order = MaskedLMCallback.order - 9  # before the masking callback builds the step's inputs

    def before_batch(self) -> None:
        torch.compiler.cudagraph_mark_step_begin()


def compile_model(learn, compile: bool | str, device: str | torch.device) -> str | None:
    """Compile `learn.model`'s forward in the mode `compile_mode` picks, adding `CudaGraphSteps`
    when that mode records CUDA graphs on a CUDA device. Returns the mode (None: left eager)."""
    mode = compile_mode(compile, device)
    if mode is None:
        return None
    # fullgraph: a graph break is an error, not a silent slowdown; dynamic=False: one shape per step
    learn.model.forward = torch.compile(learn.model.forward, mode=mode, fullgraph=True, dynamic=False)
    if mode in CUDA_GRAPH_MODES and torch.device(device).type == 'cuda':
        learn.add_cb(CudaGraphSteps())
    return mode
