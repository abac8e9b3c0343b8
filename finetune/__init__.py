"""Fine-tune an exported discriminator (or any local ELECTRA / BERT model directory) with
ELECTRA's recipe, over several seeds, optionally against the same architecture from a random
initialisation: sentence and sentence-pair classification and regression, multiple choice and
extractive QA, from local files (GLUE's and JGLUE's releases read as they are downloaded), or
GLUE / JGLUE from the hub.

    from finetune import FinetuneSettings, finetune, load_jglue_dir, load_task, results_table
    task = load_task('data/tasks/weather_food/train.tsv', 'data/tasks/weather_food/dev.tsv', 'classification')
    results = finetune('OUT_DIR/discriminator', [task], FinetuneSettings(seeds=[0, 1, 2]), compare_random=True)
    print(results_table(results))
    jglue = [load_jglue_dir('JGLUE', t) for t in ('JSTS', 'JNLI', 'JSQuAD')]
"""
import _utils  # noqa: F401  (first: it silences a dependency's import-time warning)
from .benchmarks import load_benchmark, load_glue_dir, load_jglue_dir
from .data import Examples, QAExamples, Task, load_glue, load_hub_task, load_jglue, load_task, task_from_hub
from .model import (MultipleChoiceScorer, SentenceClassifier, SpanExtractor, build_model, layer_groups,
                    layer_lr_scales, load_encoder)
from .curve import finetune_curve, plot_curve
from .train import FinetuneSettings, Finetuner, finetune, results_markdown, results_table, write_results

__all__ = ['Examples', 'QAExamples', 'Task', 'load_task', 'task_from_hub', 'load_hub_task', 'load_glue', 'load_jglue',
           'load_benchmark', 'load_glue_dir', 'load_jglue_dir',
           'SentenceClassifier', 'MultipleChoiceScorer', 'SpanExtractor', 'build_model', 'layer_groups',
           'layer_lr_scales', 'load_encoder',
           'FinetuneSettings', 'Finetuner', 'finetune', 'results_markdown', 'results_table', 'write_results',
           'finetune_curve', 'plot_curve']
