"""pretrain/tools/inspect.py: `inspect_run` and `python -m pretrain inspect` on a checkpoint, an export
and its single model directories (step, config, last log rows, the generator's predictions at
masked positions, the discriminator's P(replaced) per token), and one-line errors for bad paths."""
import json
import pickle
import re
import shutil
from pathlib import Path

import pytest
import torch

from pretrain.__main__ import main
from pretrain.tools.inspect import format_report, inspect_run


@pytest.fixture(scope='session')
def run_dir(tiny_run):
    return Path(tiny_run.checkpoint_dir)


@pytest.fixture(scope='session')
def ckpt(tiny_run, run_dir):
    return run_dir / f'{tiny_run.run_name}_50.0%.pth'


def check_predictions(result, top_k=5):
    tokens = result['tokens']
    assert tokens[0] == '[CLS]' and tokens[-1] == '[SEP]'
    gen = result['generator']
    assert gen and [g['position'] for g in gen] == result['masked']
    for g in gen:
        assert g['original'] == tokens[g['position']] and 0 <= g['p_original'] <= 1
        probs = [p for _, p in g['top']]
        assert len(probs) == top_k and all(0 <= p <= 1 for p in probs) and probs == sorted(probs, reverse=True)
    disc = result['discriminator']
    assert [r['token'] for r in disc] == tokens
    assert all(0 <= r['p_replaced'] <= 1 and 0 <= r['p_replaced_after_fill'] <= 1 for r in disc)
    replaced = {r['position'] for r in disc if r['replaced']}
    assert replaced <= set(result['masked'])  # only masked positions can be replaced
    assert all(r['input'] == gen_r['filled'] for gen_r in gen for r in disc if r['position'] == gen_r['position'])


def table_probabilities(report: str) -> list[float]:
    """The P(replaced) column(s) of the report's discriminator table."""
    table = report.split('discriminator: P(replaced)')[1].splitlines()[2:]
    rows = [line.split() for line in table if re.match(r'\s+\d+\s', line)]
    assert rows
    return [float(x) for row in rows for x in row if re.fullmatch(r'\d\.\d{3}', x)]


def test_checkpoint(ckpt, tiny_run):
    result = inspect_run(ckpt)
    assert result['kind'] == 'checkpoint' and result['step'] == 2 and result['run_name'] == tiny_run.run_name
    assert result['config']['size'] == 'tiny' and result['config']['steps'] == 4
    assert result['models']['discriminator']['hidden_size'] == 32
    assert result['models']['generator']['hidden_size'] == 16
    log = result['log']
    assert log['train']['step'] == 2 and log['valid']['step'] == 2  # the rows up to the checkpoint, not step 4
    assert any('goes on to step 4' in n for n in log['notes'])
    assert result['default_text_language'] == 'ja'  # the sample tokenizer is mostly Japanese
    check_predictions(result)
    # 11 maskable tokens x mask_prob 0.15 -> 2 positions, evenly spread
    assert len(result['masked']) == max(1, round(0.15 * (len(result['tokens']) - 2)))
    report = format_report(result)
    assert 'checkpoint, step 2 of 4 (50.0%)' in report and 'generator: top-5 predictions' in report
    assert 'last log       step 2:' in report and 'held-out       step 2:' in report
    for g in result['generator']:
        assert re.search(rf"^\s+{g['position']}\s+{re.escape(g['original'])}\s", report, re.M)
    probs = table_probabilities(report)
    assert len(probs) == 2 * len(result['tokens']) and all(0 <= p <= 1 for p in probs)


def test_cli_on_a_checkpoint_with_text_and_mask(tiny_run, run_dir, capsys):
    ckpt = run_dir / f'{tiny_run.run_name}_100.0%.pth'
    assert main(['inspect', str(ckpt), '--text', 'The river carries water.', '--mask', '1', 'water',
                 '--top_k', '3']) == 0
    out = capsys.readouterr().out
    assert 'step 4 of 4 (100.0%)' in out and 'generator: top-3 predictions at 2 masked position(s)' in out
    assert re.search(r'^\s+1\s+the\s', out, re.M) and re.search(r'^\s+\d+\s+water\s+\d\.\d{3}\s', out, re.M)
    assert all(0 <= p <= 1 for p in table_probabilities(out))

    assert main(['inspect', str(ckpt), '--text', 'The river carries water.', '--mask', 'water', '--json']) == 0
    result = json.loads(capsys.readouterr().out)
    assert result['step'] == 4 and result['tokens'][result['masked'][0]] == 'water'
    check_predictions(result)


def test_fill_is_reproducible(ckpt):
    a, b = inspect_run(ckpt, seed=1), inspect_run(ckpt, seed=1)
    assert a['discriminator'] == b['discriminator']
    argmax = inspect_run(ckpt, fill='argmax', top_k=1)
    assert all(g['filled'] == g['top'][0][0] for g in argmax['generator'])


