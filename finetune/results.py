"""Results files, for `train.finetune` and `curve.finetune_curve` alike: checked writable before
any training, written atomically after every finished seed, continued only when they were made
with the same identity (model or checkpoint fingerprints, settings) and the same task data; and
the cells their Markdown tables share. A result of one task is {'metric', 'seeds', ..., init:
{metric: `metrics.summarize`'s summary}}; JSON holds an undefined metric (nan) as null."""
from __future__ import annotations

import hashlib
import json
import math
import zipfile
from pathlib import Path
from typing import Callable

from _utils.atomic import atomic_write as atomic, write_probe
from _utils.digest import json_digest


# ---- writing -----------------------------------------------------------------------------------
def check_writable(path: str | Path) -> Path:
    """Fail before any training when results could not be written to `path` (and the .md / .png
    beside it): a directory in its place, a file where a parent directory should be, a directory
    that refuses a new file. Creates the missing parent directories."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"--out {path} is a directory; give a file name, e.g. {path / 'results.json'}")
    blocker = next((q for q in [path.parent, *path.parent.parents] if q.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise ValueError(f"cannot write {path}: {blocker} is a file, not a directory; pick another --out")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_probe(path.parent)
    except OSError as e:
        raise ValueError(f"cannot write {path} ({e.strerror or type(e).__name__}); make {path.parent} writable "
                         f"or pick another --out") from None
    return path


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """`write` a temporary file beside `path`, then rename it over `path`: a reader or an
    interruption sees the previous version or the new one, never half of one. A failure is a
    one-line ValueError (what was there stays, the temporary file goes)."""
    path = Path(path)
    try:
        return atomic(path, write)
    except OSError as e:
        raise ValueError(f"cannot write {path} ({e.strerror or type(e).__name__}); make room or make {path.parent} "
                         f"writable, then run the same command again to continue") from None


def atomic_write_text(path: str | Path, text: str) -> Path:
    """`text` to `path` (UTF-8), atomically (`atomic_write`)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding='utf-8'))


def json_safe(x):
    """`x` with every non-finite float as None: JSON has no nan (a constant prediction makes a
    correlation undefined)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x


# ---- continuing --------------------------------------------------------------------------------
def _plain(x):
    """`x` as it reads back from JSON (tuples as lists, nan as null)."""
    return json.loads(json.dumps(json_safe(x)))


def _difference(there, here, key: str) -> str | None:
    """The first key where two JSON values differ, as 'key: A there, B here'; None if equal."""
    if isinstance(there, dict) and isinstance(here, dict):
        for k in [*here, *(k for k in there if k not in here)]:
            d = _difference(there.get(k), here.get(k), f'{key}.{k}')
            if d:
                return d
        return None
    if there == here:
        return None
    return f"{key}: {json.dumps(there)[:60]} there, {json.dumps(here)[:60]} here"


def previous_results(path: str | Path, identity: dict) -> dict | None:
    """The results in `path`, when they were made with `identity` (keys that must hold the same
    values: model, settings...); None when `path` does not exist. Results of anything else, or a
    file that is not a results JSON, is a one-line ValueError: another --out, or delete it."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        stored = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        stored = e
    if not isinstance(stored, dict):
        raise ValueError(f"{path} exists but is not a results JSON; pick another --out, or delete {path}")
    for k, v in identity.items():
        diff = _difference(stored.get(k), _plain(v), k)
        if diff:
            raise ValueError(f"{path} holds results made with another model or other settings ({diff}); pick another "
                             f"--out, or delete {path} to start over")
    return stored


def check_same_tasks(stored: list[dict], facts: dict[str, dict], path: str | Path) -> None:
    """Each stored result of a task (`stored`: dicts {task name: result}) must have the facts
    (data sizes, labels, metric...) that the task has now (`facts`: {task name: facts});
    otherwise its runs cannot be continued (one-line ValueError)."""
    for results in stored:
        for name, f in facts.items():
            result = results.get(name)
            diff = None if result is None else _difference({k: result.get(k) for k in f}, _plain(f), name)
            if diff:
                raise ValueError(f"{path} holds results of another version of task {name} ({diff}); pick another "
                                 f"--out, or delete {path} to start over")


def finished_seeds(result: dict | None, init: str) -> int:
    """How many of the seeds of `init` a (possibly partial) task result holds: seeds run in
    order, so they are the first ones of result['seeds']."""
    summaries = (result or {}).get(init) or {}
    return min((len(v['runs']) for v in summaries.values()), default=0)


def metric_value(x: float | None) -> float:
    """A metric as read from the JSON, where an undefined one (nan) is null."""
    return math.nan if x is None else x


# ---- fingerprints ------------------------------------------------------------------------------
def model_fingerprint(model_dir: str | Path) -> str:
    """sha256 of a model directory's files (names and contents: config, weights, tokenizer), so
    results are only continued with the very model that began them."""
    h = hashlib.sha256()
    for p in sorted(q for q in Path(model_dir).iterdir() if q.is_file()):
        h.update(p.name.encode() + b'\0')
        with p.open('rb') as f:
            h.update(hashlib.file_digest(f, 'sha256').digest())
    return h.hexdigest()


def checkpoint_fingerprint(path: str | Path) -> str:
    """A fingerprint of a checkpoint file from its zip directory (every record's name, CRC-32 and
    size; torch.save also writes a random serialization id): it changes when the file is saved
    again, not when it is copied, and reads only the end of the file."""
    with zipfile.ZipFile(path) as z:
        records = sorted((i.filename.split('/', 1)[-1], i.CRC, i.file_size) for i in z.infolist())
    return json_digest(records, 16)


# ---- Markdown cells ----------------------------------------------------------------------------
def metric_text(x: float | None, width: int = 7) -> str:
    """A metric with 4 decimals, right-aligned in `width` (0: no padding); 'nan' when undefined."""
    return f"{x:{width}.4f}" if x is not None and math.isfinite(x) else f"{'nan':>{width}s}"


def mean_std(summary: dict | None) -> str:
    """'mean ± std' of a metric's summary; '—' when not run."""
    return f"{metric_text(summary['mean'], 0)} ± {metric_text(summary['std'], 0)}" if summary else '—'


def gain(pretrained: dict | None, random: dict | None) -> str:
    """Points the pre-trained weights gain over random init (difference of the means x 100);
    '—' when either is not run or undefined."""
    if not (pretrained and random and math.isfinite(metric_value(pretrained['mean'])) and
            math.isfinite(metric_value(random['mean']))):
        return '—'
    return f"{(pretrained['mean'] - random['mean']) * 100:+.1f}"


def seeds_done(done: int, result: dict) -> str:
    """How many of the task result's seeds are done: 'N', or 'n of N' while partial."""
    n = len(result['seeds'])
    return str(done) if done == n else f"{done} of {n}"


def markdown_table(head: list[str], rows: list[list[str]]) -> str:
    """A Markdown table: the header, its rule, a line per row."""
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    return '\n'.join(lines + ['| ' + ' | '.join(row) + ' |' for row in rows])
