"""GLUE and JGLUE from the files of their releases, downloaded once, read offline.

GLUE: the directory `download_glue_data.py` writes (CoLA/, SST-2/, MRPC/, QQP/, STS-B/, MNLI/,
QNLI/, RTE/, WNLI/, each with train.tsv and dev.tsv; MNLI's dev is dev_matched.tsv), read with
the column positions of Google's ELECTRA code (finetune/classification/classification_tasks.py).

JGLUE: yahoojapan/JGLUE's `datasets/` folder: {task}-v{version}/train-v{version}.json and
valid-v{version}.json (the dev set). MARC-ja, JSTS, JNLI and JCommonsenseQA are JSON lines;
JSQuAD is one SQuAD-style JSON document. The newest version present is read.

Each task carries its fields, type, metric and the recipe facts Google's code attaches to it
(`Task.epochs`, `symmetric`, `label_range`) and, for JGLUE, the maximum lengths of JGLUE's own
baselines: all from `finetune/catalog.py`."""
from __future__ import annotations

import re
import sys
from pathlib import Path

from .catalog import GLUE_FACTS, GLUE_TASKS, JGLUE_FACTS, JGLUE_TASKS, STS_RANGE, canonical_name
from .data import (CHOICE_PREFIX, Examples, Task, _at, _texts, classification_labels, examples_from_rows, qa_task,
                   read_table, regression_labels, table_rows)


class MissingTask(ValueError):
    """A benchmark task whose files are not in the directory (skipped by --task all)."""


# GLUE release layout: folder, dev file, header line?, text_a / text_b / label column positions,
# label set (None: regression)
GLUE_FILES: dict[str, tuple[str, str, bool, int, int | None, int, list[str] | None]] = {
    'cola': ('CoLA', 'dev.tsv', False, 3, None, 1, ['0', '1']),
    'sst2': ('SST-2', 'dev.tsv', True, 0, None, 1, ['0', '1']),
    'mrpc': ('MRPC', 'dev.tsv', True, 3, 4, 0, ['0', '1']),
    'qqp': ('QQP', 'dev.tsv', True, 3, 4, 5, ['0', '1']),
    'stsb': ('STS-B', 'dev.tsv', True, -3, -2, -1, None),
    'mnli': ('MNLI', 'dev_matched.tsv', True, 8, 9, -1, ['contradiction', 'entailment', 'neutral']),
    'qnli': ('QNLI', 'dev.tsv', True, 1, 2, 3, ['entailment', 'not_entailment']),
    'rte': ('RTE', 'dev.tsv', True, 1, 2, 3, ['entailment', 'not_entailment']),
    'wnli': ('WNLI', 'dev.tsv', True, 1, 2, 3, ['0', '1']),
}

# JGLUE release layout (the tasks of its datasets/ folder): folder prefix, fixed label set in the
# order of the label ids (None: not classification)
JGLUE_FILES: dict[str, tuple[str, list[str] | None]] = {
    'MARC-ja': ('marc_ja', ['positive', 'negative']),
    'JSTS': ('jsts', None),
    'JNLI': ('jnli', ['entailment', 'contradiction', 'neutral']),
    'JSQuAD': ('jsquad', None),
    'JCommonsenseQA': ('jcommonsenseqa', None),
}


def task_names(benchmark: str, task: str) -> list[str]:
    """The tasks `--task` names: one (spelling and case free: jsts, marc_ja, SST-2 ...) or all."""
    names = list(JGLUE_FILES) if benchmark == 'jglue' else list(GLUE_FILES)
    if task.lower() == 'all':
        return names
    return [canonical_name(task, names, benchmark.upper(), '--task')]


# ---- GLUE --------------------------------------------------------------------------------------
def _read_glue_tsv(path: Path, header: bool) -> tuple[list[list[str]], list[int]]:
    if not path.is_file():
        raise MissingTask(f"GLUE file {path} does not exist; point --glue_dir at the folder download_glue_data.py "
                         f"writes (CoLA/, SST-2/, MRPC/ ... each with train.tsv and dev.tsv)")
    _, rows, lines = table_rows(path, 'tsv', header)
    if not rows:
        raise ValueError(f"{path} holds no examples")
    return rows, lines


def _glue_split(task: str, path: Path) -> Examples:
    folder, _, header, a, b, label, names = GLUE_FILES[task]
    rows, lines = _read_glue_tsv(path, header)
    need = max(i if i >= 0 else -i - 1 for i in (a, b if b is not None else 0, label)) + 1
    for i, fields in enumerate(rows):
        if len(fields) < need:
            raise ValueError(f"{_at(str(path), lines, i)}: {len(fields)} tab-separated field(s); GLUE's {folder} rows "
                             f"have at least {need} (text in field {a + 1 if a >= 0 else a}); is this {folder}'s file?")
    texts_a = _texts([r[a] for r in rows], 'the text', str(path), lines)
    texts_b = _texts([r[b] for r in rows], 'the second text', str(path), lines) if b is not None else None
    raw = [r[label] for r in rows]
    labels = (classification_labels(raw, names, str(path), lines, fixed=True) if names
              else regression_labels(raw, str(path), lines, STS_RANGE))
    return Examples(texts_a, texts_b, labels)


