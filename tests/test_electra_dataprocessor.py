"""ELECTRADataProcessor: documents -> pre-training examples as Google's ELECTRA
`build_pretraining_dataset.py` (ExampleBuilder) makes them."""
import json
import os
import random
import string

import datasets
import pytest

from pretrain._utils.electra_dataprocessor import FORMAT_VERSION, ELECTRADataProcessor
from pretrain.prepare.corpus import load_corpus

LETTERS = string.ascii_lowercase  # each lowercase letter is exactly one token of the shipped tokenizer


# ---- helpers ------------------------------------------------------------------------------
def dset(texts):
    return datasets.Dataset.from_dict({'text': list(texts)})


def process(tokenizer, texts, max_length=32, **kwargs):
    map_kwargs = {k: kwargs.pop(k) for k in ('cache_file_name', 'num_proc', 'batch_size') if k in kwargs}
    return ELECTRADataProcessor(dset(texts), tokenizer, max_length=max_length, **kwargs).map(**map_kwargs)


def random_line(rng, n, letters=LETTERS):
    return ' '.join(rng.choice(letters) for _ in range(n))


def segments(ids, sentA_length):
    """(A, B) token ids without [CLS]/[SEP]."""
    a = ids[1:sentA_length - 1]
    b = ids[sentA_length:-1] if len(ids) > sentA_length else []
    return a, b


def examples(out):
    return list(zip(out['input_ids'], out['sentA_length']))


def ids_of(tokenizer, line):
    return tokenizer.convert_tokens_to_ids(tokenizer.tokenize(line))


@pytest.fixture(scope='module')
def long_corpus():
    """10 documents of 1500 short lines (3..8 one-letter tokens): thousands of examples."""
    rng = random.Random(1234)
    return ['\n'.join(random_line(rng, rng.randint(3, 8)) for _ in range(1500)) for _ in range(10)]


@pytest.fixture(scope='module')
def long_out(tokenizer, long_corpus):
    return process(tokenizer, long_corpus, max_length=32, seed=3)


class GoogleExampleBuilder:
    """Google's ELECTRA ExampleBuilder (build_pretraining_dataset.py), on token ids, with an
    explicit RNG in place of the `random` module."""

    def __init__(self, max_length, rng):
        self._max_length, self.rng = max_length, rng
        self._current_sentences, self._current_length, self._target_length = [], 0, max_length

    def add_line(self, bert_tokids):
        self._current_sentences.append(bert_tokids)
        self._current_length += len(bert_tokids)
        if self._current_length >= self._target_length:
            return self._create_example()
        return None

    def _create_example(self):
        if self.rng.random() < 0.1:
            first_segment_target_length = 100000
        else:
            first_segment_target_length = (self._target_length - 3) // 2
        first_segment, second_segment = [], []
        for sentence in self._current_sentences:
            if (len(first_segment) == 0 or
                    len(first_segment) + len(sentence) < first_segment_target_length or
                    (len(second_segment) == 0 and
                     len(first_segment) < first_segment_target_length and
                     self.rng.random() < 0.5)):
                first_segment += sentence
            else:
                second_segment += sentence
        first_segment = first_segment[:self._max_length - 2]
        second_segment = second_segment[:max(0, self._max_length - len(first_segment) - 3)]
        self._current_sentences, self._current_length = [], 0
        if self.rng.random() < 0.05:
            self._target_length = self.rng.randint(5, self._max_length)
        else:
            self._target_length = self._max_length
        return first_segment, second_segment


# ---- example layout -----------------------------------------------------------------------
def test_columns_and_special_tokens_layout(tokenizer):
    docs = load_corpus('sample')
    out = ELECTRADataProcessor(docs, tokenizer, max_length=64).map()
    assert out.column_names == ['input_ids', 'sentA_length', 'doc_id']
    assert len(out) > 20
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    n_two = 0
    for ids, sa in examples(out):
        assert 3 <= len(ids) <= 64
        assert ids[0] == cls and ids[sa - 1] == sep and ids[-1] == sep
        a, b = segments(ids, sa)
        assert a, "segment A is never empty"
        # [CLS]/[SEP] appear only at their structural positions
        assert cls not in a + b and sep not in a + b and tokenizer.pad_token_id not in ids
        if len(ids) == sa:
            assert not b
        else:
            n_two += 1
            assert b and len(ids) == sa + len(b) + 1
    assert n_two > len(out) // 2  # most examples have two segments


