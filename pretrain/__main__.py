"""Command line: `python -m pretrain [train] --size tiny --steps 300 ...` runs the notebook's flow;
other subcommands (`python -m pretrain --help` lists them) prepare data and tokenizers or use
checkpoints.

Every config key is a flag of `train` (`--base_run_name x`, `--datas sample a.txt`, `--logger wandb`);
values are read as Python literals where they parse as one (`--seed 1`, `--precision bf16`).
"""
from __future__ import annotations

import argparse
import importlib
import sys

from _utils.cli import run_command
from pretrain.cli import add_config_flags, config_from_args

# Modules that add subcommands: each has `add_cli(subparsers)`, whose parsers set `func`.
SUBCOMMAND_MODULES: list[str] = ['pretrain.run.export', 'pretrain.prepare.wikidump', 'pretrain.tools.plot', 'pretrain.tools.inspect', 'demo.demo']


def run_train(args: argparse.Namespace) -> int:
    from pretrain.train import pretrain
    c = config_from_args(args)
    print(f'run {c.run_name}: size {c.size}, {c.steps} steps, batch {c.bs} x {c.max_length}, data {c.datas}')
    learn = pretrain(c)
    if learn is not None:
        print(f'done: checkpoints and log in {learn.path / learn.model_dir}')
    return 0


def run_tokenizer(args: argparse.Namespace) -> int:
    from pretrain.prepare.tokenizer import build_tokenizer
    tokenizer, cached = build_tokenizer(args.datas, args.out, args.vocab_size, args.min_frequency, args.num_unused,
                                        args.japanese, args.dic, args.limit_alphabet)
    short = (f" (fewer than --vocab_size {args.vocab_size}: the corpus has no more pieces seen --min_frequency "
             f"{args.min_frequency} times)" if len(tokenizer) < args.vocab_size else '')
    print(f"tokenizer with {len(tokenizer)} tokens{short} {'already in' if cached else 'saved to'} {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m pretrain', description='ELECTRA pre-training. '
                                     '`python -m pretrain [train] --size tiny ...` trains (the default command; '
                                     'its flags follow); `python -m pretrain COMMAND --help` describes a command.')
    sub = parser.add_subparsers(dest='command', required=True)
    train = sub.add_parser('train', help='pre-train an ELECTRA (the notebook flow); the default command',
                           usage='python -m pretrain [train] [--KEY VALUE ...]',
                           description='Pre-train an ELECTRA: every config key is a flag (pretrain/config.py), '
                                       'values read as Python literals where they parse as one.')
    add_config_flags(train)
    train.set_defaults(func=run_train)
    tok = sub.add_parser('tokenizer', help='train a WordPiece tokenizer on local corpora')
    tok.add_argument('--datas', nargs='+', default=['sample'])
    tok.add_argument('--out', required=True)
    tok.add_argument('--vocab_size', type=int, default=32768)
    tok.add_argument('--min_frequency', type=int, default=2)
    tok.add_argument('--num_unused', type=int, default=0)
    tok.add_argument('--japanese', action='store_true',
                     help='MeCab words + WordPiece, saved as a BertJapaneseTokenizer (cl-tohoku style)')
    tok.add_argument('--dic', help="with --japanese: MeCab dictionary, unidic_lite (default), unidic or ipadic")
    tok.add_argument('--limit_alphabet', type=int,
                     help='with --japanese: keep only this many most frequent characters')
    tok.set_defaults(func=run_tokenizer)
    for module in SUBCOMMAND_MODULES:
        importlib.import_module(module).add_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (['-h'], ['--help']):  # the commands, then the default command's flags
        print(build_parser().format_help())
        argv = ['train', '--help']
    if not argv or argv[0].startswith('-'):
        argv.insert(0, 'train')
    args = build_parser().parse_args(argv)
    return run_command(lambda: args.func(args),
                       interrupted='interrupted; continue later with the same command and --resume latest')


if __name__ == '__main__':
    sys.exit(main())
