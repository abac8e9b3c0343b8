"""The demo that shows ELECTRA learning, in one command on a CPU:

    python -m pretrain demo                # `tiny`: about 75 s on 2 CPU cores
    python -m pretrain demo --size mini    # the CPU recipe: about 15 minutes on 2 CPU cores

It pre-trains on the shipped Japanese documentation corpus (`docs_ja`, data/README.md), measures
the generator and discriminator on held-out examples, then fine-tunes the discriminator on a
classification task from the same manuals (`data/tasks/libreoffice_module`, whose dev pages are
not in the corpus) against the same architecture from random weights: what pre-training bought.
Every config key is a flag, as for `train` (`--datas my.txt --tokenizer DIR --task DIR`).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from _utils.paths import repo_path
from pretrain.config import MyConfig, get_config
from pretrain.run.run_dir import RunDir
from pretrain.run.run_lock import claim_run

# What the demo changes from `get_config(size)`: the shipped corpus and its tokenizer, a held-out
# slice, and no intermediate checkpoints (the run is short; the export is what is fine-tuned).
DEMO_CONFIG: dict[str, Any] = dict(datas=['docs_ja'], tokenizer='data/docs_ja/tokenizer', valid_size=500,
                                   save_points=[1.0])
DEMO_TASK = 'data/tasks/libreoffice_module'
FINETUNE_EPOCHS = 3  # ELECTRA's fine-tuning recipe


def demo_config(size: str = 'tiny', **overrides: Any) -> MyConfig:
    """`get_config(size)` with the demo's corpus, tokenizer and held-out slice, then `overrides`;
    runs are named `demo_{size}_{seed}`, so the demos of two sizes keep their own files. The
    demo is meant to be run again: it replaces its own earlier run (`overwrite`) unless told to
    resume it or `overwrite=False`."""
    return get_config(size, **{**DEMO_CONFIG, 'base_run_name': f'demo_{size}',
                               'overwrite': not overrides.get('resume'), **overrides})


def _task_files(task_dir: str | Path) -> tuple[Path, Path]:
    d = repo_path(task_dir)
    train, dev = d / 'train.tsv', d / 'dev.tsv'
    if not (train.is_file() and dev.is_file()):
        raise ValueError(f"task directory {task_dir!r} must hold train.tsv and dev.tsv (columns text_a, label)")
    return train, dev


def run_demo(c: MyConfig, task_dir: str | Path = DEMO_TASK, seeds: int = 3, epochs: int = FINETUNE_EPOCHS,
             verbose: bool = True) -> dict:
    """Pre-train with `c` (which needs `valid_size`), then fine-tune its discriminator and a
    randomly initialised twin on the classification task in `task_dir` over `seeds` seeds.

    Returns (and writes to `{checkpoint_dir}/{run_name}_demo.json`) the held-out metrics of the
    final weights, the fine-tuning results and the time of each phase."""
    from finetune.data import load_task

    if not c.valid_size:
        raise ValueError("the demo measures held-out metrics: give valid_size (a count or a fraction)")
    if seeds < 1 or epochs < 1:
        raise ValueError(f"seeds and epochs must be at least 1, got {seeds} and {epochs}")
    train_file, dev_file = _task_files(task_dir)  # before the long part, so a wrong path fails at once
    task = load_task(train_file, dev_file, 'classification', name=Path(task_dir).name)

    # the run's name is held from pre-training to the report: a second demo cannot replace the
    # export this one is fine-tuning
    with claim_run(c):
        return _pretrain_and_finetune(c, task, seeds, epochs, verbose)


def _pretrain_and_finetune(c: MyConfig, task, seeds: int, epochs: int, verbose: bool) -> dict:
    from finetune.train import FinetuneSettings, finetune
    from pretrain.run.export import finetuned_model_dir
    from pretrain.train import pretrain
    from pretrain.run.log_cb import read_log

    start = time.time()
    learn = pretrain(c)
    if learn is None:
        raise ValueError(f"run {c.run_name} had already finished (resume); give another base_run_name or seed")
    pretrain_s = time.time() - start
    run = RunDir.from_config(c)
    held_out = read_log(run.valid_csv)[-1]

    start = time.time()
    # fine-tune at the pre-training length: longer inputs would reach untrained position embeddings
    settings = FinetuneSettings(epochs=epochs, seeds=list(range(seeds)), device=str(c.device), max_length=c.max_length)
    ft = finetune(finetuned_model_dir(run.export), [task], settings, compare_random=True,
                  verbose=verbose)['tasks'][task.name]
    result = {'run_name': c.run_name, 'size': c.size, 'steps': c.steps, 'datas': c.datas, 'device': str(c.device),
              'held_out': held_out, 'n_held_out': len(learn.held_out_eval.valid_dset),
              'task': task.name, 'n_train': len(task.train.labels), 'n_dev': len(task.dev.labels),
              'n_labels': len(task.label_names), 'metric': ft['metric'],
              'pretrained': ft['pretrained'][ft['metric']], 'random': ft['random'][ft['metric']],
              'pretrain_s': round(pretrain_s, 1), 'finetune_s': round(time.time() - start, 1)}
    out = run.demo_report
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + '\n')
    result['json'] = str(out)
    return result


def demo_report(r: dict) -> str:
    """The demo's result as a few lines of text."""
    h, pre, rnd = r['held_out'], r['pretrained'], r['random']
    gain = (pre['mean'] - rnd['mean']) * 100
    held_out = ([f"  discriminator ROC-AUC        {h['disc_auc']:.3f}   (chance: 0.5)",
                 f"  discriminator accuracy       {h['disc_acc']:.3f}   (saying 'all original': {1 - h['replaced_rate']:.3f})"]
                if 'disc_auc' in h else [])  # the MLM baseline has no discriminator
    held_out.append(f"  generator accuracy (masked)  {h['gen_acc']:.3f}")
    if 'token_cosine' in h:
        held_out.append(f"  token-state cosine           {h['token_cosine']:.3f}   (health: 1 = collapsed)")
    return '\n'.join([
        f"demo {r['run_name']}: {r['size']}, {r['steps']} steps on {', '.join(r['datas'])} "
        f"({r['pretrain_s'] / 60:.1f} min pre-training, {r['finetune_s'] / 60:.1f} min fine-tuning, {r['device']})",
        f"held-out examples ({r['n_held_out']}), final weights:", *held_out,
        f"fine-tuning on {r['task']} ({r['n_labels']} classes, {r['n_train']} train / {r['n_dev']} dev, "
        f"{len(pre['runs'])} seeds), {r['metric']}:",
        f"  pre-trained   {pre['mean']:.3f} ± {pre['std']:.3f}",
        f"  random init   {rnd['mean']:.3f} ± {rnd['std']:.3f}",
        f"  gain          {gain:+.1f} points",
        f"(results in {r['json']})"])


