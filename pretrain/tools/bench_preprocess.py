"""Preprocessing benchmark: a generated text corpus from file to cached examples (what
`pretrain.train.preprocess` does), with the peak memory of the main process and its workers
and the throughput.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python -m pretrain.tools.bench_preprocess --mb 2000 --num_proc 2

The corpus (`--dir`/corpus_{mb}MB.txt, kept for the next run) is sentences of data/sample drawn
at random, 5 to 40 per document, a blank line between documents. Each run starts without
caches: the corpus is streamed into an Arrow file, then `ELECTRADataProcessor` writes the
examples. Memory is sampled every `--every` seconds over the process and all its children
(the map's workers and the manager process `datasets` forks) and summed: RSS (a page shared by
forked processes, such as torch's and transformers' ~1 GB, counts once per process: an upper
bound), PSS (a shared page split between its processes: the physical memory of the job) and
USS (the pages each process alone holds).
"""
from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import threading
import time
from pathlib import Path

import psutil

from _utils.paths import REPO_ROOT


def generate_corpus(path: Path, n_bytes: int, seed: int = 0) -> Path:
    """Write a `.txt` corpus of about `n_bytes` (UTF-8) at `path`, unless one of that size is
    there (written under a temporary name and renamed)."""
    if path.is_file() and abs(path.stat().st_size - n_bytes) < 1_000_000 + n_bytes // 100:
        return path
    lines = [line.strip() for f in ('ja.txt', 'en.txt')
             for line in (REPO_ROOT / 'data' / 'sample' / f).read_text(encoding='utf-8').splitlines() if line.strip()]
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.tmp')
    written = 0
    with open(tmp, 'wb') as f:
        while written < n_bytes:
            chunk = ''.join('\n'.join(rng.choices(lines, k=rng.randint(5, 40))) + '\n\n' for _ in range(200)).encode()
            f.write(chunk)
            written += len(chunk)
    tmp.replace(path)
    return path


class MemorySampler:
    """Samples the memory of this process and its children (recursively) in a thread; keeps the
    peak of each sum (bytes): 'rss', 'pss', 'uss', and the most processes seen at once."""

    def __init__(self, every: float = 0.5):
        self.every, self.peak = every, {'rss': 0, 'pss': 0, 'uss': 0, 'processes': 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        me = psutil.Process()
        sums = {'rss': 0, 'pss': 0, 'uss': 0, 'processes': 0}
        for p in [me, *me.children(recursive=True)]:
            try:
                m = p.memory_full_info()  # /proc/PID/smaps_rollup
            except (psutil.NoSuchProcess, psutil.AccessDenied):  # a worker that just ended
                continue
            sums['rss'] += m.rss
            sums['pss'] += m.pss
            sums['uss'] += m.uss
            sums['processes'] += 1
        for k, v in sums.items():
            self.peak[k] = max(self.peak[k], v)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def __enter__(self) -> 'MemorySampler':
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def run(corpus: Path, work: Path, num_proc: int, tokenizer: str = 'data/sample/tokenizer', max_length: int = 128,
        every: float = 0.5) -> dict:
    """File -> cached examples as `preprocess` does it, from empty caches under `work`;
    returns sizes, times (s), throughput (MB/s of corpus file) and memory peaks (bytes)."""
    from pretrain._utils.electra_dataprocessor import ELECTRADataProcessor
    from pretrain.prepare.corpus import load_corpus
    from pretrain.prepare.tokenizer import load_tokenizer
    hf_tokenizer = load_tokenizer(tokenizer)
    shutil.rmtree(work, ignore_errors=True)
    with MemorySampler(every) as memory:
        start = time.perf_counter()
        docs = load_corpus(str(corpus), cache_dir=work / 'corpus')
        loaded = time.perf_counter()
        processor = ELECTRADataProcessor(docs, hf_tokenizer, max_length=max_length, seed=0)
        examples = processor.map(cache_file_name=str(work / 'examples' / 'electra.arrow'), num_proc=num_proc)
        done = time.perf_counter()
    mb = corpus.stat().st_size / 1e6
    return {'corpus_mb': round(mb, 1), 'documents': len(docs), 'examples': len(examples),
            'tokens_kept': processor.stats['kept_tokens'], 'num_proc': num_proc,
            'load_s': round(loaded - start, 1), 'map_s': round(done - loaded, 1), 'total_s': round(done - start, 1),
            'mb_per_s': round(mb / (done - start), 2),
            'peak_rss_sum': memory.peak['rss'], 'peak_pss_sum': memory.peak['pss'], 'peak_uss_sum': memory.peak['uss'],
            'processes': memory.peak['processes'],
            # the largest single process (getrusage: kilobytes on Linux)
            'maxrss_main': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            'maxrss_largest_child': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--mb', type=int, default=2000, help='corpus size in MB (default 2000)')
    p.add_argument('--num_proc', type=int, default=2)
    p.add_argument('--dir', type=Path, default=Path('/tmp/electra_bench_preprocess'), help='corpus and caches')
    p.add_argument('--tokenizer', default='data/sample/tokenizer')
    p.add_argument('--max_length', type=int, default=128)
    p.add_argument('--every', type=float, default=0.5, help='memory sampling interval (s)')
    args = p.parse_args(argv)
    if args.mb < 1 or args.num_proc < 1:
        p.error(f'--mb and --num_proc must be positive, got {args.mb} and {args.num_proc}')
    corpus = generate_corpus(args.dir / f'corpus_{args.mb}MB.txt', args.mb * 10**6)
    result = run(corpus, args.dir / 'work', args.num_proc, args.tokenizer, args.max_length, args.every)
    gb = lambda n: f'{n / 1e9:.2f} GB'
    print(f"{result['corpus_mb']:,.0f} MB corpus -> {result['examples']:,} examples in {result['total_s']} s "
          f"({result['mb_per_s']} MB/s; load {result['load_s']} s, examples {result['map_s']} s), num_proc {args.num_proc}; "
          f"peak over {result['processes']} processes: RSS sum {gb(result['peak_rss_sum'])}, "
          f"PSS sum {gb(result['peak_pss_sum'])}, USS sum {gb(result['peak_uss_sum'])}")
    print(json.dumps(result))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
