"""The downstream curve: where a pre-training run stands. Every chosen checkpoint of one or more
runs is exported to a temporary directory and fine-tuned on the tasks over the seeds; the same
architecture is fine-tuned from a random initialisation once (not per checkpoint). One JSON, a
Markdown table beside it (same name, .md) and a plot (.png): each task's headline dev metric
against pre-training steps and against pre-training FLOPs, a line per run, random init as a band.

    python -m finetune --model RUN [RUN ...] --checkpoints all|LIST <task flags>

The JSON is rewritten after every finished seed; the same command again continues it.
"""
from __future__ import annotations

import functools
import math
import re
import sys
import tempfile
import zipfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

from pretrain.run.export import finetuned_model_dir
from _utils.paths import repo_path
from pretrain.run.run_dir import RunDir, runs_in

from .data import Task
from .results import (atomic_write, check_same_tasks, check_writable, checkpoint_fingerprint, finished_seeds, gain,
                      json_digest, markdown_table, mean_std, metric_value, previous_results, seeds_done)
from .train import FinetuneSettings, Finetuner, checked_facts, resolved_device, write_results

DEFAULT_RUNS_DIR = 'checkpoints/pretrain'
KIND = 'finetune_curve'
# config.json entries that do not change the encoder a random init builds
NOT_ARCHITECTURE = ('architectures', 'transformers_version', 'torch_dtype', 'dtype')


@dataclass(frozen=True)
class CurvePoint:
    """One checkpoint of a run to fine-tune: its step (`state['step']`), the training FLOPs of one
    optimizer step when the checkpoint records them, its objective ('electra' or 'mlm') and a
    fingerprint of the file."""
    run: RunDir
    path: Path
    step: int
    flops_per_step: int | None
    objective: str
    fingerprint: str

    @property
    def flops(self) -> int | None:
        return self.step * self.flops_per_step if self.flops_per_step is not None else None


def resolve_run(spec: str) -> RunDir:
    """The run a --model RUN names: a checkpoint directory holding one run's checkpoints,
    `DIR/RUN_NAME`, or a bare run name in `checkpoints/pretrain` (relative paths: `repo_path`)."""
    p = repo_path(spec)
    if p.is_file():
        raise ValueError(f"{spec} is a file; give its run as DIR/RUN_NAME and pick checkpoints with --checkpoints")
    if p.is_dir():
        names = [n for n in runs_in(p) if RunDir(p, n).checkpoint_files()]
        if not names:
            if (p / 'config.json').is_file():
                raise ValueError(f"--checkpoints needs pre-training runs as --model, but {spec} is a model directory; "
                                 f"leave --checkpoints out to fine-tune it")
            raise ValueError(f"{spec} holds no checkpoint ({{run_name}}_{{tag}}.pth); give a pre-training run's "
                             f"checkpoint directory, DIR/RUN_NAME or a run name in {DEFAULT_RUNS_DIR}")
        if len(names) > 1:
            raise ValueError(f"{spec} holds several runs ({', '.join(names)}); name one, e.g. {Path(spec) / names[0]}")
        return RunDir(p, names[0])
    bare = Path(spec).parent == Path('.') and not spec.startswith('.')
    run = RunDir(repo_path(DEFAULT_RUNS_DIR), spec) if bare else RunDir(p.parent, p.name)
    if not run.directory.is_dir() or not run.checkpoint_files():
        there = f" (runs there: {', '.join(runs_in(run.directory))})" if run.directory.is_dir() and runs_in(run.directory) else ''
        raise ValueError(f"no checkpoint of run {run.run_name!r} in {run.directory}{there}; give a pre-training run's "
                         f"checkpoint directory, DIR/RUN_NAME or a run name in {DEFAULT_RUNS_DIR}")
    return run


