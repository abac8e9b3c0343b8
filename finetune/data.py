"""Fine-tuning tasks: local CSV / TSV / JSONL files or hub datasets -> one internal format
(`Task`), then token ids in BERT's layout and padded batches for fastai.

Task types: `classification` and `regression` (one text or a pair), `multiple_choice` (a
question and N options, one of them right) and `extractive_qa` (SQuAD-style: the answer is a
span of a context, read from SQuAD-style files here; windows and answers: `finetune/qa.py`). The
GLUE and JGLUE releases' own files are read by `finetune/benchmarks.py`; what each benchmark task
is (fields, type, metric, recipe facts) is `finetune/catalog.py`'s."""
from __future__ import annotations

import csv
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from fastai.data.load import DataLoader
from fastcore.basics import chunked

from _utils.cli import first_line
from pretrain.prepare.corpus import read_jsonl

from .catalog import GLUE_FACTS, GLUE_TASKS, HUB_TASK_TYPES, JGLUE_FACTS, JGLUE_HUB_TASKS, JGLUE_TASKS, facts_for_name
from _utils.segments import bert_input

TASK_TYPES = ('classification', 'regression', 'multiple_choice', 'extractive_qa')
FORMATS = {'.tsv': 'tsv', '.tab': 'tsv', '.csv': 'csv', '.jsonl': 'jsonl', '.json': 'jsonl'}
CHOICE_PREFIX = 'choice'  # option columns choice0, choice1 ... as JCommonsenseQA names them


@dataclass
class Examples:
    """One split: texts_a[i] (and texts_b[i] for pair tasks) with labels[i], an id for
    classification, a float for regression. Multiple choice: texts_a[i] is the question,
    choices[i] its options and labels[i] the index of the right one."""
    texts_a: list[str]
    texts_b: list[str] | None
    labels: list[int] | list[float]
    choices: list[list[str]] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def swapped(self) -> 'Examples':
        """The same pairs with the two texts in the other order (Google's `double_unordered`)."""
        if self.texts_b is None:
            raise ValueError("only sentence-pair examples can be swapped")
        return Examples(list(self.texts_b), list(self.texts_a), list(self.labels))

    def __add__(self, other: 'Examples') -> 'Examples':
        return Examples(self.texts_a + other.texts_a,
                        None if self.texts_b is None else self.texts_b + other.texts_b,
                        self.labels + other.labels,
                        None if self.choices is None else self.choices + other.choices)


def per_class_subsample(examples: Examples, n: int, seed: int = 0) -> Examples:
    """At most `n` examples of each class, drawn with a fixed `seed` (the same subsample every
    time), in their original order: the low-resource variant of a classification task."""
    by_class: dict[int, list[int]] = {}
    for i, label in enumerate(examples.labels):
        by_class.setdefault(label, []).append(i)
    rng = random.Random(seed)
    keep = sorted(i for label in sorted(by_class) for i in rng.sample(by_class[label], min(n, len(by_class[label]))))
    return Examples([examples.texts_a[i] for i in keep],
                    None if examples.texts_b is None else [examples.texts_b[i] for i in keep],
                    [examples.labels[i] for i in keep])


@dataclass
class QAExamples:
    """One split of an extractive QA task: question i asks about contexts[i]; answers[i] lists
    its gold answers as (text, character offset in the context); training uses the first.
    `where[i]` names the question in its file, for messages."""
    ids: list[str]
    questions: list[str]
    contexts: list[str]
    answers: list[list[tuple[str, int]]]
    where: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.questions)


@dataclass
class Task:
    """A task in the internal format. `label_names[i]` is the label that id i stands for
    (classification only; None otherwise). `metric` is the one to report first.

    Recipe facts that travel with the task (None: the recipe's default, `train.task_defaults`):
    `epochs`, `max_length`; `symmetric`: a pair task whose text order carries no meaning (MRPC,
    STS), trained on both orders; `label_range`: (min, max) of regression labels, which are
    trained normalised to [0, 1] as Google does for STS; `f1_unit`: 'word' (SQuAD) or 'char'
    (JSQuAD) for extractive QA."""
    name: str
    task_type: str
    train: Examples | QAExamples
    dev: Examples | QAExamples
    label_names: list[str] | None = None
    metric: str | None = None
    columns: dict[str, str | None] = field(default_factory=dict)
    epochs: int | None = None
    max_length: int | None = None
    symmetric: bool = False
    label_range: tuple[float, float] | None = None
    f1_unit: str = 'word'

    @property
    def n_outputs(self) -> int:
        """Outputs of the head: one per class; one score for regression and per option of a
        multiple-choice question; a start and an end logit per token for extractive QA."""
        if self.task_type == 'classification':
            return len(self.label_names)
        return 2 if self.task_type == 'extractive_qa' else 1


