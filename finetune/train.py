"""Fine-tune a model directory on tasks with fastai, over several seeds, optionally against
the same architecture from a random initialisation; results as a table and a JSON file (and
the same table in Markdown beside it)."""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from fastai.callback.core import Callback, CancelValidException
from fastai.data.core import DataLoaders
from fastai.learner import Learner

from _utils.gradient_clipping import GradientClipping
from _utils.rng import set_seed
from pretrain.scheduler import SCHEDULES, lr_at

from .catalog import facts_for_name
from .data import Examples, Task, TaskDataLoader, encode, per_class_subsample, text_encoder
from .metrics import (CLASSIFICATION_METRICS, MULTIPLE_CHOICE_METRICS, QA_METRICS, REGRESSION_METRICS,
                      multiple_choice_metrics, qa_metrics, summarize, task_metrics)
from .model import (build_model, default_layer_decay, default_lr, finetune_opt, layer_groups, layer_lr_scales,
                    load_config, load_encoder, load_tokenizer)
from .qa import DOC_STRIDE, MAX_ANSWER_LENGTH, MAX_QUERY_LENGTH, featurize, predict
from .results import (atomic_write_text, check_same_tasks, check_writable, finished_seeds, gain, json_safe,
                      markdown_table, mean_std, metric_text, metric_value, model_fingerprint, previous_results,
                      seeds_done)

INITS = ('pretrained', 'random')
# configure_finetuning.py: 3 epochs and 128 tokens; 2 epochs and 512 tokens for QA (10 epochs for
# "rte" and "sts": `catalog.GLUE_FACTS`)
EPOCHS, MAX_LENGTH = 3, 128
QA_EPOCHS, QA_MAX_LENGTH = 2, 512


