"""Config keys as command-line flags: one flag per key of `pretrain.config.DEFAULTS`, grouped
for --help, values read as Python literals. `python -m pretrain` (pretrain/__main__.py) and the
demo (demo/demo.py) build their parsers with it."""
from __future__ import annotations

import argparse
import ast
from typing import Any

from pretrain.config import BOOL_KEYS, DEFAULTS, GROUP_TITLES, INT_KEYS, KEY_GROUPS, KEY_HELP, PATH_KEYS, SIZES, get_config


def parse_value(text: str) -> Any:
    """A flag's value: true/false/none in any case, a Python literal where it parses as one, else the text."""
    lowered = text.lower()
    if lowered in ('true', 'false', 'none'):
        return {'true': True, 'false': False, 'none': None}[lowered]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config keys given as flags (those left out are absent, `argparse.SUPPRESS`, and keep their
    defaults; a flag given as `none` is kept: `--seed none` draws a seed)."""
    return {k: v for k, v in vars(args).items() if k in DEFAULTS}


def config_from_args(args: argparse.Namespace):
    return get_config(**config_overrides(args))


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
                group.add_argument(f'--{key}', nargs='+', type=parse_value, metavar='V', help=text, default=argparse.SUPPRESS)
            else:
                group.add_argument(f'--{key}', type=parse_value, metavar=metavar, help=text, default=argparse.SUPPRESS)