# ---- reading files --------------------------------------------------------------------
def _task_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"task file {path} does not exist")
    return path


def read_table(path: str | Path) -> tuple[list[str], list[dict[str, Any]], list[int]]:
    """(column names, rows as dicts, each row's line number) of a .tsv / .csv file with a
    header line or a .jsonl file of one JSON object per line. TSV fields are read unquoted, as
    GLUE's files need."""
    path = _task_file(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown file type {path.suffix!r}; use .tsv, .csv or .jsonl")
    if fmt == 'jsonl':
        return _read_jsonl(path)
    header, rows, lines = table_rows(path, fmt, header=True)
    if not header:
        raise ValueError(f"{path} is empty; it needs a header line naming the columns, then one example per line")
    for fields, line in zip(rows, lines):
        if len(fields) != len(header):
            raise ValueError(f"{path} line {line}: {len(fields)} fields, but the header names {len(header)}")
    return header, [dict(zip(header, fields)) for fields in rows], lines


def table_rows(path: Path, fmt: str, header: bool) -> tuple[list[str] | None, list[list[str]], list[int]]:
    """(the header line, or None without `header`; the non-empty rows after it; each row's line
    number) of a 'tsv' file, read unquoted as Google reads GLUE's files, or a 'csv' file. A BOM
    (from a spreadsheet) is not part of the first field."""
    with path.open(newline='', encoding='utf-8-sig') as f:
        reader = csv.reader(f, delimiter='\t', quoting=csv.QUOTE_NONE) if fmt == 'tsv' else csv.reader(f)
        head = next(reader, None) if header else None
        rows, lines = [], []
        for fields in reader:
            if fields:
                rows.append(fields)
                lines.append(reader.line_num)
    return head, rows, lines


def _read_jsonl(path: Path) -> tuple[list[str], list[dict[str, Any]], list[int]]:
    rows, lines, columns = [], [], {}
    with path.open(newline='', encoding='utf-8-sig') as f:
        for line_no, row in read_jsonl(f, path, "a JSON object with the task's fields"):
            rows.append(row)
            lines.append(line_no)
            columns.update(dict.fromkeys(row))
    if not rows:
        raise ValueError(f"{path} is empty; it needs one JSON object per line")
    return list(columns), rows, lines


# ---- SQuAD-style files (extractive QA) --------------------------------------------------
def read_squad(path: str | Path) -> QAExamples:
    """The questions of a SQuAD v1.1-style JSON file ({"data": [{"title", "paragraphs": [{"context",
    "qas": [{"id", "question", "answers": [{"text", "answer_start"}]}]}]}]}), JSQuAD's format.

    Every answer must be found at its `answer_start` in the context. Unanswerable SQuAD 2.0
    questions (`is_impossible` true) are refused: the head has no answerability classifier.
    Errors name the file, the question and its place in the file."""
    path = _task_file(path)
    if path.suffix.lower() != '.json':
        raise ValueError(f"{path}: extractive QA reads SQuAD-style .json files, not {path.suffix!r}")
    try:
        doc = json.loads(path.read_text(encoding='utf-8-sig'))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} line {e.lineno}: not valid JSON ({e.msg}); a SQuAD-style file is one JSON "
                         f"object {{\"data\": [...]}}") from None
    data = doc.get('data') if isinstance(doc, dict) else None
    if not isinstance(data, list):
        raise ValueError(f"{path}: no list \"data\" at the top; a SQuAD-style file is {{\"data\": [{{\"title\": ..., "
                         f"\"paragraphs\": [...]}}]}} (JSQuAD's, not the JSON-lines of the other JGLUE tasks)")
    out = QAExamples([], [], [], [], [])
    for i, article in enumerate(data):
        paragraphs = article.get('paragraphs') if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise ValueError(f"{path}: data[{i}] has no list \"paragraphs\"; each article needs "
                             f"{{\"title\", \"paragraphs\": [{{\"context\", \"qas\"}}]}}")
        for j, par in enumerate(paragraphs):
            at = f'data[{i}].paragraphs[{j}]'
            if not isinstance(par, dict) or not isinstance(par.get('context'), str) or not isinstance(par.get('qas'), list):
                raise ValueError(f"{path}: {at} needs a string \"context\" and a list \"qas\"")
            context = par['context']
            for k, qa in enumerate(par['qas']):
                _add_question(out, qa, context, path, f'{at}.qas[{k}]')
    if not len(out):
        raise ValueError(f"{path} holds no questions")
    return out