def run_cli(args: argparse.Namespace) -> int:
    from pretrain.cli import config_overrides
    overrides = config_overrides(args)
    c = demo_config(overrides.pop('size', 'tiny'), **overrides)
    print(f'demo {c.run_name}: size {c.size}, {c.steps} steps, batch {c.bs} x {c.max_length}, data {c.datas}, '
          f'then fine-tuning on {args.task} against random init')
    print(demo_report(run_demo(c, args.task, args.seeds, args.epochs, verbose=not args.quiet)))
    return 0


def add_cli(subparsers) -> None:
    from pretrain.cli import add_config_flags
    p = subparsers.add_parser('demo', help='pre-train, held-out metrics, fine-tune against random init '
                                           '(the shipped Japanese corpus and task by default)')
    add_config_flags(p)
    p.add_argument('--task', default=DEMO_TASK, help=f'directory with train.tsv and dev.tsv (default {DEMO_TASK})')
    p.add_argument('--seeds', type=int, default=3, help='fine-tuning seeds per init (default 3)')
    p.add_argument('--epochs', type=int, default=FINETUNE_EPOCHS, help='fine-tuning epochs (default 3)')
    p.add_argument('--quiet', action='store_true', help='no per-seed fine-tuning lines')
    p.set_defaults(func=run_cli)
