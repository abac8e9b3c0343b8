"""Local text corpora as `datasets.Dataset`s of documents: one row per document, column
`text`, one sentence (or paragraph) per line. Nothing here touches the network.

Text and JSON-lines files may be gzip-compressed (`.txt.gz`, `.jsonl.gz`): they are streamed
and read exactly like their plain versions.

Besides text files, a corpus may be a directory written by `Dataset.save_to_disk`, such as
the one `python -m pretrain wiki DUMP` builds for the name 'wikipedia'."""
from __future__ import annotations

import gzip
import json
import re
import zlib
from pathlib import Path
from typing import Iterable, Iterator

import datasets

from .config import REPO_ROOT

# Corpora shipped with the repository, by name.
NAMED_DATAS: dict[str, list[str]] = {
    'sample': ['data/sample/ja.txt', 'data/sample/en.txt'],
    'sample_ja': ['data/sample/ja.txt'],
    'sample_en': ['data/sample/en.txt'],
}
# Japanese documentation corpora built by data/build_docs_ja.py from Debian packages (data/README.md)
DOCS_JA_SOURCES = ('libreoffice', 'gimp', 'debian_reference', 'debian_handbook', 'debian_edu', 'debian_policy', 'aptitude', 'kicad', 'lilypond')
NAMED_DATAS['docs_ja'] = [f'data/docs_ja/{source}.txt.gz' for source in DOCS_JA_SOURCES]
NAMED_DATAS.update({f'docs_ja_{source}': [f'data/docs_ja/{source}.txt.gz'] for source in DOCS_JA_SOURCES})
SUFFIXES = ('.txt', '.jsonl', '.parquet', '.txt.gz', '.jsonl.gz')
# Corpora built by a subcommand, by name: where they are saved and the command that builds them.
BUILT_DATAS: dict[str, tuple[str, str]] = {
    'wikipedia': ('data/corpus/wikipedia', 'python -m pretrain wiki DUMP'),
}


BLANK_LINES = re.compile(r'\n\s*\n')


def one_document(text: str) -> str:
    """A record of a .jsonl/.parquet/hub corpus is one document: its blank lines (paragraph
    breaks) are not document breaks, which would end an example (Google's `.txt` convention)."""
    return BLANK_LINES.sub('\n', text).strip()


HUB_PREFIX = 'hf:'  # hf:NAME[:CONFIG], e.g. hf:wikimedia/wikipedia:20231101.ja (needs the network)


def _hub_spec(data: str) -> tuple[str, str | None]:
    """(dataset name, config) of an `hf:NAME[:CONFIG]` data entry."""
    name, _, config = data[len(HUB_PREFIX):].partition(':')
    if not name or name.count('/') > 1 or ' ' in name:
        raise ValueError(f"hub data {data!r} must look like hf:NAME or hf:NAME:CONFIG, e.g. hf:wikimedia/wikipedia:20231101.ja")
    return name, config or None


def _load_hub_dataset(data: str) -> datasets.Dataset:
    name, config = _hub_spec(data)
    try:
        ds = datasets.load_dataset(name, config, split='train')
    except Exception as e:  # no network, unknown name or config: datasets raises many types
        raise ValueError(f"cannot load hub dataset {name!r} (config {config!r}): {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}; "
                         f"without network, use a local corpus or `python -m pretrain wiki` on a dump") from None
    if 'text' not in ds.column_names:
        raise ValueError(f"hub dataset {name!r} has no 'text' column (columns: {', '.join(ds.column_names)})")
    return ds.select_columns(['text']).map(lambda b: {'text': [one_document(t or '') for t in b['text']]},
                                           batched=True, desc='documents')