def _add_question(out: QAExamples, qa: Any, context: str, path: Path, at: str) -> None:
    if not isinstance(qa, dict) or not isinstance(qa.get('question'), str):
        raise ValueError(f"{path}: {at} needs a string \"question\"")
    qid = str(qa.get('id', at))
    where = f"{path}: question {qid} ({at})"
    if qa.get('is_impossible'):
        raise ValueError(f"{where} is unanswerable (is_impossible true, SQuAD 2.0); this head answers SQuAD 1.1 "
                         f"and JSQuAD questions only; drop the question")
    answers = qa.get('answers')
    if not isinstance(answers, list) or not answers:
        raise ValueError(f"{where} has no answers; give at least one {{\"text\", \"answer_start\"}}")
    golds = []
    for n, a in enumerate(answers):
        text, start = (a.get('text'), a.get('answer_start')) if isinstance(a, dict) else (None, None)
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{where}: answer {n} has no text; each answer needs a non-empty \"text\"")
        if isinstance(start, bool) or not isinstance(start, int):
            raise ValueError(f"{where}: answer {n} has answer_start {start!r}; it must be the character offset "
                             f"of the answer in the context")
        if context[start:start + len(text)] != text:
            found = context.find(text)
            fix = (f"it occurs at {found}: fix answer_start" if found >= 0
                   else "the text does not occur in the context: fix the answer or the context")
            raise ValueError(f"{where}: answer {text!r} is not at answer_start {start} of its context "
                             f"({context[start:start + len(text)]!r} is there); {fix}")
        golds.append((text, start))
    out.ids.append(qid)
    out.questions.append(qa['question'])
    out.contexts.append(context)
    out.answers.append(golds)
    out.where.append(where)


def _at(source: str, lines: list[int] | None, i: int) -> str:
    """Where example i is: its line in a file, or its row index in a dataset (lines None)."""
    return f'{source} row {i}' if lines is None else f'{source} line {lines[i]}'


def _column(rows: list[dict[str, Any]], columns: list[str], name: str, flag: str, source: str) -> list[Any]:
    """The values of column `name`; `flag`: the option that names it (--text_a ...), or the fix
    to suggest when it is missing."""
    if name not in columns:
        fix = f"set {flag}" if flag.startswith('--') else flag
        raise ValueError(f"{source} has no column {name!r} (columns: {', '.join(columns)}); {fix}")
    return [row.get(name) for row in rows]


def _texts(values: list[Any], name: str, source: str, lines: list[int] | None) -> list[str]:
    for i, v in enumerate(values):
        if v is None:
            raise ValueError(f"{_at(source, lines, i)}: {name} is missing; every example needs it")
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


def classification_labels(raw: list[Any], label_names: list[str], source: str, lines: list[int] | None,
                          fixed: bool = False) -> list[int]:
    """Label ids through `label_names`; `fixed`: the names are the task's own set (GLUE, JGLUE),
    not those read from the training file."""
    ids = {name: i for i, name in enumerate(label_names)}
    out = []
    for i, v in enumerate(raw):
        if v is None or str(v) == '':
            raise ValueError(f"{_at(source, lines, i)}: the label is empty")
        key = str(v)
        if isinstance(v, float) and v.is_integer():  # a JSON 1.0 for the label "1"
            key = str(int(v))
        if key not in ids:
            where = "the task's labels" if fixed else "the training labels"
            raise ValueError(f"{_at(source, lines, i)}: label {str(v)!r} is not among {where} "
                             f"({', '.join(label_names)}); fix the label")
        out.append(ids[key])
    return out


