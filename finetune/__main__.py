"""Command line: fine-tune a model directory on tasks and print the results table; with
--checkpoints, the downstream curve of pre-training runs (every chosen checkpoint against random init).

    python -m finetune --model OUT_DIR/discriminator --train train.tsv --dev dev.tsv \\
        --task_type classification [--text_a col --text_b col --label col] [--seeds 3] \\
        [--epochs 3] [--lr 1e-4] [--compare_random] [--out results.json]
    python -m finetune --model DIR --jglue_dir JGLUE --task JSTS     # JGLUE's files, offline
    python -m finetune --model DIR --jglue_dir JGLUE --task all      # every JGLUE task found
    python -m finetune --model DIR --glue_dir glue_data --task rte   # GLUE's files, offline
    python -m finetune --model DIR --train train-v1.1.json --dev dev-v1.1.json --task_type extractive_qa
    python -m finetune --model DIR --glue sst2          # from the hub: needs the network
    python -m finetune --model DIR ... --train_per_class 32    # at most 32 training examples per class

The downstream curve of pre-training runs: every chosen checkpoint fine-tuned, the same
architecture from random init once, the headline dev metric against steps and FLOPs:

    python -m finetune --model RUN [RUN ...] --checkpoints all|LIST <task flags as above>

RUN: a run's checkpoint directory (holding one run), DIR/RUN_NAME, or a run name in
checkpoints/pretrain. LIST: comma-separated steps (2000), tags (step2000, 50%) or checkpoint file
names. It writes --out (default checkpoints/finetune/{task}_curve_{runs}.json), a Markdown table
(.md) and a plot (.png) beside it.

Results are written after every finished seed (JSON and .md, atomically); the same command run
again with the same --out keeps what is there and continues. A bad task file or setting prints
one line, `error: ...`, and exits with status 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from _utils.cli import run_command

DEFAULT_OUT_DIR = Path('checkpoints/finetune')


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a wrong flag or value reported as one line (`error: ...`), status 2."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (python -m finetune --help lists the options)\n")


def true_or_false(text: str) -> bool:
    if text.lower() in ('true', '1', 'yes'):
        return True
    if text.lower() in ('false', '0', 'no'):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    """The options in four groups (model, task data, recipe, run), each help ending in its default
    (`FinetuneSettings`' own, so the command line and the library share one recipe)."""
    from .benchmarks import GLUE_FILES, JGLUE_FILES
    from .catalog import GLUE_TASKS, JGLUE_HUB_TASKS
    from .data import CHOICE_PREFIX, TASK_TYPES
    from .metrics import F1_UNITS
    from .train import EPOCHS, MAX_LENGTH, QA_EPOCHS, QA_MAX_LENGTH, FinetuneSettings
    default = FinetuneSettings()
    p = OneLineParser(prog='python -m finetune', description=__doc__.split('\n\n')[0])
    model = p.add_argument_group('model')
    model.add_argument('--model', required=True, nargs='+', metavar='MODEL',
                       help='a local Hugging Face model directory (ELECTRA or BERT, with tokenizer), e.g. an '
                            'export\'s discriminator/; with --checkpoints: pre-training runs (a checkpoint directory, '
                            'DIR/RUN_NAME, or a run name in checkpoints/pretrain) (required)')
    model.add_argument('--compare_random', action='store_true',
                       help='also fine-tune the same architecture from a random initialisation (not with '
                            '--checkpoints: the curve always does) (default: off)')
    curve = p.add_argument_group('the downstream curve of pre-training runs')
    curve.add_argument('--checkpoints', metavar='all|LIST',
                       help='fine-tune these checkpoints of each --model run: all (by step), or steps, tags or file '
                            'names separated by commas; random init is always part of the curve, so --compare_random '
                            'is refused here (default: none, --model is a model directory)')
    curve.add_argument('--tokenizer', help="with --checkpoints: the runs' tokenizer, when the path their config records "
                                           "has moved (default: the run's)")
    src = p.add_argument_group('task data: local files, a benchmark directory, or a hub task (give one)')
    src.add_argument('--train', help='training file: .tsv / .csv with a header line, or .jsonl; '
                                     'extractive_qa: a SQuAD-style .json (default: none)')
    src.add_argument('--dev', help='dev file, same format; the metrics are computed on it (default: none)')
    src.add_argument('--task_type', choices=TASK_TYPES, help='needed with --train/--dev (default: none)')
    src.add_argument('--text_a', default=None,
                     help='column of the (first) text (default: text_a; multiple_choice: question)')
    src.add_argument('--text_b', default=None, help='column of the second text, for sentence-pair tasks '
                                                    '(default: none, single sentences)')
    src.add_argument('--label', default='label', help='label column; multiple_choice: the index of the right '
                                                      'option (default: label)')
    src.add_argument('--choices', default=CHOICE_PREFIX, help=f'multiple_choice: prefix of the option columns '
                                                              f'(default: {CHOICE_PREFIX}, i.e. {CHOICE_PREFIX}0, '
                                                              f'{CHOICE_PREFIX}1 ...)')
    src.add_argument('--name', help='task name in the results (default: the training file\'s directory name)')
    src.add_argument('--metric', help='headline metric: accuracy, f1, mcc (classification), spearman, pearson '
                                      '(regression), exact_match, f1 (extractive_qa) (default: a benchmark task\'s '
                                      'own; else accuracy, spearman or exact_match)')
    src.add_argument('--jglue_dir', help='the JGLUE repository (or its datasets/ folder) as downloaded; '
                                         'with --task (default: none)')
    src.add_argument('--glue_dir', help='the GLUE data folder (CoLA/, SST-2/, MRPC/ ...) as downloaded; with --task '
                                        '(default: none)')
    src.add_argument('--task', help=f"with --jglue_dir: {', '.join(JGLUE_FILES)} or all; with --glue_dir: "
                                    f"{', '.join(GLUE_FILES)} or all (default: none)")
    src.add_argument('--glue', choices=sorted(GLUE_TASKS), help='a GLUE task from the hub (needs the network; '
                                                                'default: none)')
    src.add_argument('--jglue', choices=sorted(JGLUE_HUB_TASKS), help='a JGLUE task from the hub (needs the network; '
                                                                  'default: none)')
    src.add_argument('--max_length', type=int, help=f'tokens per input (default: the task\'s: {MAX_LENGTH}; '
                                                    f'{QA_MAX_LENGTH} for extractive QA; JGLUE\'s per task; at most '
                                                    f'the model\'s)')
    src.add_argument('--double_unordered', type=true_or_false, default=default.double_unordered, metavar='true|false',
                     help=f'train symmetric pair tasks (MRPC, STS-B, JSTS) on both sentence orders (default: '
                          f'{str(default.double_unordered).lower()})')
    src.add_argument('--doc_stride', type=int, default=default.doc_stride,
                     help=f'extractive QA: tokens between context windows (default: {default.doc_stride})')
    src.add_argument('--train_per_class', type=int, metavar='N',
                     help='classification: train on a seeded subsample of at most N examples per class (the same '
                          'for every init and seed); the dev set is unchanged (default: all examples)')
    hp = p.add_argument_group('recipe: schedule and optimisation (defaults: ELECTRA\'s fine-tuning)')
    hp.add_argument('--epochs', type=int, help=f'default: the task\'s ({EPOCHS}; 10 for RTE, STS-B and JSTS; '
                                               f'{QA_EPOCHS} for extractive QA)')
    hp.add_argument('--lr', type=float, help='peak learning rate (default by hidden size: 3e-4 / 1e-4 / 5e-5)')
    hp.add_argument('--layer_decay', type=float, help='layer-wise lr decay (default: 0.8; 0.9 from 24 layers)')
    hp.add_argument('--bs', type=int, default=default.bs, help=f'examples per step (default: {default.bs})')
    hp.add_argument('--warmup', type=float, default=default.warmup,
                    help=f'warmup fraction of the steps (default: {default.warmup})')
    hp.add_argument('--weight_decay', type=float, default=default.weight_decay,
                    help=f'decoupled weight decay, never on LayerNorm weights or biases (default: '
                         f'{default.weight_decay}, Google\'s)')
    run = p.add_argument_group('run: seeds, device, output')
    run.add_argument('--seeds', type=int, default=len(default.seeds),
                     help=f'number of runs per init, seeds 0..N-1 (default: {len(default.seeds)})')
    run.add_argument('--device', help='cpu, cuda, cuda:1 ... (default: cuda when available, else cpu)')
    run.add_argument('--qa_f1', choices=F1_UNITS, help='extractive QA\'s F1: over words (SQuAD) or '
                                                                'characters (default: char for JSQuAD, JGLUE\'s; '
                                                                'word otherwise)')
    run.add_argument('--out', help=f'results JSON, the Markdown table beside it, written after every seed; an existing '
                                   f'one of the same settings is continued (default: {DEFAULT_OUT_DIR}/{{task}}.json '
                                   'under the working directory)')
    run.add_argument('--quiet', action='store_true', help='print only the table (default: off)')
    return p


def tasks_from_args(args: argparse.Namespace) -> tuple[list, str]:
    """The tasks the flags name, and the default results name."""
    from .benchmarks import load_benchmark
    from .data import TASK_TYPES, load_glue, load_jglue, load_task
    sources = [flag for flag in ('glue', 'jglue', 'glue_dir', 'jglue_dir') if getattr(args, flag)]
    files = args.train or args.dev
    if len(sources) + bool(files) != 1:
        raise ValueError("give one task source: --train and --dev files, --jglue_dir or --glue_dir with --task, "
                         "or --glue / --jglue")
    if args.task and not (args.glue_dir or args.jglue_dir):
        raise ValueError("--task picks a task of --jglue_dir or --glue_dir; give one of them")
    if args.glue_dir or args.jglue_dir:
        if not args.task:
            raise ValueError(f"--{sources[0]} needs --task (a task name, or all)")
        benchmark = 'jglue' if args.jglue_dir else 'glue'
        tasks = load_benchmark(benchmark, args.jglue_dir or args.glue_dir, args.task)
        return tasks, (f'{benchmark}_all' if args.task.lower() == 'all' else tasks[0].name)
    if args.glue:
        return [load_glue(args.glue)], args.glue
    if args.jglue:
        return [load_jglue(args.jglue)], args.jglue
    if not (args.train and args.dev):
        raise ValueError("local tasks need both --train and --dev")
    if not args.task_type:
        raise ValueError(f"local tasks need --task_type {', '.join(TASK_TYPES[:-1])} or {TASK_TYPES[-1]}")
    task = load_task(args.train, args.dev, args.task_type, args.text_a, args.text_b, args.label, args.name,
                     args.metric, args.choices)
    return [task], task.name


def check_mode(args: argparse.Namespace) -> None:
    """The flags that only make sense with (or without) --checkpoints."""
    if args.checkpoints is None:
        if len(args.model) > 1:
            raise ValueError("several --model values need --checkpoints (the curve of pre-training runs); "
                             "fine-tune one model directory at a time")
        if args.tokenizer:
            raise ValueError("--tokenizer applies with --checkpoints; a model directory holds its tokenizer")
        model = Path(args.model[0])
        if model.is_dir() and not (model / 'config.json').is_file() and any(model.glob('*.pth')):
            raise ValueError(f"{model} holds pre-training checkpoints, not a model; add --checkpoints all for the "
                             f"curve, or give an export's discriminator/ directory")
    elif args.compare_random:
        raise ValueError("--compare_random is part of every curve (--checkpoints fine-tunes random init once per "
                         "architecture); leave it out")


def run(args: argparse.Namespace) -> int:
    from .train import FinetuneSettings, finetune, results_table
    if args.seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {args.seeds}")
    check_mode(args)
    settings = FinetuneSettings(epochs=args.epochs, lr=args.lr, bs=args.bs, max_length=args.max_length,
                                layer_decay=args.layer_decay, warmup=args.warmup, weight_decay=args.weight_decay,
                                double_unordered=args.double_unordered, doc_stride=args.doc_stride,
                                train_per_class=args.train_per_class, seeds=list(range(args.seeds)),
                                device=args.device).check()
    tasks, name = tasks_from_args(args)
    if args.metric and (args.glue or args.jglue or args.glue_dir or args.jglue_dir):
        if len(tasks) > 1:
            raise ValueError("--metric sets the headline metric of one task; leave it out with --task all")
        tasks[0].metric = args.metric
    if args.qa_f1:
        qa = [t for t in tasks if t.task_type == 'extractive_qa']
        if not qa:
            raise ValueError("--qa_f1 applies to extractive QA tasks; leave it out here")
        for t in qa:
            t.f1_unit = args.qa_f1
    if args.train_per_class:
        name += f'_{args.train_per_class}per_class'  # its own default file: other settings than the full set
    if args.checkpoints is not None:
        from .curve import curve_markdown, finetune_curve, resolve_run
        runs = '+'.join(resolve_run(m).run_name for m in args.model)
        out = Path(args.out) if args.out else DEFAULT_OUT_DIR / f'{name}_curve_{runs}.json'
        results = finetune_curve(args.model, args.checkpoints, tasks, out, settings, args.tokenizer,
                                 verbose=not args.quiet)
        print(curve_markdown(results))
        print(f'results written to {out} (table: {out.with_suffix(".md")}, plot: {out.with_suffix(".png")})')
        return 0
    out = Path(args.out) if args.out else DEFAULT_OUT_DIR / f'{name}.json'
    results = finetune(args.model[0], tasks, settings, args.compare_random, out, verbose=not args.quiet)
    print(results_table(results))
    print(f'results written to {out} (table: {out.with_suffix(".md")})')
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: run(args),
                       interrupted='interrupted; the same command continues from the results written so far')


if __name__ == '__main__':
    sys.exit(main())
