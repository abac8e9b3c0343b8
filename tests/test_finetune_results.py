"""Results files and their shared Markdown cells (`finetune.results`); writing, continuing and
refusing results end to end is in test_finetune.py and test_finetune_curve.py."""
import math

import pytest

from _utils.digest import json_digest
from finetune.results import (atomic_write, check_same_tasks, gain, json_safe, markdown_table, mean_std,
                              seeds_done)


def test_a_failed_write_keeps_the_previous_file_and_no_temporary(tmp_path):
    path = tmp_path / 'r.json'
    path.write_text('before')

    def fail(tmp):
        tmp.write_text('half')
        raise OSError(28, 'No space left on device')
    with pytest.raises(ValueError, match=r'^cannot write .*r.json \(No space left on device\); make room'):
        atomic_write(path, fail)
    assert path.read_text() == 'before' and [p.name for p in tmp_path.iterdir()] == ['r.json']
    atomic_write(path, lambda tmp: tmp.write_text('after'))
    assert path.read_text() == 'after' and [p.name for p in tmp_path.iterdir()] == ['r.json']


def test_markdown_cells():
    a, b = {'mean': 0.75, 'std': 0.01, 'best': 0.76}, {'mean': 0.5, 'std': 0.02, 'best': 0.52}
    assert mean_std(a) == '0.7500 ± 0.0100' and mean_std(None) == '—'
    assert gain(a, b) == '+25.0' and gain(a, None) == '—'
    assert gain(a, {**b, 'mean': None}) == gain(a, {**b, 'mean': math.nan}) == '—'  # undefined, read back or not
    assert seeds_done(2, {'seeds': [0, 1, 2]}) == '2 of 3' and seeds_done(3, {'seeds': [0, 1, 2]}) == '3'
    assert markdown_table(['x', 'y'], [['1', '2']]) == '| x | y |\n|---|---|\n| 1 | 2 |'


def test_identity_values():
    assert json_safe({'a': (1.0, math.nan)}) == {'a': [1.0, None]}
    assert json_digest({'b': 1, 'a': [2]}) == json_digest({'a': [2], 'b': 1}) != json_digest({'a': [3], 'b': 1})
    check_same_tasks([{'t': {'n_train': 4, 'other': 1}}, {}], {'t': {'n_train': 4}}, 'r.json')
    with pytest.raises(ValueError, match=r"r.json holds results of another version of task t \(t.n_train: 4 there, "
                                         r"5 here\)"):
        check_same_tasks([{'t': {'n_train': 4}}], {'t': {'n_train': 5}}, 'r.json')


def test_a_full_disk_is_found_before_training(tmp_path, monkeypatch):
    import errno

    from _utils import atomic
    from finetune import results

    class FullDisk:  # the probe file is created; its byte is refused
        def __init__(self, file, mode):
            self.file = open(file, mode)

        def __enter__(self):
            return self

        def write(self, data):
            raise OSError(errno.ENOSPC, 'No space left on device')

        def __exit__(self, *exc):
            self.file.close()
    monkeypatch.setattr(atomic, 'open', FullDisk, raising=False)
    with pytest.raises(ValueError, match=r'cannot write .*out\.json \(No space left on device\); make .* writable'):
        results.check_writable(tmp_path / 'out.json')
    assert list(tmp_path.iterdir()) == []  # the probe is gone
