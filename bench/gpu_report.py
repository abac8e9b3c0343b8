"""The summary of bench/gpu_check.sh: every step's status, the benchmark table (in the README's
layout) and whether the device run's loss curve tracks the fp32 CPU reference, as one JSON.

    python bench/gpu_report.py --work DIR --run RUN.csv --reference bench/results/cpu_fp32_tiny_sample.csv --out OUT.json

Tracking: the run and the reference are compared on the means of each third of the shorter
run, for the generator and discriminator losses. The GPU run draws its masks and Gumbel noise
from other RNG streams than the CPU, so it is another sample of the same process: the tolerance
is set from how far CPU runs with different seeds land from each other (bench/results/README.md).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pretrain.run.log_cb import read_log  # noqa: E402

TOLERANCE = 0.10  # relative; CPU runs with other seeds land 0.5% and 2.8% from the reference (bench/results/README.md)


def window_means(rows: list[dict[str, float]], last_step: int, key: str) -> list[float]:
    """Means of `key` over the rows in each third of steps (0, last_step]."""
    edges = [round(last_step * i / 3) for i in range(4)]
    means = []
    for lo, hi in zip(edges, edges[1:]):
        vals = [r[key] for r in rows if lo < r['step'] <= hi]
        means.append(sum(vals) / len(vals) if vals else float('nan'))
    return means


def compare_curves(run_csv: Path, reference_csv: Path, tolerance: float = TOLERANCE) -> dict:
    """Window means of both curves and their largest relative gap; `tracks` when within `tolerance`."""
    run, ref = read_log(run_csv), read_log(reference_csv)
    if not run or not ref:
        raise ValueError(f"no rows in {run_csv if not run else reference_csv}")
    last = min(run[-1]['step'], ref[-1]['step'])
    out = {'run': str(run_csv), 'reference': str(reference_csv), 'steps': last, 'tolerance': tolerance}
    gaps = []
    for key in ('gen_loss', 'disc_loss'):
        a, b = window_means(run, last, key), window_means(ref, last, key)
        out[key] = {'run': a, 'reference': b}
        gaps += [abs(x - y) / y for x, y in zip(a, b)]
    out['max_relative_gap'] = max(gaps)
    out['tracks'] = out['max_relative_gap'] <= tolerance
    return out


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def bench_table(results: list[dict]) -> str:
    """The benchmark figures as the README's markdown table."""
    lines = ['| device | size, batch | compile | precision | steps/s | tokens/s | MFU | peak memory | vs seed | warm-up |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for r in results:
        mfu = f"{r['mfu']:.1%}" if r.get('mfu') else '–'
        mem = f"{r['peak_mem_gb']:.2f} GB" if r.get('peak_mem_gb') is not None else '–'
        seed = f"{r['ratio_to_seed']:.1f}x ({r['seed_steps_per_s']:.1f} steps/s)" if r.get('ratio_to_seed') else '–'
        accum = f", accum {r['grad_accum']}" if r.get('grad_accum', 1) > 1 else ''
        lines.append(f"| {r['device']} | {r['size']} {r['bs']}x{r['max_length']}{accum} | {r['compile'] or 'eager'} | "
                     f"{r['precision']} | {r['steps_per_s']:.1f} | {r['tokens_per_s']:,.0f} | {mfu} | {mem} | {seed} | "
                     f"{r['warmup_s']:.0f} s |")
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--work', type=Path, required=True, help="gpu_check.sh's work directory (steps.jsonl, bench.jsonl)")
    p.add_argument('--run', type=Path, nargs='*', default=[], help="the device run's training CSV")
    p.add_argument('--reference', type=Path, required=True)
    p.add_argument('--out', type=Path, required=True)
    args = p.parse_args(argv)
    report = {'steps': read_jsonl(args.work / 'steps.jsonl'), 'bench': read_jsonl(args.work / 'bench.jsonl')}
    runs = [r for r in args.run if r.is_file()]
    try:
        report['curves'] = compare_curves(runs[0], args.reference) if runs else {'error': 'the device run wrote no CSV'}
    except ValueError as e:
        report['curves'] = {'error': str(e)}
    args.out.write_text(json.dumps(report, indent=1))
    print('\n'.join(f"{s['step']:<24} rc {s['rc']:<4} {s['seconds']:>4} s" for s in report['steps']))
    print(bench_table(report['bench']))
    c = report['curves']
    print(f"curve: {c['error']}" if 'error' in c else
          f"curve over {c['steps']:.0f} steps: largest gap {c['max_relative_gap']:.1%} of the fp32 CPU reference "
          f"(tolerance {c['tolerance']:.0%}): {'tracks' if c['tracks'] else 'DOES NOT TRACK'}")
    print(f'written: {args.out}')
    return 0 if all(s['rc'] == 0 for s in report['steps']) and c.get('tracks') else 1


if __name__ == '__main__':
    sys.exit(main())
