"""Local corpora: named samples, .txt/.jsonl/.parquet files (.txt/.jsonl also gzipped) and directories, clear errors."""
import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from _utils.paths import REPO_ROOT
from pretrain.prepare.corpus import NAMED_DATAS, check_data_name, data_cache_name, data_files, load_corpus


def blocks(path):
    """Blank-line separated blocks of a text file, each as its stripped non-empty lines."""
    out, cur = [], []
    for line in Path(path).read_text(encoding='utf-8').splitlines():
        if line.strip():
            cur.append(line.strip())
        elif cur:
            out.append(cur)
            cur = []
    if cur:
        out.append(cur)
    return out


# ---- named corpora ------------------------------------------------------------------------
@pytest.mark.parametrize('name', ['sample', 'sample_ja', 'sample_en'])
def test_named_corpus_documents(name):
    ds = load_corpus(name)
    assert ds.column_names == ['text']
    expected = [b for f in NAMED_DATAS[name] for b in blocks(REPO_ROOT / f)]
    assert len(ds) == len(expected) > 1
    for doc, lines in zip(ds['text'], expected):
        assert doc.split('\n') == lines  # one sentence per line, no blank line inside a document
        assert all(line.strip() == line and line for line in doc.split('\n'))


def test_sample_is_ja_then_en():
    ja, en, both = load_corpus('sample_ja'), load_corpus('sample_en'), load_corpus('sample')
    assert list(both['text']) == list(ja['text']) + list(en['text'])
    assert any('\u3041' <= ch <= '\u30ff' for ch in ja['text'][0])  # Japanese kana
    assert en['text'][0].isascii()


def test_named_corpus_does_not_depend_on_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert len(load_corpus('sample_en')) > 1
    assert all(p.is_file() for p in data_files('sample'))


# ---- files and directories ----------------------------------------------------------------
def test_txt_file(tmp_path):
    f = tmp_path / 'c.txt'
    f.write_text('  First sentence.  \nSecond one.\n\n\n\nOther doc.\r\nMore.\n  \n', encoding='utf-8')
    ds = load_corpus(str(f))
    assert ds['text'] == ['First sentence.\nSecond one.', 'Other doc.\nMore.']


def test_jsonl_file(tmp_path):
    f = tmp_path / 'c.jsonl'
    f.write_text(json.dumps({'text': 'a b.\nc d.', 'id': 1}) + '\n\n' +
                 json.dumps({'text': '日本語の文。', 'meta': {'x': 1}}, ensure_ascii=False) + '\n' +
                 json.dumps({'text': '   '}) + '\n', encoding='utf-8')
    ds = load_corpus(str(f))
    assert ds['text'] == ['a b.\nc d.', '日本語の文。']  # blank lines skipped, empty documents dropped


def test_parquet_file(tmp_path):
    f = tmp_path / 'c.parquet'
    pq.write_table(pa.table({'text': ['doc one.\nline two.', None, '', 'doc two.'], 'n': [1, 2, 3, 4]}), f)
    assert load_corpus(str(f))['text'] == ['doc one.\nline two.', 'doc two.']


def test_directory_of_files(tmp_path):
    d = tmp_path / 'corpus'
    (d / 'sub').mkdir(parents=True)
    (d / 'b.txt').write_text('from b.\n\nb second doc.\n', encoding='utf-8')
    (d / 'a.jsonl').write_text(json.dumps({'text': 'from a.'}) + '\n', encoding='utf-8')
    pq.write_table(pa.table({'text': ['from c.']}), d / 'sub' / 'c.parquet')
    (d / 'notes.md').write_text('ignored', encoding='utf-8')
    (d / 'data.csv').write_text('text\nignored', encoding='utf-8')
    files = data_files(str(d))
    assert [p.relative_to(d).as_posix() for p in files] == ['a.jsonl', 'b.txt', 'sub/c.parquet']
    assert load_corpus(str(d))['text'] == ['from a.', 'from b.', 'b second doc.', 'from c.']
    assert data_cache_name(str(d)) == 'corpus'