def regression_labels(raw: list[Any], source: str, lines: list[int] | None,
                      label_range: tuple[float, float] | None = None) -> list[float]:
    """Float labels; with `label_range` (the task's scale, e.g. STS's 0-5) a label outside it is
    an error."""
    out = []
    for i, v in enumerate(raw):
        try:
            x = float(v)
        except (TypeError, ValueError):
            x = math.nan
        if isinstance(v, bool) or not math.isfinite(x):
            raise ValueError(f"{_at(source, lines, i)}: regression label {v!r} is not a finite number")
        if label_range is not None and not label_range[0] <= x <= label_range[1]:
            raise ValueError(f"{_at(source, lines, i)}: label {v!r} is outside the task's scale "
                             f"{label_range[0]:g} to {label_range[1]:g}; fix the label")
        out.append(x)
    return out


def choice_columns(columns: list[str], prefix: str, source: str) -> list[str]:
    """The option columns of a multiple-choice file: `prefix`0, `prefix`1, ... (JCommonsenseQA's
    choice0 ... choice4), in order, without gaps."""
    found = sorted((int(c[len(prefix):]), c) for c in columns
                   if c.startswith(prefix) and c[len(prefix):].isdigit())
    if len(found) < 2:
        raise ValueError(f"{source} has {len(found)} option column(s) named {prefix}0, {prefix}1, ... "
                         f"(columns: {', '.join(columns)}); a multiple-choice task needs at least 2; set --choices")
    if [n for n, _ in found] != list(range(len(found))):
        raise ValueError(f"{source}: option columns {', '.join(c for _, c in found)} skip a number; "
                         f"name them {prefix}0 ... {prefix}{len(found) - 1}")
    return [c for _, c in found]


def choice_labels(raw: list[Any], n_choices: int, source: str, lines: list[int] | None) -> list[int]:
    """The index of the right option, 0 <= label < n_choices (an int, or a string of digits)."""
    out = []
    for i, v in enumerate(raw):
        label = v if isinstance(v, int) and not isinstance(v, bool) else (
            int(v) if isinstance(v, str) and v.strip().isdigit() else None)
        if label is None or not 0 <= label < n_choices:
            raise ValueError(f"{_at(source, lines, i)}: label {v!r} is not an option index 0 to {n_choices - 1}; "
                             f"the label of a multiple-choice question is the number of its right option")
        out.append(label)
    return out


def examples_from_rows(rows: list[dict[str, Any]], columns: list[str], source: str, task_type: str,
                       text_a: str, text_b: str | None, label: str, label_names: list[str] | None,
                       lines: list[int] | None = None, label_range: tuple[float, float] | None = None,
                       choices: str = CHOICE_PREFIX, fixed_labels: bool = False, hint: str | None = None) -> Examples:
    """`Examples` from rows of dicts; labels mapped through `label_names` (classification).
    `lines`: each row's line in its file, for error messages (None: name row indices).
    Multiple choice: `text_a` is the question column, `choices` the options' column prefix.
    `fixed_labels`: `label_names` is the task's own label set; `hint`: the fix a missing column
    suggests (default: the command-line option naming it)."""
    if not rows:
        raise ValueError(f"{source} holds no examples")
    texts_a = _texts(_column(rows, columns, text_a, hint or '--text_a', source), text_a, source, lines)
    raw = _column(rows, columns, label, hint or '--label', source)
    if task_type == 'multiple_choice':
        names = choice_columns(columns, choices, source)
        options = [_texts(_column(rows, columns, c, hint or '--choices', source), c, source, lines) for c in names]
        return Examples(texts_a, None, choice_labels(raw, len(names), source, lines),
                        [list(opts) for opts in zip(*options)])
    texts_b = (_texts(_column(rows, columns, text_b, hint or '--text_b', source), text_b, source, lines)
               if text_b else None)
    labels = (classification_labels(raw, label_names, source, lines, fixed_labels) if task_type == 'classification'
              else regression_labels(raw, source, lines, label_range))
    return Examples(texts_a, texts_b, labels)


