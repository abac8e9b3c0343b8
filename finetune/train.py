"""Fine-tune a model directory on a task with fastai, over several seeds, optionally against
the same architecture from a random initialisation; results as a table and a JSON file."""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from fastai.callback.core import Callback
from fastai.data.core import DataLoaders
from fastai.learner import Learner

from _utils.gradient_clipping import GradientClipping
from pretrain.scheduler import SCHEDULES, lr_at
from pretrain.train import set_seed

from .data import Task, TaskDataLoader, encode
from .metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS, summarize, task_metrics
from .model import (SentenceClassifier, default_layer_decay, default_lr, finetune_opt, layer_groups,
                    layer_lr_scales, load_config, load_encoder, load_tokenizer)

INITS = ('pretrained', 'random')


@dataclass
class FinetuneSettings:
    """ELECTRA's fine-tuning recipe. `lr` and `layer_decay` default (None) to the paper's values
    for the model's size: lr 3e-4 / 1e-4 / 5e-5 for hidden size <= 256 / <= 768 / larger,
    decay 0.8 (0.9 from 24 layers). `schedule` 'original_linear' is Google's (warmup and linear
    decay to 0 acting together); 'separate_linear' warms up, then decays."""
    epochs: int = 3
    lr: float | None = None
    bs: int = 32
    max_length: int = 128
    layer_decay: float | None = None
    warmup: float = 0.1           # fraction of the steps
    schedule: str = 'original_linear'
    dropout: float = 0.1
    weight_decay: float = 0.0
    clip: float = 1.0
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    device: str | None = None     # None: cuda when available, else cpu

    def check(self) -> 'FinetuneSettings':
        for name in ('epochs', 'bs', 'max_length'):
            v = getattr(self, name)
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
        d['device'] = self.device or ('cuda' if torch.cuda.is_available() else 'cpu')
        return FinetuneSettings(**d)


class LayerwiseSchedule(Callback):
    """Sets every param group's learning rate before each training step: the peak `lr` times
    the group's layer-wise scale times the schedule's factor (warmup over `warmup` of the
    steps, linear decay to 0 at the last step). The values set are kept in `self.lrs`."""
    order = 60

    def __init__(self, lr: float, scales: list[float], warmup: float = 0.1, schedule: str = 'original_linear'):
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {schedule!r}; allowed: {', '.join(SCHEDULES)}")
        self.lr, self.scales, self.warmup, self.schedule = lr, scales, warmup, schedule

    def before_fit(self) -> None:
        self.total_steps = max(1, self.learn.n_epoch * len(self.learn.dls.train))
        self.warmup_steps = round(self.warmup * self.total_steps)
        self.lrs: list[list[float]] = []

    def before_batch(self) -> None:
        if not self.training:
            return
        factor = lr_at(self.learn.train_iter, self.schedule, 1.0, self.total_steps, self.warmup_steps)
        lrs = [self.lr * s * factor for s in self.scales]
        self.opt.set_hyper('lr', lrs)
        self.lrs.append(lrs)


