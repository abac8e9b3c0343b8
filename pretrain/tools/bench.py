"""Training-step benchmark: the real step (fastai Learner, callbacks, optimizer, precision) on
synthetic token ids, beside the seed notebook's step on the same ids (`pretrain/tools/bench_seed.py`).

    python -m pretrain.tools.bench --size small --steps 200 --warmup 30 [--compile [MODE]] [--compare-seed]
        [--grad_accum K] [--out results.jsonl]

Prints steps/s, tokens/s, ms/step, model FLOP/step (counted by torch's FlopCounterMode over one
forward + backward on fake tensors, pretrain/run/flops.py), achieved TFLOP/s, MFU against the device's peak where known, peak memory,
and the warmup time (which holds the compile time) separately. `--compare-seed` runs the seed's
step (`python -m pretrain.tools.bench_seed`, in this repository) with the same sizes and device in a
subprocess and prints the ratio. `--out` appends the figures as one JSON line
(bench/gpu_check.sh collects them).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import torch
from fastai.callback.core import Callback
from fastai.data.core import DataLoaders

from _utils.cli import run_command
from pretrain._utils.steps import step_done
from pretrain.tools.bench_seed import SyntheticVocab, synthetic_examples
from pretrain.run.compile_step import compile_mode
from pretrain.config import get_config
from pretrain.get_dataloaders import get_dataloader
from pretrain.run.flops import flops_per_step
from _utils.paths import REPO_ROOT
from pretrain.run.progress import replace_progress
from pretrain.train import build_learner, resolve_precision, set_seed

# dense bf16 tensor-core peaks (FLOP/s), for MFU
PEAK_BF16 = {'H200': 989e12, 'H100': 989e12, 'A100': 312e12, 'L40S': 362e12, 'A10G': 70e12}


class StepTimer(Callback):
    """Wall time of the steps after `warmup` (synchronising the device only at the two ends)."""
    order = 99

    def __init__(self, warmup: int):
        self.warmup = warmup

    def before_fit(self) -> None:
        self.t_start, self.t0, self.t1 = time.perf_counter(), None, None

    def after_batch(self) -> None:
        if step_done(self.learn) == self.warmup:
            _sync()
            self.t0 = time.perf_counter()

    def after_fit(self) -> None:
        _sync()
        self.t1 = time.perf_counter()


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run_bench(size: str = 'small', steps: int = 200, warmup: int = 30, bs: int | None = None,
              max_length: int | None = None, vocab_size: int = 30522, compile: bool | str = False,
              device: str | None = None, **overrides) -> dict:
    """Measure `steps` training steps after `warmup` ones; returns the figures as a dict."""
    if steps < 1 or warmup < 1:
        raise ValueError(f"steps and warmup must be at least 1, got {steps} and {warmup}")
    with tempfile.TemporaryDirectory() as tmp:
        c = get_config(size, steps=warmup + steps, save_points=[], export=False, plot=False, log_every=50,
                       compile=compile, checkpoint_dir=tmp, **{k: v for k, v in dict(
                           bs=bs, max_length=max_length, device=device, **overrides).items() if v is not None})
        tok = SyntheticVocab(vocab_size)
        dset = synthetic_examples(c.bs * (warmup + steps), c.max_length, vocab_size, c.seed)
        set_seed(c.seed)
        learn = build_learner(c, DataLoaders(get_dataloader(c, tok, dset), path='.'), tok)
        replace_progress(learn, 'off')  # the figures are the output
        timer = StepTimer(warmup)
        learn.add_cb(timer)
        flops = flops_per_step(learn)  # counted on fake tensors (pretrain/run/flops.py): no memory, no draw
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        learn.fit(9999)
    seconds = timer.t1 - timer.t0
    steps_per_s = steps / seconds
    name = torch.cuda.get_device_name() if str(c.device).startswith('cuda') else 'cpu'
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    return {'device': name, 'size': size, 'bs': c.bs, 'max_length': c.max_length, 'static_shapes': c.static_shapes,
            'compile': compile_mode(compile, c.device), 'grad_accum': c.grad_accum, 'precision': resolve_precision(c), 'steps_per_s': steps_per_s, 'ms_per_step': 1000 / steps_per_s,
            'tokens_per_s': steps_per_s * c.bs * c.max_length, 'flops_per_step': flops,
            'tflops_achieved': flops * steps_per_s / 1e12,
            'mfu': flops * steps_per_s / peak if peak and str(c.device).startswith('cuda') else None,
            'peak_mem_gb': torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
            'warmup_s': timer.t0 - timer.t_start}


def seed_bench(size: str, steps: int, warmup: int, bs: int, max_length: int, vocab_size: int,
               device: str | None = None) -> dict:
    """The seed's step (`python -m pretrain.tools.bench_seed`) with the same sizes, in a fresh process
    so that neither step inherits the other's memory, compiled graphs or settings."""
    cmd = [sys.executable, '-m', 'pretrain.tools.bench_seed', '--size', size, '--steps', str(steps), '--warmup', str(warmup),
           '--bs', str(bs), '--max_length', str(max_length), '--vocab_size', str(vocab_size)]
    if device is not None:
        cmd += ['--device', str(device)]
    # this checkout first on the path: the command works from any directory, installed or not
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get('PYTHONPATH')]))}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    found = re.search(r'RESULT (\{.*\})', out.stdout)  # fastprogress' bar may end the line before it
    if out.returncode or found is None:
        raise ValueError(f"the seed's step failed: {(out.stderr or out.stdout).strip().splitlines()[-1:]}")
    return json.loads(found.group(1))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog='python -m pretrain.tools.bench', description=__doc__.splitlines()[0])
    p.add_argument('--size', default='small')
    p.add_argument('--steps', type=int, default=200)
    p.add_argument('--warmup', type=int, default=30)
    p.add_argument('--bs', type=int, default=None)
    p.add_argument('--max_length', type=int, default=None)
    p.add_argument('--vocab_size', type=int, default=30522)
    p.add_argument('--compile', nargs='?', const=True, default=False,
                   help="torch.compile the step; no value: CUDA graphs on CUDA ('reduce-overhead'), else a mode")
    p.add_argument('--grad_accum', type=int, default=None, help='micro-batches per step (bs is the whole step)')
    p.add_argument('--out', help='append the figures to this file as one JSON line')
    p.add_argument('--static_shapes', type=lambda s: s.lower() == 'true', default=None)
    p.add_argument('--precision', default=None)
    p.add_argument('--device', default=None)
    p.add_argument('--compare-seed', dest='compare_seed', action='store_true',
                   help="also time the seed notebook's step (pretrain/tools/bench_seed.py) with the same sizes")
    args = p.parse_args(argv)
    return run_command(lambda: report(args))