def check_task_type(task_type: str) -> None:
    if task_type not in TASK_TYPES:
        raise ValueError(f"unknown task type {task_type!r}; allowed: {', '.join(TASK_TYPES)}")


def observed_range(labels: list[float], source: str) -> tuple[float, float]:
    """(min, max) of the training labels: the scale a regression task is normalised with when
    the task does not name one."""
    lo, hi = min(labels), max(labels)
    if lo == hi:
        raise ValueError(f"{source}: every regression label is {lo:g}; a regression task needs labels that vary")
    return lo, hi


def load_task(train: str | Path, dev: str | Path, task_type: str, text_a: str | None = None, text_b: str | None = None,
              label: str = 'label', name: str | None = None, metric: str | None = None, choices: str = CHOICE_PREFIX,
              label_range: tuple[float, float] | None = None, **facts) -> Task:
    """A task from local train and dev files (.tsv / .csv with a header, or .jsonl; extractive
    QA: SQuAD-style .json).

    Classification labels (strings or integers) get ids from the training file; a dev label
    not seen in training is an error. Regression labels must be numbers; they are trained on
    the scale `label_range` (default: the training labels' min and max) mapped to [0, 1].
    Multiple choice: a question column (`text_a`, default 'question'), option columns
    `choices`0, `choices`1, ... and the right option's index as label. The name defaults to the
    training file's directory name; a task named like a GLUE or JGLUE task (rte, STS-B, MRPC,
    JSTS ...) gets that task's recipe facts (10 epochs, both pair orders, the 0-5 scale...).
    `facts`: further `Task` fields (epochs, symmetric, f1_unit...), which win.
    """
    check_task_type(task_type)
    name = name or Path(train).resolve().parent.name
    facts = {**facts_for_name(name), **facts}  # a copy of RTE/, STS-B/ ... keeps Google's recipe
    if task_type != 'extractive_qa':
        facts.pop('f1_unit', None)
    if task_type != 'regression':
        facts.pop('label_range', None)
    label_range = label_range or facts.pop('label_range', None)
    if task_type == 'extractive_qa':
        return qa_task(name, train, dev, metric, **facts)
    text_a = text_a or ('question' if task_type == 'multiple_choice' else 'text_a')
    tables = {split: read_table(path) for split, path in (('train', train), ('dev', dev))}
    label_names = None
    if task_type == 'classification':
        columns, rows, _ = tables['train']
        label_names = label_vocabulary(v for v in _column(rows, columns, label, '--label', str(train))
                                       if v is not None and str(v) != '')
        if len(label_names) < 2:
            raise ValueError(f"{train} has {len(label_names)} distinct label(s); classification needs at least 2")
    splits = {split: examples_from_rows(rows, columns, str(path), task_type, text_a, text_b, label, label_names, lines,
                                        label_range, choices)
              for (split, (columns, rows, lines)), path in zip(tables.items(), (train, dev))}
    if task_type == 'regression' and label_range is None:
        label_range = observed_range(splits['train'].labels, str(train))
    if task_type == 'multiple_choice':
        n_train, n_dev = (len(splits[s].choices[0]) for s in ('train', 'dev'))
        if n_train != n_dev:
            raise ValueError(f"{dev} has {n_dev} options per question, {train} has {n_train}; use the same options")
    columns = {'text_a': text_a, 'text_b': text_b, 'label': label}
    if task_type == 'multiple_choice':
        columns = {'question': text_a, 'choices': choices, 'label': label}
    return Task(name, task_type, splits['train'], splits['dev'], label_names, metric, columns,
                label_range=label_range, **facts)


def qa_task(name: str, train: str | Path, dev: str | Path, metric: str | None = None, **facts) -> Task:
    """An extractive QA task from SQuAD-style train and dev files (`read_squad`)."""
    return Task(name, 'extractive_qa', read_squad(train), read_squad(dev), None, metric, {}, **facts)


