"""The command line turns every bad input into one line on stderr and exit status 2."""
import pytest

from pretrain.__main__ import main
from pretrain.cli import parse_value


@pytest.mark.parametrize('args, message', [
    (['--size', 'huge'], "error: unknown size 'huge'; allowed: 'tiny', 'mini', 'small', 'base', 'large'"),
    (['--size', 'tiny', '--datas', 'nope.txt'], "error: data file 'nope.txt' does not exist"),
    (['--size', 'tiny', '--tokenizer', '/no/such/dir', '--device', 'cpu'], "error: tokenizer directory '/no/such/dir' does not exist"),
    (['--size', 'tiny', '--device', 'cpu', '--resume', '/no/such.pth', '--num_workers', '0'],
     "error: checkpoint '/no/such.pth' does not exist"),
    (['--size', 'tiny', '--schedule', 'cosine'], "error: unknown schedule 'cosine'"),
    (['export', '/no/such.pth', '/tmp/x'], "error: checkpoint '/no/such.pth' does not exist"),
    (['tokenizer', '--datas', 'missing.jsonl', '--out', '/tmp/x'], "error: data file 'missing.jsonl' does not exist"),
])
def test_bad_inputs_give_one_line(args, message, capsys, tmp_path):
    args = [a.replace('/tmp/x', str(tmp_path / 'x')) for a in args]
    if args[0].startswith('--'):
        args += ['--data_dir', str(tmp_path / 'data'), '--checkpoint_dir', str(tmp_path / 'ckpt')]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(message) and '\n' not in err


def test_flag_values_parse_as_python_literals():
    assert parse_value('3') == 3 and parse_value('1e-4') == 1e-4 and parse_value('true') is True
    assert parse_value('none') is None and parse_value("{'ja': 10}") == {'ja': 10}
    assert parse_value('bf16') == 'bf16' and parse_value('data/x.txt') == 'data/x.txt'


@pytest.mark.parametrize('args, message', [
    (['--size', 'tiny', '--device', 'cdua'], "error: unknown device 'cdua'"),
    (['tokenizer', '--datas', 'sample', '--out', 'OUT', '--vocab_size', '0'], 'error: vocab_size (0) must exceed'),
])
def test_more_bad_inputs(args, message, capsys, tmp_path):
    args = [str(tmp_path / 'tok') if a == 'OUT' else a for a in args]
    if args[0].startswith('--'):
        args += ['--data_dir', str(tmp_path / 'data'), '--checkpoint_dir', str(tmp_path / 'ckpt'), '--num_workers', '0']
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(message) and '\n' not in err


def test_export_and_tokenizer_refuse_a_file_as_output_dir(tmp_path, capsys):
    f = tmp_path / 'file'
    f.write_text('x')
    assert main(['tokenizer', '--datas', 'sample', '--out', str(f)]) == 2
    assert 'is a file' in capsys.readouterr().err


def test_every_config_key_is_in_exactly_one_help_group_with_a_meaning():
    from pretrain.config import DEFAULTS, GROUP_TITLES, KEY_GROUPS, KEY_HELP
    placed = [k for keys in KEY_GROUPS.values() for k in keys]
    assert len(placed) == len(set(placed))
    assert set(placed) == set(DEFAULTS)
    assert set(KEY_HELP) == set(placed) and list(GROUP_TITLES) == list(KEY_GROUPS)


def test_help_lists_the_commands_then_every_flag_in_its_group_with_its_default(capsys):
    from conftest import help_sections
    from pretrain.config import GROUP_TITLES, KEY_GROUPS
    with pytest.raises(SystemExit) as exit_:
        main(['--help'])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and 'inspect' in out and 'tokenizer' in out
    sections = help_sections(out)
    for group, keys in KEY_GROUPS.items():
        entries = sections[GROUP_TITLES[group]]
        assert [e.split()[0] for e in entries] == [f'--{k}' for k in keys]
        assert all('(default: ' in e for e in entries)
    lr = next(e for e in sections[GROUP_TITLES['schedule']] if e.startswith('--lr '))
    assert 'by size: tiny/mini/small 0.0005, base/large 0.0002' in lr




def test_a_flag_given_as_none_is_kept_and_one_left_out_is_absent():
    from pretrain.__main__ import build_parser
    from pretrain.cli import config_from_args, config_overrides
    args = build_parser().parse_args(['train', '--seed', 'none', '--steps', '5'])
    assert config_overrides(args) == {'seed': None, 'steps': 5}  # --seed none draws a seed, as its help says
    args = build_parser().parse_args(['train', '--tokenizer', 'none'])
    with pytest.raises(ValueError, match='tokenizer must be a path'):
        config_from_args(args)