def report(args: argparse.Namespace) -> int:
    """Run the benchmark the flags describe and print (and append to --out) its figures."""
    extra = {k: v for k, v in (('static_shapes', args.static_shapes), ('precision', args.precision),
                               ('grad_accum', args.grad_accum)) if v is not None}
    r = run_bench(args.size, args.steps, args.warmup, args.bs, args.max_length, args.vocab_size, args.compile,
                  args.device, **extra)
    print(f"{r['device']} | {r['size']} {r['bs']}x{r['max_length']} (grad_accum {r['grad_accum']}) | "
          f"static {r['static_shapes']} compile {r['compile']} {r['precision']}")
    print(f"{r['steps_per_s']:.2f} steps/s, {r['ms_per_step']:.2f} ms/step, {r['tokens_per_s']:,.0f} tokens/s, "
          f"{r['flops_per_step']:.3g} FLOP/step, {r['tflops_achieved']:.1f} TFLOP/s"
          + (f", MFU {r['mfu']:.1%}" if r['mfu'] else '')
          + (f", peak memory {r['peak_mem_gb']:.2f} GB" if r['peak_mem_gb'] is not None else '')
          + f"; warmup (incl. compile) {r['warmup_s']:.1f} s")
    if args.compare_seed:
        s = seed_bench(args.size, args.steps, args.warmup, r['bs'], r['max_length'], args.vocab_size, args.device)
        r['seed_steps_per_s'], r['ratio_to_seed'] = s['steps_per_s'], r['steps_per_s'] / s['steps_per_s']
        print(f"seed's step: {s['steps_per_s']:.2f} steps/s, {s['ms_per_step']:.1f} ms/step; "
              f"ours / seed = {r['ratio_to_seed']:.1f}x")
    print('RESULT ' + json.dumps(r))
    if args.out:
        with open(args.out, 'a') as f:
            f.write(json.dumps(r) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
