"""Pretrain.ipynb runs top to bottom (tiny size, a few steps, caches and checkpoints in a
temporary directory)."""
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parent.parent


def test_pretrain_notebook_runs_top_to_bottom(tmp_path):
    nb = nbformat.read(REPO / 'Pretrain.ipynb', as_version=4)
    params = next(i for i, cell in enumerate(nb.cells) if 'parameters' in cell.metadata.get('tags', []))
    nb.cells.insert(params + 1, nbformat.v4.new_code_cell(
        f"c.steps = 16; c.bs = 16; c.num_workers = 0; c.log_every = 4\n"
        f"c.data_dir = {str(tmp_path / 'data')!r}; c.checkpoint_dir = {str(tmp_path / 'ckpt' / 'pretrain')!r}"))
    NotebookClient(nb, timeout=300, kernel_name='python3', resources={'metadata': {'path': str(REPO)}}).execute()
    outputs = ''.join(o.get('text', '') for cell in nb.cells if cell.cell_type == 'code' for o in cell.outputs)
    assert 'vanilla_11081_100.0%.pth' in outputs
    assert (tmp_path / 'ckpt' / 'pretrain' / 'vanilla_11081.csv').exists()
