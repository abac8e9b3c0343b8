"""ELECTRA's optimizer: Adam without bias correction and with decoupled weight decay
(Google's `AdamWeightDecayOptimizer`), as a multi-tensor torch optimizer usable by fastai."""
from __future__ import annotations

from functools import partial
from typing import Callable, Iterable

import torch
from fastai.optimizer import OptimWrapper

from pretrain.config import setting


class ElectraAdam(torch.optim.Optimizer):
    """m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  u = m / (sqrt(v) + eps)
    p -= lr * (u + wd * p)

    With `bias_correction=True`, m and v are debiased as in standard Adam. All parameters of a
    group are updated with `torch._foreach_*` kernels: no Python loop per parameter in the math.
    """

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-6, weight_decay: float = 0.0, bias_correction: bool = False):
        if lr < 0 or eps <= 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1) or weight_decay < 0:
            raise ValueError(f"invalid Adam hyper-parameters: lr={lr}, betas={betas}, eps={eps}, weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      bias_correction=bias_correction))

    @torch.no_grad()
    def step(self, closure: Callable | None = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group['params'] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            states = [self.state[p] for p in params]
            for p, s in zip(params, states):
                if 'exp_avg' not in s:
                    s['step'] = 0
                    s['exp_avg'] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    s['exp_avg_sq'] = torch.zeros_like(p, memory_format=torch.preserve_format)
                s['step'] += 1
            exp_avgs = [s['exp_avg'] for s in states]
            exp_avg_sqs = [s['exp_avg_sq'] for s in states]
            (b1, b2), lr, eps, wd = group['betas'], group['lr'], group['eps'], group['weight_decay']
            torch._foreach_lerp_(exp_avgs, grads, 1 - b1)
            torch._foreach_mul_(exp_avg_sqs, b2)
            torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - b2)
            denom = torch._foreach_sqrt(exp_avg_sqs)
            if group['bias_correction']:
                step = states[0]['step']
                torch._foreach_div_(denom, (1 - b2 ** step) ** 0.5)
                torch._foreach_add_(denom, eps)
                updates = torch._foreach_div(exp_avgs, denom)
                torch._foreach_div_(updates, 1 - b1 ** step)
            else:
                torch._foreach_add_(denom, eps)
                updates = torch._foreach_div(exp_avgs, denom)
            if wd:
                torch._foreach_add_(updates, params, alpha=wd)
            torch._foreach_add_(params, updates, alpha=-lr)
        return loss


def param_groups(params: Iterable, weight_decay: float) -> list[dict]:
    """Split parameters into a decayed group and an undecayed one.

    Google's recipe excludes LayerNorm weights and biases from weight decay; in a BERT-style
    model those are exactly the 1-D parameters (weights of linear and embedding layers are 2-D).
    Nested groups (a fastai splitter's output) are flattened.
    """
    flat = []
    for p in params:
        flat.extend(p if isinstance(p, (list, tuple)) else [p])
    decay = [p for p in flat if p.ndim >= 2]
    no_decay = [p for p in flat if p.ndim < 2]
    groups = [dict(params=decay, weight_decay=weight_decay), dict(params=no_decay, weight_decay=0.0)]
    return [g for g in groups if g['params']]


def electra_opt(params: Iterable, lr: float, wd: float = 0.01, eps: float = 1e-6, mom: float = 0.9,
                sqr_mom: float = 0.999, bias_correction: bool = False) -> OptimWrapper:
    """A fastai optimizer (`OptimWrapper` around `ElectraAdam`) with fastai's hyper-parameter
    names (`mom`, `sqr_mom`, `wd`), so fastai's schedulers drive it."""
    opt = ElectraAdam(param_groups(params, wd), lr=lr, betas=(mom, sqr_mom), eps=eps,
                      bias_correction=bias_correction)
    return OptimWrapper(opt=opt)


def get_optim(c) -> Callable[..., OptimWrapper]:
    """The `opt_func` for a fastai `Learner`: Adam, eps 1e-6, betas (0.9, 0.999), decoupled
    weight decay `c.weight_decay` (Google's 0.01) except on LayerNorm weights and biases; bias correction only when
    `c.adam_bias_correction`."""
    return partial(electra_opt, lr=setting(c, 'lr'), wd=setting(c, 'weight_decay'), eps=1e-6, mom=0.9, sqr_mom=0.999,
                   bias_correction=setting(c, 'adam_bias_correction'))