# ---- hub datasets ---------------------------------------------------------------------
def task_from_hub(train, dev, task_type: str, text_a: str, text_b: str | None = None, label: str = 'label',
                  name: str = 'hub', metric: str | None = None, **facts) -> Task:
    """A task from two `datasets.Dataset` splits, in the same format as `load_task`'s.

    A `ClassLabel` label column keeps its ids and names; other classification labels are mapped
    as in files. Rows labelled -1 (GLUE's unlabelled test convention) are an error.
    """
    if task_type not in HUB_TASK_TYPES:
        raise ValueError(f"hub datasets map to {' or '.join(HUB_TASK_TYPES)} tasks, not {task_type!r}")
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
    if task_type == 'regression' and facts.get('label_range') is None:
        facts['label_range'] = observed_range(splits['train'].labels, f'{name} train split')
    return Task(name, task_type, splits['train'], splits['dev'], label_names, metric,
                {'text_a': text_a, 'text_b': text_b, 'label': label}, **facts)


def load_hub_task(path: str, config: str | None, text_a: str, text_b: str | None, task_type: str,
                  metric: str | None = None, label: str = 'label', train_split: str = 'train',
                  dev_split: str = 'validation', name: str | None = None, **facts) -> Task:
    """Download a dataset with `datasets.load_dataset(path, config)` (needs the network) and map
    its train and dev splits with `task_from_hub`."""
    import datasets
    try:
        ds = datasets.load_dataset(path, config)
    except Exception as e:  # no network, unknown name: datasets raises many types
        raise ValueError(f"cannot load {path} {config or ''} from the hub: {first_line(e)}") from None
    for split in (train_split, dev_split):
        if split not in ds:
            raise ValueError(f"{path} {config or ''} has no split {split!r} (splits: {', '.join(ds)})")
    return task_from_hub(ds[train_split], ds[dev_split], task_type, text_a, text_b, label, name or config or path, metric,
                         **facts)


def load_glue(task: str) -> Task:
    """A GLUE task from the hub (nyu-mll/glue); MNLI's dev set is the matched one."""
    if task not in GLUE_TASKS:
        raise ValueError(f"unknown GLUE task {task!r}; allowed: {', '.join(GLUE_TASKS)}")
    text_a, text_b, task_type, metric = GLUE_TASKS[task]
    return load_hub_task('nyu-mll/glue', task, text_a, text_b, task_type, metric,
                         dev_split='validation_matched' if task == 'mnli' else 'validation', name=task,
                         **GLUE_FACTS.get(task, {}))


def load_jglue(task: str, dataset: str = 'shunk031/JGLUE') -> Task:
    """A JGLUE task from the hub (`dataset`, config = the task name)."""
    if task not in JGLUE_HUB_TASKS:
        raise ValueError(f"unknown JGLUE task {task!r}; allowed: {', '.join(JGLUE_HUB_TASKS)}")
    text_a, text_b, task_type, metric = JGLUE_TASKS[task]
    return load_hub_task(dataset, task, text_a, text_b, task_type, metric, name=task, **JGLUE_FACTS.get(task, {}))


# ---- token ids and batches ------------------------------------------------------------
def truncate_pair(a: list[int], b: list[int], max_tokens: int) -> tuple[list[int], list[int]]:
    """BERT's rule: drop the last token of the longer segment (of b on a tie) until both fit in
    `max_tokens` together."""
    a, b = list(a), list(b)
    while len(a) + len(b) > max_tokens:
        (a if len(a) > len(b) else b).pop()
    return a, b


def check_special_tokens(hf_tokenizer) -> tuple[int, int]:
    """The ids of [CLS] and [SEP], after checking that the tokenizer has them and [PAD]."""
    for name in ('cls_token_id', 'sep_token_id', 'pad_token_id'):
        if getattr(hf_tokenizer, name) is None:
            raise ValueError(f"the tokenizer has no {name.removesuffix('_id')}; fine-tuning needs [CLS], [SEP] and [PAD]")
    return hf_tokenizer.cls_token_id, hf_tokenizer.sep_token_id


def text_encoder(hf_tokenizer) -> Callable[[list[str]], list[list[int]]]:
    """Texts -> token ids without special tokens, batched: `pretrain.prepare.tokenizer.batch_encoder`,
    the encoder preprocessing uses (for a MeCab + WordPiece Japanese tokenizer the fast exact
    one; one Rust call per batch otherwise). The same ids as the tokenizer's own per-text path."""
    from pretrain.prepare.tokenizer import batch_encoder
    return batch_encoder(hf_tokenizer)


