"""The downstream curve (`python -m finetune --model RUN ... --checkpoints all|LIST`) on the tiny
4-step run of conftest.py (checkpoints at steps 2 and 4) and a small slice of the weather_food
task, 1 seed, 1 epoch: the JSON's runs, steps, FLOPs, one random baseline per architecture and
the gain; the PNG; a rerun keeps everything; an interrupted curve continues; one-line errors."""
import json
import shutil
from pathlib import Path

import matplotlib.image
import pytest
import torch

from finetune import curve
from finetune.__main__ import main
from finetune.curve import curve_markdown, plot_curve, resolve_run, select_checkpoints
from finetune.toy_task import write_tsv
from finetune.train import Finetuner
from pretrain.run.safe_load import load_checkpoint
from pretrain.run.run_dir import RunDir

@pytest.fixture(scope='module')
def run_a(tiny_run):
    """The tiny run as pre-training left it (its checkpoints record flops_per_step)."""
    return RunDir(Path(tiny_run.checkpoint_dir), tiny_run.run_name)


@pytest.fixture(scope='module')
def dirs(run_a, tmp_path_factory):
    """A second run 'mlmlike' (the same checkpoints, re-saved without flops_per_step, as checkpoints
    of earlier versions are) in a directory that also holds a run 'other'; a small task slice (40
    train / 20 dev examples)."""
    tmp = tmp_path_factory.mktemp('curve')
    runs = tmp / 'runs'
    runs.mkdir()
    for p in run_a.checkpoint_files():
        state = load_checkpoint(p)
        state.pop('flops_per_step')
        torch.save(state, runs / p.name.replace(run_a.run_name, 'mlmlike'))
    shutil.copy(runs / 'mlmlike_50.0%.pth', runs / 'other_50.0%.pth')
    task = tmp / 'task'
    lines = {s: Path(f'data/tasks/weather_food/{s}.tsv').read_text(encoding='utf-8').splitlines() for s in ('train', 'dev')}
    for split, n in (('train', 40), ('dev', 20)):
        rows = [line.split('\t') for line in lines[split][1:n + 1]]
        write_tsv(task / f'{split}.tsv', ['text_a', 'label'], rows)
    return {'tmp': tmp, 'runs': runs, 'task': task}


def task_flags(dirs) -> list[str]:
    return ['--train', str(dirs['task'] / 'train.tsv'), '--dev', str(dirs['task'] / 'dev.tsv'),
            '--task_type', 'classification', '--name', 'wf', '--seeds', '1', '--epochs', '1', '--lr', '1e-3',
            '--max_length', '32', '--train_per_class', '16', '--device', 'cpu', '--quiet']


@pytest.fixture
def count_runs(monkeypatch):
    """Every fine-tuning run as (model directory name, init, seed)."""
    calls = []
    run_once = Finetuner.run_once

    def counted(self, task, encoded, init, seed):
        calls.append((self.model_dir.name, init, seed))
        return run_once(self, task, encoded, init, seed)
    monkeypatch.setattr(Finetuner, 'run_once', counted)
    return calls


@pytest.fixture(scope='module')
def curve_out(run_a, dirs):
    """Both runs, all checkpoints, run once: (out, the fine-tuning runs, stdout lines)."""
    out = dirs['tmp'] / 'out' / 'curve.json'
    with pytest.MonkeyPatch.context() as mp:
        calls = []
        run_once = Finetuner.run_once
        mp.setattr(Finetuner, 'run_once', lambda self, *a: calls.append(a[2]) or run_once(self, *a))
        code = main(['--model', str(run_a.directory), str(dirs['runs'] / 'mlmlike'), '--checkpoints', 'all',
                     '--out', str(out), *task_flags(dirs)])
    assert code == 0
    return out, calls


