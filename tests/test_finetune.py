"""The fine-tuning harness on CPU with a tiny model: it learns small tasks (single sentence,
pair, regression) well above chance, the head is one Linear on [CLS], layer-wise learning
rates, results JSON and table, the CLI."""
import json
import math
import random

import pytest
import torch
from torch import nn

from finetune.__main__ import main
from finetune.data import encode, load_task
from finetune.model import layer_groups, layer_lr_scales, load_encoder
from finetune.toy_task import make_topic_task, topic_sentences, write_topic_task, write_tsv
from finetune.train import FinetuneSettings, Finetuner, LayerwiseSchedule, finetune, results_table
from pretrain.scheduler import lr_at

FAST = dict(epochs=6, lr=1e-3, bs=32, max_length=32)


@pytest.fixture
def model_dir(finetune_model_dir):
    return finetune_model_dir  # the tiny stand-in shared by the fine-tuning tests (conftest.py)


@pytest.fixture(scope='module')
def topic_task(tmp_path_factory):
    d = write_topic_task(tmp_path_factory.mktemp('tasks') / 'topics', n_train=160, n_dev=80, seed=1)
    return load_task(d / 'train.tsv', d / 'dev.tsv', 'classification')


def test_learns_the_topic_task_and_reports_both_inits(model_dir, topic_task, tmp_path):
    out = tmp_path / 'results.json'
    results = finetune(model_dir, [topic_task], FinetuneSettings(seeds=[0, 1, 2], **FAST), compare_random=True,
                       out=out, verbose=False)
    saved = json.loads(out.read_text())
    r = saved['tasks']['topics']
    assert r['metric'] == 'accuracy' and r['labels'] == ['food', 'weather'] and r['seeds'] == [0, 1, 2]
    for init in ('pretrained', 'random'):
        assert set(r[init]) == {'accuracy', 'f1', 'mcc'}
        acc = r[init]['accuracy']
        assert set(acc) == {'mean', 'std', 'best', 'runs'} and len(acc['runs']) == 3
        assert acc['mean'] == pytest.approx(sum(acc['runs']) / 3) and acc['best'] == max(acc['runs'])
        assert acc['mean'] > 0.8, (init, acc)  # chance is 0.5
    assert saved['settings']['layer_decay'] == 0.8 and saved['settings']['weight_decay'] == 0.01
    table = results_table(results).splitlines()
    assert table[0].split() == ['task', 'init', 'metric', 'mean', 'std', 'best', 'seeds']
    assert [line.split()[:3] for line in table[1:]] == [['topics', init, m] for init in ('pretrained', 'random')
                                                        for m in ('accuracy', 'f1', 'mcc')]


def test_pair_task_uses_the_second_segment(model_dir, tmp_path):
    # the label is the topic of text_b; text_a is a random sentence: only text_b carries the answer
    rng = random.Random(0)
    pool = topic_sentences()
    rows = [(rng.choice(pool)[0], b, topic) for b, topic in rng.sample(pool, 240)]
    write_tsv(tmp_path / 'train.tsv', ['first', 'second', 'topic'], rows[:160])
    write_tsv(tmp_path / 'dev.tsv', ['first', 'second', 'topic'], rows[160:])
    task = load_task(tmp_path / 'train.tsv', tmp_path / 'dev.tsv', 'classification', 'first', 'second', 'topic')
    # attending from [CLS] across the pair takes a tiny random model more steps than one sentence
    settings = FinetuneSettings(seeds=[0], **{**FAST, 'epochs': 10, 'max_length': 48})
    results = finetune(model_dir, [task], settings, verbose=False)
    assert results['tasks'][task.name]['pretrained']['accuracy']['mean'] > 0.75


def test_regression_task(model_dir, tmp_path):
    rng = random.Random(0)
    train, dev = make_topic_task(160, 80, seed=2)
    score = lambda topic: (1.0 if topic == 'weather' else 0.0) + rng.uniform(-0.2, 0.2)
    write_tsv(tmp_path / 'train.tsv', ['text_a', 'label'], [(s, f'{score(t):.3f}') for s, t in train])
    write_tsv(tmp_path / 'dev.tsv', ['text_a', 'label'], [(s, f'{score(t):.3f}') for s, t in dev])
    task = load_task(tmp_path / 'train.tsv', tmp_path / 'dev.tsv', 'regression')
    assert task.n_outputs == 1 and task.label_names is None
    settings = FinetuneSettings(seeds=[0], **{**FAST, 'epochs': 10, 'lr': 2e-3})
    r = finetune(model_dir, [task], settings, verbose=False)['tasks'][task.name]
    assert r['metric'] == 'spearman' and set(r['pretrained']) == {'spearman', 'pearson'}
    assert r['label_range'] == pytest.approx([min(task.train.labels), max(task.train.labels)])
    assert r['pretrained']['pearson']['mean'] > 0.7


