"""Fine-tune an exported discriminator (or any local ELECTRA / BERT model directory) on
sentence or sentence-pair classification and regression tasks with ELECTRA's recipe, over
several seeds, optionally against the same architecture from a random initialisation.

    from finetune import FinetuneSettings, finetune, load_task, results_table
    task = load_task('data/tasks/weather_food/train.tsv', 'data/tasks/weather_food/dev.tsv', 'classification')
    results = finetune('OUT_DIR/discriminator', [task], FinetuneSettings(seeds=[0, 1, 2]), compare_random=True)
    print(results_table(results))
"""
from .data import Examples, Task, load_glue, load_hub_task, load_jglue, load_task, task_from_hub
from .model import SentenceClassifier, layer_groups, layer_lr_scales, load_encoder
from .train import FinetuneSettings, Finetuner, finetune, results_table, write_results

__all__ = ['Examples', 'Task', 'load_task', 'task_from_hub', 'load_hub_task', 'load_glue', 'load_jglue',
           'SentenceClassifier', 'layer_groups', 'layer_lr_scales', 'load_encoder',
           'FinetuneSettings', 'Finetuner', 'finetune', 'results_table', 'write_results']
