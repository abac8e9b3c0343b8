"""`python -m pretrain demo`: pre-training, held-out metrics and fine-tuning against random init
in one command, on the shipped corpus and task."""
import json

import pytest

from pretrain.__main__ import main
from demo.demo import DEMO_TASK, demo_config


def small_task(tmp_path, n_train=48, n_dev=24):
    """The first rows of the shipped demo task; dev keeps only labels that train has."""
    from _utils.paths import repo_path
    d = tmp_path / 'task'
    d.mkdir()
    train = repo_path(DEMO_TASK + '/train.tsv').read_text(encoding='utf-8').splitlines()
    dev = repo_path(DEMO_TASK + '/dev.tsv').read_text(encoding='utf-8').splitlines()
    labels = {line.rsplit('\t', 1)[1] for line in train[1:n_train + 1]}
    (d / 'train.tsv').write_text('\n'.join(train[:n_train + 1]) + '\n', encoding='utf-8')
    dev_rows = [line for line in dev[1:] if line.rsplit('\t', 1)[1] in labels][:n_dev]
    (d / 'dev.tsv').write_text('\n'.join([dev[0], *dev_rows]) + '\n', encoding='utf-8')
    return d


def test_the_recipe_learns(tmp_path):
    """150 tiny steps on the shipped LibreOffice help: the discriminator ranks replaced tokens far
    above chance on held-out examples and the generator beats chance (1/8000) at masked positions.
    Measured: AUC 0.92, generator accuracy 0.048. Broken on purpose while writing this test: no
    discriminator loss (weights 1, 0) gave AUC 0.70; a learning rate of 1e-9 gave 0.48 and accuracy 0."""
    from pretrain.config import get_config
    from pretrain.train import pretrain
    from pretrain.run.log_cb import read_log
    from pretrain.run.run_dir import RunDir
    c = get_config('tiny', datas=['docs_ja_libreoffice'], tokenizer='data/docs_ja/tokenizer', steps=150,
                   warmup_steps=15, valid_size=200, eval_every=150, num_workers=0, num_proc=1, device='cpu',
                   export=False, plot=False, save_points=[], data_dir=str(tmp_path / 'data'),
                   checkpoint_dir=str(tmp_path / 'ckpt'))
    assert c.lr == 5e-4 and c.adam_bias_correction  # the tiny recipe as shipped
    pretrain(c)
    final = read_log(RunDir.of_train_csv(tmp_path / 'ckpt' / f'{c.run_name}.csv').valid_csv)[-1]
    assert final['step'] == 150
    assert final['disc_auc'] > 0.85, final
    assert final['gen_acc'] > 0.02, final


def test_demo_command_end_to_end(tmp_path, capsys):
    task = small_task(tmp_path)
    (tmp_path / 'ckpt').mkdir()
    earlier = [tmp_path / 'ckpt' / name for name in ('demo_tiny_11081.csv', 'demo_tiny_11081_demo.json',
                                                       'demo_tiny_11081_step6.pth')]
    for f in earlier:  # an earlier demo's files: the demo is meant to be run again, and replaces them
        f.write_text('earlier demo')
    code = main(['demo', '--size', 'tiny', '--datas', 'docs_ja_kicad', '--steps', '6', '--bs', '8', '--valid_size', '16',
                 '--num_workers', '0', '--num_proc', '1', '--device', 'cpu', '--plot', 'false',
                 '--data_dir', str(tmp_path / 'data'), '--checkpoint_dir', str(tmp_path / 'ckpt'),
                 '--task', str(task), '--seeds', '1', '--epochs', '1', '--quiet'])
    out = capsys.readouterr().out
    assert code == 0
    assert "overwrite: deleted run demo_tiny_11081's earlier files" in out
    assert not earlier[2].exists() and earlier[0].read_text() != 'earlier demo'
    assert 'discriminator ROC-AUC' in out and 'pre-trained' in out and 'random init' in out and 'gain' in out
    result = json.loads((tmp_path / 'ckpt' / 'demo_tiny_11081_demo.json').read_text())
    assert result['steps'] == 6 and result['task'] == 'task' and result['n_train'] == 48
    assert 0 <= result['held_out']['disc_auc'] <= 1 and 0 < result['held_out']['replaced_rate'] < 0.15
    for init in ('pretrained', 'random'):
        assert len(result[init]['runs']) == 1 and 0 <= result[init]['mean'] <= 1


def test_demo_defaults_are_the_shipped_corpus_and_tokenizer():
    c = demo_config('tiny')
    assert c.datas == ['docs_ja'] and c.tokenizer == 'data/docs_ja/tokenizer' and c.valid_size
    assert c.overwrite and not demo_config('tiny', resume='latest').overwrite  # a rerun replaces its own run
    assert (c.run_name, demo_config('mini').run_name) == ('demo_tiny_11081', 'demo_mini_11081')
    assert demo_config('tiny', datas=['sample'], valid_size=10).datas == ['sample']


@pytest.mark.parametrize('args, message', [
    (['--task', '/no/such/task'], "error: task directory '/no/such/task' must hold train.tsv and dev.tsv"),
    (['--valid_size', '0'], 'error: valid_size must be a positive count or a fraction'),
    (['--seeds', '0'], 'error: seeds and epochs must be at least 1'),
])
def test_bad_demo_inputs_fail_before_training(args, message, capsys, tmp_path):
    code = main(['demo', '--size', 'tiny', '--device', 'cpu', '--checkpoint_dir', str(tmp_path / 'ckpt'), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith(message) and '\n' not in err
    assert not (tmp_path / 'ckpt').exists()  # nothing trained


def test_a_demo_told_not_to_overwrite_keeps_the_earlier_demo(tmp_path, capsys):
    (tmp_path / 'ckpt').mkdir()
    (tmp_path / 'ckpt' / 'demo_tiny_11081.csv').write_text('earlier demo')
    code = main(['demo', '--size', 'tiny', '--device', 'cpu', '--overwrite', 'false', '--data_dir', str(tmp_path / 'data'),
                 '--checkpoint_dir', str(tmp_path / 'ckpt')])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: run demo_tiny_11081 already has files") and '\n' not in err
    assert (tmp_path / 'ckpt' / 'demo_tiny_11081.csv').read_text() == 'earlier demo'