def test_pair_encoding_truncates_the_longer_segment(tokenizer):
    from finetune.data import Examples, truncate_pair
    assert truncate_pair([1, 2, 3, 4, 5], [6, 7], 5) == ([1, 2, 3], [6, 7])
    assert truncate_pair([1, 2, 3], [4, 5, 6], 4) == ([1, 2], [4, 5])  # a tie drops from b first
    ex = Examples(['rain rain rain rain rain rain'], ['soup'], [0])
    soup = tokenizer('soup', add_special_tokens=False)['input_ids']
    assert len(soup) == 3
    (ids, types, label), = encode(tokenizer, ex, max_length=10)  # 7 tokens for 6 + 3: a loses 2
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    assert len(ids) == 10 and ids[0] == cls and ids[5] == sep and ids[-1] == sep
    assert ids[6:9] == soup  # the short segment is kept whole
    assert types == [0] * 6 + [1] * 4 and label == 0


def test_head_is_one_linear_on_cls(model_dir, topic_task):
    runner = Finetuner(model_dir, FinetuneSettings(seeds=[0], **FAST), verbose=False)
    model = runner.build_model(topic_task, 'pretrained').eval()
    assert [name for name, _ in model.named_children()] == ['encoder', 'dropout', 'head']
    assert isinstance(model.head, nn.Linear) and (model.head.in_features, model.head.out_features) == (32, 2)
    assert model.dropout.p == 0.1
    ids = torch.tensor([[2, 100, 200, 3, 0], [2, 300, 3, 0, 0]])
    types = torch.zeros_like(ids)
    hidden = model.encoder(ids, attention_mask=ids != 0, token_type_ids=types).last_hidden_state
    assert torch.allclose(model(ids, types), model.head(hidden[:, 0]))


def test_pretrained_weights_are_loaded_and_random_init_differs(model_dir):
    from transformers import ElectraForPreTraining
    saved = ElectraForPreTraining.from_pretrained(str(model_dir)).electra.state_dict()
    loaded = load_encoder(model_dir).state_dict()
    assert loaded.keys() == saved.keys() and all(torch.equal(loaded[k], saved[k]) for k in saved)
    fresh = load_encoder(model_dir, random_init=True).state_dict()
    assert not torch.equal(fresh['encoder.layer.0.attention.self.query.weight'],
                           saved['encoder.layer.0.attention.self.query.weight'])


def test_layerwise_learning_rates(model_dir, topic_task):
    assert layer_lr_scales(2, 0.8) == pytest.approx([0.8 ** 4, 0.8 ** 3, 0.8 ** 2, 1.0])
    assert layer_lr_scales(12, 0.8)[0] == pytest.approx(0.8 ** 14) and layer_lr_scales(12, 0.8)[-2] == pytest.approx(0.64)
    runner = Finetuner(model_dir, FinetuneSettings(seeds=[0], epochs=1, lr=1e-3, max_length=32), verbose=False)
    encoded = {s: encode(runner.tokenizer, getattr(topic_task, s), 32) for s in ('train', 'dev')}
    learn = runner.learner(topic_task, encoded, 'pretrained', seed=0)
    model = learn.model
    groups = layer_groups(model)
    assert sum(len(g) for g in groups) == len(list(model.parameters()))
    assert len({id(p) for g in groups for p in g}) == len(list(model.parameters()))  # each exactly once
    holds = lambda group, p: any(q is p for q in group)
    assert holds(groups[0], model.encoder.embeddings.word_embeddings.weight)
    assert holds(groups[2], model.encoder.encoder.layer[1].output.dense.weight)
    assert len(groups[-1]) == 2 and holds(groups[-1], model.head.weight) and holds(groups[-1], model.head.bias)
    with learn.no_bar(), learn.no_logging():
        learn.fit(1)
    opt = learn.opt.opt
    assert not any(g['bias_correction'] for g in opt.param_groups)
    # each splitter group is a decayed (matrices) and an undecayed (LayerNorm, biases) param group
    assert [g['layer'] for g in opt.param_groups] == [0, 0, 1, 1, 2, 2, 3, 3]
    sched = next(cb for cb in learn.cbs if isinstance(cb, LayerwiseSchedule))
    steps = len(sched.lrs)
    assert steps == len(learn.dls.train) == 5
    warmup = round(0.1 * steps)
    for step, lrs in enumerate(sched.lrs):
        factor = lr_at(step, 'original_linear', 1.0, steps, warmup)
        assert lrs == pytest.approx([1e-3 * s * factor for s in layer_lr_scales(2, 0.8)])
    assert [g['lr'] for g in opt.param_groups] == pytest.approx([sched.lrs[-1][g['layer']] for g in opt.param_groups])