def test_length_bounded_and_target_reached(tokenizer, long_out):
    lengths = [len(ids) for ids in long_out['input_ids']]
    assert max(lengths) <= 32
    assert sum(n == 32 for n in lengths) / len(lengths) > 0.8


def test_overlong_line_is_truncated_to_max_length(tokenizer):
    line = ' '.join(LETTERS * 4)  # 104 tokens, one sentence
    out = process(tokenizer, [line], max_length=16)
    (ids, sa), = examples(out)
    assert len(ids) == 16 and sa == 16  # one segment: [CLS] 14 tokens [SEP]
    assert ids[1:-1] == ids_of(tokenizer, line)[:14]


def test_max_length_8_is_accepted(tokenizer):
    out = process(tokenizer, ['a b c d e f g h i j k l'], max_length=8)
    assert all(len(ids) <= 8 for ids in out['input_ids'])


# ---- sentences accumulate until the target; nothing lost but truncation -------------------
def test_examples_are_consecutive_lines_in_order(tokenizer):
    rng = random.Random(7)
    L, max_length = 6, 40
    lines = []
    while len(lines) < 400:  # distinct lines, all L tokens: each example's first line is identifiable
        line = random_line(rng, L)
        if line not in lines:
            lines.append(line)
    line_ids = [ids_of(tokenizer, line) for line in lines]
    assert all(len(x) == L for x in line_ids)
    out = process(tokenizer, ['\n'.join(lines)], max_length=max_length, seed=5)
    first_line = {tuple(x): i for i, x in enumerate(line_ids)}
    contents = [a + b for a, b in (segments(ids, sa) for ids, sa in examples(out))]
    starts = [first_line[tuple(c[:L])] for c in contents] + [len(lines)]
    assert starts[0] == 0
    assert all(s < e for s, e in zip(starts, starts[1:]))  # consecutive, in order, every line used
    for c, s, e in zip(contents, starts, starts[1:]):
        consumed = [t for x in line_ids[s:e] for t in x]
        # the segments hold the consumed lines in order; only the overflow is cut
        assert c == consumed[:len(c)]
        if len(c) < len(consumed):
            assert len(c) >= max_length - 3
        # lines accumulate only until the target (<= max_length) is reached
        assert (e - s - 1) * L < max_length


def test_whole_lines_go_to_a_then_b_like_google(tokenizer):
    """With lines of varied length, A and B are each built of whole sentences; compared
    with Google's ExampleBuilder fed the same sentences and the same random draws."""
    rng = random.Random(11)
    sentences = [ids_of(tokenizer, random_line(rng, rng.randint(1, 20))) for _ in range(3000)]
    for seed in (0, 1):
        proc = ELECTRADataProcessor(dset(['x']), tokenizer, max_length=48, seed=seed)
        proc.rng = random.Random(seed)
        ref = GoogleExampleBuilder(48, random.Random(seed))
        n = 0
        for s in sentences:
            got, want = proc.add_line(list(s)), ref.add_line(list(s))
            assert (got is None) == (want is None)
            if got is not None:
                n += 1
                a, b = want
                cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
                expected = [cls] + a + [sep] + (b + [sep] if b else [])
                assert got == {'input_ids': expected, 'sentA_length': len(a) + 2}
        assert n > 500


# ---- example boundaries: blank lines and documents ------------------------------------------
def test_blank_line_ends_the_example(tokenizer):
    rng = random.Random(3)
    first = [random_line(rng, 5, LETTERS[:13]) for _ in range(23)]
    second = [random_line(rng, 5, LETTERS[13:]) for _ in range(23)]
    out = process(tokenizer, ['\n'.join(first) + '\n\n\n' + '\n'.join(second)], max_length=32)
    ids_first = set(tokenizer.convert_tokens_to_ids(list(LETTERS[:13])))
    ids_second = set(tokenizer.convert_tokens_to_ids(list(LETTERS[13:])))
    sides = []
    for ids, sa in examples(out):
        toks = set(sum(segments(ids, sa), []))
        assert toks <= ids_first or toks <= ids_second, "an example spans a blank line"
        sides.append(toks <= ids_first)
    assert sides == sorted(sides, reverse=True) and True in sides and False in sides


