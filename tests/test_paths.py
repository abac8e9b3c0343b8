"""The foundations: one rule for relative paths, a config module free of torch and
transformers (import loops and chains: tests/test_architecture.py)."""
import subprocess
import sys
from pathlib import Path

from _utils.paths import REPO_ROOT, SHIPPED, is_shipped, repo_path


def test_relative_paths_prefer_the_working_directory_then_shipped_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'mine.txt').write_text('x')
    assert repo_path('mine.txt') == Path('mine.txt')  # exists here: taken from here
    assert repo_path('data/sample/en.txt') == REPO_ROOT / 'data' / 'sample' / 'en.txt'  # shipped
    assert repo_path('./data/tasks/gimp_section') == REPO_ROOT / 'data' / 'tasks' / 'gimp_section'
    # what a run writes lands here, even where the clone has a directory of that name
    assert repo_path('checkpoints/new_run') == Path('checkpoints/new_run')
    assert repo_path('data') == Path('data') and repo_path('data/preprocess') == Path('data/preprocess')
    assert repo_path('data/corpus/wikipedia') == Path('data/corpus/wikipedia')
    (tmp_path / 'data' / 'sample').mkdir(parents=True)
    assert repo_path('data/sample') == Path('data/sample')  # the working directory's own copy wins
    assert repo_path(tmp_path / 'x') == tmp_path / 'x' and repo_path('~/x') == Path.home() / 'x'


def test_shipped_covers_every_named_corpus_and_default_tokenizer_and_is_tracked():
    from pretrain.config import DEFAULTS
    from pretrain.prepare.corpus import NAMED_DATAS
    for path in [f for files in NAMED_DATAS.values() for f in files] + [DEFAULTS['tokenizer']]:
        assert is_shipped(path) and (REPO_ROOT / path).exists(), path
    tracked = subprocess.run(['git', 'ls-files', *SHIPPED], capture_output=True, text=True, cwd=REPO_ROOT)
    if tracked.returncode == 0:  # a git checkout (an unpacked archive has no index to ask)
        assert {Path(f).parts[:2] for f in tracked.stdout.split()} == {Path(s).parts for s in SHIPPED}


def test_the_config_module_pulls_in_neither_torch_nor_transformers():
    out = subprocess.run([sys.executable, '-c', "import sys, pretrain.config; "
                          "print(sorted(m for m in ('torch', 'transformers', 'fastai') if m in sys.modules))"],
                         capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    assert out.stdout.strip() == '[]'
