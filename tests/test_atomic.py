"""_utils/atomic.py: files and directories appear whole or not at all, under temporary names of each
writer's own, and only dead writers' leftovers are removed."""
import subprocess
import sys

import pytest

from _utils.atomic import atomic_directory, atomic_write, remove_stale_temps, temp_sibling


def test_temporary_names_are_per_writer_and_only_dead_writers_leftovers_go(tmp_path):
    import os
    base = tmp_path / 'examples.arrow'
    mine = temp_sibling(base, 'tmp')
    assert mine.parent == tmp_path and mine.name.startswith('examples.arrow.') and mine.name.endswith(f'-{os.getpid()}.tmp')
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()  # a pid no process has now
    host = mine.name[len('examples.arrow.'):-len(f'-{os.getpid()}.tmp')]
    killed = tmp_path / f'examples.arrow.{host}-{dead.pid}.tmp'
    elsewhere = tmp_path / f'examples.arrow.otherhost-{dead.pid}.tmp'  # maybe alive on its host
    legacy = tmp_path / 'examples.arrow.tmp'  # the name earlier versions used
    unrelated = tmp_path / 'examples.arrow2.tmp'
    for f in (mine, killed, elsewhere, legacy, unrelated):
        f.write_text('x')
    (tmp_path / f'.examples.{host}-{dead.pid}.partial').mkdir()  # a killed builder's work directory
    remove_stale_temps(base, 'tmp')
    remove_stale_temps(tmp_path / '.examples', 'partial')
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, elsewhere.name, unrelated.name])


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path):
    path = atomic_write(tmp_path / 'sub' / 'r.json', lambda tmp: tmp.write_text('old'))
    assert path.read_text() == 'old'

    def half(tmp):
        tmp.write_text('half of the new')
        raise OSError(28, 'No space left on device')
    with pytest.raises(OSError, match='No space left'):
        atomic_write(path, half)
    assert path.read_text() == 'old' and sorted(p.name for p in path.parent.iterdir()) == ['r.json']


def test_a_directory_replaces_the_old_one_only_when_complete(tmp_path):
    out = tmp_path / 'export'
    with atomic_directory(out) as tmp:
        tmp.mkdir()
        (tmp / 'a').write_text('1')
    with pytest.raises(RuntimeError):
        with atomic_directory(out) as tmp:
            tmp.mkdir()
            (tmp / 'b').write_text('2')
            raise RuntimeError('interrupted')
    assert sorted(p.name for p in out.iterdir()) == ['a'] and sorted(p.name for p in tmp_path.iterdir()) == ['export']
    with atomic_directory(out) as tmp:
        tmp.mkdir()
        (tmp / 'c').write_text('3')
    assert sorted(p.name for p in out.iterdir()) == ['c'] and sorted(p.name for p in tmp_path.iterdir()) == ['export']