def test_short_pieces_between_blank_lines_become_their_own_examples(tokenizer):
    out = process(tokenizer, ['a b c\n\nd e\n\n\nf', 'g h'], max_length=64)
    got = [sum(segments(ids, sa), []) for ids, sa in examples(out)]
    assert got == [ids_of(tokenizer, s) for s in ('a b c', 'd e', 'f', 'g h')]


def test_examples_never_span_documents(tokenizer):
    rng = random.Random(4)
    docs = [('\n'.join(random_line(rng, 7, LETTERS[:13]) for _ in range(30)) if d % 2 == 0 else
             '\n'.join(random_line(rng, 7, LETTERS[13:]) for _ in range(30))) for d in range(6)]
    out = process(tokenizer, docs, max_length=40)
    ids_first = set(tokenizer.convert_tokens_to_ids(list(LETTERS[:13])))
    ids_second = set(tokenizer.convert_tokens_to_ids(list(LETTERS[13:])))
    sides = []
    for ids, sa in examples(out):
        toks = set(sum(segments(ids, sa), []))
        assert toks <= ids_first or toks <= ids_second, "an example spans two documents"
        side = toks <= ids_first
        if not sides or sides[-1] != side:
            sides.append(side)
    assert sides == [True, False] * 3  # in document order


def test_empty_documents_give_no_examples(tokenizer):
    out = process(tokenizer, ['', '\n\n', 'a b c'], max_length=16)
    assert out['input_ids'] == [[tokenizer.cls_token_id] + ids_of(tokenizer, 'a b c') + [tokenizer.sep_token_id]]


# ---- random single segments and short targets ------------------------------------------------
def test_single_segment_fraction_about_ten_percent(long_out):
    pairs = examples(long_out)
    assert len(pairs) > 2000
    single = sum(len(ids) == sa for ids, sa in pairs) / len(pairs)
    assert 0.05 < single < 0.16


def test_short_target_fraction_about_five_percent(long_out):
    lengths = [len(ids) for ids in long_out['input_ids']]
    short = sum(n < 32 for n in lengths) / len(lengths)
    # 5% of examples get a random target in [5, max_length]; most of those are shorter
    assert 0.015 < short < 0.09
    assert min(lengths) < 16


# ---- cleaning and tokenisation ----------------------------------------------------------------
def test_min_line_chars_drops_short_lines(tokenizer):
    text = 'x y\nthe long line one\nz\nanother long line'
    kept = process(tokenizer, [text], max_length=64, min_line_chars=10)
    (ids, sa), = examples(kept)
    assert sum(segments(ids, sa), []) == ids_of(tokenizer, 'the long line one') + ids_of(tokenizer, 'another long line')
    raw = process(tokenizer, [text], max_length=64, min_line_chars=10, apply_cleaning=False)
    (ids, sa), = examples(raw)
    assert sum(segments(ids, sa), []) == [t for line in text.split('\n') for t in ids_of(tokenizer, line)]


def test_all_lines_filtered_gives_no_examples(tokenizer):
    out = process(tokenizer, ['a\nb\nc'], max_length=16, min_line_chars=80)
    assert len(out) == 0


def test_cleaning_removes_empty_parentheses(tokenizer):
    cleaned = process(tokenizer, ['a () b'], max_length=16)
    assert cleaned['input_ids'][0][1:-1] == ids_of(tokenizer, 'a b')
    raw = process(tokenizer, ['a () b'], max_length=16, apply_cleaning=False)
    assert raw['input_ids'][0][1:-1] == ids_of(tokenizer, 'a () b')
    assert len(raw['input_ids'][0]) == len(cleaned['input_ids'][0]) + 2


