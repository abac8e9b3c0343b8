"""Local text corpora as `datasets.Dataset`s of documents: one row per document, column
`text`, one sentence (or paragraph) per line. Nothing here touches the network."""
from __future__ import annotations

import json
from pathlib import Path

import datasets

from .config import REPO_ROOT

# Corpora shipped with the repository, by name.
NAMED_DATAS: dict[str, list[str]] = {
    'sample': ['data/sample/ja.txt', 'data/sample/en.txt'],
    'sample_ja': ['data/sample/ja.txt'],
    'sample_en': ['data/sample/en.txt'],
}
SUFFIXES = ('.txt', '.jsonl', '.parquet')


def _resolve(path: str | Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() or p.exists() else REPO_ROOT / p


def _looks_like_path(data: str) -> bool:
    return '/' in data or Path(data).suffix in SUFFIXES


def check_data_name(data: str) -> None:
    """Raise `ValueError` unless `data` is a named corpus or an existing corpus file/directory."""
    if not isinstance(data, str):
        raise ValueError(f"data entries must be strings, got {data!r}")
    if data in NAMED_DATAS:
        return
    if _looks_like_path(data):
        p = _resolve(data)
        if not p.exists():
            raise ValueError(f"data file {data!r} does not exist; give a path to a {'/'.join(SUFFIXES)} file or a directory of them")
        if p.is_file() and p.suffix not in SUFFIXES:
            raise ValueError(f"data file {data!r} has an unsupported type; use one of {', '.join(SUFFIXES)}")
        return
    raise ValueError(f"unknown data {data!r}; allowed: {', '.join(map(repr, NAMED_DATAS))}, "
                     f"or a path to a {'/'.join(SUFFIXES)} file or a directory of them")


def data_files(data: str) -> list[Path]:
    """The corpus files behind a data name or path, in a stable order."""
    check_data_name(data)
    if data in NAMED_DATAS:
        return [_resolve(f) for f in NAMED_DATAS[data]]
    p = _resolve(data)
    if p.is_dir():
        files = sorted(f for f in p.rglob('*') if f.is_file() and f.suffix in SUFFIXES)
        if not files:
            raise ValueError(f"data directory {data!r} holds no {'/'.join(SUFFIXES)} files")
        return files
    return [p]


def read_txt_documents(path: Path) -> list[str]:
    """Documents of a text file in Google's ELECTRA format: one sentence per line, a blank line
    between documents."""
    try:
        raw = path.read_text(encoding='utf-8')
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    docs, lines = [], []
    for line in raw.splitlines():
        if line.strip():
            lines.append(line.strip())
        elif lines:
            docs.append('\n'.join(lines)); lines = []
    if lines:
        docs.append('\n'.join(lines))
    return docs


def _read_jsonl_documents(path: Path) -> list[str]:
    docs = []
    try:
        text = path.read_text(encoding='utf-8')
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    for n, line in enumerate(text.split('\n'), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{n}: not valid JSON ({e.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get('text'), str):
            raise ValueError(f"{path}:{n}: each JSON line needs a string field 'text'")
        docs.append(record['text'])
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
    return [t for t in table.column('text').to_pylist() if t]


READERS = {'.txt': read_txt_documents, '.jsonl': _read_jsonl_documents, '.parquet': _read_parquet_documents}


def load_corpus(data: str) -> datasets.Dataset:
    """All documents of a data name or path as a `Dataset` with one column, `text`.

    Raises `ValueError` for a missing, unreadable or empty corpus.
    """
    docs: list[str] = []
    for f in data_files(data):
        docs += [d for d in READERS[f.suffix](f) if d.strip()]
    if not docs:
        raise ValueError(f"data {data!r} holds no text: every document is empty")
    return datasets.Dataset.from_dict({'text': docs})


def data_cache_name(data: str) -> str:
    """A short name for a corpus, used in cache paths: the name itself or the file stem."""
    return data if data in NAMED_DATAS else _resolve(data).stem
