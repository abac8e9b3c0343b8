"""Fine-tuning tasks: local CSV / TSV / JSONL files or hub datasets -> one internal format
(`Task`), then token ids in BERT's layout and padded batches for fastai."""
from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from fastai.data.load import DataLoader
from fastcore.basics import chunked

from pretrain.corpus import read_jsonl

TASK_TYPES = ('classification', 'regression')
FORMATS = {'.tsv': 'tsv', '.tab': 'tsv', '.csv': 'csv', '.jsonl': 'jsonl', '.json': 'jsonl'}

# GLUE (nyu-mll/glue): text columns, task type, the metric the GLUE leaderboard reports
GLUE_TASKS: dict[str, tuple[str, str | None, str, str]] = {
    'cola': ('sentence', None, 'classification', 'mcc'),
    'sst2': ('sentence', None, 'classification', 'accuracy'),
    'mrpc': ('sentence1', 'sentence2', 'classification', 'f1'),
    'qqp': ('question1', 'question2', 'classification', 'f1'),
    'stsb': ('sentence1', 'sentence2', 'regression', 'spearman'),
    'mnli': ('premise', 'hypothesis', 'classification', 'accuracy'),
    'qnli': ('question', 'sentence', 'classification', 'accuracy'),
    'rte': ('sentence1', 'sentence2', 'classification', 'accuracy'),
    'wnli': ('sentence1', 'sentence2', 'classification', 'accuracy'),
}
# JGLUE's classification tasks as published on the hub (shunk031/JGLUE configs)
JGLUE_TASKS: dict[str, tuple[str, str | None, str, str]] = {
    'MARC-ja': ('sentence', None, 'classification', 'accuracy'),
    'JCoLA': ('sentence', None, 'classification', 'mcc'),
    'JSTS': ('sentence1', 'sentence2', 'regression', 'spearman'),
    'JNLI': ('sentence1', 'sentence2', 'classification', 'accuracy'),
}


@dataclass
class Examples:
    """One split: texts_a[i] (and texts_b[i] for pair tasks) with labels[i], an id for
    classification, a float for regression."""
    texts_a: list[str]
    texts_b: list[str] | None
    labels: list[int] | list[float]

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Task:
    """A task in the internal format. `label_names[i]` is the label that id i stands for
    (classification only; None for regression). `metric` is the one to report first."""
    name: str
    task_type: str
    train: Examples
    dev: Examples
    label_names: list[str] | None = None
    metric: str | None = None
    columns: dict[str, str | None] = field(default_factory=dict)

    @property
    def n_outputs(self) -> int:
        return len(self.label_names) if self.task_type == 'classification' else 1