def test_relative_path_from_cwd(tmp_path, monkeypatch):
    (tmp_path / 'my.txt').write_text('one.\n', encoding='utf-8')
    monkeypatch.chdir(tmp_path)
    assert load_corpus('my.txt')['text'] == ['one.']
    assert data_cache_name('my.txt') == 'my'


def test_check_data_name_accepts_names_and_paths(tmp_path):
    f = tmp_path / 'x.txt'
    f.write_text('x\n', encoding='utf-8')
    for data in ['sample', 'sample_ja', 'sample_en', str(f), str(tmp_path)]:
        check_data_name(data)
    assert data_cache_name('sample_ja') == 'sample_ja'


# ---- errors -------------------------------------------------------------------------------
def test_unknown_name_lists_allowed(tmp_path, monkeypatch):
    import pretrain.prepare.corpus as corpus
    # as on a machine where no Wikipedia corpus has been built yet
    monkeypatch.setitem(corpus.BUILT_DATAS, 'wikipedia', (str(tmp_path / 'none'), 'python -m pretrain wiki DUMP'))
    with pytest.raises(ValueError) as e:
        load_corpus('wikipedia')
    msg = str(e.value)
    assert "'wikipedia'" in msg
    for name in NAMED_DATAS:
        assert repr(name) in msg


@pytest.mark.parametrize('bad', [None, 3, ['sample']])
def test_non_string_data(bad):
    with pytest.raises(ValueError, match='strings'):
        check_data_name(bad)


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match='does not exist'):
        load_corpus(str(tmp_path / 'nope.txt'))


def test_unsupported_suffix(tmp_path):
    f = tmp_path / 'c.csv'
    f.write_text('text\nhello\n', encoding='utf-8')
    with pytest.raises(ValueError, match=r'unsupported type.*\.txt'):
        load_corpus(str(f))


def test_directory_without_corpus_files(tmp_path):
    (tmp_path / 'readme.md').write_text('x', encoding='utf-8')
    with pytest.raises(ValueError, match='holds no'):
        load_corpus(str(tmp_path))


def test_bad_json_line_names_file_and_line(tmp_path):
    f = tmp_path / 'c.jsonl'
    f.write_text(json.dumps({'text': 'ok'}) + '\n\n{"text": "broken\n', encoding='utf-8')
    with pytest.raises(ValueError, match=r'c\.jsonl:3: not valid JSON'):
        load_corpus(str(f))


@pytest.mark.parametrize('record', [{'body': 'x'}, {'text': 3}, ['text'], 'text'])
def test_jsonl_record_without_text(tmp_path, record):
    f = tmp_path / 'c.jsonl'
    f.write_text(json.dumps({'text': 'ok'}) + '\n' + json.dumps(record) + '\n', encoding='utf-8')
    with pytest.raises(ValueError, match=r"c\.jsonl:2: .*'text'"):
        load_corpus(str(f))


def test_parquet_without_text_column(tmp_path):
    f = tmp_path / 'c.parquet'
    pq.write_table(pa.table({'body': ['x'], 'n': [1]}), f)
    with pytest.raises(ValueError, match=r"no 'text' column \(columns: body, n\)"):
        load_corpus(str(f))


def test_parquet_with_non_string_text(tmp_path):
    f = tmp_path / 'c.parquet'
    pq.write_table(pa.table({'text': [1, 2]}), f)
    with pytest.raises(ValueError, match=r"c\.parquet: .*'text' column must hold strings"):
        load_corpus(str(f))


def test_corrupt_parquet(tmp_path):
    f = tmp_path / 'c.parquet'
    f.write_bytes(b'definitely not parquet')
    with pytest.raises(ValueError, match=r'c\.parquet: cannot read as parquet'):
        load_corpus(str(f))