def _matches(entry: str, run: RunDir, step: int, path: Path) -> bool:
    """Whether a --checkpoints entry names this checkpoint: a step ('5000' or 'step5000', whatever
    the file's tag), a tag ('50%' or '50.0%') or a file name ('run_50.0%.pth')."""
    if re.fullmatch(r'(step)?\d+', entry):
        return step == int(entry.removeprefix('step'))
    if entry.endswith('.pth'):
        return path.name == Path(entry).name
    tag = path.stem[len(run.run_name) + 1:]
    if entry == tag:
        return True
    try:
        return entry.endswith('%') and tag.endswith('%') and float(entry[:-1]) == float(tag[:-1])
    except ValueError:
        return False


def select_checkpoints(run: RunDir, selection: str) -> list[tuple[int, Path]]:
    """(step, path) of the checkpoints `selection` picks, by step, one per step: 'all', or a
    comma-separated list of steps, tags or file names (an entry that matches no checkpoint of the
    run is a one-line ValueError). A damaged checkpoint file is skipped with a warning."""
    from pretrain.run.checkpoint_files import checkpoints_of
    found = checkpoints_of(run.directory, run.run_name)
    if not found:
        raise ValueError(f"run {run.run_name!r} in {run.directory} has no readable checkpoint")
    if selection.strip().lower() == 'all':
        chosen = found
    else:
        entries = [e.strip() for e in selection.split(',') if e.strip()]
        if not entries:
            raise ValueError("--checkpoints is empty; give all, or steps, tags or file names separated by commas")
        chosen = []
        for entry in entries:
            hits = [(step, p) for step, p in found if _matches(entry, run, step, p)]
            if not hits:
                have = ', '.join(f'{step} ({p.name})' for step, p in found[:8]) + (' ...' if len(found) > 8 else '')
                raise ValueError(f"--checkpoints entry {entry!r} matches no checkpoint of run {run.run_name!r} in "
                                 f"{run.directory}; its steps: {have}")
            chosen += hits
    by_step: dict[int, Path] = {}
    for step, p in sorted(chosen):  # a save point and a periodic save at one step hold the same weights
        by_step.setdefault(step, p)
    return sorted(by_step.items())


def curve_point(run: RunDir, path: Path, tokenizer: str | Path | None = None,
                load: Callable | None = None) -> CurvePoint:
    """Read a checkpoint's facts, checking that its run's tokenizer (or `tokenizer`, loaded with
    `load`: default `pretrain.prepare.tokenizer.load_tokenizer`) has the vocabulary it was trained with
    (one line naming the checkpoint otherwise)."""
    from pretrain.run.safe_load import load_checkpoint
    from pretrain.run.export import checkpoint_tokenizer
    from pretrain.prepare.tokenizer import load_tokenizer
    state = load_checkpoint(path)
    hf_tokenizer = checkpoint_tokenizer(state, tokenizer, str(path), load=load or load_tokenizer)
    flops = counted_flops_per_step(state, hf_tokenizer)
    objective = (state.get('config') or {}).get('objective') or 'electra'
    try:
        fingerprint = checkpoint_fingerprint(path)
    except (OSError, zipfile.BadZipFile) as e:
        raise ValueError(f"cannot read {path} ({type(e).__name__}); use another checkpoint of the run") from None
    return CurvePoint(run, path, int(state['step']), flops, objective, fingerprint)


def counted_flops_per_step(state: dict, hf_tokenizer) -> int | None:
    """The training FLOPs of one step of a loaded checkpoint's run, counted now (`run.flops`) on
    its rebuilt model, so that checkpoints saved before FLOPs were recorded, or by an older counter
    (one that missed attention in runs without dropout), sit on the same axis as new ones; the
    recorded count where the checkpoint lacks what a count needs (its config's bs, max_length,
    max_predictions and its model configs)."""
    from pretrain.run.export import model_from_checkpoint
    from pretrain.run.flops import config_step_flops
    c = state.get('config') or {}
    if not state.get('model_configs') or not all(isinstance(c.get(k), int) for k in ('bs', 'max_length',
                                                                                       'max_predictions')):
        recorded = state.get('flops_per_step')
        return int(recorded) if recorded is not None else None
    return config_step_flops(model_from_checkpoint(state, hf_tokenizer), c)