def loss_func(task_type: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Cross-entropy on (B, C) logits for classification; mean squared error on the (B, 1)
    scores for regression."""
    if task_type == 'classification':
        return lambda logits, y: F.cross_entropy(logits.float(), y)
    return lambda scores, y: F.mse_loss(scores.float().squeeze(-1), y.float())


def check_metric(task: Task) -> str:
    """The task's headline metric (default: accuracy, or spearman for regression), checked to be
    one computed for its type (f1 only for two classes)."""
    if task.task_type == 'classification':
        allowed = [m for m in CLASSIFICATION_METRICS if m != 'f1' or task.n_outputs == 2]
    else:
        allowed = list(REGRESSION_METRICS)
    metric = task.metric or allowed[0]
    if metric not in allowed:
        raise ValueError(f"metric {metric!r} does not apply to task {task.name}; choose one of {', '.join(allowed)}")
    return metric


class Finetuner:
    """Fine-tunes one model directory: loads its tokenizer once, encodes each task once, and
    builds a fresh model and fastai `Learner` per (init, seed)."""

    def __init__(self, model_dir: str | Path, settings: FinetuneSettings | None = None, verbose: bool = True):
        self.model_dir = Path(model_dir)
        self.tokenizer = load_tokenizer(self.model_dir)
        self.settings = (settings or FinetuneSettings()).check()
        self.verbose = verbose
        config = load_config(self.model_dir)
        if self.settings.max_length > config.max_position_embeddings:
            raise ValueError(f"max_length {self.settings.max_length} exceeds the model's "
                             f"{config.max_position_embeddings} positions; use --max_length {config.max_position_embeddings} or less")
        self.settings = self.settings.resolved(config.hidden_size, config.num_hidden_layers)

    def build_model(self, task: Task, init: str) -> SentenceClassifier:
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; allowed: {', '.join(INITS)}")
        encoder = load_encoder(self.model_dir, random_init=init == 'random')
        return SentenceClassifier(encoder, task.n_outputs, self.tokenizer.pad_token_id, self.settings.dropout)

    def learner(self, task: Task, encoded: dict[str, list], init: str, seed: int) -> Learner:
        """A Learner for one run, seeded: the head (and, for `random`, the encoder), dropout and
        the shuffling all follow `seed`."""
        s = self.settings
        set_seed(seed)
        model = self.build_model(task, init)
        pad = self.tokenizer.pad_token_id
        dls = DataLoaders(TaskDataLoader(encoded['train'], s.bs, pad, shuffle=True, seed=seed),
                          TaskDataLoader(encoded['dev'], s.bs, pad), path='.', device=torch.device(s.device))
        scales = layer_lr_scales(model.encoder.config.num_hidden_layers, s.layer_decay)
        learn = Learner(dls, model, loss_func=loss_func(task.task_type),
                        opt_func=lambda params, lr: finetune_opt(params, lr, weight_decay=s.weight_decay),
                        splitter=layer_groups, lr=s.lr,
                        cbs=[LayerwiseSchedule(s.lr, scales, s.warmup, s.schedule), GradientClipping(s.clip)])
        return learn

    def run_once(self, task: Task, encoded: dict[str, list], init: str, seed: int) -> dict[str, float]:
        """Train on the task's train split, return the dev metrics of the final weights."""
        learn = self.learner(task, encoded, init, seed)
        with learn.no_bar(), learn.no_logging():
            learn.fit(self.settings.epochs)
            outputs, labels = learn.get_preds(ds_idx=1)
        return task_metrics(task.task_type, outputs.float().numpy(), labels.numpy(), task.n_outputs)

    def run_task(self, task: Task, compare_random: bool = False) -> dict:
        """Every seed with the pre-trained weights (and from a random init with
        `compare_random`): {'pretrained': {metric: summary}, 'random': ..., plus task facts}."""
        s = self.settings
        encoded = {split: encode(self.tokenizer, getattr(task, split), s.max_length) for split in ('train', 'dev')}
        headline = check_metric(task)
        result = {'task_type': task.task_type, 'metric': headline, 'labels': task.label_names,
                  'n_train': len(task.train), 'n_dev': len(task.dev), 'seeds': list(s.seeds)}
        for init in INITS[:2 if compare_random else 1]:
            runs = []
            for seed in s.seeds:
                start = time.time()
                runs.append(self.run_once(task, encoded, init, seed))
                if self.verbose:
                    print(f'{task.name} {init:10s} seed {seed}: {headline} {runs[-1][headline]:.4f} '
                          f'({time.time() - start:.1f} s)', flush=True)
            result[init] = {m: summarize([r[m] for r in runs]) for m in runs[0]}
        return result


def finetune(model_dir: str | Path, tasks: list[Task], settings: FinetuneSettings | None = None,
             compare_random: bool = False, out: str | Path | None = None, verbose: bool = True) -> dict:
    """Fine-tune `model_dir` on each task over the settings' seeds; return (and write to `out`
    as JSON) {'model', 'settings', 'tasks': {name: run_task's result}}."""
    runner = Finetuner(model_dir, settings, verbose)
    results = {'model': str(model_dir), 'settings': asdict(runner.settings),
               'tasks': {task.name: runner.run_task(task, compare_random) for task in tasks}}
    if out is not None:
        write_results(results, out)
    return results


def _json_safe(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None  # JSON has no nan (a constant prediction makes a correlation undefined)
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_json_safe(v) for v in x]
    return x


def write_results(results: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_json_safe(results), indent=2, ensure_ascii=False) + '\n')
    return path


def results_table(results: dict) -> str:
    """One line per (task, init, metric), the task's headline metric first: mean, std, best
    over seeds."""
    lines = [f"{'task':16s} {'init':10s} {'metric':9s} {'mean':>7s} {'std':>7s} {'best':>7s} {'seeds':>5s}"]
    for name, r in results['tasks'].items():
        for init in INITS:
            if init not in r:
                continue
            metrics = sorted(r[init], key=lambda m: m != r['metric'])
            for m in metrics:
                v = r[init][m]
                lines.append(f"{name:16s} {init:10s} {m:9s} {v['mean']:7.4f} {v['std']:7.4f} {v['best']:7.4f} "
                             f"{len(v['runs']):5d}")
    return '\n'.join(lines)