def test_ids_match_per_line_tokenize_then_convert(tokenizer):
    """Batched tokenisation gives the seed's per-line ids: one line per document, each its own example."""
    lines = [line for d in load_corpus('sample')['text'] for line in d.split('\n')][::3]
    lines += ['Héllo, WORLD!  Ünïcode test.', 'ﾃｽﾄ　全角ＡＢＣ１２３', 'tabs\tand  spaces', 'がぎぐげご パピプペポ']
    out = process(tokenizer, lines, max_length=512, apply_cleaning=False)
    assert len(out) == len(lines)
    for (ids, sa), line in zip(examples(out), lines):
        assert len(ids) == sa  # one line: one segment
        assert ids[1:-1] == ids_of(tokenizer, line)


# ---- determinism ------------------------------------------------------------------------------
def test_same_seed_same_examples_other_seed_differs(tokenizer, long_corpus, long_out):
    again = process(tokenizer, long_corpus, max_length=32, seed=3)
    assert again['input_ids'] == long_out['input_ids'] and again['sentA_length'] == long_out['sentA_length']
    other = process(tokenizer, long_corpus, max_length=32, seed=4)
    assert other['sentA_length'] != long_out['sentA_length']


# ---- Dataset.map with a cache file -----------------------------------------------------------
@pytest.fixture
def small_corpus():
    rng = random.Random(9)
    return ['\n'.join(random_line(rng, rng.randint(2, 9)) for _ in range(60)) for _ in range(8)]


class MapCounter:
    """Counts calls into `datasets.Dataset.map` (the processing itself)."""

    def __init__(self, monkeypatch):
        self.calls = 0
        orig = datasets.Dataset.map

        def counting_map(ds, *args, **kwargs):
            self.calls += 1
            return orig(ds, *args, **kwargs)

        monkeypatch.setattr(datasets.Dataset, 'map', counting_map)


def as_rows(out):
    return list(zip(map(tuple, out['input_ids']), out['sentA_length']))


@pytest.mark.parametrize('num_proc', [1, 2])
def test_cache_is_written_then_loaded(tokenizer, small_corpus, tmp_path, monkeypatch, num_proc):
    path = tmp_path / 'cache' / 'examples.arrow'
    first = process(tokenizer, small_corpus, max_length=24, seed=1, cache_file_name=str(path), num_proc=num_proc)
    assert path.is_file() and path.with_suffix('.json').is_file()
    assert sorted(os.listdir(path.parent)) == ['examples.arrow', 'examples.json']  # no partial left over
    assert json.loads(path.with_suffix('.json').read_text())['inputs']['max_length'] == 24
    assert len(first) > 20 and first.column_names == ['input_ids', 'sentA_length', 'doc_id']
    if num_proc == 1:
        assert as_rows(first) == as_rows(process(tokenizer, small_corpus, max_length=24, seed=1))
    mtime = path.stat().st_mtime_ns

    counter = MapCounter(monkeypatch)
    monkeypatch.setattr(ELECTRADataProcessor, '__call__', lambda *a, **k: pytest.fail('recomputed a cached dataset'))
    second = process(tokenizer, small_corpus, max_length=24, seed=1, cache_file_name=str(path), num_proc=num_proc)
    assert counter.calls == 0
    assert path.stat().st_mtime_ns == mtime
    assert as_rows(second) == as_rows(first)


def test_cache_name_without_suffix_gets_arrow(tokenizer, small_corpus, tmp_path):
    process(tokenizer, small_corpus, max_length=24, cache_file_name=str(tmp_path / 'ex'))
    assert sorted(os.listdir(tmp_path)) == ['ex.arrow', 'ex.json']


@pytest.mark.parametrize('change', [{'max_length': 20}, {'seed': 2}, {'min_line_chars': 12}, 'corpus'])
def test_cache_rebuilt_when_inputs_change(tokenizer, small_corpus, tmp_path, monkeypatch, change):
    path = str(tmp_path / 'examples.arrow')
    base = dict(max_length=24, seed=1)
    first = process(tokenizer, small_corpus, cache_file_name=path, **base)
    corpus = small_corpus
    kwargs = dict(base)
    if change == 'corpus':
        corpus = small_corpus[:-1] + [small_corpus[-1].replace('a', 'b')]  # same number of rows
    else:
        kwargs.update(change)
    counter = MapCounter(monkeypatch)
    rebuilt = process(tokenizer, corpus, cache_file_name=path, **kwargs)
    assert counter.calls == 1
    monkeypatch.undo()
    assert as_rows(rebuilt) == as_rows(process(tokenizer, corpus, **kwargs))
    assert as_rows(rebuilt) != as_rows(first)
    if change != 'corpus':
        meta = json.loads((tmp_path / 'examples.json').read_text())['inputs']
        assert all(meta[k] == v for k, v in change.items())


