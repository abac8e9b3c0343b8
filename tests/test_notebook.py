"""Pretrain.ipynb runs top to bottom (tiny size, a few steps, caches and checkpoints in a
temporary directory)."""
from conftest import run_notebook


def test_pretrain_notebook_runs_top_to_bottom(tmp_path):
    _, outputs = run_notebook('Pretrain.ipynb', (
        f"c.steps = 16; c.bs = 16; c.num_workers = 0; c.log_every = 4\n"
        f"c.data_dir = {str(tmp_path / 'data')!r}; c.checkpoint_dir = {str(tmp_path / 'ckpt' / 'pretrain')!r}"))
    assert 'vanilla_11081_100.0%.pth' in outputs
    assert (tmp_path / 'ckpt' / 'pretrain' / 'vanilla_11081.csv').exists()