@dataclass
class FinetuneSettings:
    """ELECTRA's fine-tuning recipe (Google's configure_finetuning.py). `lr` and `layer_decay`
    default (None) to the paper's values for the model's size: lr 3e-4 / 1e-4 / 5e-5 for hidden
    size <= 256 / <= 768 / larger, decay 0.8 (0.9 from 24 layers). `epochs` and `max_length`
    default (None) to the task's: 3 epochs (10 for RTE and STS, 2 for extractive QA) and 128
    tokens (512 for QA; JGLUE tasks: JGLUE's lengths), at most the model's positions.
    `schedule` 'original_linear' is Google's (warmup and linear decay to 0 acting together);
    'separate_linear' warms up, then decays. `weight_decay` (0.01, Google's) spares LayerNorm
    weights and biases. `double_unordered`: train symmetric pair tasks (MRPC, STS) on both text
    orders. QA: `doc_stride`, `max_query_length`, `max_answer_length` in tokens.
    `train_per_class` (classification only): train on at most that many examples per class, the
    same seeded subsample for every init and seed (`data.per_class_subsample`); dev unchanged."""
    epochs: int | None = None
    lr: float | None = None
    bs: int = 32
    max_length: int | None = None
    layer_decay: float | None = None
    warmup: float = 0.1           # fraction of the steps
    schedule: str = 'original_linear'
    dropout: float = 0.1
    weight_decay: float = 0.01
    clip: float = 1.0
    double_unordered: bool = True
    doc_stride: int = DOC_STRIDE
    max_query_length: int = MAX_QUERY_LENGTH
    max_answer_length: int = MAX_ANSWER_LENGTH
    train_per_class: int | None = None
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    device: str | None = None     # None: cuda when available, else cpu

    def check(self) -> 'FinetuneSettings':
        for name in ('epochs', 'bs', 'max_length', 'doc_stride', 'max_query_length', 'max_answer_length',
                     'train_per_class'):
            v = getattr(self, name)
            if v is None and name in ('epochs', 'max_length', 'train_per_class'):
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if self.layer_decay is not None and not 0 < self.layer_decay <= 1:
            raise ValueError(f"layer_decay must be in (0, 1], got {self.layer_decay!r}")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup must be a fraction of the steps in [0, 1), got {self.warmup!r}")
        if self.schedule not in ('original_linear', 'separate_linear'):
            raise ValueError(f"schedule must be 'original_linear' or 'separate_linear', got {self.schedule!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not (isinstance(self.weight_decay, (int, float)) and 0 <= self.weight_decay < 1):
            raise ValueError(f"weight_decay must be in [0, 1) (Google's: 0.01), got {self.weight_decay!r}")
        if not self.seeds:
            raise ValueError("seeds is empty; give at least one seed")
        if self.device:
            try:
                torch.device(self.device)
            except RuntimeError:
                raise ValueError(f"unknown device {self.device!r}; use 'cpu', 'cuda' or 'cuda:N'") from None
        if self.device and self.device.startswith('cuda') and not torch.cuda.is_available():
            raise ValueError(f"device {self.device!r} asked for but CUDA is not available here; use --device cpu")
        return self

    def resolved(self, hidden_size: int, num_layers: int) -> 'FinetuneSettings':
        """A copy with the size-dependent defaults and the device filled in."""
        d = asdict(self)
        d['lr'] = self.lr or default_lr(hidden_size)
        d['layer_decay'] = self.layer_decay or default_layer_decay(num_layers)
        d['device'] = resolved_device(self.device)
        return FinetuneSettings(**d)


def resolved_device(device: str | None) -> str:
    """`device`, else cuda when available, else cpu."""
    return device or ('cuda' if torch.cuda.is_available() else 'cpu')


def default_epochs(task: Task) -> int:
    """The task's own epochs, else Google's: those of the benchmark task it is named after (10
    for RTE and STS, `catalog.facts_for_name`), 2 for extractive QA, 3 otherwise."""
    if task.epochs:
        return task.epochs
    if task.task_type == 'extractive_qa':
        return QA_EPOCHS
    return facts_for_name(task.name).get('epochs', EPOCHS)


def task_epochs(task: Task, settings: FinetuneSettings) -> int:
    """The epochs a task trains for: the settings', else `default_epochs`."""
    return settings.epochs or default_epochs(task)


def default_max_length(task: Task) -> int:
    """The task's own length, else Google's: 512 for extractive QA, 128 otherwise."""
    return task.max_length or (QA_MAX_LENGTH if task.task_type == 'extractive_qa' else MAX_LENGTH)


def trains_both_orders(task: Task, settings: FinetuneSettings) -> bool:
    """Whether a pair task trains on both text orders (Google's `double_unordered`): a symmetric
    task (MRPC, STS) with `settings.double_unordered`."""
    return bool(task.symmetric and settings.double_unordered and task.train.texts_b is not None)


def normalized(labels: list[float], label_range: tuple[float, float]) -> list[float]:
    """Regression labels on [0, 1]: (y - min) / (max - min); with STS's 0-5, Google's y / 5."""
    lo, hi = label_range
    return [(y - lo) / (hi - lo) for y in labels]


class LayerwiseSchedule(Callback):
    """Sets every param group's learning rate before each training step: the peak `lr` times
    the scale of the group's layer (`scales`: one per splitter group; a param group's 'layer'
    names its splitter group) times the schedule's factor (warmup over `warmup` of the steps,
    linear decay to 0 at the last step). The values set, per splitter group, are kept in
    `self.lrs`."""
    order = 60

    def __init__(self, lr: float, scales: list[float], warmup: float = 0.1, schedule: str = 'original_linear'):
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {schedule!r}; allowed: {', '.join(SCHEDULES)}")
        self.lr, self.scales, self.warmup, self.schedule = lr, scales, warmup, schedule

    def before_fit(self) -> None:
        self.total_steps = max(1, self.learn.n_epoch * len(self.learn.dls.train))
        self.warmup_steps = round(self.warmup * self.total_steps)
        self.layers = [g.get('layer', i) for i, g in enumerate(self.learn.opt.opt.param_groups)]
        self.lrs: list[list[float]] = []

    def before_batch(self) -> None:
        if not self.training:
            return
        factor = lr_at(self.learn.train_iter, self.schedule, 1.0, self.total_steps, self.warmup_steps)
        lrs = [self.lr * s * factor for s in self.scales]
        self.opt.set_hyper('lr', [lrs[layer] for layer in self.layers])
        self.lrs.append(lrs)


class TrainOnly(Callback):
    """Skips fastai's pass over the dev set after each training epoch: only the final weights are
    evaluated (`get_preds` after `fit`, whose validation follows no training pass)."""

    def before_epoch(self) -> None:
        self.after_training = False

    def after_train(self) -> None:
        self.after_training = True

    def before_validate(self) -> None:
        if getattr(self, 'after_training', False):
            raise CancelValidException()


def loss_func(task_type: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Cross-entropy on (B, C) logits for classification and multiple choice (a softmax over the
    options); mean squared error on the (B, 1) scores for regression; for extractive QA the mean
    of the cross-entropies of the start and the end position over the (B, L, 2) logits."""
    if task_type in ('classification', 'multiple_choice'):
        return lambda logits, y: F.cross_entropy(logits.float(), y)
    if task_type == 'extractive_qa':
        return lambda logits, y: (F.cross_entropy(logits[..., 0].float(), y[:, 0]) +
                                  F.cross_entropy(logits[..., 1].float(), y[:, 1])) / 2
    return lambda scores, y: F.mse_loss(scores.float().squeeze(-1), y.float())


def allowed_metrics(task: Task) -> list[str]:
    """The metrics computed for the task, the default headline first."""
    if task.task_type == 'classification':
        return [m for m in CLASSIFICATION_METRICS if m != 'f1' or task.n_outputs == 2]
    return list({'regression': REGRESSION_METRICS, 'multiple_choice': MULTIPLE_CHOICE_METRICS,
                 'extractive_qa': QA_METRICS}[task.task_type])


def check_metric(task: Task) -> str:
    """The task's headline metric (default: accuracy, spearman for regression, exact_match for
    extractive QA), checked to be one computed for its type (f1 only for two classes)."""
    allowed = allowed_metrics(task)
    metric = task.metric or allowed[0]
    if metric not in allowed:
        raise ValueError(f"metric {metric!r} does not apply to task {task.name}; choose one of {', '.join(allowed)}")
    return metric


def reported_metrics(task_type: str, headline: str) -> list[str]:
    """The metrics of the results table: the headline, with its companion where the benchmarks
    report two (Pearson and Spearman, exact match and F1, F1 and accuracy)."""
    if task_type in ('regression', 'extractive_qa'):
        pair = REGRESSION_METRICS if task_type == 'regression' else QA_METRICS
        return [headline] + [m for m in pair if m != headline]
    return [headline, 'accuracy'] if headline == 'f1' else [headline]


def task_facts(task: Task, settings: FinetuneSettings) -> dict:
    """The facts of a task's result that follow from its data and the settings, whatever the
    model: type, headline and reported metrics, labels, split sizes (the training subsample's with
    `train_per_class`), seeds, epochs, and the type's own (label range, both orders, F1 unit)."""
    headline = check_metric(task)
    train = train_examples(task, settings)
    facts = {'task_type': task.task_type, 'metric': headline, 'reported': reported_metrics(task.task_type, headline),
             'labels': task.label_names, 'n_train': len(train), 'n_dev': len(task.dev), 'seeds': list(settings.seeds),
             'epochs': task_epochs(task, settings)}
    if task.task_type == 'regression':
        facts['label_range'] = list(task.label_range) if task.label_range else None
    if task.task_type == 'extractive_qa':
        facts['f1_unit'] = task.f1_unit
    else:
        facts['double_unordered'] = trains_both_orders(task, settings)
    if settings.train_per_class:
        facts['train_per_class'] = settings.train_per_class
    return facts


def train_examples(task: Task, settings: FinetuneSettings):
    """The training split, or its seeded per-class subsample with `settings.train_per_class`."""
    if not settings.train_per_class:
        return task.train
    if task.task_type != 'classification':
        raise ValueError(f"--train_per_class applies to classification tasks; {task.name} is {task.task_type}: "
                         f"leave --train_per_class out for it")
    return per_class_subsample(task.train, settings.train_per_class)


def checked_facts(tasks: list[Task], settings: FinetuneSettings) -> dict[str, dict]:
    """{task name: `task_facts`}, which checks what can fail before any training (a metric that
    does not apply, --train_per_class on another type); tasks must have distinct names."""
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ValueError(f"two tasks share a name ({', '.join(names)}); give each its own name")
    return {task.name: task_facts(task, settings) for task in tasks}


class Finetuner:
    """Fine-tunes one model directory: loads its tokenizer once, encodes each task once, and
    builds a fresh model and fastai `Learner` per (init, seed)."""

    def __init__(self, model_dir: str | Path, settings: FinetuneSettings | None = None, verbose: bool = True):
        self.model_dir = Path(model_dir)
        self.tokenizer = load_tokenizer(self.model_dir)
        self.encoder = text_encoder(self.tokenizer)
        self.settings = (settings or FinetuneSettings()).check()
        self.verbose = verbose
        config = load_config(self.model_dir)
        self.positions = config.max_position_embeddings
        if self.settings.max_length and self.settings.max_length > self.positions:
            raise ValueError(f"max_length {self.settings.max_length} exceeds the model's "
                             f"{self.positions} positions; use --max_length {self.positions} or less")
        self.settings = self.settings.resolved(config.hidden_size, config.num_hidden_layers)
        self._encoded: dict[str, dict] = {}

    def max_length(self, task: Task) -> int:
        """The settings' max_length, else the task's default capped at the model's positions."""
        return self.settings.max_length or min(default_max_length(task), self.positions)

    def build_model(self, task: Task, init: str):
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; allowed: {', '.join(INITS)}")
        encoder = load_encoder(self.model_dir, random_init=init == 'random')
        return build_model(encoder, task.task_type, task.n_outputs, self.tokenizer.pad_token_id, self.settings.dropout)

    def encode_task(self, task: Task) -> dict:
        """The task as the model reads it: {'train', 'dev'} lists of (input_ids, token_type_ids,
        target); 'epochs' and 'max_length' for this task; symmetric pairs doubled (Google's
        `double_unordered`), regression targets normalised with the task's `label_range`;
        extractive QA: the windows of both splits, the dev ones in 'qa_dev'."""
        s = self.settings
        max_length = self.max_length(task)
        out = {'epochs': task_epochs(task, s), 'max_length': max_length}
        if task.task_type == 'extractive_qa':
            kw = dict(doc_stride=s.doc_stride, max_query_length=s.max_query_length, encoder=self.encoder)
            train = featurize(self.tokenizer, task.train, max_length, training=True, **kw)
            dev = featurize(self.tokenizer, task.dev, max_length, training=False, **kw)
            if not train.items:
                raise ValueError(f"{task.name}: no training answer could be placed on tokens")
            if train.skipped and self.verbose:
                print(f'{task.name}: {train.skipped} training question(s) skipped: their answer could not be '
                      f'placed on tokens', file=sys.stderr)
            return {**out, 'train': train.items, 'dev': dev.items, 'qa_dev': dev, 'skipped': train.skipped}
        train, dev = train_examples(task, s), task.dev
        if trains_both_orders(task, s):
            train = train + train.swapped()
        if task.task_type == 'regression' and task.label_range:
            train = Examples(train.texts_a, train.texts_b, normalized(train.labels, task.label_range))
            dev = Examples(dev.texts_a, dev.texts_b, normalized(dev.labels, task.label_range))
        return {**out, 'train': encode(self.tokenizer, train, max_length, self.encoder),
                'dev': encode(self.tokenizer, dev, max_length, self.encoder)}

    def learner(self, task: Task, encoded: dict[str, list], init: str, seed: int) -> Learner:
        """A Learner for one run, seeded: the head (and, for `random`, the encoder), dropout and
        the shuffling all follow `seed`."""
        s = self.settings
        set_seed(seed)
        model = self.build_model(task, init)
        pad = self.tokenizer.pad_token_id
        # QA windows are evaluated at one length, so that the logits of all batches stack
        dev_pad = encoded.get('max_length') if task.task_type == 'extractive_qa' else None
        dls = DataLoaders(TaskDataLoader(encoded['train'], s.bs, pad, shuffle=True, seed=seed),
                          TaskDataLoader(encoded['dev'], s.bs, pad, pad_to=dev_pad), path='.',
                          device=torch.device(s.device))
        scales = layer_lr_scales(model.encoder.config.num_hidden_layers, s.layer_decay)
        learn = Learner(dls, model, loss_func=loss_func(task.task_type),
                        opt_func=lambda params, lr: finetune_opt(params, lr, weight_decay=s.weight_decay),
                        splitter=layer_groups, lr=s.lr,
                        cbs=[LayerwiseSchedule(s.lr, scales, s.warmup, s.schedule), GradientClipping(s.clip),
                             TrainOnly()])
        return learn

    def run_once(self, task: Task, encoded: dict, init: str, seed: int) -> dict[str, float]:
        """Train on the task's train split, return the dev metrics of the final weights."""
        learn = self.learner(task, encoded, init, seed)
        with learn.no_bar(), learn.no_logging():
            learn.fit(encoded.get('epochs') or task_epochs(task, self.settings))
            outputs, labels = learn.get_preds(ds_idx=1)
        outputs = outputs.float().numpy()
        if task.task_type == 'extractive_qa':
            answers = predict(encoded['qa_dev'], outputs, task.dev, self.settings.max_answer_length)
            return qa_metrics(answers, [[text for text, _ in golds] for golds in task.dev.answers], task.f1_unit)
        if task.task_type == 'multiple_choice':
            return multiple_choice_metrics(outputs, labels.numpy())
        return task_metrics(task.task_type, outputs, labels.numpy(), task.n_outputs)

    def encoded(self, task: Task) -> dict:
        """`encode_task(task)`, done once per task name."""
        if task.name not in self._encoded:
            self._encoded[task.name] = self.encode_task(task)
        return self._encoded[task.name]

    def run_task(self, task: Task, inits: Sequence[str] = ('pretrained',), previous: dict | None = None,
                 on_seed: Callable[[dict], None] | None = None) -> dict:
        """Every seed of each init in `inits`: {'pretrained': {metric: summary}, 'random': ...,
        plus `task_facts` and the encoded sizes}. `previous`: a (partial) result of this task with
        the same model and settings, whose finished seeds are kept, not run again. `on_seed` gets
        the result after each finished seed (to save it as it comes)."""
        s = self.settings
        result = {**(previous or {}), **task_facts(task, s)}
        todo = {init: s.seeds[finished_seeds(previous, init):] for init in inits}
        if not any(todo.values()):
            return result
        encoded = self.encoded(task)
        result.update(max_length=encoded['max_length'], train_rows=len(encoded['train']), dev_rows=len(encoded['dev']))
        if task.task_type == 'extractive_qa':
            result['skipped'] = encoded['skipped']
        headline = result['metric']
        for init in inits:
            done = (previous or {}).get(init) or {}
            runs = [{m: metric_value(v['runs'][i]) for m, v in done.items()}
                    for i in range(finished_seeds(previous, init))]
            for seed in todo[init]:
                start = time.time()
                runs.append(self.run_once(task, encoded, init, seed))
                if self.verbose:
                    print(f'{task.name} {init:10s} seed {seed}: {headline} {runs[-1][headline]:.4f} '
                          f'({time.time() - start:.1f} s)', flush=True)
                result[init] = {m: summarize([r[m] for r in runs]) for m in runs[-1]}
                if on_seed is not None:
                    on_seed(result)
        return result


def finetune(model_dir: str | Path, tasks: list[Task], settings: FinetuneSettings | None = None,
             compare_random: bool = False, out: str | Path | None = None, verbose: bool = True) -> dict:
    """Fine-tune `model_dir` on each task over the settings' seeds; return (and write to `out`
    as JSON, with the Markdown table beside it: same name, .md) {'model', 'model_fingerprint',
    'settings', 'tasks': {name: run_task's result}}.

    `out` is checked to be writable before any training and rewritten (atomically) after each
    finished seed. When `out` already holds results of the same model (by content) and settings,
    their finished (task, init, seed) runs are kept and only the rest is run: an interrupted call
    continues where it stopped, and other tasks add to the file. Other settings: a ValueError."""
    runner = Finetuner(model_dir, settings, verbose)
    facts = checked_facts(tasks, runner.settings)
    results = {'model': str(model_dir), 'model_fingerprint': model_fingerprint(model_dir),
               'settings': asdict(runner.settings), 'tasks': {}}
    if out is not None:
        out = Path(out)
        check_writable(out)
        previous = previous_results(out, {k: results[k] for k in ('model_fingerprint', 'settings')})
        if previous is not None:
            results['tasks'] = previous.get('tasks') or {}
            check_same_tasks([results['tasks']], facts, out)
            if verbose:
                print(f'continuing {out}: finished runs are kept', flush=True)
    inits = INITS[:2 if compare_random else 1]
    for task in tasks:
        def save(result: dict, name: str = task.name) -> None:
            results['tasks'][name] = result
            write_results(results, out)
        results['tasks'][task.name] = runner.run_task(task, inits, results['tasks'].get(task.name),
                                                      on_seed=save if out is not None else None)
    if out is not None:
        write_results(results, out)
    return results


def write_results(results: dict, path: str | Path, markdown: Callable[[dict], str] | None = None) -> Path:
    """`path` (JSON: every run of every metric) and, beside it, the Markdown table (`path` with
    the suffix .md) of `markdown` (default `results_markdown`), each written atomically: a reader
    or an interruption sees the previous version or the new one, never half of one."""
    path = Path(path)
    atomic_write_text(path, json.dumps(json_safe(results), indent=2, ensure_ascii=False) + '\n')
    atomic_write_text(path.with_suffix('.md'), (markdown or results_markdown)(results) + '\n')
    return path


def results_table(results: dict) -> str:
    """One line per (task, init, metric), the task's headline metric first: mean, std, best
    over seeds."""
    lines = [f"{'task':16s} {'init':10s} {'metric':11s} {'mean':>7s} {'std':>7s} {'best':>7s} {'seeds':>5s}"]
    for name, r in results['tasks'].items():
        for init in INITS:
            if init not in r:
                continue
            metrics = sorted(r[init], key=lambda m: m != r['metric'])
            for m in metrics:
                v = r[init][m]
                lines.append(f"{name:16s} {init:10s} {m:11s} {metric_text(v['mean'])} {metric_text(v['std'])} "
                             f"{metric_text(v['best'])} "
                             f"{len(v['runs']):5d}")
    return '\n'.join(lines)


def results_markdown(results: dict) -> str:
    """The results as one Markdown table: a row per task and reported metric (JGLUE's and GLUE's:
    Pearson / Spearman, exact match / F1, ...), mean ± standard deviation and best over the
    seeds for the pre-trained weights and, when run, for the random initialisation, and the gain
    in points."""
    compare = any('random' in r for r in results['tasks'].values())
    head = ['task', 'type', 'metric', 'pre-trained mean ± std', 'best']
    if compare:
        head += ['random init mean ± std', 'best', 'gain (points)']
    head += ['seeds', 'epochs', 'train / dev']
    rows = []
    for name, r in results['tasks'].items():
        for m in r.get('reported') or [r['metric']]:
            row = [name, r['task_type'], m]
            for init in INITS[:2 if compare else 1]:
                v = r.get(init, {}).get(m)
                row += [mean_std(v), metric_text(v['best'], 0) if v else '—']
            if compare:
                row.append(gain(r.get('pretrained', {}).get(m), r.get('random', {}).get(m)))
            done = min((finished_seeds(r, init) for init in INITS if init in r), default=0)
            row += [seeds_done(done, r), str(r.get('epochs', '')), f"{r['n_train']} / {r['n_dev']}"]
            rows.append(row)
    return markdown_table(head, rows)
