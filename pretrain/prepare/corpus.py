"""Local text corpora as `datasets.Dataset`s of documents: one row per document, column
`text`, one sentence (or paragraph) per line. Nothing here touches the network.

Text and JSON-lines files may be gzip-compressed (`.txt.gz`, `.jsonl.gz`): they are streamed
and read exactly like their plain versions.

Files are read as a stream, a batch of documents at a time, never as one Python list: small
corpora (under `IN_MEMORY_BYTES` on disk) become an in-memory Arrow table; larger ones are
written to an Arrow file in a cache directory and memory-mapped, so a corpus bigger than the
machine's memory loads (and is preprocessed) in bounded memory.

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
import pyarrow as pa
import pyarrow.compute as pc
from datasets.table import InMemoryTable

from _utils.cli import first_line
from _utils.atomic import atomic_write
from _utils.digest import json_digest
from _utils.paths import repo_path

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
# corpus files smaller than this on disk are loaded into memory, larger ones streamed to an Arrow file
IN_MEMORY_BYTES = 16 * 2**20
# documents are gathered into Arrow record batches of at most this many characters or documents
BATCH_CHARS, BATCH_DOCUMENTS = 4 * 2**20, 4096
# a .txt document is cut at a line boundary once it is this long: a file without blank lines would
# otherwise be one document, held whole in memory by the reader and by preprocessing
MAX_DOCUMENT_CHARS = 4 * 2**20
CORPUS_FORMAT = 1  # bump when reading changes: corpora cached as Arrow files are rebuilt
TEXT_FEATURES = datasets.Features({'text': datasets.Value('string')})
TEXT_SCHEMA = TEXT_FEATURES.arrow_schema.with_metadata(
    {b'huggingface': json.dumps({'info': {'features': TEXT_FEATURES.to_dict()}}).encode()})


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
        raise ValueError(f"cannot load hub dataset {name!r} (config {config!r}): {first_line(e)}; "
                         f"without network, use a local corpus or `python -m pretrain wiki` on a dump") from None
    if 'text' not in ds.column_names:
        raise ValueError(f"hub dataset {name!r} has no 'text' column (columns: {', '.join(ds.column_names)})")
    return ds.select_columns(['text']).map(lambda b: {'text': [one_document(t or '') for t in b['text']]},
                                           batched=True, desc='documents')


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
        return repo_path(BUILT_DATAS[data][0])
    if _looks_like_path(data) and is_saved_dataset(repo_path(data)):
        return repo_path(data)
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
        path, command = repo_path(BUILT_DATAS[data][0]), BUILT_DATAS[data][1]
        if not is_saved_dataset(path):
            raise ValueError(f"data {data!r} is not built yet: run `{command}` to write {path} "
                             f"(corpora ready without a build: {', '.join(map(repr, NAMED_DATAS))})")
        _check_complete(data, path, allow_incomplete)
        return
    if _looks_like_path(data):
        p = repo_path(data)
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
        return [repo_path(f) for f in NAMED_DATAS[data]]
    saved = _saved_dataset_dir(data)
    if saved is not None:
        return sorted(saved.rglob('*.arrow'))
    p = repo_path(data)
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


def iter_txt_documents(path: Path) -> Iterator[str]:
    """Documents of a text file (`.txt` or `.txt.gz`) in Google's ELECTRA format, streamed: one
    sentence per line, a blank line between documents. A document longer than
    `MAX_DOCUMENT_CHARS` is cut at a line boundary (with a notice)."""
    lines: list[str] = []
    size = cut = 0
    for line in (piece for text_line in _iter_lines(path) for piece in (text_line.splitlines() or [''])):
        line = line.strip()
        if line:
            lines.append(line)
            size += len(line) + 1
            if size < MAX_DOCUMENT_CHARS:
                continue
            cut += 1
        if lines:
            yield '\n'.join(lines)
            lines, size = [], 0
    if lines:
        yield '\n'.join(lines)
    if cut:
        print(f"{path}: cut {cut} time(s) a document longer than {MAX_DOCUMENT_CHARS:,} characters at a line "
              f"boundary; a .txt corpus needs a blank line between documents")


def read_txt_documents(path: Path) -> list[str]:
    """All documents of a text file as a list (`iter_txt_documents`)."""
    return list(iter_txt_documents(path))


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


def _iter_jsonl_documents(path: Path) -> Iterator[str]:
    for n, record in read_jsonl(_iter_lines(path), path, "a JSON object with a string field 'text'"):
        if not isinstance(record.get('text'), str):
            raise ValueError(f"{path}:{n}: each JSON line needs a string field 'text'")
        yield one_document(record['text'])


def _iter_parquet_documents(path: Path) -> Iterator[str]:
    import pyarrow.parquet as pq
    try:
        parquet = pq.ParquetFile(path)
        schema = parquet.schema_arrow
    except Exception as e:  # pyarrow raises several types for corrupt files
        raise ValueError(f"{path}: cannot read as parquet ({e})") from None
    if 'text' not in schema.names:
        raise ValueError(f"{path}: no 'text' column (columns: {', '.join(schema.names)})")
    if not (pa.types.is_string(schema.field('text').type) or pa.types.is_large_string(schema.field('text').type)):
        raise ValueError(f"{path}: the 'text' column must hold strings, not {schema.field('text').type}")
    batches = parquet.iter_batches(batch_size=1024, columns=['text'])  # one row group at a time, not the file
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (OSError, pa.ArrowException) as e:  # a file damaged after its footer
            raise ValueError(f"{path}: cannot read as parquet ({e})") from None
        yield from (one_document(t) for t in batch.column(0).to_pylist() if t)


# by corpus suffix without '.gz': the readers stream gzip files themselves
READERS = {'.txt': iter_txt_documents, '.jsonl': _iter_jsonl_documents, '.parquet': _iter_parquet_documents}


def _document_batches(files: list[Path]) -> Iterator[pa.RecordBatch]:
    """The non-empty documents of `files`, in order, as record batches of column `text`."""
    docs: list[str] = []
    size = 0
    for f in files:
        for doc in READERS[corpus_suffix(f).removesuffix('.gz')](f):
            if not doc.strip():
                continue
            docs.append(doc)
            size += len(doc)
            if size >= BATCH_CHARS or len(docs) >= BATCH_DOCUMENTS:
                yield pa.record_batch([pa.array(docs, pa.string())], schema=TEXT_SCHEMA)
                docs, size = [], 0
    if docs:
        yield pa.record_batch([pa.array(docs, pa.string())], schema=TEXT_SCHEMA)


def preprocess_dir(data_dir: str | Path = 'data') -> Path:
    """`{data_dir}/preprocess`: every cache built from the corpora (relative paths: _utils/paths.py)."""
    return repo_path(data_dir) / 'preprocess'


def default_cache_dir(data_dir: str | Path = 'data') -> Path:
    """Where `load_corpus` keeps the Arrow files of large corpora: `{data_dir}/preprocess/corpus`."""
    return preprocess_dir(data_dir) / 'corpus'


def examples_cache(data_dir: str | Path, data: str, n_documents: int, max_length: int) -> Path:
    """Where the examples of corpus `data` are cached: `{data_dir}/preprocess/{name}_{documents}_{max_length}/electra.arrow`
    (the seed notebook's layout)."""
    return preprocess_dir(data_dir) / f'{data_cache_name(data)}_{n_documents}_{max_length}' / 'electra.arrow'


def _load_files(data: str, files: list[Path], cache_dir: str | Path | None) -> datasets.Dataset:
    """The documents of `files` as a `Dataset`: in memory when small, else streamed into (or
    reused from) `{cache_dir}/{name}-{files}-{state}.arrow`, memory-mapped. The name holds a hash
    of the files' paths and one of their sizes and modification times, so an edited file is
    read again; the file is written under a temporary name and renamed when complete."""
    stats = [f.stat() for f in files]
    empty = ValueError(f"data {data!r} holds no text: every document is empty")
    if sum(st.st_size for st in stats) < IN_MEMORY_BYTES:
        batches = list(_document_batches(files))
        if not batches:
            raise empty
        return datasets.Dataset(InMemoryTable(pa.Table.from_batches(batches, TEXT_SCHEMA)))
    source = json_digest([str(f.resolve()) for f in files], 12)
    state = json_digest([CORPUS_FORMAT, [[st.st_size, st.st_mtime_ns] for st in stats]], 12)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache_dir / f'{data_cache_name(data)}-{source}-{state}.arrow'
    if not path.is_file():
        n_docs = n_chars = 0

        def write(tmp: Path) -> None:
            nonlocal n_docs, n_chars
            with pa.OSFile(str(tmp), 'wb') as sink, pa.ipc.new_stream(sink, TEXT_SCHEMA) as writer:
                for batch in _document_batches(files):
                    writer.write_batch(batch)
                    n_docs += batch.num_rows
                    n_chars += pc.sum(pc.binary_length(batch.column(0))).as_py()  # UTF-8 bytes
            if not n_docs:
                raise empty
        try:
            atomic_write(path, write)
        except OSError as e:  # an unreadable corpus file, a read-only or full cache directory
            raise ValueError(f"data {data!r}: {e.strerror or e} ({e.filename or path}); the corpus files must be "
                             f"readable and the cache directory {cache_dir} writable with room for the text") from None
        for old in cache_dir.glob(f'{data_cache_name(data)}-{source}-*.arrow'):  # earlier versions of these files
            if old != path:
                old.unlink(missing_ok=True)
        print(f"data {data!r}: {n_docs:,} documents ({n_chars / 1e6:,.0f} MB of text) streamed into {path}")
    return datasets.Dataset.from_file(str(path))


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


def load_corpus(data: str, allow_incomplete: bool = False, cache_dir: str | Path | None = None) -> datasets.Dataset:
    """All documents of a data name or path as a `Dataset` with one column, `text`.

    Files are streamed: a corpus of `IN_MEMORY_BYTES` or more is written once to an Arrow file
    in `cache_dir` (default `default_cache_dir()`) and memory-mapped. Raises `ValueError` for a
    missing, unreadable or empty corpus, and for an incomplete one (a build stopped by a
    truncated dump) unless `allow_incomplete`.
    """
    check_data_name(data, allow_incomplete)
    if data.startswith(HUB_PREFIX):
        return _load_hub_dataset(data)
    saved = _saved_dataset_dir(data)
    if saved is not None:
        return _load_saved_dataset(data, saved)
    return _load_files(data, data_files(data), cache_dir)


def data_cache_name(data: str) -> str:
    """A short name for a corpus, used in cache paths: the name itself or the file stem."""
    if data.startswith(HUB_PREFIX):
        name, config = _hub_spec(data)
        return 'hf_' + '_'.join(filter(None, (name.replace('/', '_'), config)))
    if data in NAMED_DATAS or data in BUILT_DATAS:
        return data
    p = repo_path(data)
    suffix = corpus_suffix(p) if p.is_file() else None
    return p.name[:-len(suffix)] if suffix else p.stem
