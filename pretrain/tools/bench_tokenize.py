"""Tokenisation speed in one process: the seed's way (one `tokenize` + `convert_tokens_to_ids`
call per line) against ours (`pretrain.prepare.tokenizer.batch_encoder`, one call per batch of lines),
on the same lines, checking that both give the same ids.

    python -m pretrain.tools.bench_tokenize --data data/sample/ja.txt --tokenizer DIR --repeat 40

The corpus is repeated `--repeat` times so that each measurement takes a few seconds. Rust
`tokenizers` runs on one thread here (TOKENIZERS_PARALLELISM=false unless set), so the rates
are per CPU core, as in each `datasets.map` worker.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import unicodedata
from pathlib import Path
from typing import Callable

from _utils.cli import run_command


def read_lines(path: str | Path) -> list[str]:
    """The non-blank lines of a text file, as the data processor sees them (stripped)."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"--data {str(path)!r} is not a file; give a text file with one sentence per line")
    lines = [line.strip() for line in p.read_text(encoding='utf-8').splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"--data {str(path)!r} has no non-blank lines; give a text file with one sentence per line")
    return lines


def timed(fn: Callable[[], list[list[int]]]) -> tuple[list[list[int]], float]:
    start = time.perf_counter()
    ids = fn()
    return ids, time.perf_counter() - start


def seed_way(tok, lines: list[str]) -> list[list[int]]:
    """The seed's per-line path: Python calls per line."""
    return [tok.convert_tokens_to_ids(tok.tokenize(line)) for line in lines]


def batched(encode, lines: list[str], batch_size: int) -> list[list[int]]:
    """Our path, fed in batches as `datasets.map(batched=True)` feeds it."""
    out: list[list[int]] = []
    for i in range(0, len(lines), batch_size):
        out += encode(lines[i:i + batch_size])
    return out


def mecab_only(tok, lines: list[str]) -> float:
    """Seconds MeCab alone takes on `lines` (NFKC + one parse per line): a floor for any
    exact MeCab-based tokeniser."""
    from pretrain.prepare.ja_tokenizer import MeCab, japanese_batch_encoder
    mecab = MeCab(japanese_batch_encoder(tok).mecab_option)
    mecab.parse(lines[0])
    start = time.perf_counter()
    for line in lines:
        mecab.parse(unicodedata.normalize('NFKC', line))
    return time.perf_counter() - start


def bench(tokenizer_dir: str, data: str, repeat: int, batch_size: int) -> dict[str, float]:
    """Measure both paths on `data` repeated `repeat` times; print and return the rates."""
    from pretrain.prepare.tokenizer import batch_encoder, load_tokenizer
    if repeat < 1 or batch_size < 1:
        raise ValueError(f"--repeat and --batch_size must be >= 1, got {repeat} and {batch_size}")
    tok = load_tokenizer(tokenizer_dir)
    lines = read_lines(data) * repeat
    encode = batch_encoder(tok)
    # warm up both (MeCab dictionary pages, lazy objects) on text outside the measured lines
    warm = ['ウォームアップ用の文です。Warm-up line.']
    seed_way(tok, warm), encode(warm)
    slow, t_slow = timed(lambda: seed_way(tok, lines))
    fast, t_fast = timed(lambda: batched(encode, lines, batch_size))
    same = slow == fast
    n = sum(map(len, slow))
    rates = {'seed': n / t_slow, 'ours': n / t_fast, 'ratio': t_slow / t_fast}
    print(f'tokenizer {tokenizer_dir} ({type(tok).__name__}, {len(tok)} tokens); encoder {type(encode).__name__}')
    print(f'{len(lines)} lines ({data} x {repeat}), {n} tokens, batches of {batch_size}, '
          f"TOKENIZERS_PARALLELISM={os.environ['TOKENIZERS_PARALLELISM']}")
    print(f"seed's way (tokenize + convert_tokens_to_ids per line): {t_slow:7.2f} s  {rates['seed']:12,.0f} tokens/s")
    print(f"ours (batch_encoder):                                   {t_fast:7.2f} s  {rates['ours']:12,.0f} tokens/s")
    print(f"speed-up: {rates['ratio']:.1f}x; identical ids: {same}")
    if type(tok).__name__ == 'BertJapaneseTokenizer':
        t_mecab = mecab_only(tok, lines)
        rates['mecab'] = n / t_mecab
        print(f"MeCab alone (NFKC + parse per line, both paths do it):  {t_mecab:7.2f} s  "
              f"{rates['mecab']:12,.0f} tokens/s (caps the speed-up at {t_slow / t_mecab:.1f}x)")
    if not same:
        bad = next(i for i, (a, b) in enumerate(zip(slow, fast)) if a != b)
        raise ValueError(f"the two paths disagree on line {bad}: {lines[bad]!r}")
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m pretrain.tools.bench_tokenize', description=__doc__.splitlines()[0])
    parser.add_argument('--data', default='data/sample/ja.txt', help='text file, one sentence per line')
    parser.add_argument('--tokenizer', default='data/sample/tokenizer', help='local tokenizer directory')
    parser.add_argument('--repeat', type=int, default=20, help='times to repeat the corpus')
    parser.add_argument('--batch_size', type=int, default=1000, help="lines per call of ours (datasets.map's default)")
    args = parser.parse_args(argv)
    os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')  # one thread: a per-core rate
    def run() -> int:
        bench(args.tokenizer, args.data, args.repeat, args.batch_size)
        return 0
    return run_command(run)


if __name__ == '__main__':
    sys.exit(main())