def architecture(runner: Finetuner) -> tuple[str, dict]:
    """(id, description) of what a random initialisation of `runner`'s model depends on: its
    config (architecture entries only) and its tokenizer's vocabulary. Runs that share it share
    one random-init baseline."""
    from pretrain.prepare.vocab import vocab_hash
    from .model import load_config
    config = load_config(runner.model_dir).to_dict()
    key = {k: v for k, v in config.items() if k not in NOT_ARCHITECTURE and not k.startswith('_')}
    key['vocab'] = vocab_hash(runner.tokenizer)
    arch_id = json_digest(key, 12)
    brief = ('model_type', 'hidden_size', 'num_hidden_layers', 'num_attention_heads', 'intermediate_size',
             'embedding_size', 'vocab_size', 'max_position_embeddings')
    return arch_id, {k: config[k] for k in brief if k in config}


def _run_key(run: RunDir) -> str:
    return str(run.directory.resolve() / run.run_name)


def finetune_curve(runs: list[str], checkpoints: str, tasks: list[Task], out: str | Path,
                   settings: FinetuneSettings | None = None, tokenizer: str | Path | None = None,
                   verbose: bool = True) -> dict:
    """Fine-tune the checkpoints `checkpoints` ('all' or a list, `select_checkpoints`) of each run
    (`resolve_run`) on `tasks` over the settings' seeds, and each distinct architecture once from
    random init; write `out` (JSON, after every finished seed), the Markdown table beside it (.md)
    and the plot (.png). Everything that can be checked is checked before any training. When `out`
    holds results of the same settings, finished work (same checkpoint file) is kept; other
    settings: a one-line ValueError.

    Returns {'kind', 'settings', 'tokenizer', 'runs': {run key: {'label', 'directory', 'run_name',
    'objective', 'checkpoints': {file name: {'step', 'flops_per_step', 'flops', 'fingerprint',
    'architecture', 'tasks': {task: run_task's result}}}}}, 'architectures': {id: {'config',
    'settings', 'random': {task: run_task's result}}}}."""
    from pretrain.prepare.tokenizer import load_tokenizer
    settings = (settings or FinetuneSettings()).check()
    settings = replace(settings, device=resolved_device(settings.device))
    names = [t.name for t in tasks]
    facts = checked_facts(tasks, settings)
    out = check_writable(out)
    identity = {'kind': KIND, 'settings': asdict(settings), 'tokenizer': str(tokenizer) if tokenizer else None}
    results = previous_results(out, identity) or {**identity, 'runs': {}, 'architectures': {}}
    check_same_tasks([e['tasks'] for r in results['runs'].values() for e in r['checkpoints'].values()] +
                     [a['random'] for a in results['architectures'].values()], facts, out)
    load = functools.lru_cache(maxsize=None)(load_tokenizer)  # each run's tokenizer read once
    chosen: dict[str, list[CurvePoint]] = {}
    for spec in runs:
        run = resolve_run(spec)
        if _run_key(run) not in chosen:  # a run named twice is fine-tuned once
            chosen[_run_key(run)] = [curve_point(run, p, tokenizer, load)
                                     for _, p in select_checkpoints(run, checkpoints)]
    _add_runs(results, chosen, out)

    def save() -> None:
        write_results(results, out, curve_markdown)

    png = out.with_suffix('.png')
    for key, points in chosen.items():
        entries = results['runs'][key]['checkpoints']
        for p in points:
            entry = entries.setdefault(p.path.name, {'step': p.step, 'flops_per_step': p.flops_per_step,
                                                     'flops': p.flops, 'fingerprint': p.fingerprint,
                                                     'architecture': None, 'tasks': {}})
            entry.update(flops_per_step=p.flops_per_step, flops=p.flops)  # the count of today's counter
            n = len(settings.seeds)
            arch = results['architectures'].get(entry['architecture'], {'random': {}})
            if (all(finished_seeds(entry['tasks'].get(t), 'pretrained') == n for t in names) and
                    all(finished_seeds(arch['random'].get(t), 'random') == n for t in names)):
                if verbose:
                    print(f'{p.run.run_name} step {p.step} ({p.path.name}): done before, kept', flush=True)
                continue
            if verbose:
                print(f'{p.run.run_name} step {p.step} ({p.path.name}): exporting and fine-tuning', flush=True)
            _finetune_point(p, entry, results, tasks, settings, tokenizer, verbose, save)
            plot_curve(results, png)  # the curve so far, after every checkpoint
    save()
    plot_curve(results, png)
    return results


