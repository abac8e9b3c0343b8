"""JGLUE and GLUE from the files of their releases (the shipped fixtures are in those formats):
every task loads with its fields, labels and recipe facts; bad files fail with one line naming
the file, the line (or question) and the fix; `python -m finetune --jglue_dir ... --task all`
runs every task type end to end and writes the JSON and the Markdown table."""
import json
import re
import shutil
from pathlib import Path

import pytest

from finetune.__main__ import main
from finetune.benchmarks import jglue_files, load_benchmark, load_glue_dir, load_jglue_dir
from finetune.data import load_task
from finetune.fixtures import write_fixtures

REPO = Path(__file__).resolve().parent.parent
JGLUE = REPO / 'data' / 'tasks' / 'jglue_fixture'
GLUE = REPO / 'data' / 'tasks' / 'glue_fixture'


def test_shipped_fixtures_are_the_generated_ones(tmp_path):
    write_fixtures(tmp_path)
    for name in ('jglue_fixture', 'glue_fixture', 'squad_fixture'):
        made = sorted(p.relative_to(tmp_path / name) for p in (tmp_path / name).rglob('*') if p.is_file())
        shipped = sorted(p.relative_to(REPO / 'data' / 'tasks' / name)
                         for p in (REPO / 'data' / 'tasks' / name).rglob('*') if p.is_file())
        assert made == shipped
        for rel in made:
            assert (tmp_path / name / rel).read_bytes() == (REPO / 'data' / 'tasks' / name / rel).read_bytes(), rel


def test_jglue_tasks_load_with_their_fields_labels_and_facts():
    marc, jsts, jnli, jsquad, jcqa = (load_jglue_dir(JGLUE, t) for t in
                                      ('MARC-ja', 'JSTS', 'JNLI', 'JSQuAD', 'JCommonsenseQA'))
    assert marc.task_type == 'classification' and marc.label_names == ['positive', 'negative']
    assert marc.train.texts_b is None and marc.train.texts_a[0].startswith('この')
    assert jsts.task_type == 'regression' and jsts.label_range == (0.0, 5.0) and jsts.symmetric
    assert jsts.metric == 'pearson' and jsts.max_length == 128
    assert jnli.label_names == ['entailment', 'contradiction', 'neutral'] and not jnli.symmetric
    assert jsquad.task_type == 'extractive_qa' and jsquad.f1_unit == 'char' and jsquad.max_length == 384
    assert all(c.startswith(t) for c, t in zip(jsquad.train.contexts, ['日本茶 [SEP] ']))
    assert all(len(a) == 1 for a in jsquad.train.answers) and max(len(a) for a in jsquad.dev.answers) > 1
    assert jcqa.task_type == 'multiple_choice' and {len(c) for c in jcqa.train.choices} == {5}
    assert jcqa.train.choices[0][jcqa.train.labels[0]] == '箸' and jcqa.max_length == 64
    for t in (marc, jsts, jnli, jcqa):
        assert 30 <= len(t.train) <= 60 and len(t.dev) >= 12


def test_jglue_folders_are_found_as_a_user_has_them(tmp_path):
    """The newest folder with both files; MARC-ja as JGLUE's script writes it (train-v1.0.json in
    marc_ja-v1.1/) next to the repository's empty marc_ja-v1.2/; the repository root or datasets/."""
    train, dev = jglue_files(JGLUE, 'MARC-ja')
    assert (train.parent.name, train.name, dev.name) == ('marc_ja-v1.1', 'train-v1.0.json', 'valid-v1.0.json')
    assert jglue_files(JGLUE / 'datasets', 'JSTS')[0].name == 'train-v1.3.json'
    shutil.copytree(JGLUE, tmp_path / 'JGLUE')
    newer = tmp_path / 'JGLUE' / 'datasets' / 'jsts-v1.4'
    newer.mkdir()
    for split in ('train', 'valid'):
        shutil.copy(JGLUE / 'datasets' / 'jsts-v1.3' / f'{split}-v1.3.json', newer / f'{split}-v1.4.json')
    assert jglue_files(tmp_path / 'JGLUE', 'JSTS')[0] == newer / 'train-v1.4.json'


