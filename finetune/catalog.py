"""What the harness knows about the GLUE and JGLUE tasks, each fact written once: a task's text
fields, type and headline metric (`GLUE_TASKS`, `JGLUE_TASKS`), the recipe facts Google's code
and JGLUE's baselines attach to it (`GLUE_FACTS`, `JGLUE_FACTS`), and how a task name is matched
whatever its spelling (`name_key`, `canonical_name`, `facts_for_name`). Where the releases keep
their files is `benchmarks.py`'s; reading the hub's copies is `data.py`'s. No imports of the
project, so every module can use it."""
from __future__ import annotations

import re

STS_RANGE = (0.0, 5.0)  # the similarity scale of STS-B and JSTS

# the task types a hub dataset maps to (`data.task_from_hub`)
HUB_TASK_TYPES = ('classification', 'regression')

# GLUE (nyu-mll/glue on the hub): text fields, task type, the metric the GLUE leaderboard reports
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
# JGLUE (yahoojapan/JGLUE's files; the hub's shunk031/JGLUE configs keep their fields): text fields,
# task type, the metric JGLUE reports first. JCommonsenseQA's text is the question (its options are
# choice0 ... choice4); JSQuAD is a SQuAD-style document, no fields. JCoLA is read from the hub only.
JGLUE_TASKS: dict[str, tuple[str | None, str | None, str, str]] = {
    'MARC-ja': ('sentence', None, 'classification', 'accuracy'),
    'JCoLA': ('sentence', None, 'classification', 'mcc'),
    'JSTS': ('sentence1', 'sentence2', 'regression', 'pearson'),  # JGLUE reports Pearson / Spearman
    'JNLI': ('sentence1', 'sentence2', 'classification', 'accuracy'),
    'JSQuAD': (None, None, 'extractive_qa', 'exact_match'),
    'JCommonsenseQA': ('question', None, 'multiple_choice', 'accuracy'),
}
# the JGLUE tasks `--jglue` reads from the hub
JGLUE_HUB_TASKS = [name for name, (_, _, task_type, _) in JGLUE_TASKS.items() if task_type in HUB_TASK_TYPES]

# Google's configure_finetuning.py: 10 epochs for RTE and STS; its MRPC and STS tasks add the
# swapped pairs to training (`double_unordered`); STS labels are normalised with 0 and 5
GLUE_FACTS: dict[str, dict] = {
    'rte': {'epochs': 10},
    'stsb': {'epochs': 10, 'symmetric': True, 'label_range': STS_RANGE},
    'mrpc': {'symmetric': True},
}
# JSTS is JGLUE's STS (same 0-5 scale): treated as Google treats STS-B. Maximum lengths: JGLUE's
# baselines (fine-tuning/README.md of yahoojapan/JGLUE)
JGLUE_FACTS: dict[str, dict] = {
    'MARC-ja': {'max_length': 512},
    'JSTS': {'epochs': 10, 'symmetric': True, 'label_range': STS_RANGE, 'max_length': 128},
    'JNLI': {'max_length': 128},
    'JSQuAD': {'max_length': 384, 'f1_unit': 'char'},
    'JCommonsenseQA': {'max_length': 64},
}


def name_key(name: str) -> str:
    """A task name as it is matched: lower case, without '-', '_' or spaces (SST-2, sst_2 and
    sst2 are one task; marc_ja is MARC-ja)."""
    return re.sub(r'[-_ ]', '', name.lower())


def canonical_name(name: str, names: list[str], what: str, flag: str) -> str:
    """The one of `names` that `name` spells (`name_key`); else a one-line ValueError naming
    `flag`'s choices."""
    key = name_key(name)
    for n in names:
        if name_key(n) == key:
            return n
    raise ValueError(f"unknown {what} task {name!r}; {flag} takes one of {', '.join(names)} or all")


def facts_for_name(name: str) -> dict:
    """Google's (or JGLUE's) recipe facts for a task named like a benchmark task (a local copy
    of RTE/, STS-B/, MRPC/, JSTS ... named by its folder; 'sts' as Google's code names STS-B),
    else none."""
    key = name_key(name)
    key = 'stsb' if key == 'sts' else key
    for n, facts in (*GLUE_FACTS.items(), *JGLUE_FACTS.items()):
        if name_key(n) == key:
            return dict(facts)
    return {}