def _resolve(path: str | Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() or p.exists() else REPO_ROOT / p


def corpus_suffix(path: str | Path) -> str | None:
    """The corpus type of a file name ('.txt', '.jsonl', '.parquet', '.txt.gz' or '.jsonl.gz'),
    or None for any other file."""
    name = Path(path).name
    return next((s for s in sorted(SUFFIXES, key=len, reverse=True) if name.endswith(s) and len(name) > len(s)), None)


def _looks_like_path(data: str) -> bool:
    return '/' in data or corpus_suffix(data) is not None


def _allowed_names() -> str:
    return ', '.join(map(repr, [*NAMED_DATAS, *BUILT_DATAS]))


def is_saved_dataset(path: Path) -> bool:
    """Whether `path` is a directory written by `Dataset.save_to_disk` (or `DatasetDict`'s)."""
    return path.is_dir() and any((path / f).is_file() for f in ('state.json', 'dataset_info.json', 'dataset_dict.json'))


def _check_complete(data: str, path: Path, allow_incomplete: bool) -> None:
    """Refuse a corpus whose stats.json says its build stopped early (a truncated dump)."""
    stats_file = path / 'stats.json'
    if not stats_file.is_file():
        return
    try:
        stats = json.loads(stats_file.read_text(encoding='utf-8'))
    except (OSError, ValueError) as e:
        raise ValueError(f"data {data!r}: cannot read {stats_file} ({e}); rebuild the corpus") from None
    if isinstance(stats, dict) and stats.get('complete') is False and not allow_incomplete:
        raise ValueError(f"data {data!r} at {path} is incomplete: its build stopped early ({stats.get('error')}); "
                         f"rebuild it from a complete dump (python -m pretrain wiki DUMP), or use the partial corpus from Python with load_corpus(..., allow_incomplete=True)")


def _saved_dataset_dir(data: str) -> Path | None:
    """The save_to_disk directory behind a data name or path, if it is one."""
    if data in BUILT_DATAS:
        return _resolve(BUILT_DATAS[data][0])
    if _looks_like_path(data) and is_saved_dataset(_resolve(data)):
        return _resolve(data)
    return None


def check_data_name(data: str, allow_incomplete: bool = False) -> None:
    """Raise `ValueError` unless `data` is a named corpus (built, for BUILT_DATAS, and complete)
    or an existing corpus file/directory."""
    if not isinstance(data, str):
        raise ValueError(f"data entries must be strings, got {data!r}")
    if data in NAMED_DATAS:
        return
    if data.startswith(HUB_PREFIX):
        _hub_spec(data)
        return
    if data in BUILT_DATAS:
        path, command = _resolve(BUILT_DATAS[data][0]), BUILT_DATAS[data][1]
        if not is_saved_dataset(path):
            raise ValueError(f"data {data!r} is not built yet: run `{command}` to write {path} "
                             f"(corpora ready without a build: {', '.join(map(repr, NAMED_DATAS))})")
        _check_complete(data, path, allow_incomplete)
        return
    if _looks_like_path(data):
        p = _resolve(data)
        if not p.exists():
            raise ValueError(f"data file {data!r} does not exist; give a path to a {'/'.join(SUFFIXES)} file or a directory of them")
        if p.is_file() and corpus_suffix(p) is None:
            raise ValueError(f"data file {data!r} has an unsupported type; use one of {', '.join(SUFFIXES)}")
        if is_saved_dataset(p):
            _check_complete(data, p, allow_incomplete)
        return
    raise ValueError(f"unknown data {data!r}; allowed: {_allowed_names()}, "
                     f"a path to a {'/'.join(SUFFIXES)} file or a directory of them, or hf:NAME[:CONFIG] from the hub")


def data_files(data: str) -> list[Path]:
    """The corpus files behind a data name or path, in a stable order."""
    check_data_name(data, allow_incomplete=True)
    if data in NAMED_DATAS:
        return [_resolve(f) for f in NAMED_DATAS[data]]
    saved = _saved_dataset_dir(data)
    if saved is not None:
        return sorted(saved.rglob('*.arrow'))
    p = _resolve(data)
    if p.is_dir():
        files = sorted(f for f in p.rglob('*') if f.is_file() and corpus_suffix(f) is not None)
        if not files:
            raise ValueError(f"data directory {data!r} holds no {'/'.join(SUFFIXES)} files")
        return files
    return [p]


def _iter_lines(path: Path) -> Iterator[str]:
    """The lines of a UTF-8 text file, plain or gzip-compressed, streamed, without their line
    ends (a BOM is not text). `ValueError` naming the file for bytes that are not UTF-8 (with
    their offset in the uncompressed text) and for a corrupt or truncated gzip file."""
    gz = path.name.endswith('.gz')
    offset = 0
    try:
        with (gzip.open(path, 'rb') if gz else open(path, 'rb')) as f:
            for raw in f:
                if offset == 0 and raw.startswith(b'\xef\xbb\xbf'):
                    raw, offset = raw[3:], 3
                try:
                    line = raw.decode('utf-8')
                except UnicodeDecodeError as e:
                    raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {offset + e.start})") from None
                offset += len(raw)
                yield line.rstrip('\n').rstrip('\r')
    except (OSError, EOFError, zlib.error) as e:
        if not gz:
            raise
        raise ValueError(f"{path}: corrupt or truncated gzip file after {offset} bytes of text "
                         f"({str(e).strip() or type(e).__name__}); rebuild or download it again") from None


