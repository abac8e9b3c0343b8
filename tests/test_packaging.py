"""The package as a user installs it (`pip install -e .`, README): importable from any directory,
its console scripts, its pins equal to requirements.txt's, and a run started elsewhere that
reads the shipped corpus and writes under its own working directory."""
import json
import os
import re
import subprocess
import sys
import tomllib

import pytest

from _utils.paths import REPO_ROOT


def requirement_lines() -> list[str]:
    return [line.split('#')[0].strip() for line in (REPO_ROOT / 'requirements.txt').read_text().splitlines()
            if line.split('#')[0].strip()]


def test_pyproject_pins_are_requirements_txt():
    project = tomllib.loads((REPO_ROOT / 'pyproject.toml').read_text())['project']
    declared = project['dependencies'] + [d for extra in project['optional-dependencies'].values() for d in extra]
    assert sorted(declared) == sorted(requirement_lines())  # same pins, none twice
    assert all(re.fullmatch(r'[A-Za-z0-9_.-]+==[0-9][A-Za-z0-9.+]*', d) for d in declared)
    assert {e.split('=')[0] for e in project['scripts'].values()} <= {'pretrain.__main__:main', 'finetune.__main__:main',
                                                                     'pretrain.tools.bench:main'}


def test_readme_has_two_set_up_commands_that_install_the_package_and_ci_runs_the_test_one():
    commands = [line.strip() for line in (REPO_ROOT / 'README.md').read_text().splitlines()
                if line.startswith('    python3 -m venv')]
    install = 'python3 -m venv .venv && .venv/bin/pip install -q -r requirements.txt -e . && '
    assert commands == [install + '.venv/bin/python -m pretrain demo', install + '.venv/bin/python -m pytest -q']
    assert (REPO_ROOT / '.ci' / 'run').read_text().strip().splitlines()[-1] == commands[1]


def installed_distributions() -> str:
    """The distributions this interpreter's environment has installed, with their locations."""
    code = ("import importlib.metadata as m; print(sorted((d.metadata['Name'].lower(), str(d._path)) "
            "for d in m.distributions()))")
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """(prefix, prelude): this checkout installed as the README does (`pip install -e .`;
    without dependencies, which this environment has) into a temporary prefix, and the Python
    lines that make a fresh interpreter see that install."""
    prefix = tmp_path_factory.mktemp('prefix')
    before = installed_distributions()
    # --ignore-installed: pip would otherwise uninstall the environment's own install of the package
    # (the user's `pip install -e .`) before writing into the prefix
    out = subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--no-build-isolation',
                          '--ignore-installed', '--prefix', str(prefix), '-e', str(REPO_ROOT)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert installed_distributions() == before  # the environment keeps its own installs
    site_dir = next(prefix.glob('lib/python*/site-packages'))
    # the editable install's finder goes ahead of any other install of the package in this environment
    prelude = (f"import site, sys\nbefore = list(sys.meta_path)\nsite.addsitedir({str(site_dir)!r})\n"
               "sys.meta_path[:] = [f for f in sys.meta_path if f not in before] + before\n")
    return prefix, prelude


def run_elsewhere(code: str, cwd, timeout: int = 300) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter in `cwd`, with no PYTHONPATH: it sees the repository only
    through the install."""
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    out = subprocess.run([sys.executable, '-c', code], cwd=cwd, env={**env, 'OMP_NUM_THREADS': '1'},
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


# the modules the seed notebook imports, and the fine-tuning package
SEED_MODULES = ['pretrain.config', 'pretrain._utils.electra_dataprocessor', 'pretrain.get_dataloaders',
                'pretrain.masked_lm_cb', 'pretrain.models', 'pretrain.optim', 'pretrain.scheduler',
                'pretrain._utils.run_steps', '_utils.gradient_clipping', 'finetune']


def test_a_notebook_elsewhere_imports_the_package_trains_and_writes_under_its_directory(installed, tmp_path):
    """One fresh interpreter (the imports dominate its time): the seed's imports, both console
    scripts' --help, and a `tiny` run with the defaults for datas, tokenizer, data_dir and
    checkpoint_dir, as a notebook in another directory runs them."""
    prefix, prelude = installed
    scripts = {name: str(prefix / 'bin' / name) for name in ('electra-pretrain', 'electra-finetune')}
    preprocess = REPO_ROOT / 'data' / 'preprocess'
    repo_files = lambda: {p: p.stat().st_mtime_ns for p in preprocess.rglob('*')} if preprocess.exists() else {}
    before = repo_files()
    code = prelude + f"""
import contextlib, importlib, io, json, runpy
files = {{m: importlib.import_module(m).__file__ for m in {SEED_MODULES!r}}}
helps = {{}}
for name, script in {scripts!r}.items():
    sys.argv, buf = [name, '--help'], io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.suppress(SystemExit):
        runpy.run_path(script, run_name='__main__')
    helps[name] = buf.getvalue()

from pretrain.config import get_config
from pretrain.train import pretrain
c = get_config('tiny', steps=4, bs=8, num_workers=0, num_proc=1, device='cpu', base_run_name='elsewhere',
               log_every=2, plot=False)
pretrain(c)
print(json.dumps({{'files': files, 'helps': helps}}))
"""
    result = json.loads(run_elsewhere(code, tmp_path).stdout.splitlines()[-1])
    assert all(f.startswith(str(REPO_ROOT)) for f in result['files'].values()), result['files']
    assert 'schedule and optimisation:' in result['helps']['electra-pretrain']
    assert 'recipe: schedule and optimisation' in result['helps']['electra-finetune']
    run = tmp_path / 'checkpoints' / 'pretrain'
    assert (run / 'elsewhere_11081_100.0%.pth').is_file() and (run / 'elsewhere_11081.csv').is_file()
    assert (run / 'elsewhere_11081_export' / 'discriminator').is_dir()
    assert list((tmp_path / 'data' / 'preprocess').glob('sample_*_64/electra.arrow'))  # the shipped sample corpus
    assert not list((REPO_ROOT / 'checkpoints' / 'pretrain').glob('elsewhere_*')) and repo_files() == before
