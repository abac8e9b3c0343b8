"""Command line: fine-tune a model directory on a task and print the results table.

    python -m finetune --model OUT_DIR/discriminator --train train.tsv --dev dev.tsv \\
        --task_type classification [--text_a col --text_b col --label col] [--seeds 3] \\
        [--epochs 3] [--lr 1e-4] [--compare_random] [--out results.json]
    python -m finetune --model DIR --glue sst2          # needs the network
    python -m finetune --model DIR --jglue MARC-ja      # needs the network

A bad task file or setting prints one line, `error: ...`, and exits with status 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_OUT_DIR = Path('checkpoints/finetune')


def build_parser() -> argparse.ArgumentParser:
    from .data import GLUE_TASKS, JGLUE_TASKS, TASK_TYPES
    p = argparse.ArgumentParser(prog='python -m finetune', description=__doc__.split('\n\n')[0])
    p.add_argument('--model', required=True, help='a local Hugging Face model directory (ELECTRA or BERT, with tokenizer)')
    src = p.add_argument_group('task (local files, or a hub task)')
    src.add_argument('--train', help='training file: .tsv / .csv with a header line, or .jsonl')
    src.add_argument('--dev', help='dev file, same format; the metrics are computed on it')
    src.add_argument('--task_type', choices=TASK_TYPES, help='needed with --train/--dev')
    src.add_argument('--text_a', default='text_a', help='column of the (first) text (default: text_a)')
    src.add_argument('--text_b', default=None, help='column of the second text, for sentence-pair tasks')
    src.add_argument('--label', default='label', help='label column (default: label)')
    src.add_argument('--name', help='task name in the results (default: the training file\'s directory name)')
    src.add_argument('--metric', help='headline metric: accuracy, f1, mcc (classification), spearman, pearson (regression)')
    src.add_argument('--glue', choices=sorted(GLUE_TASKS), help='a GLUE task from the hub instead of files')
    src.add_argument('--jglue', choices=sorted(JGLUE_TASKS), help='a JGLUE task from the hub instead of files')
    hp = p.add_argument_group('recipe (defaults: ELECTRA\'s fine-tuning)')
    hp.add_argument('--seeds', type=int, default=3, help='number of runs per init, seeds 0..N-1 (default 3)')
    hp.add_argument('--epochs', type=int, default=3)
    hp.add_argument('--lr', type=float, help='peak learning rate (default by hidden size: 3e-4 / 1e-4 / 5e-5)')
    hp.add_argument('--layer_decay', type=float, help='layer-wise lr decay (default 0.8; 0.9 from 24 layers)')
    hp.add_argument('--bs', type=int, default=32)
    hp.add_argument('--max_length', type=int, default=128)
    hp.add_argument('--warmup', type=float, default=0.1, help='warmup fraction of the steps (default 0.1)')
    hp.add_argument('--device', help='cpu, cuda, cuda:1 ... (default: cuda when available)')
    p.add_argument('--compare_random', action='store_true',
                   help='also fine-tune the same architecture from a random initialisation')
    p.add_argument('--out', help=f'results JSON (default: {DEFAULT_OUT_DIR}/{{task}}.json)')
    p.add_argument('--quiet', action='store_true', help='print only the table')
    return p


def task_from_args(args: argparse.Namespace):
    from .data import load_glue, load_jglue, load_task
    hub = [flag for flag in ('glue', 'jglue') if getattr(args, flag)]
    files = args.train or args.dev
    if len(hub) + bool(files) != 1:
        raise ValueError("give one task: --train and --dev files, or --glue TASK, or --jglue TASK")
    if args.glue:
        return load_glue(args.glue)
    if args.jglue:
        return load_jglue(args.jglue)
    if not (args.train and args.dev):
        raise ValueError("local tasks need both --train and --dev")
    if not args.task_type:
        raise ValueError("local tasks need --task_type classification or --task_type regression")
    return load_task(args.train, args.dev, args.task_type, args.text_a, args.text_b, args.label, args.name, args.metric)


def run(args: argparse.Namespace) -> int:
    from .train import FinetuneSettings, finetune, results_table
    if args.seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {args.seeds}")
    task = task_from_args(args)
    if args.metric and (args.glue or args.jglue):
        task.metric = args.metric
    settings = FinetuneSettings(epochs=args.epochs, lr=args.lr, bs=args.bs, max_length=args.max_length,
                                layer_decay=args.layer_decay, warmup=args.warmup, seeds=list(range(args.seeds)),
                                device=args.device)
    out = Path(args.out) if args.out else DEFAULT_OUT_DIR / f'{task.name}.json'
    results = finetune(args.model, [task], settings, args.compare_random, out, verbose=not args.quiet)
    print(results_table(results))
    print(f'results written to {out}')
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (ValueError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