@pytest.mark.parametrize('suffix,content', [('.txt', '\n\n  \n'), ('.jsonl', '\n'), ('.jsonl', '{"text": ""}\n')])
def test_empty_corpus(tmp_path, suffix, content):
    f = tmp_path / f'c{suffix}'
    f.write_text(content, encoding='utf-8')
    with pytest.raises(ValueError, match='holds no text'):
        load_corpus(str(f))


@pytest.mark.parametrize('suffix', ['.txt', '.jsonl'])
def test_non_utf8_file(tmp_path, suffix):
    f = tmp_path / f'c{suffix}'
    text = 'caf\u00e9 au lait.' if suffix == '.txt' else json.dumps({'text': 'caf\u00e9'}, ensure_ascii=False)
    f.write_bytes(text.encode('latin-1') + b'\n')
    with pytest.raises(ValueError, match=rf'c\{suffix}: not UTF-8'):
        load_corpus(str(f))


# ---- gzip-compressed text and JSON lines --------------------------------------------------
TXT = '\ufeff  First sentence.  \nSecond one.\n\n\n\nOther doc.\r\nMore.\n  \n日本語の文。\u2028次の行。\n'
JSONL = json.dumps({'text': 'a b.\n\nc d.'}) + '\n\n' + json.dumps({'text': '日本語\u2028の文。'}, ensure_ascii=False) + '\r\n'


@pytest.mark.parametrize('suffix,content', [('.txt', TXT), ('.jsonl', JSONL)])
def test_gzip_reads_like_plain(tmp_path, suffix, content):
    plain, packed = tmp_path / f'c{suffix}', tmp_path / f'c{suffix}.gz'
    plain.write_bytes(content.encode('utf-8'))
    packed.write_bytes(gzip.compress(content.encode('utf-8')))
    expected = load_corpus(str(plain))['text']
    assert load_corpus(str(packed))['text'] == expected and len(expected) >= 2
    assert data_cache_name(str(packed)) == 'c'
    check_data_name(str(packed))


def test_txt_reading_is_unchanged_by_streaming(tmp_path):
    f = tmp_path / 'c.txt'
    f.write_bytes(TXT.encode('utf-8'))
    assert load_corpus(str(f))['text'] == ['First sentence.\nSecond one.', 'Other doc.\nMore.', '日本語の文。\n次の行。']


def test_directory_with_gzip_files(tmp_path):
    (tmp_path / 'a.txt.gz').write_bytes(gzip.compress('from a.\n'.encode()))
    (tmp_path / 'b.jsonl.gz').write_bytes(gzip.compress((json.dumps({'text': 'from b.'}) + '\n').encode()))
    (tmp_path / 'c.gz').write_bytes(gzip.compress(b'not a corpus type\n'))
    assert [p.name for p in data_files(str(tmp_path))] == ['a.txt.gz', 'b.jsonl.gz']
    assert load_corpus(str(tmp_path))['text'] == ['from a.', 'from b.']