# ---- reading files --------------------------------------------------------------------
def read_table(path: str | Path) -> tuple[list[str], list[dict[str, Any]], list[int]]:
    """(column names, rows as dicts, each row's line number) of a .tsv / .csv file with a
    header line or a .jsonl file of one JSON object per line. TSV fields are read unquoted, as
    GLUE's files need."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"task file {path} does not exist")
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown file type {path.suffix!r}; use .tsv, .csv or .jsonl")
    with path.open(newline='', encoding='utf-8-sig') as f:  # -sig: a spreadsheet's BOM is not part of the header
        if fmt == 'jsonl':
            return _read_jsonl(path, f)
        reader = csv.reader(f, delimiter='\t', quoting=csv.QUOTE_NONE) if fmt == 'tsv' else csv.reader(f)
        header = next(reader, None)
        if not header:
            raise ValueError(f"{path} is empty; it needs a header line naming the columns, then one example per line")
        rows, lines = [], []
        for fields in reader:
            if not fields:
                continue
            if len(fields) != len(header):
                raise ValueError(f"{path} line {reader.line_num}: {len(fields)} fields, but the header names {len(header)}")
            rows.append(dict(zip(header, fields)))
            lines.append(reader.line_num)
    return header, rows, lines


def _read_jsonl(path: Path, f) -> tuple[list[str], list[dict[str, Any]], list[int]]:
    rows, lines, columns = [], [], {}
    for line_no, row in read_jsonl(f, path, "a JSON object with the task's fields"):
        rows.append(row)
        lines.append(line_no)
        columns.update(dict.fromkeys(row))
    if not rows:
        raise ValueError(f"{path} is empty; it needs one JSON object per line")
    return list(columns), rows, lines


def _at(source: str, lines: list[int] | None, i: int) -> str:
    """Where example i is: its line in a file, or its row index in a dataset (lines None)."""
    return f'{source} row {i}' if lines is None else f'{source} line {lines[i]}'


def _column(rows: list[dict[str, Any]], columns: list[str], name: str, flag: str, source: str) -> list[Any]:
    if name not in columns:
        raise ValueError(f"{source} has no column {name!r} (columns: {', '.join(columns)}); set {flag}")
    return [row.get(name) for row in rows]


def _texts(values: list[Any], name: str, source: str, lines: list[int] | None) -> list[str]:
    for i, v in enumerate(values):
        if not isinstance(v, str):
            raise ValueError(f"{_at(source, lines, i)}: {name} is {v!r}, not a text")
    return values


def label_vocabulary(raw_labels: Sequence[Any]) -> list[str]:
    """The label names of a training split, sorted (numerically when every label is an integer)."""
    names = {str(v) for v in raw_labels}
    try:
        return sorted(names, key=int)
    except ValueError:
        return sorted(names)


def classification_labels(raw: list[Any], label_names: list[str], source: str, lines: list[int] | None) -> list[int]:
    ids = {name: i for i, name in enumerate(label_names)}
    out = []
    for i, v in enumerate(raw):
        if v is None or str(v) == '':
            raise ValueError(f"{_at(source, lines, i)}: the label is empty")
        if str(v) not in ids:
            raise ValueError(f"{_at(source, lines, i)}: label {str(v)!r} is not among the training "
                             f"labels ({', '.join(label_names)})")
        out.append(ids[str(v)])
    return out


def regression_labels(raw: list[Any], source: str, lines: list[int] | None) -> list[float]:
    out = []
    for i, v in enumerate(raw):
        try:
            x = float(v)
        except (TypeError, ValueError):
            x = math.nan
        if isinstance(v, bool) or not math.isfinite(x):
            raise ValueError(f"{_at(source, lines, i)}: regression label {v!r} is not a finite number")
        out.append(x)
    return out


def examples_from_rows(rows: list[dict[str, Any]], columns: list[str], source: str, task_type: str,
                       text_a: str, text_b: str | None, label: str, label_names: list[str] | None,
                       lines: list[int] | None = None) -> Examples:
    """`Examples` from rows of dicts; labels mapped through `label_names` (classification).
    `lines`: each row's line in its file, for error messages (None: name row indices)."""
    if not rows:
        raise ValueError(f"{source} holds no examples")
    texts_a = _texts(_column(rows, columns, text_a, '--text_a', source), text_a, source, lines)
    texts_b = (_texts(_column(rows, columns, text_b, '--text_b', source), text_b, source, lines)
               if text_b else None)
    raw = _column(rows, columns, label, '--label', source)
    labels = (classification_labels(raw, label_names, source, lines) if task_type == 'classification'
              else regression_labels(raw, source, lines))
    return Examples(texts_a, texts_b, labels)


def check_task_type(task_type: str) -> None:
    if task_type not in TASK_TYPES:
        raise ValueError(f"unknown task type {task_type!r}; allowed: {', '.join(TASK_TYPES)}")