def _add_runs(results: dict, chosen: dict[str, list[CurvePoint]], out: Path) -> None:
    """Enter the chosen runs in `results` (a label per run: its name, with its directory's where
    two runs share one), after checking that the checkpoints already there are the same files."""
    labels = [points[0].run.run_name for points in chosen.values()]
    for key, points in chosen.items():
        run = points[0].run
        before = results['runs'].get(key, {}).get('checkpoints', {})
        for p in points:
            if p.path.name in before and before[p.path.name]['fingerprint'] != p.fingerprint:
                raise ValueError(f"{out} holds results of an earlier {p.path.name} (the file has changed since: a new "
                                 f"run under the same name?); pick another --out, or delete {out} to start over")
        label = run.run_name if labels.count(run.run_name) == 1 else f'{run.directory.name}/{run.run_name}'
        results['runs'].setdefault(key, {'label': label, 'directory': str(run.directory), 'run_name': run.run_name,
                                         'objective': points[0].objective, 'checkpoints': {}})
        if any(p.flops_per_step is None for p in points):
            print(f"note: checkpoints of run {run.run_name} hold neither a FLOPs count nor the config and model "
                  f"configs to count one: their FLOPs are null and the run is left out of the FLOPs panel",
                  file=sys.stderr)


def _finetune_point(p: CurvePoint, entry: dict, results: dict, tasks: list[Task], settings: FinetuneSettings,
                    tokenizer: str | Path | None, verbose: bool, save) -> None:
    """Export one checkpoint to a temporary directory (removed afterwards), fine-tune it on every
    task, and its architecture from random init where that is not done yet; `save` after each seed."""
    from pretrain.run.export import export
    with tempfile.TemporaryDirectory(prefix='finetune_curve_') as tmp:
        exported = export(p.path, Path(tmp) / 'export', tokenizer)
        runner = Finetuner(finetuned_model_dir(exported), settings, verbose)
        arch_id, config = architecture(runner)
        entry['architecture'] = arch_id
        arch = results['architectures'].setdefault(arch_id, {'config': config, 'settings': asdict(runner.settings),
                                                             'random': {}})
        for init, store in (('pretrained', entry['tasks']), ('random', arch['random'])):
            for task in tasks:
                def on_seed(result: dict, name: str = task.name, store: dict = store) -> None:
                    store[name] = result
                    save()
                store[task.name] = runner.run_task(task, (init,), store.get(task.name), on_seed)


def _task_names(results: dict) -> list[str]:
    names: dict[str, None] = {}
    for r in results['runs'].values():
        for e in r['checkpoints'].values():
            names.update(dict.fromkeys(e['tasks']))
    return list(names)


def _points(results: dict, task: str) -> list[tuple[str, dict, list[tuple[str, dict]]]]:
    """(run key, run, its (file name, entry) with a finished seed of `task`, by step) per run."""
    out = []
    for key, r in results['runs'].items():
        entries = sorted(((f, e) for f, e in r['checkpoints'].items()
                          if finished_seeds(e['tasks'].get(task), 'pretrained')), key=lambda fe: fe[1]['step'])
        if entries:
            out.append((key, r, entries))
    return out


def _headline(result: dict | None, init: str) -> dict | None:
    """The summary (mean, std, best, runs) of the task's headline metric for `init`, if run."""
    if not result or not finished_seeds(result, init):
        return None
    return result[init][result['metric']]