def test_same_seed_same_result(model_dir, topic_task):
    runner = Finetuner(model_dir, FinetuneSettings(seeds=[0], epochs=1, lr=1e-3, max_length=32), verbose=False)
    encoded = {s: encode(runner.tokenizer, getattr(topic_task, s), 32) for s in ('train', 'dev')}
    assert runner.run_once(topic_task, encoded, 'random', 3) == runner.run_once(topic_task, encoded, 'random', 3)


def test_cli_runs_and_writes_results(model_dir, tmp_path, capsys):
    d = write_topic_task(tmp_path / 'small', n_train=48, n_dev=16)
    out = tmp_path / 'r.json'
    code = main(['--model', str(model_dir), '--train', str(d / 'train.tsv'), '--dev', str(d / 'dev.tsv'),
                 '--task_type', 'classification', '--seeds', '2', '--epochs', '1', '--lr', '1e-3',
                 '--compare_random', '--out', str(out), '--quiet'])
    assert code == 0
    printed = capsys.readouterr().out
    assert 'small            pretrained accuracy' in printed and 'small            random     accuracy' in printed
    r = json.loads(out.read_text())['tasks']['small']
    assert len(r['pretrained']['accuracy']['runs']) == len(r['random']['accuracy']['runs']) == 2


def test_settings_are_checked(model_dir):
    with pytest.raises(ValueError, match='epochs must be a positive integer'):
        FinetuneSettings(epochs=0).check()
    with pytest.raises(ValueError, match=r'layer_decay must be in \(0, 1\]'):
        FinetuneSettings(layer_decay=1.5).check()
    with pytest.raises(ValueError, match='seeds is empty'):
        FinetuneSettings(seeds=[]).check()
    with pytest.raises(ValueError, match='does not exist'):
        Finetuner(model_dir.parent / 'nope')
    assert math.isclose(Finetuner(model_dir, verbose=False).settings.lr, 3e-4)  # ELECTRA-Small's, for hidden 32


class Runs(list):
    """The fine-tuning runs done, as (task name, init, seed); with `stop_after` n, the run after
    the n-th raises KeyboardInterrupt instead, as an interruption would."""
    stop_after: int | None = None


@pytest.fixture
def count_runs(monkeypatch):
    calls = Runs()
    run_once = Finetuner.run_once

    def counted(self, task, encoded, init, seed):
        if len(calls) == calls.stop_after:
            raise KeyboardInterrupt
        calls.append((task.name, init, seed))
        return run_once(self, task, encoded, init, seed)
    monkeypatch.setattr(Finetuner, 'run_once', counted)
    return calls


def two_tasks(tmp_path):
    return [load_task(d / 'train.tsv', d / 'dev.tsv', 'classification')
            for d in (write_topic_task(tmp_path / name, n_train=32, n_dev=16, seed=i) for i, name in enumerate('ab'))]


def test_an_interrupted_run_keeps_what_finished_and_continues(model_dir, tmp_path, count_runs):
    tasks, out = two_tasks(tmp_path), tmp_path / 'out' / 'r.json'
    settings = FinetuneSettings(seeds=[0, 1], epochs=1, lr=1e-3, max_length=32)
    count_runs.stop_after = 5  # task a (2 seeds x 2 inits) and task b's first run, then Ctrl-C
    with pytest.raises(KeyboardInterrupt):
        finetune(model_dir, tasks, settings, compare_random=True, out=out, verbose=False)
    saved = json.loads(out.read_text())['tasks']
    assert len(saved['a']['random']['accuracy']['runs']) == 2 and 'random' not in saved['b']
    assert len(saved['b']['pretrained']['accuracy']['runs']) == 1
    assert '| b | classification | accuracy |' in out.with_suffix('.md').read_text() and '| 1 of 2 |' in \
        out.with_suffix('.md').read_text()
    assert sorted(p.name for p in out.parent.iterdir()) == ['r.json', 'r.md']  # no temporary file left
    count_runs.stop_after = None
    count_runs.clear()
    results = finetune(model_dir, tasks, settings, compare_random=True, out=out, verbose=False)
    assert count_runs == [('b', 'pretrained', 1), ('b', 'random', 0), ('b', 'random', 1)]  # task a not redone
    assert results['tasks']['a'] == saved['a'] and json.loads(out.read_text()) == json.loads(json.dumps(results))
    count_runs.clear()
    assert finetune(model_dir, tasks, settings, compare_random=True, out=out, verbose=False) == results
    assert count_runs == []
    with pytest.raises(ValueError, match=r'other settings \(settings.epochs: 1 there, 2 here\); pick another --out'):
        finetune(model_dir, tasks, FinetuneSettings(seeds=[0, 1], epochs=2, lr=1e-3, max_length=32), out=out)
    assert count_runs == []