def load_task(train: str | Path, dev: str | Path, task_type: str, text_a: str = 'text_a', text_b: str | None = None,
              label: str = 'label', name: str | None = None, metric: str | None = None) -> Task:
    """A task from local train and dev files (.tsv / .csv with a header, or .jsonl).

    Classification labels (strings or integers) get ids from the training file; a dev label
    not seen in training is an error. Regression labels must be numbers. The name defaults to
    the training file's directory name.
    """
    check_task_type(task_type)
    tables = {split: read_table(path) for split, path in (('train', train), ('dev', dev))}
    label_names = None
    if task_type == 'classification':
        columns, rows, _ = tables['train']
        label_names = label_vocabulary(v for v in _column(rows, columns, label, '--label', str(train))
                                       if v is not None and str(v) != '')
        if len(label_names) < 2:
            raise ValueError(f"{train} has {len(label_names)} distinct label(s); classification needs at least 2")
    splits = {split: examples_from_rows(rows, columns, str(path), task_type, text_a, text_b, label, label_names, lines)
              for (split, (columns, rows, lines)), path in zip(tables.items(), (train, dev))}
    return Task(name or Path(train).resolve().parent.name, task_type, splits['train'], splits['dev'], label_names,
                metric, {'text_a': text_a, 'text_b': text_b, 'label': label})


# ---- hub datasets ---------------------------------------------------------------------
def task_from_hub(train, dev, task_type: str, text_a: str, text_b: str | None = None, label: str = 'label',
                  name: str = 'hub', metric: str | None = None) -> Task:
    """A task from two `datasets.Dataset` splits, in the same format as `load_task`'s.

    A `ClassLabel` label column keeps its ids and names; other classification labels are mapped
    as in files. Rows labelled -1 (GLUE's unlabelled test convention) are an error.
    """
    check_task_type(task_type)
    names = getattr(train.features.get(label), 'names', None)
    label_names = None
    if task_type == 'classification':
        label_names = list(names) if names else label_vocabulary(train[label] if label in train.column_names else [])
    splits = {}
    for split, ds in (('train', train), ('dev', dev)):
        rows = ds.to_list()
        if task_type == 'classification' and names:  # ids -> names, so files and hub share the mapping
            for row in rows:
                v = row.get(label)
                row[label] = names[v] if isinstance(v, int) and 0 <= v < len(names) else v
        splits[split] = examples_from_rows(rows, ds.column_names, f'{name} {split} split', task_type, text_a, text_b,
                                           label, label_names)
    return Task(name, task_type, splits['train'], splits['dev'], label_names, metric,
                {'text_a': text_a, 'text_b': text_b, 'label': label})


def load_hub_task(path: str, config: str | None, text_a: str, text_b: str | None, task_type: str,
                  metric: str | None = None, label: str = 'label', train_split: str = 'train',
                  dev_split: str = 'validation', name: str | None = None) -> Task:
    """Download a dataset with `datasets.load_dataset(path, config)` (needs the network) and map
    its train and dev splits with `task_from_hub`."""
    import datasets
    try:
        ds = datasets.load_dataset(path, config)
    except Exception as e:  # no network, unknown name: datasets raises many types
        raise ValueError(f"cannot load {path} {config or ''} from the hub: {str(e).splitlines()[0]}") from None
    for split in (train_split, dev_split):
        if split not in ds:
            raise ValueError(f"{path} {config or ''} has no split {split!r} (splits: {', '.join(ds)})")
    return task_from_hub(ds[train_split], ds[dev_split], task_type, text_a, text_b, label, name or config or path, metric)


def load_glue(task: str) -> Task:
    """A GLUE task from the hub (nyu-mll/glue); MNLI's dev set is the matched one."""
    if task not in GLUE_TASKS:
        raise ValueError(f"unknown GLUE task {task!r}; allowed: {', '.join(GLUE_TASKS)}")
    text_a, text_b, task_type, metric = GLUE_TASKS[task]
    return load_hub_task('nyu-mll/glue', task, text_a, text_b, task_type, metric,
                         dev_split='validation_matched' if task == 'mnli' else 'validation', name=task)


def load_jglue(task: str, dataset: str = 'shunk031/JGLUE') -> Task:
    """A JGLUE task from the hub (`dataset`, config = the task name)."""
    if task not in JGLUE_TASKS:
        raise ValueError(f"unknown JGLUE task {task!r}; allowed: {', '.join(JGLUE_TASKS)}")
    text_a, text_b, task_type, metric = JGLUE_TASKS[task]
    return load_hub_task(dataset, task, text_a, text_b, task_type, metric, name=task)


