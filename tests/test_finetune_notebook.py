"""Finetune.ipynb runs top to bottom with comparison mode (its stand-in model, results and a
copy of the demo task in a temporary directory) and prints the results table."""
import json
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from finetune.toy_task import write_topic_task

REPO = Path(__file__).resolve().parent.parent


def test_finetune_notebook_runs_top_to_bottom(tmp_path):
    nb = nbformat.read(REPO / 'Finetune.ipynb', as_version=4)
    params = next(i for i, cell in enumerate(nb.cells) if 'parameters' in cell.metadata.get('tags', []))
    task_dir = write_topic_task(tmp_path / 'weather_food')
    nb.cells.insert(params + 1, nbformat.v4.new_code_cell(
        f"MODEL_DIR = {str(tmp_path / 'model')!r}; TASK_DIR = {str(task_dir)!r}\n"
        f"RESULTS = {str(tmp_path / 'results.json')!r}"))
    NotebookClient(nb, timeout=300, kernel_name='python3', resources={'metadata': {'path': str(REPO)}}).execute()
    outputs = ''.join(o.get('text', '') for cell in nb.cells if cell.cell_type == 'code' for o in cell.outputs)
    assert 'wrote a stand-in model' in outputs
    assert 'weather_food     pretrained accuracy' in outputs and 'weather_food     random     accuracy' in outputs
    results = json.loads((tmp_path / 'results.json').read_text())['tasks']['weather_food']
    assert len(results['pretrained']['accuracy']['runs']) == len(results['random']['accuracy']['runs']) == 3
    assert results['pretrained']['accuracy']['mean'] > 0.8
