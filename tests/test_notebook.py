"""Pretrain.ipynb runs top to bottom (tiny size, a few steps, caches and checkpoints in a
temporary directory)."""
from conftest import run_notebook

from pretrain.run.safe_load import load_checkpoint
from pretrain.run.export import export
from pretrain.prepare.tokenizer import load_tokenizer
from pretrain.prepare.vocab import vocab_hash


def test_pretrain_notebook_runs_top_to_bottom(tmp_path):
    nb, outputs = run_notebook('Pretrain.ipynb', (
        f"c.steps = 16; c.bs = 16; c.num_workers = 0; c.log_every = 4\n"
        f"c.data_dir = {str(tmp_path / 'data')!r}; c.checkpoint_dir = {str(tmp_path / 'ckpt' / 'pretrain')!r}"))
    assert 'vanilla_11081_100.0%.pth' in outputs
    assert (tmp_path / 'ckpt' / 'pretrain' / 'vanilla_11081.csv').exists()
    # built with the command line's builders: the checkpoint records the config and vocabulary,
    # so it exports without naming the tokenizer
    state = load_checkpoint(tmp_path / 'ckpt' / 'pretrain' / 'vanilla_11081_100.0%.pth')
    assert state['config']['run_name'] == 'vanilla_11081' and state['vocab'] == vocab_hash(load_tokenizer(state['config']['tokenizer']))
    assert (export(tmp_path / 'ckpt' / 'pretrain' / 'vanilla_11081_100.0%.pth', tmp_path / 'export') / 'discriminator').is_dir()
    # the training cell shows StepProgress's notebook bar (updated in place), no fastai epoch table
    train = next(cell for cell in nb.cells if cell.cell_type == 'code' and 'learn.fit(' in cell.source)
    bars = [o for o in train.outputs if o.output_type == 'display_data']
    assert len(bars) == 1 and bars[0].data['text/plain'].startswith('step 16/16 (100%)')
    assert '<progress value="16" max="16"' in bars[0].data['text/html']
    assert 'epoch' not in ''.join(o.get('text', '') for o in train.outputs).lower()
