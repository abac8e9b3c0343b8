"""Finetune.ipynb runs top to bottom with comparison mode (its stand-in model, results and a
copy of the demo task in a temporary directory), prints the results table, shows the Markdown
table written beside the JSON and lists the JGLUE fixture's tasks."""
import json

from conftest import run_notebook
from finetune.toy_task import write_topic_task


def test_finetune_notebook_runs_top_to_bottom(tmp_path):
    task_dir = write_topic_task(tmp_path / 'weather_food')
    nb, outputs = run_notebook('Finetune.ipynb', f"MODEL_DIR = {str(tmp_path / 'model')!r}; TASK_DIR = {str(task_dir)!r}\n"
                                                f"RESULTS = {str(tmp_path / 'results.json')!r}")
    assert 'wrote a stand-in model' in outputs
    assert 'weather_food     pretrained accuracy' in outputs and 'weather_food     random     accuracy' in outputs
    results = json.loads((tmp_path / 'results.json').read_text())['tasks']['weather_food']
    assert len(results['pretrained']['accuracy']['runs']) == len(results['random']['accuracy']['runs']) == 3
    assert results['pretrained']['accuracy']['mean'] > 0.8
    table = (tmp_path / 'results.md').read_text(encoding='utf-8')
    assert '| weather_food | classification | accuracy |' in table and '| gain (points) |' in table
    shown = [o['data']['text/markdown'] for cell in nb.cells if cell.cell_type == 'code' for o in cell.outputs
             if 'text/markdown' in o.get('data', {})]
    assert shown == [table.strip()]
    for name, kind in (('MARC-ja', 'classification'), ('JSTS', 'regression'), ('JSQuAD', 'extractive_qa'),
                       ('JCommonsenseQA', 'multiple_choice')):
        assert f'{name:15s} {kind:16s}' in outputs
