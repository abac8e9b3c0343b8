"""Task files (SQuAD-style ones too) and hub datasets -> the internal format; one-line errors for
bad task files (and exit code 2 from the CLI); task metrics against scikit-learn / scipy; the
shipped demo task."""
import json
import re
from pathlib import Path

import datasets
import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import f1_score, matthews_corrcoef as sk_mcc

from finetune.__main__ import main
from finetune.data import QAExamples, load_task, read_squad, task_from_hub
from finetune.metrics import f1_binary, matthews_corrcoef, pearson, spearman, summarize, task_metrics
from finetune.toy_task import make_topic_task

REPO = Path(__file__).resolve().parent.parent


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding='utf-8')
    return path


def test_tsv_csv_and_jsonl_give_the_same_task(tmp_path):
    tsv = load_task(write(tmp_path / 'train.tsv', 'label\ttext_a\npos\t"good" film\nneg\tbad\n'),
                    write(tmp_path / 'dev.tsv', 'label\ttext_a\nneg\tdull\n'), 'classification')
    csv = load_task(write(tmp_path / 'train.csv', '\ufefflabel,text_a\npos,"""good"" film"\nneg,bad\n'),  # a BOM
                    write(tmp_path / 'dev.csv', 'label,text_a\nneg,dull\n'), 'classification')
    rows = [{'text_a': '"good" film', 'label': 'pos'}, {'text_a': 'bad', 'label': 'neg'}]
    jsonl = load_task(write(tmp_path / 'train.jsonl', '\n'.join(json.dumps(r) for r in rows) + '\n'),
                      write(tmp_path / 'dev.jsonl', json.dumps({'text_a': 'dull', 'label': 'neg'}) + '\n'),
                      'classification')
    for task in (tsv, csv, jsonl):
        assert task.train.texts_a == ['"good" film', 'bad']  # TSV quotes are text, as in GLUE's files
        assert task.label_names == ['neg', 'pos'] and task.train.labels == [1, 0] and task.dev.labels == [0]
        assert task.train.texts_b is None and task.name == tmp_path.name


def test_integer_labels_sort_numerically_and_pairs_read_text_b(tmp_path):
    train = write(tmp_path / 'train.tsv', 's1\ts2\ty\na\tb\t10\nc\td\t2\ne\tf\t0\n')
    dev = write(tmp_path / 'dev.tsv', 's1\ts2\ty\ng\th\t2\n')
    task = load_task(train, dev, 'classification', 's1', 's2', 'y', name='nli')
    assert task.label_names == ['0', '2', '10'] and task.train.labels == [2, 1, 0] and task.n_outputs == 3
    assert task.train.texts_b == ['b', 'd', 'f'] and task.name == 'nli'


def test_regression_labels_are_floats(tmp_path):
    task = load_task(write(tmp_path / 'train.tsv', 'text_a\tlabel\na\t0.5\nb\t4\n'),
                     write(tmp_path / 'dev.tsv', 'text_a\tlabel\nc\t-1e-2\n'), 'regression')
    assert task.train.labels == [0.5, 4.0] and task.dev.labels == [-0.01] and task.n_outputs == 1


GOOD_TRAIN = 'text_a\tlabel\nsunny\tweather\nsoup\tfood\n'


@pytest.mark.parametrize('train, dev, task_type, message', [
    (None, GOOD_TRAIN, 'classification', 'train.tsv does not exist'),
    (GOOD_TRAIN, '', 'classification', 'dev.tsv is empty'),
    (GOOD_TRAIN, 'text_a\tlabel\n', 'classification', 'dev.tsv holds no examples'),
    (GOOD_TRAIN, 'sentence\tlabel\nrain\tweather\n', 'classification',
     r"dev.tsv has no column 'text_a' \(columns: sentence, label\); set --text_a"),
    (GOOD_TRAIN, 'text_a\tlabel\nrain\tweather\ntea\tdrink\n', 'classification',
     r"dev.tsv line 3: label 'drink' is not among the training labels \(food, weather\)"),
    (GOOD_TRAIN, 'text_a\tlabel\nrain\tweather\tx\n', 'classification', 'dev.tsv line 2: 3 fields'),
    ('text_a\tlabel\nsunny\t0.5\nsoup\tlots\n', 'text_a\tlabel\nrain\t1\n', 'regression',
     "train.tsv line 3: regression label 'lots' is not a finite number"),
    ('text_a\tlabel\nsunny\tweather\nsoup\tweather\n', GOOD_TRAIN, 'classification',
     '1 distinct label'),
    (GOOD_TRAIN, GOOD_TRAIN, 'ranking', "unknown task type 'ranking'"),
])
def test_bad_task_files_fail_with_one_clear_line(tmp_path, capsys, train, dev, task_type, message):
    if train is not None:
        write(tmp_path / 'train.tsv', train)
    write(tmp_path / 'dev.tsv', dev)
    with pytest.raises(ValueError, match=message):
        load_task(tmp_path / 'train.tsv', tmp_path / 'dev.tsv', task_type)
    if task_type in ('classification', 'regression'):
        # the CLI: exit status 2 and one line, before any model is loaded
        code = main(['--model', str(tmp_path / 'no_model'), '--train', str(tmp_path / 'train.tsv'),
                     '--dev', str(tmp_path / 'dev.tsv'), '--task_type', task_type])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith('error: ') and len(err.strip().splitlines()) == 1
        assert re.search(message, err) and 'Traceback' not in err