def test_partial_cache_without_json_is_rebuilt(tokenizer, small_corpus, tmp_path, monkeypatch):
    path = tmp_path / 'examples.arrow'
    path.write_bytes(b'not an arrow file: an interrupted run')
    (tmp_path / '.examples.partial').mkdir()  # a leftover work directory
    (tmp_path / '.examples.partial' / 'junk').write_text('x')
    counter = MapCounter(monkeypatch)
    out = process(tokenizer, small_corpus, max_length=24, seed=1, cache_file_name=str(path))
    assert counter.calls == 1
    monkeypatch.undo()
    assert as_rows(out) == as_rows(process(tokenizer, small_corpus, max_length=24, seed=1))
    assert sorted(os.listdir(tmp_path)) == ['examples.arrow', 'examples.json']
    # and the rebuilt file is itself reusable
    assert as_rows(datasets.Dataset.from_file(str(path))) == as_rows(out)


def test_cache_with_corrupt_json_is_rebuilt(tokenizer, small_corpus, tmp_path):
    path = tmp_path / 'examples.arrow'
    process(tokenizer, small_corpus, max_length=24, seed=1, cache_file_name=str(path))
    meta = json.loads(path.with_suffix('.json').read_text())
    meta['inputs']['max_length'] = 999  # a record that does not describe this run
    path.with_suffix('.json').write_text(json.dumps(meta))
    out = process(tokenizer, small_corpus, max_length=24, seed=1, cache_file_name=str(path))
    assert json.loads(path.with_suffix('.json').read_text())['inputs']['max_length'] == 24
    assert as_rows(out) == as_rows(process(tokenizer, small_corpus, max_length=24, seed=1))


def test_same_examples_whatever_num_proc_and_batch_size(tokenizer, tmp_path, monkeypatch):
    """Randomness is keyed by document: num_proc 1 and 3 (with other batch boundaries too)
    write byte-identical cache files from the same corpus, tokenizer, seed and max_length."""
    from pretrain._utils import electra_dataprocessor
    monkeypatch.setattr(electra_dataprocessor, 'ROWS_PER_RECORD_BATCH', 50)  # the file's batches, whatever map's
    docs = load_corpus('sample')
    one = ELECTRADataProcessor(docs, tokenizer, max_length=48, seed=7)
    a = one.map(cache_file_name=str(tmp_path / 'a.arrow'), num_proc=1)
    three = ELECTRADataProcessor(docs, tokenizer, max_length=48, seed=7)
    b = three.map(cache_file_name=str(tmp_path / 'b.arrow'), num_proc=3, batch_size=5)
    assert len(a) > 100 and as_rows(a) == as_rows(b) and a['doc_id'] == b['doc_id']
    assert (tmp_path / 'a.arrow').read_bytes() == (tmp_path / 'b.arrow').read_bytes()
    assert one.stats == three.stats
    assert {len(batch) for batch in a.data.table.to_batches()[:-1]} == {50}
    in_memory = ELECTRADataProcessor(docs, tokenizer, max_length=48, seed=7).map(batch_size=11)
    assert as_rows(in_memory) == as_rows(a)


