"""Command line: `python -m pretrain [train] --size tiny --steps 300 ...` runs the notebook's flow;
other subcommands (`python -m pretrain --help` lists them) prepare data and tokenizers or use
checkpoints.

Every config key is a flag of `train` (`--base_run_name x`, `--datas sample a.txt`, `--logger wandb`);
values are read as Python literals where they parse as one (`--seed 1`, `--precision bf16`).
"""
from __future__ import annotations

import argparse
import ast
import importlib
import sys
from typing import Any

from pretrain.config import BOOL_KEYS, DEFAULTS, GROUP_TITLES, INT_KEYS, KEY_GROUPS, KEY_HELP, PATH_KEYS, SIZES, get_config

# Modules that add subcommands: each has `add_cli(subparsers)`, whose parsers set `func`.
SUBCOMMAND_MODULES: list[str] = ['pretrain.run.export', 'pretrain.prepare.wikidump', 'pretrain.tools.plot', 'pretrain.tools.inspect', 'demo.demo']


def parse_value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ('true', 'false', 'none'):
        return {'true': True, 'false': False, 'none': None}[lowered]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config keys given as flags (those left out keep their defaults)."""
    return {k: v for k, v in vars(args).items() if k in DEFAULTS and v is not None}


def config_from_args(args: argparse.Namespace):
    return get_config(**config_overrides(args))


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


LIST_KEYS = ('datas', 'save_points', 'loss_weights')


def _show(v: Any) -> str:
    return f'{v:,}' if isinstance(v, int) and not isinstance(v, bool) else f'{v:g}' if isinstance(v, float) else str(v)


def default_text(key: str) -> str:
    """The default of config key `key` as --help shows it; for the keys a size derives, the
    value of each size (`tiny/mini/small 0.0005, base/large 0.0002`)."""
    if DEFAULTS[key] is None and key in SIZES['tiny']:
        by_value: dict[str, list[str]] = {}
        for size, recipe in SIZES.items():
            by_value.setdefault(_show(recipe[key]), []).append(size)
        return 'by size: ' + ', '.join(f"{'/'.join(sizes)} {v}" for v, sizes in by_value.items())
    if key == 'max_predictions':
        return 'int((mask_prob + 0.005) * max_length), 19 at 0.15 and 128'
    return str(DEFAULTS[key])


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per config key, in the groups of `config.KEY_GROUPS` (which place every key:
    tests/test_main.py), each with its meaning and default."""
    for g, keys in KEY_GROUPS.items():
        group = parser.add_argument_group(GROUP_TITLES[g])
        for key in keys:
            text = f"{KEY_HELP[key]} (default: {default_text(key)})".replace('%', '%%')
            metavar = 'BOOL' if key in BOOL_KEYS else 'N' if key in INT_KEYS else 'PATH' if key in PATH_KEYS else 'V'
            if key in LIST_KEYS:
                group.add_argument(f'--{key}', nargs='+', type=parse_value, metavar='V', help=text)
            else:
                group.add_argument(f'--{key}', type=parse_value, metavar=metavar, help=text)


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
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print('interrupted; continue later with the same command and --resume latest', file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, NotADirectoryError) as e:
        # fastai prefixes errors raised in callbacks with the callback's name: keep the message
        print(f'error: {str(e).strip().splitlines()[-1].strip()}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