def test_curve_results(curve_out, run_a):
    out, calls = curve_out
    assert sorted(calls) == ['pretrained'] * 4 + ['random']  # 2 runs x 2 checkpoints; one shared architecture
    r = json.loads(out.read_text())
    assert r['kind'] == 'finetune_curve' and r['settings']['seeds'] == [0] and r['settings']['train_per_class'] == 16
    runs = {v['label']: v for v in r['runs'].values()}
    assert set(runs) == {run_a.run_name, 'mlmlike'} and {v['objective'] for v in runs.values()} == {'electra'}
    (arch_id, arch), = r['architectures'].items()
    rnd = arch['random']['wf']['random']['accuracy']
    assert len(rnd['runs']) == 1 and 0 <= rnd['mean'] <= 1 and 'pretrained' not in arch['random']['wf']
    assert arch['config']['hidden_size'] == 32 and arch['settings']['lr'] == 1e-3
    md = out.with_suffix('.md').read_text(encoding='utf-8').splitlines()
    assert len(md) == 2 + 4
    for label, run in runs.items():
        entries = sorted(run['checkpoints'].items(), key=lambda fe: fe[1]['step'])
        assert [e['step'] for _, e in entries] == [2, 4]
        for file, e in entries:
            assert e['architecture'] == arch_id and 'random' not in e['tasks']['wf']
            t = e['tasks']['wf']
            assert t['n_train'] == 32 and t['train_per_class'] == 16 and t['n_dev'] == 20  # 16 per class
            acc = t['pretrained']['accuracy']
            assert len(acc['runs']) == 1 and 0 <= acc['mean'] <= 1
            # counted again: the checkpoints re-saved without flops_per_step get the recorded count
            per_step = load_checkpoint(run_a.directory / file.replace('mlmlike', run_a.run_name))['flops_per_step']
            assert e['flops_per_step'] == per_step > 0 and e['flops'] == e['step'] * per_step
            row = next(line for line in md if f'| {file} |' in line).split(' | ')
            assert row[5:7] == [str(e['step']), f"{e['flops']:.3g}" if e['flops'] else '—']
            assert row[9] == f"{(acc['mean'] - rnd['mean']) * 100:+.1f}"


def test_curve_plot_is_a_png(curve_out):
    png = curve_out[0].with_suffix('.png')
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    h, w, channels = matplotlib.image.imread(png).shape
    assert w > 800 and h > 300 and channels in (3, 4)
    assert not list(png.parent.glob('.*'))  # no temporary file left over


def test_same_command_again_keeps_everything(curve_out, run_a, dirs, count_runs, monkeypatch, capsys):
    out, _ = curve_out
    before = out.read_text()
    monkeypatch.setattr('pretrain.run.export.export', lambda *a, **k: pytest.fail('nothing to export'))
    assert main(['--model', str(run_a.directory), str(dirs['runs'] / 'mlmlike'), '--checkpoints', 'all',
                 '--out', str(out), *task_flags(dirs)]) == 0
    assert count_runs == [] and out.read_text() == before
    flops = 4 * load_checkpoint(run_a.checkpoint('100.0%'))['flops_per_step']
    shown = capsys.readouterr().out
    assert f'mlmlike_100.0%.pth | 4 | {flops:.3g} |' in shown and f'{run_a.run_name}_100.0%.pth | 4 | {flops:.3g} |' in shown


def test_an_interrupted_curve_continues(curve_out, run_a, dirs, count_runs, monkeypatch):
    out = dirs['tmp'] / 'interrupted' / 'c.json'
    argv = ['--model', str(run_a.directory), '--checkpoints', 'step2,100%', '--out', str(out), *task_flags(dirs)]
    run_once = Finetuner.run_once

    def stop_at_random(self, task, encoded, init, seed):
        if init == 'random':
            raise KeyboardInterrupt
        return run_once(self, task, encoded, init, seed)
    with monkeypatch.context() as mp:
        mp.setattr(Finetuner, 'run_once', stop_at_random)
        assert main(argv) == 130  # Ctrl-C: one line saying the same command continues
    partial = json.loads(out.read_text())
    (entry,) = next(iter(partial['runs'].values()))['checkpoints'].values()
    assert entry['step'] == 2 and len(entry['tasks']['wf']['pretrained']['accuracy']['runs']) == 1
    assert not out.with_suffix('.png').exists()
    count_runs.clear()
    assert main(argv) == 0
    assert [init for _, init, _ in count_runs] == ['random', 'pretrained']  # step 2's baseline, then step 4
    done = json.loads(out.read_text())
    full = json.loads(curve_out[0].read_text())
    key = str(run_a.directory.resolve() / run_a.run_name)
    assert done['runs'][key]['checkpoints'] == full['runs'][key]['checkpoints']  # as if never interrupted
    assert done['architectures'] == full['architectures']