def test_bad_jsonl_and_file_types(tmp_path):
    write(tmp_path / 'dev.jsonl', '{"text_a": "x", "label": "a"}\n')
    with pytest.raises(ValueError, match='train.jsonl:2: not valid JSON'):
        load_task(write(tmp_path / 'train.jsonl', '{"text_a": "x", "label": "a"}\n{oops\n'),
                  tmp_path / 'dev.jsonl', 'classification')
    with pytest.raises(ValueError, match=r'train.jsonl line 2: text_a is 3, not a text'):
        load_task(write(tmp_path / 'train.jsonl', '{"text_a": "x", "label": "a"}\n{"text_a": 3, "label": "b"}\n'),
                  tmp_path / 'dev.jsonl', 'classification')
    with pytest.raises(ValueError, match=r"unknown file type '.txt'"):
        load_task(write(tmp_path / 'train.txt', 'x'), tmp_path / 'dev.jsonl', 'classification')


def test_cli_needs_one_task_source(tmp_path, capsys):
    assert main(['--model', str(tmp_path), '--train', 'a.tsv', '--glue', 'sst2']) == 2
    assert 'give one task' in capsys.readouterr().err
    write(tmp_path / 'train.tsv', GOOD_TRAIN), write(tmp_path / 'dev.tsv', GOOD_TRAIN)
    assert main(['--model', str(tmp_path), '--train', str(tmp_path / 'train.tsv'), '--dev', str(tmp_path / 'dev.tsv')]) == 2
    assert 'need --task_type' in capsys.readouterr().err
    assert main(['--model', str(tmp_path / 'nope'), '--train', str(tmp_path / 'train.tsv'),
                 '--dev', str(tmp_path / 'dev.tsv'), '--task_type', 'classification']) == 2
    err = capsys.readouterr().err
    assert 'model directory' in err and 'does not exist' in err


def glue_like_split(sentences, labels):
    features = datasets.Features({'sentence1': datasets.Value('string'), 'sentence2': datasets.Value('string'),
                                  'label': datasets.ClassLabel(names=['not_equivalent', 'equivalent']),
                                  'idx': datasets.Value('int32')})
    return datasets.Dataset.from_dict({'sentence1': [a for a, _ in sentences], 'sentence2': [b for _, b in sentences],
                                       'label': labels, 'idx': list(range(len(labels)))}, features=features)


def test_hub_dataset_maps_to_the_file_format():
    train = glue_like_split([('a', 'b'), ('c', 'd'), ('e', 'f')], [1, 0, 1])
    dev = glue_like_split([('g', 'h')], [0])
    task = task_from_hub(train, dev, 'classification', 'sentence1', 'sentence2', name='mrpc', metric='f1')
    assert task.label_names == ['not_equivalent', 'equivalent']  # ClassLabel ids and names kept
    assert task.train.labels == [1, 0, 1] and task.dev.labels == [0]
    assert task.train.texts_a == ['a', 'c', 'e'] and task.train.texts_b == ['b', 'd', 'f']
    assert task.name == 'mrpc' and task.metric == 'f1'
    # an unlabelled (-1) row, as in GLUE's test splits
    with pytest.raises(ValueError, match="mrpc dev split row 0: label '-1' is not among the training labels"):
        task_from_hub(train, glue_like_split([('g', 'h')], [-1]), 'classification', 'sentence1', 'sentence2', name='mrpc')


