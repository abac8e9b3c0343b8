import os

# Each of pytest-xdist's workers (`-n 2` in pytest.ini: one a core) runs torch on one thread: two
# workers with a thread per core each would wait on each other's threads. Set before torch loads.
if os.environ.get('PYTEST_XDIST_WORKER'):
    os.environ['OMP_NUM_THREADS'] = '1'

import pytest

from pretrain.config import get_config
from pretrain.prepare.tokenizer import load_tokenizer


@pytest.fixture(scope='session')
def tokenizer():
    """The shipped sample tokenizer (data/sample/tokenizer)."""
    return load_tokenizer('data/sample/tokenizer')


@pytest.fixture
def tiny_config(tmp_path):
    """A `tiny` config writing caches and checkpoints under a temporary directory."""
    return get_config('tiny', datas=['sample'], steps=12, bs=8, num_workers=0, num_proc=1, log_every=4,
                      data_dir=str(tmp_path / 'data'), checkpoint_dir=str(tmp_path / 'checkpoints' / 'pretrain'),
                      device='cpu')


@pytest.fixture(scope='session')
def finetune_model_dir(tmp_path_factory):
    """One tiny stand-in discriminator (fresh `tiny` weights, the sample tokenizer), shared by
    every fine-tuning test."""
    from finetune.toy_task import write_standin_model
    return write_standin_model(tmp_path_factory.mktemp('finetune_model') / 'discriminator')


def run_notebook(name: str, parameters: str):
    """Execute a notebook of the repository top to bottom, with `parameters` run right after its
    cell tagged "parameters"; returns the executed notebook and the text all cells printed."""
    from pathlib import Path

    import nbformat
    from nbclient import NotebookClient
    repo = Path(__file__).resolve().parent.parent
    nb = nbformat.read(repo / name, as_version=4)
    params = next(i for i, cell in enumerate(nb.cells) if 'parameters' in cell.metadata.get('tags', []))
    nb.cells.insert(params + 1, nbformat.v4.new_code_cell(parameters))
    NotebookClient(nb, timeout=300, kernel_name='python3', resources={'metadata': {'path': str(repo)}}).execute()
    return nb, ''.join(o.get('text', '') for cell in nb.cells if cell.cell_type == 'code' for o in cell.outputs)


@pytest.fixture(scope='session')
def tiny_run(tmp_path_factory):
    """A finished 4-step `tiny` run, shared by the tests that read runs: checkpoints
    `{run_name}_50.0%.pth` (step 2) and `_100.0%.pth` (step 4), the training log (a row every
    2 steps), the held-out log (8 examples, every 2 steps) and `{run_name}_export/`, all in
    `c.checkpoint_dir`. Returns the run's config."""
    tmp = tmp_path_factory.mktemp('tiny_run')
    c = get_config('tiny', steps=4, bs=8, num_workers=0, num_proc=1, device='cpu', save_points=[0.5, 1.0],
                   log_every=2, valid_size=8, eval_every=2, plot=False,
                   data_dir=str(tmp / 'data'), checkpoint_dir=str(tmp / 'ckpt'))
    from pretrain.train import pretrain
    pretrain(c)
    return c


@pytest.fixture(scope='session')
def tiny_mlm_run(tmp_path_factory):
    """`tiny_run`'s twin with the MLM baseline objective (`objective='mlm'`): checkpoints at
    steps 2 and 4, training and held-out logs, `{run_name}_export/mlm`. Returns its config."""
    tmp = tmp_path_factory.mktemp('tiny_mlm_run')
    c = get_config('tiny', objective='mlm', base_run_name='mlm', steps=4, bs=8, num_workers=0, num_proc=1,
                   device='cpu', save_points=[0.5, 1.0], log_every=2, valid_size=8, eval_every=2, plot=False,
                   data_dir=str(tmp / 'data'), checkpoint_dir=str(tmp / 'ckpt'))
    from pretrain.train import pretrain
    pretrain(c)
    return c


def help_sections(text: str) -> dict[str, list[str]]:
    """argparse's --help text as {section heading: its options, each on one line, single-spaced}."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line and not line.startswith(' ') and line.endswith(':'):
            current = sections.setdefault(line[:-1], [])
        elif current is not None and line.startswith('  -'):
            current.append(' '.join(line.split()))
        elif current and line.startswith('   '):
            current[-1] += ' ' + ' '.join(line.split())
    return sections