def test_task_all_runs_what_is_there_and_names_what_is_not(tmp_path, capsys):
    assert [t.name for t in load_benchmark('jglue', JGLUE, 'all')] == ['MARC-ja', 'JSTS', 'JNLI', 'JSQuAD',
                                                                        'JCommonsenseQA']
    shutil.copytree(JGLUE, tmp_path / 'JGLUE')
    shutil.rmtree(tmp_path / 'JGLUE' / 'datasets' / 'marc_ja-v1.1')  # only the empty marc_ja-v1.2/ is left
    assert [t.name for t in load_benchmark('jglue', tmp_path / 'JGLUE', 'all')][0] == 'JSTS'
    assert 'no files for MARC-ja' in capsys.readouterr().err
    assert [t.name for t in load_benchmark('glue', GLUE, 'all')] == ['cola', 'sst2', 'mrpc', 'stsb', 'rte']
    assert [t.name for t in load_benchmark('jglue', JGLUE, 'marc_ja')] == ['MARC-ja']  # spelling-free names
    assert [t.name for t in load_benchmark('glue', GLUE, 'STS-B')] == ['stsb']


def test_glue_tasks_read_googles_columns():
    cola, sst, mrpc, sts, rte = (load_glue_dir(GLUE, t) for t in ('cola', 'sst2', 'mrpc', 'stsb', 'rte'))
    assert cola.metric == 'mcc' and cola.train.texts_a[1].endswith(' .') and len(cola.train) == 32  # no header
    assert sst.label_names == ['0', '1'] and sst.train.texts_b is None
    assert mrpc.symmetric and mrpc.train.texts_b is not None and mrpc.metric == 'f1'
    assert sts.label_range == (0.0, 5.0) and sts.epochs == 10 and max(sts.train.labels) > 4
    assert rte.label_names == ['entailment', 'not_entailment'] and rte.epochs == 10


def copy_jglue(tmp_path) -> Path:
    d = tmp_path / 'JGLUE'
    shutil.copytree(JGLUE, d)
    return d / 'datasets'


def edit_line(path: Path, n: int, edit) -> None:
    lines = path.read_text(encoding='utf-8').splitlines()
    lines[n - 1] = json.dumps(edit(json.loads(lines[n - 1])), ensure_ascii=False)
    path.write_text('\n'.join(lines) + '\n', encoding='utf-8')


def rename_field(path: Path, old: str, new: str) -> None:
    rows = [json.loads(line) for line in path.read_text(encoding='utf-8').splitlines()]
    rows = [{(new if k == old else k): v for k, v in r.items()} for r in rows]
    path.write_text(''.join(json.dumps(r, ensure_ascii=False) + '\n' for r in rows), encoding='utf-8')


def break_squad(path: Path, edit) -> None:
    doc = json.loads(path.read_text(encoding='utf-8'))
    edit(doc['data'][0]['paragraphs'][0]['qas'][1])
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding='utf-8')


BAD_FILES = [
    ('JNLI', lambda d: edit_line(d / 'jnli-v1.3' / 'train-v1.3.json', 5, lambda r: {**r, 'label': 'maybe'}),
     r"jnli-v1.3/train-v1.3.json line 5: label 'maybe' is not among the task's labels "
     r"\(entailment, contradiction, neutral\); fix the label"),
    ('JSTS', lambda d: edit_line(d / 'jsts-v1.3' / 'valid-v1.3.json', 2, lambda r: {**r, 'label': 6.5}),
     r"jsts-v1.3/valid-v1.3.json line 2: label 6.5 is outside the task's scale 0 to 5; fix the label"),
    ('JSTS', lambda d: edit_line(d / 'jsts-v1.3' / 'train-v1.3.json', 3,
                                 lambda r: {k: v for k, v in r.items() if k != 'sentence2'}),
     r"jsts-v1.3/train-v1.3.json line 3: sentence2 is missing; every example needs it"),
    ('MARC-ja', lambda d: edit_line(d / 'marc_ja-v1.1' / 'train-v1.0.json', 1,
                                    lambda r: {'text': r['sentence'], 'label': r['label']}),
     r"marc_ja-v1.1/train-v1.0.json line 1: sentence is missing; every example needs it"),
    ('MARC-ja', lambda d: rename_field(d / 'marc_ja-v1.1' / 'valid-v1.0.json', 'sentence', 'text'),
     r"marc_ja-v1.1/valid-v1.0.json has no column 'sentence' \(columns: text, label, review_id\); JGLUE's MARC-ja "
     r"lines have the fields sentence and label"),
    ('JCommonsenseQA', lambda d: edit_line(d / 'jcommonsenseqa-v1.3' / 'train-v1.3.json', 4,
                                           lambda r: {**r, 'label': 7}),
     r"jcommonsenseqa-v1.3/train-v1.3.json line 4: label 7 is not an option index 0 to 4"),
    ('JSQuAD', lambda d: break_squad(d / 'jsquad-v1.3' / 'train-v1.3.json',
                                     lambda q: q['answers'][0].update(answer_start=q['answers'][0]['answer_start'] + 2)),
     r"jsquad-v1.3/train-v1.3.json: question a1000p0q1 \(data\[0\].paragraphs\[0\].qas\[1\]\): answer '煎茶' is not "
     r"at answer_start \d+ of its context .*; it occurs at \d+: fix answer_start"),
    ('JSQuAD', lambda d: break_squad(d / 'jsquad-v1.3' / 'train-v1.3.json', lambda q: q.update(answers=[])),
     r"question a1000p0q1 \(data\[0\].paragraphs\[0\].qas\[1\]\) has no answers; give at least one"),
    ('JSQuAD', lambda d: break_squad(d / 'jsquad-v1.3' / 'train-v1.3.json',
                                     lambda q: q['answers'][0].update(text='紅茶')),
     r"answer '紅茶' is not at answer_start .*the text does not occur in the context: fix the answer or the context"),
    ('JSQuAD', lambda d: break_squad(d / 'jsquad-v1.3' / 'train-v1.3.json', lambda q: q.update(is_impossible=True)),
     r"is unanswerable \(is_impossible true, SQuAD 2.0\)"),
]