def curve_markdown(results: dict) -> str:
    """One Markdown row per (task, run, checkpoint), by step: the headline dev metric, mean ±
    std over the seeds, of the checkpoint and of its architecture's random init, and the gain in
    points."""
    head = ['task', 'metric', 'run', 'objective', 'checkpoint', 'step', 'FLOPs', 'pre-trained mean ± std',
            'random init mean ± std', 'gain (points)', 'seeds']
    rows = []
    for task in _task_names(results):
        for _, run, entries in _points(results, task):
            for file, e in entries:
                r = e['tasks'][task]
                rnd = (results['architectures'].get(e['architecture']) or {}).get('random', {}).get(task)
                a, b = _headline(r, 'pretrained'), _headline(rnd, 'random')
                done = min(finished_seeds(r, 'pretrained'), finished_seeds(rnd, 'random'))
                flops = f"{e['flops']:.3g}" if e['flops'] is not None else '—'
                rows.append([task, r['metric'], run['label'], run['objective'], file, str(e['step']), flops,
                             mean_std(a), mean_std(b), gain(a, b), seeds_done(done, r)])
    return markdown_table(head, rows)


def plot_curve(results: dict, out: str | Path) -> Path:
    """Write the curve to `out` (PNG, atomically): a row per task, the headline dev metric (mean
    ± std over seeds as error bars) against pre-training steps (left) and FLOPs (right), a line
    per run; random init as a horizontal band (mean ± std) per architecture. A run with a
    checkpoint that records no FLOPs is left out of the FLOPs panel."""
    import matplotlib
    matplotlib.use('Agg')  # files only: no display needed, none opened
    import matplotlib.pyplot as plt

    out = Path(out)
    tasks = _task_names(results) or ['(no results yet)']
    fig, axes = plt.subplots(len(tasks), 2, figsize=(12, 3.8 * len(tasks)), squeeze=False, layout='constrained')
    colors = plt.rcParams['axes.prop_cycle'].by_key()['color']
    run_color = {key: colors[i % len(colors)] for i, key in enumerate(results['runs'])}
    archs = list(results['architectures'])
    for row, task in enumerate(tasks):
        ax_steps, ax_flops = axes[row]
        metric, used, flops_drawn = None, set(), False
        for key, run, entries in _points(results, task):
            entries = [e for _, e in entries]
            ys = [_headline(e['tasks'][task], 'pretrained') for e in entries]
            metric = entries[0]['tasks'][task]['metric']
            used |= {e['architecture'] for e in entries}
            label = f"{run['label']} ({run['objective']})"
            for ax, x in ((ax_steps, 'step'), (ax_flops, 'flops')):
                if any(e[x] is None for e in entries):
                    continue
                ax.errorbar([e[x] for e in entries], [metric_value(y['mean']) for y in ys],
                            yerr=[metric_value(y['std']) for y in ys], marker='o', capsize=3, color=run_color[key],
                            label=label)
                flops_drawn |= x == 'flops'
        for arch in archs:
            rnd = _headline(results['architectures'][arch]['random'].get(task), 'random')
            if arch not in used or not rnd or not math.isfinite(metric_value(rnd['mean'])):
                continue
            c = results['architectures'][arch]['config']
            label = 'random init' + (f" (hidden {c.get('hidden_size')} x {c.get('num_hidden_layers')} layers)"
                                     if len(used) > 1 else '')
            shade = 'grey' if len(used) == 1 else colors[(archs.index(arch) + len(run_color)) % len(colors)]
            for ax in (ax_steps, ax_flops) if flops_drawn else (ax_steps,):
                ax.axhspan(rnd['mean'] - rnd['std'], rnd['mean'] + rnd['std'], color=shade, alpha=0.2)
                ax.axhline(rnd['mean'], color=shade, linestyle='--', label=label)
        ax_steps.set_xlabel('pre-training steps')
        ax_flops.set_xlabel('pre-training FLOPs')
        ax_steps.set_ylabel(f'{task}: dev {metric or "metric"}')
        if not flops_drawn:
            ax_flops.text(0.5, 0.5, 'no run records its FLOPs per step', transform=ax_flops.transAxes,
                          ha='center', va='center', color='grey')
        for ax in (ax_steps, ax_flops):
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize='small')
    fig.suptitle('fine-tuning after pre-training: dev metric, mean ± std over seeds')
    try:
        return atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=100, format='png'))
    finally:
        plt.close(fig)
