"""Documents -> ELECTRA pre-training examples, as Google's `build_pretraining_dataset.py`
builds them: sentences accumulate until a target length, then split into segments A and B."""
from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Callable, Iterator

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets.table import InMemoryTable

from _utils.digest import json_digest
from _utils.japanese import JAPANESE
from _utils.segments import bert_input
from _utils.atomic import atomic_write, remove_stale_temps, temp_sibling
from pretrain.prepare.sentences import split_sentences
from pretrain.prepare.tokenizer import batch_encoder
from pretrain.prepare.vocab import vocab_hash

# the columns training reads (pretrain/get_dataloaders.py)
FEATURES = datasets.Features({'input_ids': datasets.List(datasets.Value('int32')),
                              'sentA_length': datasets.Value('int32')})
# the columns the processor writes: also the row of the source document in the corpus, so the
# held-out split can take whole documents (validation_cb.split_validation); loaders ignore it
EXAMPLE_FEATURES = datasets.Features({**FEATURES, 'doc_id': datasets.Value('int64')})
EXAMPLE_SCHEMA = EXAMPLE_FEATURES.arrow_schema.with_metadata(
    {b'huggingface': json.dumps({'info': {'features': EXAMPLE_FEATURES.to_dict()}}).encode()})
STATS = ('kept_tokens', 'filtered_tokens', 'truncated_tokens')
# map() also emits one row of token counts per batch (empty input_ids), summed and dropped after
MAP_FEATURES = datasets.Features({**EXAMPLE_FEATURES, **{s: datasets.Value('int64') for s in STATS}})
# 3: randomness keyed by document, `doc_id` column
FORMAT_VERSION = 4  # bump when the examples change (layout, or the line filter's character classes)
# the cache file is written in record batches of this many examples whatever the map's batches
# and processes, so the same inputs give a byte-identical file
ROWS_PER_RECORD_BATCH = 4096
# with a cache file, documents are mapped in parts of about this much text per process, each part
# by fresh worker processes: what a worker holds, the pages of the memory-mapped corpus it has
# read included, is given back when its part ends, so the peak memory does not grow with the corpus
PART_BYTES_PER_PROCESS = 64 * 2**20