def test_one_line_errors(curve_out, run_a, dirs, finetune_model_dir, count_runs, capsys):
    runs = dirs['runs']
    bad = dirs['tmp'] / 'badvocab'
    bad.mkdir(exist_ok=True)
    state = load_checkpoint(runs / 'mlmlike_50.0%.pth')
    torch.save({**state, 'vocab': '0' * 64}, bad / 'bad_50.0%.pth')
    (dirs['tmp'] / 'empty').mkdir(exist_ok=True)
    changed = dirs['tmp'] / 'changed.json'
    r = json.loads(curve_out[0].read_text())
    for run in r['runs'].values():
        for e in run['checkpoints'].values():
            e['fingerprint'] = '0' * 16
    changed.write_text(json.dumps(r))
    a = str(run_a.directory)
    cases = [
        (['--model', str(dirs['tmp'] / 'nope'), '--checkpoints', 'all'], "no checkpoint of run 'nope'"),
        (['--model', str(dirs['tmp'] / 'empty'), '--checkpoints', 'all'], 'empty holds no checkpoint'),
        (['--model', str(runs), '--checkpoints', 'all'], 'holds several runs (mlmlike, other); name one'),
        (['--model', a, '--checkpoints', '2,7'], "--checkpoints entry '7' matches no checkpoint"),
        (['--model', str(bad), '--checkpoints', 'all'], f"another vocabulary than the one {bad / 'bad_50.0%.pth'} was"),
        (['--model', str(finetune_model_dir), '--checkpoints', 'all'], 'needs pre-training runs as --model'),
        (['--model', a, '--checkpoints', 'all', '--compare_random'], '--compare_random is part of every curve'),
        (['--model', a, str(runs / 'mlmlike')], 'several --model values need --checkpoints'),
        (['--model', a], 'holds pre-training checkpoints, not a model; add --checkpoints all'),
        (['--model', a, '--checkpoints', 'all', '--out', str(curve_out[0]), '--epochs', '2'],
         'other settings (settings.epochs: 1 there, 2 here); pick another --out, or delete'),
        (['--model', a, '--checkpoints', 'all', '--out', str(changed)], '_50.0%.pth (the file has changed since'),
    ]
    for argv, message in cases:
        assert main([*task_flags(dirs), '--out', str(dirs['tmp'] / 'x.json'), *argv]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith('error: ') and message in err[0], (argv, err)
    assert count_runs == []  # every error came before any training
    assert not (dirs['tmp'] / 'x.json').exists()


def test_runs_and_checkpoints_are_named_several_ways(run_a, dirs, monkeypatch):
    assert resolve_run(str(run_a.directory)) == run_a  # a directory of one run (its export beside it is no run)
    assert resolve_run(str(dirs['runs'] / 'other')) == RunDir(dirs['runs'], 'other')
    monkeypatch.setattr(curve, 'DEFAULT_RUNS_DIR', str(dirs['runs']))
    assert resolve_run('mlmlike') == RunDir(dirs['runs'], 'mlmlike')
    names = lambda sel: [p.name.split('_')[-1] for _, p in select_checkpoints(run_a, sel)]
    assert names('all') == names('4, 2') == names('50%,100.0%') == ['50.0%.pth', '100.0%.pth']
    assert names(f'{run_a.run_name}_100.0%.pth') == names('100.0%,4') == ['100.0%.pth']
    assert [step for step, _ in select_checkpoints(run_a, 'all')] == [2, 4]


def test_plot_and_table_with_several_tasks_architectures_and_an_undefined_metric(curve_out, tmp_path):
    r = json.loads(curve_out[0].read_text())
    (arch,) = r['architectures'].values()
    r['architectures']['other'] = {**arch, 'config': {**arch['config'], 'hidden_size': 64}}
    mlmlike = next(v for v in r['runs'].values() if v['label'] == 'mlmlike')
    for e in mlmlike['checkpoints'].values():
        e['architecture'] = 'other'
        reg = {**e['tasks']['wf'], 'metric': 'spearman',
               'pretrained': {'spearman': {'mean': None, 'std': None, 'best': None, 'runs': [None]}}}
        e['tasks']['reg'] = reg
    md = curve_markdown(r).splitlines()
    assert len(md) == 2 + 4 + 2 and md[-1].split(' | ')[7:10] == ['nan ± nan', '—', '—']
    png = plot_curve(r, tmp_path / 'c.png')
    h, w, _ = matplotlib.image.imread(png).shape
    assert h > 600 and w > 800  # a row per task


def test_a_checkpoint_without_what_a_count_needs_keeps_its_recorded_flops(run_a, tokenizer):
    from finetune.curve import counted_flops_per_step
    state = load_checkpoint(run_a.checkpoint('100.0%'))
    assert counted_flops_per_step(state, tokenizer) == state['flops_per_step']
    bare = {k: v for k, v in state.items() if k != 'model_configs'}
    assert counted_flops_per_step({**bare, 'flops_per_step': 123}, tokenizer) == 123
    assert counted_flops_per_step({**bare, 'flops_per_step': None}, tokenizer) is None