def load_glue_dir(glue_dir: str | Path, task: str) -> Task:
    """A GLUE task from the release's files under `glue_dir` (train.tsv and the dev file)."""
    root = Path(glue_dir)
    if not root.is_dir():
        raise ValueError(f"GLUE directory {root} does not exist; download GLUE once (download_glue_data.py) "
                         f"and point --glue_dir at it")
    task = canonical_name(task, list(GLUE_FILES), 'GLUE', '--task')
    folder, dev_file, *_ = GLUE_FILES[task]
    names = GLUE_FILES[task][-1]
    train, dev = (_glue_split(task, root / folder / f) for f in ('train.tsv', dev_file))
    _, _, task_type, metric = GLUE_TASKS[task]
    return Task(task, task_type, train, dev, list(names) if names else None, metric, {}, **GLUE_FACTS.get(task, {}))


# ---- JGLUE -------------------------------------------------------------------------------------
def _version(name: str) -> tuple[int, ...]:
    m = re.search(r'-v(\d+(?:\.\d+)*)(?:\.json)?$', name)
    return tuple(int(x) for x in m.group(1).split('.')) if m else ()


def jglue_files(jglue_dir: str | Path, task: str) -> tuple[Path, Path]:
    """(train, dev) files of a JGLUE task: under `jglue_dir` (the JGLUE repository or its
    datasets/ folder), the newest {prefix}-v*/ folder holding a train-v*.json and a
    valid-v*.json, and its newest of each. (JGLUE's MARC-ja is built locally by its script,
    which writes train-v1.0.json into marc_ja-v1.1/ by default, and the repository keeps an
    empty marc_ja-v1.2/: both are handled.)"""
    root = Path(jglue_dir)
    if not root.is_dir():
        raise ValueError(f"JGLUE directory {root} does not exist; clone github.com/yahoojapan/JGLUE once and "
                         f"point --jglue_dir at it (or at its datasets/ folder)")
    base = root / 'datasets' if (root / 'datasets').is_dir() else root
    prefix = JGLUE_FILES[task][0]
    folders = sorted((d for d in base.glob(f'{prefix}-v*') if d.is_dir() and _version(d.name)),
                     key=lambda d: _version(d.name), reverse=True)
    if not folders:
        raise MissingTask(f"{base} has no {prefix}-v*/ folder for {task}; JGLUE keeps each task in "
                          f"datasets/{prefix}-v1.x/ (point --jglue_dir at the JGLUE repository or its datasets/)")

    def newest(folder: Path, split: str) -> Path | None:
        files = sorted((f for f in folder.glob(f'{split}-v*.json') if _version(f.name)), key=lambda f: _version(f.name))
        return files[-1] if files else None

    for folder in folders:
        train, dev = newest(folder, 'train'), newest(folder, 'valid')
        if train and dev:
            return train, dev
    raise MissingTask(f"{', '.join(str(d) for d in folders)}: no folder holds both train-v*.json and valid-v*.json "
                      f"for {task}" + ("; build MARC-ja with JGLUE's preprocess/marc-ja script" if task == 'MARC-ja'
                                       else ''))


def load_jglue_dir(jglue_dir: str | Path, task: str) -> Task:
    """A JGLUE task from the release's files under `jglue_dir`; the dev set is valid-v*.json.
    Fields and labels are JGLUE's; a missing field or a label outside the task's set is an
    error naming the file and line."""
    task = canonical_name(task, list(JGLUE_FILES), 'JGLUE', '--task')
    train, dev = jglue_files(jglue_dir, task)
    text_a, text_b, task_type, metric = JGLUE_TASKS[task]
    labels = JGLUE_FILES[task][1]
    facts = JGLUE_FACTS[task]
    if task_type == 'extractive_qa':
        return qa_task(task, train, dev, metric, **facts)
    choices = CHOICE_PREFIX if task_type == 'multiple_choice' else None
    fields = {k: v for k, v in (('text_a', text_a), ('text_b', text_b), ('choices', choices)) if v}
    hint = f"JGLUE's {task} lines have the fields {', '.join(fields.values())} and label"
    splits = []
    for path in (train, dev):
        columns, rows, lines = read_table(path)
        splits.append(examples_from_rows(rows, columns, str(path), task_type, text_a, text_b, 'label', labels, lines,
                                         facts.get('label_range'), CHOICE_PREFIX, fixed_labels=True, hint=hint))
    if task_type == 'multiple_choice':
        for path, ex in zip((train, dev), splits):
            if len(ex.choices[0]) != 5:
                raise ValueError(f"{path}: {len(ex.choices[0])} options (choice0 ...) per question; "
                                 f"JCommonsenseQA has 5 (choice0 to choice4)")
    return Task(task, task_type, splits[0], splits[1], labels, metric, fields, **facts)


def load_benchmark(benchmark: str, directory: str | Path, task: str) -> list[Task]:
    """The tasks `--task` names ('all': every task whose files are there; the others are named on
    stderr) from a GLUE or JGLUE directory."""
    load = load_jglue_dir if benchmark == 'jglue' else load_glue_dir
    names = task_names(benchmark, task)
    if len(names) == 1:
        return [load(directory, names[0])]
    tasks, missing = [], []
    for name in names:
        try:
            tasks.append(load(directory, name))
        except MissingTask:  # a bad file is an error, a task without files is skipped
            missing.append(name)
    if not tasks:
        raise ValueError(f"{directory} holds none of the {benchmark.upper()} tasks ({', '.join(names)}); "
                         f"point --{benchmark}_dir at the {'JGLUE repository' if benchmark == 'jglue' else 'GLUE data'}")
    if missing:
        print(f"note: {directory} has no files for {', '.join(missing)}; running {', '.join(t.name for t in tasks)}",
              file=sys.stderr)
    return tasks