@pytest.mark.parametrize('task, damage, message', BAD_FILES)
def test_bad_jglue_files_fail_with_one_clear_line(tmp_path, capsys, task, damage, message):
    damage(copy_jglue(tmp_path))
    with pytest.raises(ValueError, match=message):
        load_jglue_dir(tmp_path / 'JGLUE', task)
    code = main(['--model', str(tmp_path / 'no_model'), '--jglue_dir', str(tmp_path / 'JGLUE'), '--task', task])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith('error: ') and len(err.strip().splitlines()) == 1
    assert re.search(message, err) and 'Traceback' not in err


def test_bad_glue_file_and_directory_errors(tmp_path, capsys):
    shutil.copytree(GLUE, tmp_path / 'glue')
    (tmp_path / 'glue' / 'RTE' / 'dev.tsv').write_text('index\tsentence1\tsentence2\tlabel\n0\tonly two\n')
    with pytest.raises(ValueError, match=r"RTE/dev.tsv line 2: 2 tab-separated field\(s\); GLUE's RTE rows have at "
                                         r"least 4"):
        load_glue_dir(tmp_path / 'glue', 'rte')
    (tmp_path / 'glue' / 'SST-2' / 'train.tsv').write_text('sentence\tlabel\ngood .\t2\n')
    with pytest.raises(ValueError, match=r"SST-2/train.tsv line 2: label '2' is not among the task's labels \(0, 1\)"):
        load_glue_dir(tmp_path / 'glue', 'sst2')
    for argv, message in (
            (['--jglue_dir', str(tmp_path / 'none'), '--task', 'JSTS'], 'JGLUE directory .* does not exist'),
            (['--jglue_dir', str(JGLUE), '--task', 'JCoLA'], r"unknown JGLUE task 'JCoLA'; --task takes one of MARC-ja"),
            (['--jglue_dir', str(JGLUE)], r'--jglue_dir needs --task'),
            (['--task', 'rte', '--train', 'x.tsv', '--dev', 'y.tsv'], r'--task picks a task of --jglue_dir or --glue_dir'),
            (['--glue_dir', str(tmp_path), '--task', 'rte'], r'GLUE file .*RTE/train.tsv does not exist'),
            (['--jglue_dir', str(JGLUE), '--task', 'all', '--metric', 'f1'], r'--metric sets the headline metric of one'),
            (['--jglue_dir', str(JGLUE), '--task', 'JSTS', '--double_unordered', 'maybe'],
             r"argument --double_unordered: expected true or false, got 'maybe'"),
            (['--jglue_dir', str(JGLUE), '--task', 'JSTS', '--weight_decay', '-0.1'], r'weight_decay must be in'),
            (['--jglue_dir', str(JGLUE), '--task', 'JSTS', '--doc_stride', '0'], r'doc_stride must be a positive'),
            (['--jglue_dir', str(JGLUE), '--task', 'JSTS', '--qa_f1', 'char'], r'--qa_f1 applies to extractive QA'),
    ):
        code = main(['--model', str(tmp_path / 'no_model'), *argv]) if '--double_unordered' not in argv else None
        if code is None:  # argparse's own errors exit
            with pytest.raises(SystemExit) as e:
                main(['--model', str(tmp_path / 'no_model'), *argv])
            code = e.value.code
        err = capsys.readouterr().err
        assert code == 2 and err.startswith('error: ') and len(err.strip().splitlines()) == 1, (argv, err)
        assert re.search(message, err), (message, err)


