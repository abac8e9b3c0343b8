"""Documents -> ELECTRA pre-training examples, as Google's `build_pretraining_dataset.py`
builds them: sentences accumulate until a target length, then split into segments A and B."""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.compute as pc
from datasets.table import InMemoryTable

from ..sentences import split_sentences
from ..tokenizer import batch_encoder, vocab_hash

FEATURES = datasets.Features({'input_ids': datasets.List(datasets.Value('int32')),
                              'sentA_length': datasets.Value('int32')})
STATS = ('kept_tokens', 'filtered_tokens', 'truncated_tokens')
# map() also emits one row of token counts per batch (empty input_ids), summed and dropped after
MAP_FEATURES = datasets.Features({**FEATURES, **{s: datasets.Value('int64') for s in STATS}})
FORMAT_VERSION = 2  # bump when the example layout changes: old caches are rebuilt
JAPANESE = re.compile(r'[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]')


class ELECTRADataProcessor:
    """Turns a `Dataset` of documents (column `text_col`, lines split by `lines_delimiter`)
    into examples with columns `input_ids` ([CLS] A [SEP] B [SEP]) and `sentA_length`
    (length of [CLS] A [SEP]).

    A blank line or the end of a document ends the current example. With `split_sentences`,
    Japanese lines are split into sentences at 。！？ (pretrain/sentences.py), so segments A and
    B are sentence-aligned even when a line holds a whole paragraph. Lines (sentences) shorter
    than `min_line_chars` characters are dropped when `apply_cleaning` — an int, or a dict
    `{'ja': n, 'default': m}` since Japanese packs more into a character (the English recipe
    used 80). Randomness (segment split, short targets) comes from `seed` and the batch
    position, so the same corpus, seed and `num_proc` give the same examples. After `map`,
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
        # small chance of a random-length example, so the model also sees short inputs
        self._target_length = self.rng.randint(5, self._max_length) if self.rng.random() < 0.05 else self._max_length
        return self._make_example(first_segment, second_segment)

    def _make_example(self, first_segment: list[int], second_segment: list[int]) -> dict:
        cls, sep = self.hf_tokenizer.cls_token_id, self.hf_tokenizer.sep_token_id
        input_ids = [cls] + first_segment + [sep]
        sentA_length = len(input_ids)
        if second_segment:
            input_ids += second_segment + [sep]
        return {'input_ids': input_ids, 'sentA_length': sentA_length}

    def __call__(self, texts: list[str], indices: list[int]) -> dict[str, list]:
        # a fresh RNG per batch, keyed by its first row: independent of worker scheduling
        self._reset(random.Random(self.seed * 1_000_003 + (indices[0] if indices else 0)))
        out: dict[str, list] = {'input_ids': [], 'sentA_length': [], **{s: [] for s in STATS}}

        def emit(example, stats=(0, 0, 0)):
            if example:
                out['input_ids'].append(example['input_ids'])
                out['sentA_length'].append(example['sentA_length'])
                for name, value in zip(STATS, stats):
                    out[name].append(value)

        docs, filtered = self._documents_as_ids(texts)
        for doc in docs:
            for tokids in doc:
                if tokids is None:  # blank line: ends the current example (Google's builder)
                    if self._current_length:
                        emit(self._create_example())
                elif tokids:
                    emit(self.add_line(tokids))
            if self._current_length:  # end of document
                emit(self._create_example())
        kept = sum(len(ids) for ids in out['input_ids']) - 2 * len(out['input_ids']) - sum(
            len(ids) > a for ids, a in zip(out['input_ids'], out['sentA_length']))  # minus [CLS]/[SEP]s
        emit({'input_ids': [], 'sentA_length': 0}, (kept, filtered, self._truncated))  # the batch's counts
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
        made it; a later call with the same inputs loads it instead of recomputing. The file is
        written under a temporary name and renamed, so an interrupted run leaves no file that
        looks complete.
        """
        num_proc = max(1, min(num_proc or 1, len(self.hf_dset)))
        meta = self._fingerprint()
        fingerprint = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:16]
        map_kwargs = dict(batched=True, with_indices=True, input_columns=[self.text_col],
                          remove_columns=self.hf_dset.column_names, features=MAP_FEATURES,
                          num_proc=num_proc if num_proc > 1 else None, new_fingerprint=fingerprint,
                          desc='ELECTRA examples', **kwargs)
        if cache_file_name is None:
            mapped = self.hf_dset.map(self, keep_in_memory=True, **map_kwargs)
            table, self.stats = self._split_stats(mapped.data.table)
            return datasets.Dataset(InMemoryTable(table))
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
        path.parent.mkdir(parents=True, exist_ok=True)
        work = path.parent / f'.{path.stem}.partial'
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        try:
            mapped = self.hf_dset.map(self, cache_file_name=str(work / path.name), **map_kwargs)
            table, self.stats = self._split_stats(mapped.data.table)
            _write_arrow_atomic(table, path)
            meta_path.write_text(json.dumps({'inputs': meta, 'stats': self.stats}, indent=1))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return datasets.Dataset.from_file(str(path))

    def _split_stats(self, table: pa.Table) -> tuple[pa.Table, dict[str, int]]:
        """The examples (rows with tokens, two columns) and the summed token counts."""
        stats = {name: int(pc.sum(table.column(name)).as_py() or 0) for name in STATS}
        examples = table.filter(pc.greater(pc.list_value_length(table.column('input_ids')), 0))
        examples = examples.select(list(FEATURES)).replace_schema_metadata(
            {b'huggingface': json.dumps({'info': {'features': FEATURES.to_dict()}}).encode()})
        total = sum(stats.values()) or 1
        stats['examples'] = examples.num_rows
        print(f"{examples.num_rows} examples, {stats['kept_tokens']} tokens kept; dropped "
              f"{stats['filtered_tokens']} ({stats['filtered_tokens'] / total:.1%}) by line filtering and "
              f"{stats['truncated_tokens']} ({stats['truncated_tokens'] / total:.1%}) by truncation")
        return examples, stats


def _write_arrow_atomic(table: pa.Table, path: Path) -> None:
    """Write `table` as an Arrow stream file (the format `Dataset.from_file` reads): to a
    temporary file, fsync, then rename over `path`."""
    tmp = path.with_name(path.name + '.tmp')
    with pa.OSFile(str(tmp), 'wb') as sink:
        with pa.ipc.new_stream(sink, table.schema) as writer:
            for batch in table.to_batches(max_chunksize=10_000):
                writer.write_batch(batch)
    with open(tmp, 'rb+') as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