@pytest.mark.parametrize('damage', ['truncated', 'not_gzip', 'bad_crc'])
@pytest.mark.parametrize('suffix', ['.txt.gz', '.jsonl.gz'])
def test_corrupt_gzip_is_one_line_error(tmp_path, damage, suffix):
    text = ''.join(json.dumps({'text': f'document {i} with some words.'}) + '\n' for i in range(2000)).encode()
    data = gzip.compress(text)
    data = {'truncated': data[:len(data) // 2], 'not_gzip': b'plain text, not gzip\n',
            'bad_crc': data[:-8] + bytes(4) + data[-4:]}[damage]
    f = tmp_path / f'c{suffix}'
    f.write_bytes(data)
    with pytest.raises(ValueError) as e:
        load_corpus(str(f))
    msg = str(e.value)
    assert msg.startswith(f'{f}: corrupt or truncated gzip file') and '\n' not in msg


def test_gzip_non_utf8_names_the_byte(tmp_path):
    f = tmp_path / 'c.txt.gz'
    f.write_bytes(gzip.compress('ok line\ncaf\u00e9\n'.encode('latin-1')))
    with pytest.raises(ValueError, match=r'c\.txt\.gz: not UTF-8 text \(invalid continuation byte at byte 11\)'):
        load_corpus(str(f))


def test_unsupported_gz_suffix(tmp_path):
    f = tmp_path / 'c.csv.gz'
    f.write_bytes(gzip.compress(b'text\nx\n'))
    with pytest.raises(ValueError, match=r'unsupported type.*\.txt\.gz'):
        load_corpus(str(f))


# ---- the Japanese documentation corpus (data/docs_ja, built by data/build_docs_ja.py) ------
def test_docs_ja_names():
    sources = [n for n in NAMED_DATAS if n.startswith('docs_ja_')]
    assert len(sources) >= 7 and 'docs_ja_libreoffice' in sources and 'docs_ja_gimp' in sources
    assert NAMED_DATAS['docs_ja'] == [f for n in sources for f in NAMED_DATAS[n]]
    for name in ['docs_ja', *sources]:
        check_data_name(name)
        assert all(p.is_file() and p.name.endswith('.txt.gz') for p in data_files(name))
    assert data_cache_name('docs_ja_gimp') == 'docs_ja_gimp'


def test_docs_ja_loads():
    ds = load_corpus('docs_ja')
    assert len(ds) > 1000
    text = '\n'.join(ds['text'][:50])
    assert sum(1 for ch in text if '\u3041' <= ch <= '\u30ff') > len(text) / 4  # kana
    small = load_corpus('docs_ja_kicad')
    assert 0 < len(small) < len(ds) and small['text'][0] in ds['text']


def test_tokenizer_command_takes_gz_paths_and_names(tmp_path, capsys):
    from pretrain.__main__ import main
    f = tmp_path / 'c.txt.gz'
    f.write_bytes(gzip.compress(('the cat sat on the mat.\nthe dog sat too.\n\n' * 20).encode()))
    assert main(['tokenizer', '--datas', str(f), 'docs_ja_kicad', '--out', str(tmp_path / 'tok'), '--vocab_size', '1000']) == 0
    assert 'saved to' in capsys.readouterr().out
    assert (tmp_path / 'tok' / 'tokenizer.json').is_file()


def test_hub_datasets_by_name(monkeypatch):
    import datasets as hf_datasets
    import pretrain.prepare.corpus as corpus
    calls = []

    def fake_load(name, config, split):
        calls.append((name, config, split))
        return hf_datasets.Dataset.from_dict({'id': ['1', '2'], 'title': ['a', 'b'], 'text': ['川は長い。', '海は広い。']})
    monkeypatch.setattr(corpus.datasets, 'load_dataset', fake_load)
    ds = corpus.load_corpus('hf:wikimedia/wikipedia:20231101.ja')
    assert calls == [('wikimedia/wikipedia', '20231101.ja', 'train')]
    assert ds.column_names == ['text'] and ds['text'] == ['川は長い。', '海は広い。']
    assert corpus.data_cache_name('hf:wikimedia/wikipedia:20231101.ja') == 'hf_wikimedia_wikipedia_20231101.ja'


def test_hub_dataset_without_network_is_one_clear_error(monkeypatch):
    import pretrain.prepare.corpus as corpus

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'wikimedia/wikipedia' on the Hub (LocalEntryNotFoundError)")
    monkeypatch.setattr(corpus.datasets, 'load_dataset', offline)
    with pytest.raises(ValueError, match="cannot load hub dataset 'wikimedia/wikipedia'.*without network, use a local corpus"):
        corpus.load_corpus('hf:wikimedia/wikipedia:20231101.ja')
    with pytest.raises(ValueError, match='must look like hf:NAME'):
        corpus.check_data_name('hf:')


def test_a_record_is_one_document_even_with_blank_lines(tmp_path):
    import json as _json

    from pretrain.prepare.corpus import load_corpus
    path = tmp_path / 'docs.jsonl'
    path.write_text(_json.dumps({'text': '第一段落。\n\n第二段落。\n \n第三段落。'}, ensure_ascii=False) + '\n', encoding='utf-8')
    assert load_corpus(str(path))['text'] == ['第一段落。\n第二段落。\n第三段落。']


# ---- large corpora: streamed into a memory-mapped Arrow file ------------------------------
@pytest.fixture
def on_disk(monkeypatch):
    """Every corpus counts as large, in record batches of at most 7 documents."""
    import pretrain.prepare.corpus as corpus
    monkeypatch.setattr(corpus, 'IN_MEMORY_BYTES', 0)
    monkeypatch.setattr(corpus, 'BATCH_DOCUMENTS', 7)
    return corpus


def mixed_corpus(d):
    """A directory of .txt, .jsonl.gz and .parquet files: 40 + 25 + 15 documents."""
    d.mkdir()
    (d / 'a.txt').write_text(''.join(f'doc {i} line one.\ndoc {i} line two.\n\n' for i in range(40)), encoding='utf-8')
    (d / 'b.jsonl.gz').write_bytes(gzip.compress(''.join(json.dumps({'text': f'json {i}.\n\nsecond.'}) + '\n'
                                                         for i in range(25)).encode()))
    pq.write_table(pa.table({'text': [f'parquet {i}.' for i in range(15)]}), d / 'c.parquet', row_group_size=4)
    return d


def test_large_corpus_streams_into_a_memory_mapped_arrow_file(tmp_path, on_disk):
    d = mixed_corpus(tmp_path / 'corpus')
    cache = tmp_path / 'cache'
    ds = on_disk.load_corpus(str(d), cache_dir=cache)
    files = [Path(f['filename']) for f in ds.cache_files]
    assert len(files) == 1 and files[0].parent == cache and files[0].name.startswith('corpus-')
    assert len(ds) == 80 and ds.column_names == ['text'] and ds.features['text'].dtype == 'string'
    assert ds['text'][:2] == ['doc 0 line one.\ndoc 0 line two.', 'doc 1 line one.\ndoc 1 line two.']
    assert ds['text'][40] == 'json 0.\nsecond.' and ds['text'][-1] == 'parquet 14.'
    with pa.OSFile(str(files[0])) as f:  # written a batch at a time, not from one list
        sizes = [b.num_rows for b in pa.ipc.open_stream(f)]
    assert max(sizes) == 7 and sum(sizes) == 80
    assert sorted(p.name for p in cache.iterdir()) == [files[0].name]  # no temporary file left


def test_large_corpus_equals_the_in_memory_one(tmp_path, on_disk, monkeypatch):
    d = mixed_corpus(tmp_path / 'corpus')
    streamed = on_disk.load_corpus(str(d), cache_dir=tmp_path / 'cache')['text']
    monkeypatch.setattr(on_disk, 'IN_MEMORY_BYTES', 2**40)
    in_memory = on_disk.load_corpus(str(d), cache_dir=tmp_path / 'cache')
    assert in_memory.cache_files == [] and in_memory['text'] == streamed


def test_large_corpus_cache_is_reused_and_rebuilt_when_a_file_changes(tmp_path, on_disk, monkeypatch):
    d = mixed_corpus(tmp_path / 'corpus')
    cache = tmp_path / 'cache'
    first = on_disk.load_corpus(str(d), cache_dir=cache)
    readers = dict(on_disk.READERS)
    monkeypatch.setattr(on_disk, 'READERS', {k: lambda p: pytest.fail('read a cached corpus again') for k in readers})
    again = on_disk.load_corpus(str(d), cache_dir=cache)
    assert again.cache_files == first.cache_files and again._fingerprint == first._fingerprint
    monkeypatch.setattr(on_disk, 'READERS', readers)
    with open(d / 'a.txt', 'a', encoding='utf-8') as f:
        f.write('an added document.\n')
    changed = on_disk.load_corpus(str(d), cache_dir=cache)
    assert len(changed) == 81 and 'an added document.' in changed['text']
    assert changed._fingerprint != first._fingerprint  # so the examples cache is rebuilt too
    assert [Path(f['filename']).name for f in changed.cache_files] == [p.name for p in cache.iterdir()]  # the old one removed


@pytest.mark.parametrize('suffix', ['.txt', '.jsonl'])
def test_large_corpus_error_leaves_no_cache_file(tmp_path, on_disk, suffix):
    f = tmp_path / f'c{suffix}'
    good = 'fine.\n\n' if suffix == '.txt' else json.dumps({'text': 'fine.'}) + '\n'
    f.write_bytes((good * 50).encode() + ('caf\u00e9'.encode('latin-1') if suffix == '.txt' else b'{"text": broken') + b'\n')
    with pytest.raises(ValueError, match=rf'c\{suffix}'):
        on_disk.load_corpus(str(f), cache_dir=tmp_path / 'cache')
    assert list((tmp_path / 'cache').iterdir()) == []
    (tmp_path / 'e.txt').write_text('\n \n\n', encoding='utf-8')
    with pytest.raises(ValueError, match='holds no text'):
        on_disk.load_corpus(str(tmp_path / 'e.txt'), cache_dir=tmp_path / 'cache')
    assert list((tmp_path / 'cache').iterdir()) == []


def test_reading_holds_one_batch_not_the_corpus(tmp_path, on_disk, monkeypatch):
    """Python memory while a 3.9 MB .txt corpus streams to disk stays near one batch (64 KB)."""
    import tracemalloc
    monkeypatch.setattr(on_disk, 'BATCH_DOCUMENTS', 10**9)
    monkeypatch.setattr(on_disk, 'BATCH_CHARS', 64 * 2**10)
    line = 'a sentence of the corpus, about eighty characters long, for the reading test.\n'
    f = tmp_path / 'big.txt'
    f.write_text((line * 10 + '\n') * 5000, encoding='utf-8')
    tracemalloc.start()
    try:
        ds = on_disk.load_corpus(str(f), cache_dir=tmp_path / 'cache')
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(ds) == 5000 and f.stat().st_size > 3.5e6
    assert peak < 1e6, f'{peak / 1e6:.1f} MB of Python objects at the peak'


def test_txt_without_blank_lines_is_cut_into_bounded_documents(tmp_path, monkeypatch, capsys):
    import pretrain.prepare.corpus as corpus
    monkeypatch.setattr(corpus, 'MAX_DOCUMENT_CHARS', 100)
    lines = [f'line number {i} of a file with no blank line.' for i in range(30)]
    f = tmp_path / 'c.txt'
    f.write_text('\n'.join(lines) + '\n\nlast doc.\n', encoding='utf-8')
    docs = load_corpus(str(f))['text']
    assert [line for d in docs[:-1] for line in d.split('\n')] == lines and docs[-1] == 'last doc.'
    assert all(len(d) < 100 + 50 for d in docs) and len(docs) > 5
    assert 'a .txt corpus needs a blank line between documents' in capsys.readouterr().out


def test_parquet_is_read_in_batches(tmp_path, monkeypatch):
    import pyarrow.parquet as pq_module
    f = tmp_path / 'c.parquet'
    pq.write_table(pa.table({'text': [f'doc {i}.' for i in range(3000)], 'other': list(range(3000))}), f, row_group_size=500)
    monkeypatch.setattr(pq_module, 'read_table', lambda *a, **k: pytest.fail('read the whole file'))
    assert load_corpus(str(f))['text'] == [f'doc {i}.' for i in range(3000)]


def test_large_corpus_with_an_unwritable_cache_is_one_line_error(tmp_path, on_disk):
    d = mixed_corpus(tmp_path / 'corpus')
    (tmp_path / 'file').write_text('not a directory', encoding='utf-8')
    with pytest.raises(ValueError) as e:
        on_disk.load_corpus(str(d), cache_dir=tmp_path / 'file' / 'cache')
    assert 'cache directory' in str(e.value) and 'writable' in str(e.value) and '\n' not in str(e.value)