def test_hub_regression_and_plain_label_columns():
    sts = datasets.Dataset.from_dict({'sentence1': ['a', 'b'], 'sentence2': ['c', 'd'], 'label': [4.2, 0.0]})
    task = task_from_hub(sts, sts, 'regression', 'sentence1', 'sentence2', name='stsb')
    assert task.train.labels == [4.2, 0.0] and task.label_names is None
    plain = datasets.Dataset.from_dict({'sentence': ['x', 'y', 'z'], 'label': ['neg', 'pos', 'neg']})
    task = task_from_hub(plain, plain, 'classification', 'sentence', name='marc')
    assert task.label_names == ['neg', 'pos'] and task.train.labels == [0, 1, 0]
    with pytest.raises(ValueError, match="marc train split has no column 'review'"):
        task_from_hub(plain, plain, 'classification', 'review', name='marc')


def test_metrics_match_sklearn_and_scipy():
    rng = np.random.default_rng(0)
    labels, preds = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    preds[:120] = labels[:120]  # better than chance
    assert f1_binary(preds, labels) == pytest.approx(f1_score(labels, preds))
    assert matthews_corrcoef(preds, labels) == pytest.approx(sk_mcc(labels, preds))
    labels3, preds3 = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    assert matthews_corrcoef(preds3, labels3) == pytest.approx(sk_mcc(labels3, preds3))
    assert matthews_corrcoef(np.zeros(5, int), np.array([0, 1, 0, 1, 1])) == 0.0  # constant prediction
    x = rng.normal(size=100).round(1)  # ties
    y = x + rng.normal(size=100)
    assert pearson(x, y) == pytest.approx(pearsonr(x, y)[0])
    assert spearman(x, y) == pytest.approx(spearmanr(x, y)[0])
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [0.3, 0.1]])
    assert task_metrics('classification', logits, np.array([0, 1, 1])) == pytest.approx(
        {'accuracy': 2 / 3, 'f1': 2 / 3, 'mcc': 0.5})
    s = summarize([0.5, 0.7, 0.6])
    assert (s['mean'], s['std'], s['best']) == pytest.approx((0.6, 0.1, 0.7)) and s['runs'] == [0.5, 0.7, 0.6]
    assert summarize([0.8])['std'] == 0.0


def test_shipped_demo_task_is_the_generated_one():
    from finetune.data import read_table
    train, dev = make_topic_task()  # the defaults wrote data/tasks/weather_food
    for name, rows in (('train', train), ('dev', dev)):
        header, got, _ = read_table(REPO / 'data' / 'tasks' / 'weather_food' / f'{name}.tsv')
        assert header == ['text_a', 'label'] and [(r['text_a'], r['label']) for r in got] == rows
    assert {label for _, label in train} == {'weather', 'food'}
    assert not {s for s, _ in train} & {s for s, _ in dev}  # no dev sentence seen in training


def test_per_class_subsample_is_seeded_and_keeps_the_order():
    from finetune.data import Examples, per_class_subsample
    labels = [0] * 10 + [1] * 3 + [2] * 6
    ex = Examples([f't{i}' for i in range(len(labels))], [f'b{i}' for i in range(len(labels))], labels)
    sub = per_class_subsample(ex, 4)
    assert [sub.labels.count(c) for c in (0, 1, 2)] == [4, 3, 4]  # a class with fewer keeps all
    idx = [int(t[1:]) for t in sub.texts_a]
    assert idx == sorted(idx) and sub.texts_b == [f'b{i}' for i in idx] and sub.labels == [labels[i] for i in idx]
    assert per_class_subsample(ex, 4) == sub and per_class_subsample(ex, 4, seed=1) != sub
    assert per_class_subsample(ex, 100) == ex


def test_qa_files_refuse_what_the_head_cannot_do(tmp_path):
    bad = tmp_path / 'train.jsonl'
    bad.write_text('{}\n')
    with pytest.raises(ValueError, match=r"extractive QA reads SQuAD-style .json files, not '.jsonl'"):
        read_squad(bad)
    lines = tmp_path / 'lines.json'
    lines.write_text('{"sentence": "a"}\n{"sentence": "b"}\n')
    with pytest.raises(ValueError, match=r'lines.json line 2: not valid JSON .*one JSON object'):
        read_squad(lines)
    jsonl_like = tmp_path / 'one.json'
    jsonl_like.write_text('{"sentence": "a"}\n')
    with pytest.raises(ValueError, match=r'no list "data" at the top'):
        read_squad(jsonl_like)
    assert isinstance(read_squad(REPO / 'data' / 'tasks' / 'squad_fixture' / 'dev-v1.1.json'), QAExamples)
