"""_utils/cli.py: how every command reports a bad input in one line."""
from _utils.cli import error_line, first_line, run_command


def test_first_line_of_a_message_or_the_type_of_an_empty_one():
    assert first_line(ValueError('bad value\nmore detail')) == 'bad value'
    assert first_line(KeyError()) == 'KeyError'  # no IndexError inside an except block
    assert first_line(StopIteration('  ')) == 'StopIteration'


def test_any_os_error_ends_in_one_line_and_status_2(capsys):
    def fails():
        raise PermissionError(13, 'Permission denied', '/root/model')
    assert run_command(fails) == 2
    assert capsys.readouterr().err.strip() == 'error: /root/model: Permission denied'
    assert error_line(IsADirectoryError(21, 'Is a directory', 'x')) == 'error: x: Is a directory'