def test_mapping_in_parts_changes_nothing(tokenizer, tmp_path, monkeypatch):
    """A large corpus is mapped in parts by fresh worker pools: same file, byte for byte."""
    from pretrain._utils import electra_dataprocessor
    docs = load_corpus('sample')
    whole = ELECTRADataProcessor(docs, tokenizer, max_length=48, seed=7)
    whole.map(cache_file_name=str(tmp_path / 'whole.arrow'))
    monkeypatch.setattr(electra_dataprocessor, 'PART_BYTES_PER_PROCESS', docs.data.nbytes // 6)  # 3 parts of 2
    calls = MapCounter(monkeypatch)
    parts = ELECTRADataProcessor(docs, tokenizer, max_length=48, seed=7)
    out = parts.map(cache_file_name=str(tmp_path / 'parts.arrow'), num_proc=2)
    assert calls.calls >= 3 and parts.stats == whole.stats
    assert (tmp_path / 'parts.arrow').read_bytes() == (tmp_path / 'whole.arrow').read_bytes()
    assert out['doc_id'][-1] == len(docs) - 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ['parts.arrow', 'parts.json', 'whole.arrow', 'whole.json']


def test_cache_of_an_older_format_is_rebuilt(tokenizer, small_corpus, tmp_path, monkeypatch):
    """Caches written before `doc_id` (format 2) are rebuilt, not reused without the column."""
    path = tmp_path / 'examples.arrow'
    process(tokenizer, small_corpus, max_length=24, cache_file_name=str(path))
    record = json.loads(path.with_suffix('.json').read_text())
    assert record['inputs']['format'] == FORMAT_VERSION == 4
    record['inputs']['format'] = 2
    path.with_suffix('.json').write_text(json.dumps(record))
    counter = MapCounter(monkeypatch)
    out = process(tokenizer, small_corpus, max_length=24, cache_file_name=str(path))
    assert counter.calls == 1 and 'doc_id' in out.column_names


def test_doc_id_is_the_source_row(tokenizer):
    out = process(tokenizer, ['a b c\n\nd e', '', 'f g', 'h'], max_length=64)
    assert out['doc_id'] == [0, 0, 2, 3]  # an empty document gives no example
    assert out.features['doc_id'].dtype == 'int64'
    rng = random.Random(2)
    docs = ['\n'.join(random_line(rng, 6) for _ in range(40)) for _ in range(5)]
    ids = process(tokenizer, docs, max_length=24, batch_size=2)['doc_id']
    assert ids == sorted(ids) and set(ids) == set(range(5))  # consecutive, in document order


def test_a_document_gives_the_same_examples_wherever_it_is(tokenizer):
    """A document's examples depend on its row, not on its neighbours in the batch."""
    rng = random.Random(5)
    docs = ['\n'.join(random_line(rng, rng.randint(2, 9)) for _ in range(80)) for _ in range(4)]
    alone = process(tokenizer, docs, max_length=24, seed=3, batch_size=1)
    together = process(tokenizer, docs, max_length=24, seed=3)
    assert as_rows(alone) == as_rows(together)
    changed = process(tokenizer, docs[:2] + ['x y z'] + docs[3:], max_length=24, seed=3)
    keep = lambda out, d: [r for r, i in zip(as_rows(out), out['doc_id']) if i == d]
    assert all(keep(changed, d) == keep(together, d) for d in (0, 1, 3))


def test_num_proc_larger_than_rows(tokenizer, tmp_path):
    out = process(tokenizer, ['a b c d', 'e f g'], max_length=16, num_proc=8, cache_file_name=str(tmp_path / 'x.arrow'))
    assert [ids[1:-1] for ids in out['input_ids']] == [ids_of(tokenizer, 'a b c d'), ids_of(tokenizer, 'e f g')]


# ---- bad inputs -------------------------------------------------------------------------------
def test_missing_text_column(tokenizer):
    with pytest.raises(ValueError, match='body'):
        ELECTRADataProcessor(dset(['a b']), tokenizer, max_length=16, text_col='body')


@pytest.mark.parametrize('max_length', [0, 5, 7])
def test_max_length_too_small(tokenizer, max_length):
    with pytest.raises(ValueError, match='max_length'):
        ELECTRADataProcessor(dset(['a b']), tokenizer, max_length=max_length)


def test_token_counts_kept_filtered_truncated(tokenizer, tmp_path):
    from pretrain._utils.electra_dataprocessor import ELECTRADataProcessor
    long_line = ' '.join(['river'] * 200)
    docs = datasets.Dataset.from_dict({'text': ['tea\n' + long_line, 'short\nthe river is long and wide']})
    proc = ELECTRADataProcessor(docs, tokenizer, max_length=32, min_line_chars=6, seed=0)
    out = proc.map(cache_file_name=str(tmp_path / 'x.arrow'))
    ids = [tokenizer(line, add_special_tokens=False)['input_ids'] for line in ('tea', 'short')]
    assert proc.stats['filtered_tokens'] == sum(map(len, ids))
    kept = sum(len(r['input_ids']) - 2 - (len(r['input_ids']) > r['sentA_length']) for r in out)
    assert proc.stats['kept_tokens'] == kept and proc.stats['examples'] == len(out)
    total = len(tokenizer(long_line, add_special_tokens=False)['input_ids']) + len(
        tokenizer('the river is long and wide', add_special_tokens=False)['input_ids'])
    assert proc.stats['kept_tokens'] + proc.stats['truncated_tokens'] == total
    assert proc.stats['truncated_tokens'] > 0
    again = ELECTRADataProcessor(docs, tokenizer, max_length=32, min_line_chars=6, seed=0)
    again.map(cache_file_name=str(tmp_path / 'x.arrow'))
    assert again.stats == proc.stats  # read back with the cache


def test_japanese_paragraphs_are_split_into_sentences(tokenizer):
    from pretrain._utils.electra_dataprocessor import ELECTRADataProcessor
    paragraph = '川は山から海へ流れる。「水は冷たい。」と彼は言った。雨の日は水が増える！'
    docs = datasets.Dataset.from_dict({'text': [paragraph]})
    seen = []
    proc = ELECTRADataProcessor(docs, tokenizer, max_length=128, seed=0)
    real = proc.encode
    proc.encode = lambda lines: (seen.append(list(lines)), real(lines))[1]
    proc.map()
    assert seen[0] == ['川は山から海へ流れる。', '「水は冷たい。」と彼は言った。', '雨の日は水が増える！']
    off = ELECTRADataProcessor(docs, tokenizer, max_length=128, seed=0, split_sentences=False)
    seen.clear()
    real = off.encode
    off.encode = lambda lines: (seen.append(list(lines)), real(lines))[1]
    off.map()
    assert seen[0] == [paragraph]


def test_min_line_chars_per_language(tokenizer):
    from pretrain._utils.electra_dataprocessor import ELECTRADataProcessor
    docs = datasets.Dataset.from_dict({'text': ['川は長い。\nThe river is long.\n海は広くて青い。\nThe sea is wide and very blue today.']})
    kept = []
    proc = ELECTRADataProcessor(docs, tokenizer, max_length=128, seed=0, min_line_chars={'ja': 6, 'default': 20})
    real = proc.encode
    proc.encode = lambda lines: (kept.append(list(lines)), real(lines))[1]
    proc.map()
    assert kept[0] == ['海は広くて青い。', 'The sea is wide and very blue today.']
    with pytest.raises(ValueError, match="keys must be 'ja' and 'default'"):
        ELECTRADataProcessor(docs, tokenizer, max_length=128, min_line_chars={'en': 80})


# ---- the preprocessing benchmark (pretrain/tools/bench_preprocess.py), at a tiny size ---------------
def test_bench_preprocess_reports_memory_and_throughput(tmp_path, monkeypatch):
    import pretrain.prepare.corpus as corpus
    from pretrain.tools import bench_preprocess
    monkeypatch.setattr(corpus, 'IN_MEMORY_BYTES', 0)  # the streamed path, as for a large corpus
    path = bench_preprocess.generate_corpus(tmp_path / 'c.txt', 200_000)
    assert 200_000 <= path.stat().st_size < 700_000 and '\n\n' in path.read_text(encoding='utf-8')
    result = bench_preprocess.run(path, tmp_path / 'work', num_proc=1, every=0.05)
    assert result['documents'] > 50 and result['examples'] > 100 and result['mb_per_s'] > 0
    assert 0 < result['peak_uss_sum'] <= result['peak_pss_sum'] <= result['peak_rss_sum'] and result['processes'] >= 1
    assert any((tmp_path / 'work' / 'corpus').glob('c-*.arrow'))  # streamed into Arrow, then processed
    assert (tmp_path / 'work' / 'examples' / 'electra.arrow').is_file()