def test_output_is_checked_before_any_training(model_dir, tmp_path, count_runs, monkeypatch, capsys):
    d = write_topic_task(tmp_path / 'small', n_train=32, n_dev=16)
    argv = ['--model', str(model_dir), '--train', str(d / 'train.tsv'), '--dev', str(d / 'dev.tsv'),
            '--task_type', 'classification', '--seeds', '1', '--epochs', '1', '--quiet']
    (tmp_path / 'file').write_text('')
    assert main([*argv, '--out', str(tmp_path / 'file' / 'sub' / 'r.json')]) == 2
    assert capsys.readouterr().err == f"error: cannot write {tmp_path}/file/sub/r.json: {tmp_path}/file is a file, " \
                                      f"not a directory; pick another --out\n"

    def read_only(*a, **k):
        raise PermissionError(13, 'Permission denied')
    with monkeypatch.context() as mp:  # as root, a read-only directory still takes files: patch the probe
        mp.setattr('_utils.atomic.open', read_only, raising=False)
        assert main([*argv, '--out', str(tmp_path / 'ro' / 'r.json')]) == 2
    assert capsys.readouterr().err == f"error: cannot write {tmp_path}/ro/r.json (Permission denied); make " \
                                      f"{tmp_path}/ro writable or pick another --out\n"
    assert count_runs == []
    with monkeypatch.context() as mp:  # a write that fails after training (full disk): one line, no temp file
        mp.setattr('_utils.atomic.os.replace', lambda *a: (_ for _ in ()).throw(OSError(28, 'No space left on device')))
        assert main([*argv, '--out', str(tmp_path / 'full' / 'r.json')]) == 2
    assert capsys.readouterr().err.startswith(f"error: cannot write {tmp_path}/full/r.json (No space left on device); "
                                              f"make room or make {tmp_path}/full writable, then run the same command")
    assert len(count_runs) == 1 and list((tmp_path / 'full').iterdir()) == []


def test_train_per_class(model_dir, tmp_path, count_runs, capsys):
    d = write_topic_task(tmp_path / 'small', n_train=48, n_dev=16)
    out = tmp_path / 'r.json'
    assert main(['--model', str(model_dir), '--train', str(d / 'train.tsv'), '--dev', str(d / 'dev.tsv'),
                 '--task_type', 'classification', '--seeds', '1', '--epochs', '1', '--train_per_class', '5',
                 '--out', str(out), '--quiet']) == 0
    saved = json.loads(out.read_text())
    r = saved['tasks']['small']
    assert saved['settings']['train_per_class'] == 5 and r['train_per_class'] == 5
    assert r['n_train'] == r['train_rows'] == 10 and r['n_dev'] == 16  # 2 classes x 5; dev unchanged
    write_tsv(tmp_path / 'train.tsv', ['text_a', 'label'], [('rain', '0.5'), ('soup', '1.5')])
    assert main(['--model', str(model_dir), '--train', str(tmp_path / 'train.tsv'), '--dev', str(tmp_path / 'train.tsv'),
                 '--task_type', 'regression', '--name', 'reg', '--train_per_class', '5',
                 '--out', str(tmp_path / 'x.json')]) == 2
    assert capsys.readouterr().err == ("error: --train_per_class applies to classification tasks; reg is "
                                       "regression: leave --train_per_class out for it\n")
    assert len(count_runs) == 1


def test_help_groups_every_option_and_shows_its_default(capsys):
    from conftest import help_sections
    from finetune.__main__ import build_parser
    with pytest.raises(SystemExit) as exit_:
        main(['--help'])
    sections = help_sections(capsys.readouterr().out)
    assert exit_.value.code == 0 and sections.pop('options') == ['-h, --help show this help message and exit']
    assert [title.split(':')[0] for title in sections] == ['model', 'the downstream curve of pre-training runs',
                                                           'task data', 'recipe', 'run']
    entries = [e for group in sections.values() for e in group]
    flags = {s for a in build_parser()._actions for s in a.option_strings if s not in ('-h', '--help')}
    assert sorted(e.split()[0] for e in entries) == sorted(flags)
    assert all('default' in e or '(required)' in e for e in entries), [e for e in entries if 'default' not in e]