# ---- token ids and batches ------------------------------------------------------------
def truncate_pair(a: list[int], b: list[int], max_tokens: int) -> tuple[list[int], list[int]]:
    """BERT's rule: drop the last token of the longer segment (of b on a tie) until both fit in
    `max_tokens` together."""
    a, b = list(a), list(b)
    while len(a) + len(b) > max_tokens:
        (a if len(a) > len(b) else b).pop()
    return a, b


def encode(hf_tokenizer, examples: Examples, max_length: int) -> list[tuple[list[int], list[int], int | float]]:
    """(input_ids, token_type_ids, label) per example: [CLS] a [SEP] (b [SEP]), type 0 up to the
    first [SEP], 1 after; at most `max_length` tokens, truncated BERT-style."""
    for name in ('cls_token_id', 'sep_token_id', 'pad_token_id'):
        if getattr(hf_tokenizer, name) is None:
            raise ValueError(f"the tokenizer has no {name.removesuffix('_id')}; fine-tuning needs [CLS], [SEP] and [PAD]")
    if max_length < 5:
        raise ValueError(f"max_length must be at least 5 ([CLS], [SEP]s and some text), got {max_length}")

    def ids(texts: list[str]) -> list[list[int]]:
        return hf_tokenizer(texts, add_special_tokens=False, return_attention_mask=False,
                            return_token_type_ids=False)['input_ids']

    cls, sep = hf_tokenizer.cls_token_id, hf_tokenizer.sep_token_id
    ids_a = ids(examples.texts_a)
    ids_b = ids(examples.texts_b) if examples.texts_b is not None else None
    out = []
    for i, label in enumerate(examples.labels):
        if ids_b is None:
            a = ids_a[i][:max_length - 2]
            out.append(([cls] + a + [sep], [0] * (len(a) + 2), label))
        else:
            a, b = truncate_pair(ids_a[i], ids_b[i], max_length - 3)
            out.append(([cls] + a + [sep] + b + [sep], [0] * (len(a) + 2) + [1] * (len(b) + 1), label))
    return out


def pad_examples(items: Sequence[tuple[list[int], list[int], int | float]], pad_idx: int
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """input_ids (B, L) padded with `pad_idx`, token_type_ids (B, L) padded with 0, labels (B,)
    (int64 for classification ids, float32 for regression); L is the longest row."""
    L = max(len(ids) for ids, _, _ in items)
    input_ids = torch.full((len(items), L), pad_idx, dtype=torch.long)
    token_types = torch.zeros((len(items), L), dtype=torch.long)
    for row, (ids, types, _) in enumerate(items):
        input_ids[row, :len(ids)] = torch.tensor(ids)
        token_types[row, :len(types)] = torch.tensor(types)
    labels = [label for _, _, label in items]
    dtype = torch.float32 if isinstance(labels[0], float) else torch.long
    return input_ids, token_types, torch.tensor(labels, dtype=dtype)


class TaskDataLoader(DataLoader):
    """A fastai `DataLoader` over encoded examples yielding (input_ids (B, L), token_type_ids
    (B, L), labels (B,)), each batch padded to its longest row; the model gets the first two."""

    def __init__(self, dataset: list[tuple[list[int], list[int], int | float]], bs: int, pad_idx: int,
                 shuffle: bool = False, seed: int | None = None, **kwargs):
        if not dataset:
            raise ValueError("no examples to batch")
        super().__init__(dataset, bs=bs, shuffle=shuffle, n=len(dataset), **kwargs)
        self.pad_idx, self.n_inp = pad_idx, 2
        if seed is not None:
            self.rng = random.Random(seed)

    def new(self, dataset=None, cls=None, **kwargs):
        return super().new(dataset, cls, pad_idx=self.pad_idx, **kwargs)

    def create_batches(self, samps):
        for idxs in chunked(samps, self.bs, self.drop_last):
            yield pad_examples([self.dataset[i] for i in idxs], self.pad_idx)