def encode(hf_tokenizer, examples: Examples, max_length: int, encoder: Callable | None = None
           ) -> list[tuple[list[int], list[int], int | float]]:
    """(input_ids, token_type_ids, label) per example in BERT's layout (`segments.bert_input`):
    [CLS] a [SEP] (b [SEP]), type 0 up to the first [SEP], 1 after; at most `max_length`
    tokens, truncated BERT-style. Multiple choice: one such row per option, [CLS] question [SEP]
    option [SEP], so input_ids is a list of rows. `encoder`: a `text_encoder` to reuse (default:
    a new one)."""
    cls, sep = check_special_tokens(hf_tokenizer)
    if max_length < 5:
        raise ValueError(f"max_length must be at least 5 ([CLS], [SEP]s and some text), got {max_length}")
    ids = encoder or text_encoder(hf_tokenizer)

    def row(a: list[int], b: list[int] | None) -> tuple[list[int], list[int]]:
        if b is None:
            return bert_input(cls, sep, a[:max_length - 2])
        return bert_input(cls, sep, *truncate_pair(a, b, max_length - 3))

    ids_a = ids(list(examples.texts_a))
    if examples.choices is not None:
        n = len(examples.choices[0])
        flat = ids([c for options in examples.choices for c in options])
        out = []
        for i, label in enumerate(examples.labels):
            rows = [row(ids_a[i], flat[i * n + k]) for k in range(n)]
            out.append(([r[0] for r in rows], [r[1] for r in rows], label))
        return out
    ids_b = ids(list(examples.texts_b)) if examples.texts_b is not None else None
    return [(*row(ids_a[i], None if ids_b is None else ids_b[i]), label) for i, label in enumerate(examples.labels)]


def pad_examples(items: Sequence[tuple[list, list, Any]], pad_idx: int, pad_to: int | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """input_ids (B, L) padded with `pad_idx`, token_type_ids (B, L) padded with 0, labels (B,)
    (int64 for classification ids, float32 for regression; (B, 2) int64 start and end
    positions for extractive QA); L is the longest row, or `pad_to`. Multiple choice (rows of
    options): (B, C, L) ids and types."""
    first = items[0][0]
    multi = isinstance(first[0], list)
    rows = [r for ids, _, _ in items for r in ids] if multi else [ids for ids, _, _ in items]
    L = max(pad_to or 0, max(len(r) for r in rows))
    shape = (len(items), len(first), L) if multi else (len(items), L)
    input_ids = torch.full(shape, pad_idx, dtype=torch.long)
    token_types = torch.zeros(shape, dtype=torch.long)
    for b, (ids, types, _) in enumerate(items):
        for c, (r, t) in enumerate(zip(ids, types) if multi else [(ids, types)]):
            at = (b, c) if multi else (b,)
            input_ids[at][:len(r)] = torch.tensor(r)
            token_types[at][:len(t)] = torch.tensor(t)
    labels = [label for _, _, label in items]
    dtype = torch.float32 if isinstance(labels[0], float) else torch.long
    return input_ids, token_types, torch.tensor(labels, dtype=dtype)


class TaskDataLoader(DataLoader):
    """A fastai `DataLoader` over encoded examples yielding (input_ids, token_type_ids, labels),
    each batch padded to its longest row (or to `pad_to`); the model gets the first two."""

    def __init__(self, dataset: list[tuple[list, list, Any]], bs: int, pad_idx: int,
                 shuffle: bool = False, seed: int | None = None, pad_to: int | None = None, **kwargs):
        if not dataset:
            raise ValueError("no examples to batch")
        super().__init__(dataset, bs=bs, shuffle=shuffle, n=len(dataset), **kwargs)
        self.pad_idx, self.pad_to, self.n_inp = pad_idx, pad_to, 2
        if seed is not None:
            self.rng = random.Random(seed)

    def new(self, dataset=None, cls=None, **kwargs):
        return super().new(dataset, cls, pad_idx=self.pad_idx, pad_to=self.pad_to, **kwargs)

    def create_batches(self, samps):
        for idxs in chunked(samps, self.bs, self.drop_last):
            yield pad_examples([self.dataset[i] for i in idxs], self.pad_idx, self.pad_to)