def test_jglue_all_end_to_end_from_the_command_line(finetune_model_dir, tmp_path, capsys):
    """Every JGLUE task type (classification, regression, multiple choice, extractive QA) trains and
    is scored from the release's files; one JSON and one Markdown table for all of them."""
    out = tmp_path / 'jglue.json'
    code = main(['--model', str(finetune_model_dir), '--jglue_dir', str(JGLUE), '--task', 'all', '--seeds', '1',
                 '--epochs', '1', '--lr', '1e-3', '--max_length', '64', '--doc_stride', '16', '--out', str(out),
                 '--quiet'])
    printed = capsys.readouterr().out
    assert code == 0
    r = json.loads(out.read_text())['tasks']
    assert list(r) == ['MARC-ja', 'JSTS', 'JNLI', 'JSQuAD', 'JCommonsenseQA']
    assert {n: sorted(v['pretrained']) for n, v in r.items()} == {
        'MARC-ja': ['accuracy', 'f1', 'mcc'], 'JSTS': ['pearson', 'spearman'], 'JNLI': ['accuracy', 'mcc'],
        'JSQuAD': ['exact_match', 'f1'], 'JCommonsenseQA': ['accuracy']}
    assert r['JSQuAD']['f1_unit'] == 'char' and r['JSQuAD']['dev_rows'] > r['JSQuAD']['n_dev']  # several windows
    assert r['JSTS']['train_rows'] == 2 * r['JSTS']['n_train']
    for v in r.values():
        for m in v['pretrained'].values():
            assert m['mean'] is None or -1 <= m['mean'] <= 1
    table = out.with_suffix('.md').read_text(encoding='utf-8').splitlines()
    assert table[0].startswith('| task | type | metric | pre-trained mean ± std | best |')
    assert [line.split(' | ')[0].strip('| ') for line in table[2:]] == [
        'MARC-ja', 'JSTS', 'JSTS', 'JNLI', 'JSQuAD', 'JSQuAD', 'JCommonsenseQA']
    assert 'JSQuAD           pretrained exact_match' in printed and f'table: {out.with_suffix(".md")}' in printed


def test_glue_dir_and_squad_files_from_the_command_line_with_compare_random(finetune_model_dir, tmp_path):
    out = tmp_path / 'rte.json'
    assert main(['--model', str(finetune_model_dir), '--glue_dir', str(GLUE), '--task', 'rte', '--seeds', '1',
                 '--epochs', '1', '--max_length', '48', '--compare_random', '--out', str(out), '--quiet']) == 0
    r = json.loads(out.read_text())['tasks']['rte']
    assert r['epochs'] == 1 and len(r['random']['accuracy']['runs']) == 1
    assert '| gain (points) |' in out.with_suffix('.md').read_text(encoding='utf-8')
    squad = REPO / 'data' / 'tasks' / 'squad_fixture'
    out = tmp_path / 'squad.json'
    assert main(['--model', str(finetune_model_dir), '--train', str(squad / 'train-v1.1.json'),
                 '--dev', str(squad / 'dev-v1.1.json'), '--task_type', 'extractive_qa', '--seeds', '1', '--epochs', '1',
                 '--max_length', '48', '--compare_random', '--qa_f1', 'char', '--out', str(out), '--quiet']) == 0
    r = json.loads(out.read_text())['tasks']['squad_fixture']  # local SQuAD files: word F1 unless --qa_f1
    assert r['f1_unit'] == 'char' and set(r['random']) == {'exact_match', 'f1'}
    assert load_task(squad / 'train-v1.1.json', squad / 'dev-v1.1.json', 'extractive_qa').f1_unit == 'word'


def test_multiple_choice_from_local_files_with_compare_random(finetune_model_dir, tmp_path):
    d = JGLUE / 'datasets' / 'jcommonsenseqa-v1.3'
    out = tmp_path / 'mc.json'
    assert main(['--model', str(finetune_model_dir), '--train', str(d / 'train-v1.3.json'),
                 '--dev', str(d / 'valid-v1.3.json'), '--task_type', 'multiple_choice', '--name', 'mc', '--seeds', '1',
                 '--epochs', '1', '--max_length', '32', '--compare_random', '--out', str(out), '--quiet']) == 0
    r = json.loads(out.read_text())['tasks']['mc']
    assert r['task_type'] == 'multiple_choice' and set(r['random']) == {'accuracy'} and r['n_dev'] == 16