def read_txt_documents(path: Path) -> list[str]:
    """Documents of a text file (`.txt` or `.txt.gz`) in Google's ELECTRA format: one sentence
    per line, a blank line between documents."""
    docs, lines = [], []
    for line in (piece for text_line in _iter_lines(path) for piece in (text_line.splitlines() or [''])):
        if line.strip():
            lines.append(line.strip())
        elif lines:
            docs.append('\n'.join(lines)); lines = []
    if lines:
        docs.append('\n'.join(lines))
    return docs


def read_jsonl(lines: Iterable[str], source: Path | str, needs: str = 'a JSON object') -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-empty line of JSON-lines text; a `ValueError` naming
    `source:line` and what a line `needs` for a line that is not a JSON object."""
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{source}:{n}: not valid JSON ({e.msg})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{source}:{n}: each line needs {needs}")
        yield n, record


def _read_jsonl_documents(path: Path) -> list[str]:
    docs = []
    for n, record in read_jsonl(_iter_lines(path), path, "a JSON object with a string field 'text'"):
        if not isinstance(record.get('text'), str):
            raise ValueError(f"{path}:{n}: each JSON line needs a string field 'text'")
        docs.append(one_document(record['text']))
    return docs


def _read_parquet_documents(path: Path) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for corrupt files
        raise ValueError(f"{path}: cannot read as parquet ({e})") from None
    if 'text' not in table.column_names:
        raise ValueError(f"{path}: no 'text' column (columns: {', '.join(table.column_names)})")
    if not (pa.types.is_string(table.schema.field('text').type) or pa.types.is_large_string(table.schema.field('text').type)):
        raise ValueError(f"{path}: the 'text' column must hold strings, not {table.schema.field('text').type}")
    return [one_document(t) for t in table.column('text').to_pylist() if t]


# by corpus suffix without '.gz': the readers stream gzip files themselves
READERS = {'.txt': read_txt_documents, '.jsonl': _read_jsonl_documents, '.parquet': _read_parquet_documents}


def _load_saved_dataset(data: str, path: Path) -> datasets.Dataset:
    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:  # datasets raises several types for damaged directories
        raise ValueError(f"data {data!r}: cannot load the saved dataset at {path} ({e}); rebuild it") from None
    if isinstance(ds, datasets.DatasetDict):
        raise ValueError(f"data {data!r} is a DatasetDict with splits {', '.join(ds)}; give one split's directory")
    if 'text' not in ds.column_names:
        raise ValueError(f"data {data!r}: the saved dataset has no 'text' column (columns: {', '.join(ds.column_names)})")
    if ds.features['text'] != datasets.Value('string') and ds.features['text'] != datasets.Value('large_string'):
        raise ValueError(f"data {data!r}: the 'text' column must hold strings, not {ds.features['text']}")
    if len(ds) == 0:
        raise ValueError(f"data {data!r} holds no text: the saved dataset at {path} has no rows")
    return ds.select_columns(['text'])


def load_corpus(data: str, allow_incomplete: bool = False) -> datasets.Dataset:
    """All documents of a data name or path as a `Dataset` with one column, `text`.

    Raises `ValueError` for a missing, unreadable or empty corpus, and for an incomplete one
    (a build stopped by a truncated dump) unless `allow_incomplete`.
    """
    check_data_name(data, allow_incomplete)
    if data.startswith(HUB_PREFIX):
        return _load_hub_dataset(data)
    saved = _saved_dataset_dir(data)
    if saved is not None:
        return _load_saved_dataset(data, saved)
    docs: list[str] = []
    for f in data_files(data):
        docs += [d for d in READERS[corpus_suffix(f).removesuffix('.gz')](f) if d.strip()]
    if not docs:
        raise ValueError(f"data {data!r} holds no text: every document is empty")
    return datasets.Dataset.from_dict({'text': docs})


def data_cache_name(data: str) -> str:
    """A short name for a corpus, used in cache paths: the name itself or the file stem."""
    if data.startswith(HUB_PREFIX):
        name, config = _hub_spec(data)
        return 'hf_' + '_'.join(filter(None, (name.replace('/', '_'), config)))
    if data in NAMED_DATAS or data in BUILT_DATAS:
        return data
    p = _resolve(data)
    suffix = corpus_suffix(p) if p.is_file() else None
    return p.name[:-len(suffix)] if suffix else p.stem