class ELECTRADataProcessor:
    """Turns a `Dataset` of documents (column `text_col`, lines split by `lines_delimiter`)
    into examples with columns `input_ids` ([CLS] A [SEP] B [SEP]), `sentA_length`
    (length of [CLS] A [SEP]) and `doc_id` (the row of the document in `hf_dset`; the examples
    of a document are consecutive, in document order).

    A blank line or the end of a document ends the current example. With `split_sentences`,
    Japanese lines are split into sentences at 。！？ (pretrain/prepare/sentences.py), so segments A and
    B are sentence-aligned even when a line holds a whole paragraph. Lines (sentences) shorter
    than `min_line_chars` characters are dropped when `apply_cleaning` — an int, or a dict
    `{'ja': n, 'default': m}` since Japanese packs more into a character (the English recipe
    used 80). Randomness (segment split, short targets) comes from a RNG per document, seeded
    from `seed` and the document's row: the same corpus, tokenizer, seed and `max_length` give
    byte-identical examples whatever `num_proc` and `batch_size`. After `map`,
    `self.stats` counts the tokens kept, dropped by filtering and dropped by truncation.
    """

    def __init__(self, hf_dset: datasets.Dataset, hf_tokenizer, max_length: int, text_col: str = 'text',
                 lines_delimiter: str = '\n', minimize_data_size: bool = True, apply_cleaning: bool = True,
                 min_line_chars: int | dict[str, int] = 0, seed: int = 0, split_sentences: bool = True):
        if text_col not in hf_dset.column_names:
            raise ValueError(f"the dataset has no column {text_col!r} (columns: {', '.join(hf_dset.column_names)})")
        if not minimize_data_size:
            raise ValueError("minimize_data_size=False is not supported: examples store input_ids and sentA_length only")
        if isinstance(min_line_chars, dict) and set(min_line_chars) - {'ja', 'default'}:
            raise ValueError(f"min_line_chars keys must be 'ja' and 'default', got {sorted(min_line_chars)}")
        if max_length < 8:
            raise ValueError(f"max_length must be at least 8, got {max_length}")
        self.hf_dset, self.hf_tokenizer, self.text_col = hf_dset, hf_tokenizer, text_col
        self.lines_delimiter, self.apply_cleaning, self.min_line_chars = lines_delimiter, apply_cleaning, min_line_chars
        self.seed, self.split_sentences, self.stats = seed, split_sentences, None
        self.encode = batch_encoder(hf_tokenizer)
        self._max_length = max_length
        self._reset(random.Random(seed))

    def _reset(self, rng: random.Random) -> None:
        self.rng = rng
        self._truncated = 0
        self._current_sentences: list[list[int]] = []
        self._current_length = 0
        self._target_length = self._max_length

    def _start_document(self, doc_id: int) -> None:
        """A fresh builder for document `doc_id`, with its own RNG: its examples depend on the
        seed and the document alone, never on the batch or worker process it falls in."""
        # a str seed goes through SHA-512: stable across processes, Python runs and platforms
        self.rng = random.Random(f'electra/{self.seed}/{doc_id}')
        self._current_sentences, self._current_length = [], 0
        # Google's builder carries the target drawn after the previous document's last example
        # into the next document; drawing it here the same way keeps the 5% of short targets
        self._target_length = self._next_target_length()

    def _next_target_length(self) -> int:
        # small chance of a random-length example, so the model also sees short inputs
        return self.rng.randint(5, self._max_length) if self.rng.random() < 0.05 else self._max_length

    # ---- text -> token ids --------------------------------------------------------------
    def clean(self, line: str) -> str:
        # "()" is what is left of a parenthesis whose link was removed by wiki extraction
        return line.strip().replace('\n', ' ').replace('()', '')

    def filter_out(self, line: str) -> bool:
        if not self.apply_cleaning:
            return False
        limit = self.min_line_chars
        if isinstance(limit, dict):
            limit = limit.get('ja' if JAPANESE.search(line) else 'default', limit.get('default', 0))
        return len(line) < limit

    def _documents_as_ids(self, texts: list[str]) -> tuple[list[list[list[int] | None]], int]:
        """Per document, the token ids of each kept sentence; `None` marks a blank line. Also
        the number of tokens in the sentences that were filtered out."""
        docs, lines, dropped = [], [], []
        for text in texts:
            doc = []
            for line in re.split(self.lines_delimiter, text or ''):
                if not line.strip():
                    doc.append(None)
                    continue
                line = self.clean(line) if self.apply_cleaning else line
                for sentence in split_sentences(line) if self.split_sentences else [line]:
                    if self.filter_out(sentence):
                        dropped.append(sentence)
                    else:
                        doc.append(len(lines))
                        lines.append(sentence)
            docs.append(doc)
        ids = self.encode(lines)  # all sentences of all documents of the batch at once
        filtered = sum(map(len, self.encode(dropped)))
        return [[None if i is None else ids[i] for i in doc] for doc in docs], filtered

    # ---- ids -> examples (Google's ExampleBuilder) ----------------------------------------
    def add_line(self, tokids: list[int]) -> dict | None:
        """Add a sentence; return an example once the target length is reached."""
        self._current_sentences.append(tokids)
        self._current_length += len(tokids)
        if self._current_length >= self._target_length:
            return self._create_example()
        return None

    def _create_example(self) -> dict:
        # small chance of a single segment, as in classification tasks
        if self.rng.random() < 0.1:
            first_segment_target_length = 100000
        else:
            # -3: [CLS] and two [SEP] are not in the sentences yet
            first_segment_target_length = (self._target_length - 3) // 2
        first_segment: list[int] = []
        second_segment: list[int] = []
        for sentence in self._current_sentences:
            # A takes the sentence if A is empty, if it fits under A's target, or half of the
            # time when B is still empty and A is under its target
            if (not first_segment
                    or len(first_segment) + len(sentence) < first_segment_target_length
                    or (not second_segment and len(first_segment) < first_segment_target_length
                        and self.rng.random() < 0.5)):
                first_segment += sentence
            else:
                second_segment += sentence
        before = len(first_segment) + len(second_segment)
        first_segment = first_segment[:self._max_length - 2]
        second_segment = second_segment[:max(0, self._max_length - len(first_segment) - 3)]
        self._truncated += before - len(first_segment) - len(second_segment)
        self._current_sentences, self._current_length = [], 0
        self._target_length = self._next_target_length()
        return self._make_example(first_segment, second_segment)

    def _make_example(self, first_segment: list[int], second_segment: list[int]) -> dict:
        # an empty second segment is none (Google's 10% of single-segment examples)
        input_ids, _ = bert_input(self.hf_tokenizer.cls_token_id, self.hf_tokenizer.sep_token_id,
                                  first_segment, second_segment or None)
        return {'input_ids': input_ids, 'sentA_length': len(first_segment) + 2}  # [CLS] A [SEP]

    def __call__(self, texts: list[str], indices: list[int], offset: int = 0) -> dict[str, list]:
        """One `Dataset.map` batch: the documents `texts` at rows `offset + indices` of
        `hf_dset` -> columns of `MAP_FEATURES`: the examples, then one row of the batch's
        token counts."""
        self._truncated = 0
        out: dict[str, list] = {'input_ids': [], 'sentA_length': [], 'doc_id': [], **{s: [] for s in STATS}}

        def emit(example, doc_id, stats=(0, 0, 0)):
            if example:
                out['input_ids'].append(example['input_ids'])
                out['sentA_length'].append(example['sentA_length'])
                out['doc_id'].append(doc_id)
                for name, value in zip(STATS, stats):
                    out[name].append(value)

        docs, filtered = self._documents_as_ids(texts)
        for doc_id, doc in zip((offset + i for i in indices), docs):
            self._start_document(doc_id)
            for tokids in doc:
                if tokids is None:  # blank line: ends the current example (Google's builder)
                    if self._current_length:
                        emit(self._create_example(), doc_id)
                elif tokids:
                    emit(self.add_line(tokids), doc_id)
            if self._current_length:  # end of document
                emit(self._create_example(), doc_id)
        kept = sum(len(ids) for ids in out['input_ids']) - 2 * len(out['input_ids']) - sum(
            len(ids) > a for ids, a in zip(out['input_ids'], out['sentA_length']))  # minus [CLS]/[SEP]s
        emit({'input_ids': [], 'sentA_length': 0}, -1, (kept, filtered, self._truncated))  # the batch's counts
        return out

    # ---- Dataset.map with a reusable, atomically written cache ----------------------------
    def _fingerprint(self) -> dict:
        tok = self.hf_tokenizer
        return {'format': FORMAT_VERSION, 'rows': len(self.hf_dset), 'dataset': self.hf_dset._fingerprint,
                'max_length': self._max_length, 'seed': self.seed, 'min_line_chars': self.min_line_chars,
                'apply_cleaning': self.apply_cleaning, 'lines_delimiter': self.lines_delimiter,
                'split_sentences': self.split_sentences,
                'tokenizer': type(tok).__name__, 'vocab': vocab_hash(tok)}

    def map(self, cache_file_name: str | None = None, num_proc: int | None = None, **kwargs) -> datasets.Dataset:
        """Process all documents with `Dataset.map(batched=True, num_proc=...)`.

        With `cache_file_name`, the result is one Arrow file there plus a `.json` record of what
        made it; a later call with the same inputs loads it (memory-mapped) instead of
        recomputing. The file is written under a temporary name and renamed, so an interrupted
        run leaves no file that looks complete; it is the same, byte for byte, whatever
        `num_proc` and `batch_size`. Memory stays bounded: the documents are read from their
        (memory-mapped) dataset batch by batch and the examples are streamed to disk.
        """
        num_proc = max(1, min(num_proc or 1, len(self.hf_dset)))
        meta = self._fingerprint()
        fingerprint = json_digest(meta)
        map_kwargs = dict(batched=True, with_indices=True, input_columns=[self.text_col],
                          remove_columns=self.hf_dset.column_names, features=MAP_FEATURES,
                          num_proc=num_proc if num_proc > 1 else None, new_fingerprint=fingerprint,
                          desc='ELECTRA examples', **kwargs)
        if cache_file_name is None:
            mapped = self.hf_dset.map(self, keep_in_memory=True, **map_kwargs)
            tables: list[pa.Table] = []
            self.stats = self._copy_examples(_record_batches(mapped), tables.append)
            return datasets.Dataset(InMemoryTable(pa.concat_tables(tables) if tables else EXAMPLE_SCHEMA.empty_table()))
        path = Path(cache_file_name)
        if not path.suffix:
            path = path.with_suffix('.arrow')
        meta_path = path.with_suffix('.json')
        if path.exists() and meta_path.exists():
            record = json.loads(meta_path.read_text())
            if record.get('inputs') == meta:
                self.stats = record.get('stats')
                return datasets.Dataset.from_file(str(path))
        meta_path.unlink(missing_ok=True)
        # the workers' map output goes into a scratch directory of this writer's (a killed run's is removed)
        work = temp_sibling(path.parent / f'.{path.stem}', 'partial')
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(work.parent / f'.{path.stem}', 'partial')
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()

        def write(tmp: Path) -> None:
            with pa.OSFile(str(tmp), 'wb') as sink, pa.ipc.new_stream(sink, EXAMPLE_SCHEMA) as writer:
                self.stats = self._copy_examples(self._map_parts(work, map_kwargs), writer.write_table)
        try:
            atomic_write(path, write)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        # renamed too: a reader never sees half a record
        atomic_write(meta_path, lambda tmp: tmp.write_text(json.dumps({'inputs': meta, 'stats': self.stats}, indent=1)))
        return datasets.Dataset.from_file(str(path))

    def _map_parts(self, work: Path, map_kwargs: dict) -> Iterator[pa.RecordBatch]:
        """The map output, in order, of the documents in parts of about `PART_BYTES_PER_PROCESS`
        of text per process, each mapped into `work` by its own pool of `num_proc` processes,
        its files deleted once read."""
        n = len(self.hf_dset)
        bytes_per_doc = max(1, self.hf_dset.data.nbytes // max(1, self.hf_dset.data.num_rows))  # sizes only, no read
        num_proc = map_kwargs['num_proc'] or 1
        rows = max(num_proc, num_proc * PART_BYTES_PER_PROCESS // bytes_per_doc)
        starts = range(0, n, rows)
        for i, start in enumerate(starts):
            part = self.hf_dset.select(range(start, min(n, start + rows)))  # contiguous rows: a slice, not a copy
            name = work / f'part{i:05d}.arrow'
            desc = map_kwargs['desc'] + (f' (part {i + 1} of {len(starts)})' if len(starts) > 1 else '')
            mapped = part.map(self, **{**map_kwargs, 'cache_file_name': str(name), 'fn_kwargs': {'offset': start},
                                       'num_proc': min(num_proc, len(part)) if num_proc > 1 else None,
                                       'new_fingerprint': f"{map_kwargs['new_fingerprint']}-{i}", 'desc': desc})
            yield from _record_batches(mapped)
            del mapped
            for f in work.glob(f'{name.stem}*'):
                f.unlink()

    def _copy_examples(self, batches: Iterator[pa.RecordBatch], write: Callable[[pa.Table], None]) -> dict[str, int]:
        """Pass the examples of the map output `batches` to `write`, in tables of
        `ROWS_PER_RECORD_BATCH` rows (one chunk each; the last may be shorter) and without the
        count rows; return the summed token counts."""
        stats = dict.fromkeys(STATS, 0)
        pending: list[pa.Table] = []
        n_pending = n_examples = 0
        for batch in batches:
            for name in STATS:
                stats[name] += int(pc.sum(batch.column(name)).as_py() or 0)
            examples = pa.Table.from_batches([batch]).filter(
                pc.greater(pc.list_value_length(batch.column('input_ids')), 0))
            examples = examples.select(list(EXAMPLE_FEATURES)).cast(EXAMPLE_SCHEMA)
            pending.append(examples)
            n_pending += examples.num_rows
            n_examples += examples.num_rows
            while n_pending >= ROWS_PER_RECORD_BATCH:
                table = pa.concat_tables(pending)
                write(_fresh(table.slice(0, ROWS_PER_RECORD_BATCH)))
                pending, n_pending = [table.slice(ROWS_PER_RECORD_BATCH)], n_pending - ROWS_PER_RECORD_BATCH
        if n_pending:
            write(_fresh(pa.concat_tables(pending)))
        total = sum(stats.values()) or 1
        stats['examples'] = n_examples
        print(f"{n_examples} examples, {stats['kept_tokens']} tokens kept; dropped "
              f"{stats['filtered_tokens']} ({stats['filtered_tokens'] / total:.1%}) by line filtering and "
              f"{stats['truncated_tokens']} ({stats['truncated_tokens'] / total:.1%}) by truncation")
        return stats


def _fresh(table: pa.Table) -> pa.Table:
    """`table` as one chunk in newly allocated buffers: the Arrow IPC writer's bytes depend on the
    buffers behind a slice, so a copy makes them depend on the rows alone."""
    return table.take(pa.array(np.arange(table.num_rows)))


def _record_batches(mapped: datasets.Dataset) -> Iterator[pa.RecordBatch]:
    """The rows of a fresh `Dataset.map` output, batch by batch, in order. Its cache files
    (one per process) are read with plain reads, not memory-mapped: pages already copied are
    not held in this process's resident memory."""
    files = [f['filename'] for f in mapped.cache_files]
    if not files:  # kept in memory
        yield from mapped.data.table.to_batches()
        return
    n_rows = 0
    for name in files:
        with pa.OSFile(name) as source:
            for batch in pa.ipc.open_stream(source):
                n_rows += batch.num_rows
                yield batch
    if n_rows != len(mapped):  # the files are not the whole output (never expected): fail, not a short cache
        raise RuntimeError(f"internal error: the map output files hold {n_rows} rows but the mapped dataset {len(mapped)}")