def test_export_and_its_single_models(tiny_run, run_dir, capsys):
    export = run_dir / f'{tiny_run.run_name}_export'
    assert main(['inspect', str(export), '--text', '川の水は海へ流れる。']) == 0
    out = capsys.readouterr().out
    assert 'export, no step recorded' in out and 'last log       step 4:' in out
    assert 'generator: top-5 predictions' in out and all(0 <= p <= 1 for p in table_probabilities(out))
    result = inspect_run(export, text='川の水は海へ流れる。')
    assert result['step'] is None and result['run_name'] == tiny_run.run_name
    check_predictions(result)
    # the same weights as the checkpoint they came from
    from_ckpt = inspect_run(run_dir / f'{tiny_run.run_name}_100.0%.pth', text='川の水は海へ流れる。')
    for a, b in zip(result['discriminator'], from_ckpt['discriminator']):
        assert abs(a['p_replaced'] - b['p_replaced']) < 1e-5

    disc = inspect_run(export / 'discriminator')
    assert disc['kind'] == 'discriminator' and disc['generator'] is None and list(disc['models']) == ['discriminator']
    assert all(0 <= r['p_replaced'] <= 1 and 'replaced' not in r for r in disc['discriminator'])
    report = format_report(disc)
    assert 'generator:' not in report and 'discriminator: P(replaced) per token, on the text\n' in report

    gen = inspect_run(export / 'generator', top_k=2)
    assert gen['kind'] == 'generator' and gen['discriminator'] is None
    assert all(len(g['top']) == 2 for g in gen['generator'])
    assert 'discriminator:' not in format_report(gen)


def test_a_run_directory_means_its_latest_checkpoint(run_dir):
    assert inspect_run(run_dir)['step'] == 4


def bad_inputs(tmp: Path, ckpt: Path, export: Path) -> dict[str, tuple[list[str], str]]:
    (tmp / 'notes.txt').write_text('not a checkpoint\n')
    torch.save({'weights': torch.zeros(2)}, tmp / 'other.pth')
    (tmp / 'list.pkl').write_bytes(pickle.dumps([1, 2, 3]))
    data = ckpt.read_bytes()
    (tmp / 'truncated.pth').write_bytes(data[:len(data) // 2])
    state = torch.load(ckpt, weights_only=True)
    state['model'].pop('discriminator.discriminator_predictions.dense.weight')
    torch.save(state, tmp / 'damaged.pth')
    (tmp / 'empty').mkdir()
    (tmp / 'untokenized' / 'discriminator').mkdir(parents=True)
    for f in ('config.json', 'model.safetensors'):
        shutil.copy(export / 'discriminator' / f, tmp / 'untokenized' / 'discriminator' / f)
    other_vocab = tmp / 'other_vocab'
    shutil.copytree(export / 'discriminator', other_vocab)
    tok = json.loads((other_vocab / 'tokenizer.json').read_text())
    tok['model']['vocab']['zzzz'] = tok['model']['vocab'].pop('water')
    (other_vocab / 'tokenizer.json').write_text(json.dumps(tok, ensure_ascii=False))
    return {
        'missing': ([str(tmp / 'nope.pth')], 'does not exist'),
        'text file': ([str(tmp / 'notes.txt')], 'cannot be read as a checkpoint'),
        'foreign .pth': ([str(tmp / 'other.pth')], 'is not an electra-pretrain checkpoint'),
        'pickle': ([str(tmp / 'list.pkl')], 'cannot be read as a checkpoint'),
        'truncated': ([str(tmp / 'truncated.pth')], 'cannot be read as a checkpoint'),
        'damaged': ([str(tmp / 'damaged.pth')], 'is a damaged checkpoint'),
        'no model': ([str(tmp / 'empty')], 'holds no model'),
        'export without tokenizer': ([str(tmp / 'untokenized')], 'no tokenizer for'),
        'missing tokenizer': ([str(ckpt), '--tokenizer', str(tmp / 'no_tok')], 'no tokenizer for'),
        'another vocabulary': ([str(ckpt), '--tokenizer', str(other_vocab)], 'has another vocabulary'),
        'mask not in text': ([str(ckpt), '--text', 'The sea.', '--mask', 'river'], "mask 'river' is not in the text"),
        'empty text': ([str(ckpt), '--text', ' '], 'has no tokens'),
    }


def test_bad_inputs_give_one_line_errors(tiny_run, run_dir, ckpt, tmp_path, capsys):
    cases = bad_inputs(tmp_path, ckpt, run_dir / f'{tiny_run.run_name}_export')
    for name, (args, message) in cases.items():
        assert main(['inspect'] + args) == 2, name
        captured = capsys.readouterr()
        err = captured.err.strip()
        assert err.startswith('error: ') and message in err and '\n' not in err, (name, err)
        assert not captured.out, name
    with pytest.raises(ValueError, match='does not exist'):
        inspect_run(tmp_path / 'nope.pth')


def test_an_mlm_baseline_checkpoint_and_export(tiny_mlm_run, capsys):
    run = Path(tiny_mlm_run.checkpoint_dir)
    for path in (run / f'{tiny_mlm_run.run_name}_100.0%.pth', run / f'{tiny_mlm_run.run_name}_export',
                 run / f'{tiny_mlm_run.run_name}_export' / 'mlm'):
        result = inspect_run(path)
        assert list(result['models']) == ['mlm'] and result['discriminator'] is None
        gen = result['generator']
        assert gen and [g['position'] for g in gen] == result['masked']
        assert main(['inspect', str(path)]) == 0
        report = capsys.readouterr().out
        assert 'masked LM (MLM baseline): top-5 predictions' in report and 'discriminator:' not in report
    assert 'token_cosine' in inspect_run(run)['log']['valid']
