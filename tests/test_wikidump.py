"""MediaWiki dump -> corpus: streaming .xml / .bz2 / multistream, cleaning, counts, parallel
conversion, truncated dumps, caching, the CLI and the 'wikipedia' data name."""
import bz2
import json
import os
from xml.sax.saxutils import escape

import datasets
import pytest

from pretrain.prepare import corpus
from pretrain.prepare import wikidump
from pretrain.__main__ import main
from pretrain.prepare.wikidump import RESIDUE_RE, build_wiki_corpus, convert_wikitext, iter_documents, wikitext_to_text

ARTICLE = """{{Infobox 都市
| 名前 = 東京都 {{small|(都)}}
}}
'''東京都'''（とうきょうと、{{lang-en|Tokyo}}）は、[[日本]]の[[首都]]である<ref name="a">出典 {{cite web|url=http://x}}</ref>。人口は多い<ref name=x/>。
<!-- 編集者へのコメント -->
[[ファイル:Tokyo.jpg|thumb|東京の[[夜景|夜]]の写真]]
[[Image:Map.png|left|[[地図]]]]

== 歴史 ==
[[江戸]]は[[徳川家康|家康]]により''発展''した。[[A|[[B]]]]も参照。{{仮リンク|ジョン・スミス|en|John Smith}}が訪れた。
* 項目 '''一'''
# 番号 [http://example.com 外部リンク]
: 字下げ http://bare.example.com
{| class="wikitable"
|-
! 見出し !! 人口
|-
| 東京 || {{formatnum:1000}}
|}
<math>E=mc^2</math>の式と<span style="color:red">色</span>と&amp;記号。__NOTOC__
<gallery>
Tokyo.jpg|説明 [[東京]]
</gallery>
[[Category:日本の都道府県]]
[[カテゴリ:首都]]
[[en:Tokyo]]
"""
ARTICLE_TEXT = ('東京都（とうきょうと、Tokyo）は、日本の首都である。人口は多い。\n'
                '歴史\n'
                '江戸は家康により発展した。Bも参照。ジョン・スミスが訪れた。\n'
                '項目 一\n'
                '番号 外部リンク\n'
                '字下げ\n'
                'の式と色と&記号。')
ENGLISH = """'''Python''' is a language.<ref>Doc.</ref> See [http://python.org the site].

==History==
Created by [[Guido van Rossum|Guido]] in {{circa|1991}}.
[[:Category:Languages]] lists more.
"""
ENGLISH_TEXT = 'Python is a language. See the site.\nHistory\nCreated by Guido in .\nCategory:Languages lists more.'

# (id, title, ns, wikitext or None for an empty <text/>, extra XML inside <page>)
PAGES = [
    ('1', '東京都', '0', ARTICLE, ''),
    ('2', '東京', '0', '#転送 [[東京都]]', ''),
    ('3', 'Tokyo', '0', '  #redirect [[東京都]]', ''),
    ('4', '旧東京府', '0', '東京府は[[東京都]]になった。', '<redirect title="東京都" />'),
    ('5', 'ノート:東京都', '1', '議論です。', ''),
    ('6', '利用者:Example', '2', 'こんにちは。', ''),
    ('7', '壊れた記事', '0', 'MALFORMED 本文。', ''),
    ('8', '空の記事', '0', '{{stub}}\n<!-- x -->\n[[Category:X]]\n', ''),
    ('9', 'Python', '0', ENGLISH, ''),
    ('10', '京都', '0', '[[京都市|京都]]は古都。\n\n\n  寺が多い。  ', ''),
    ('11', '何もない', '0', None, ''),
]
EXPECTED = [
    {'id': '1', 'title': '東京都', 'text': ARTICLE_TEXT},
    {'id': '9', 'title': 'Python', 'text': ENGLISH_TEXT},
    {'id': '10', 'title': '京都', 'text': '京都は古都。\n寺が多い。'},
]
EXPECTED_COUNTS = {'pages': 11, 'kept': 3, 'redirects': 3, 'other_namespaces': 2, 'empty': 2, 'parse_errors': 1,
                   'broken_markup': 0, 'dropped_lines': 0}


def page_xml(page_id, title, ns, text, extra):
    body = '<text bytes="0" />' if text is None else f'<text xml:space="preserve">{escape(text)}</text>'
    return (f'  <page>\n    <title>{escape(title)}</title>\n    <ns>{ns}</ns>\n    <id>{page_id}</id>\n{extra}'
            f'    <revision>\n      <id>{int(page_id) + 100}</id>\n      <model>wikitext</model>\n'
            f'      {body}\n    </revision>\n  </page>\n')


def dump_parts(version='0.10', pages=PAGES):
    """The dump as two pieces of XML: header and first pages, then the rest."""
    head = (f'<mediawiki xmlns="http://www.mediawiki.org/xml/export-{version}/" version="{version}" xml:lang="ja">\n'
            '  <siteinfo>\n    <sitename>Wikipedia</sitename>\n    <namespaces>\n'
            '      <namespace key="0" case="first-letter" />\n    </namespaces>\n  </siteinfo>\n')
    first = ''.join(page_xml(*p) for p in pages[:5])
    rest = ''.join(page_xml(*p) for p in pages[5:])
    return head + first, rest + '</mediawiki>\n'


def write_dump(tmp_path, kind):
    """The fixture dump as kind 'xml', 'bz2' (another export version) or 'multistream'."""
    if kind == 'xml':
        path = tmp_path / 'jawiki-pages-articles.xml'
        path.write_text(''.join(dump_parts()), encoding='utf-8')
    elif kind == 'bz2':
        path = tmp_path / 'jawiki-pages-articles.xml.bz2'
        path.write_bytes(bz2.compress(''.join(dump_parts('0.11')).encode('utf-8')))
    else:
        path = tmp_path / 'jawiki-pages-articles-multistream.xml.bz2'
        path.write_bytes(b''.join(bz2.compress(part.encode('utf-8')) for part in dump_parts()))
    return path


@pytest.fixture
def malformed(monkeypatch):
    """Make the converter raise on page 7, as a wikitext bug would (inline conversion only)."""
    convert = wikidump.convert_wikitext

    def failing(wikitext):
        if wikitext.startswith('MALFORMED'):
            raise RuntimeError('converter bug')
        return convert(wikitext)
    monkeypatch.setattr(wikidump, 'convert_wikitext', failing)


def saved(out):
    return datasets.load_from_disk(str(out)).to_list()


def stats_of(out):
    return json.loads((out / 'stats.json').read_text(encoding='utf-8'))


# ---- cleaning -----------------------------------------------------------------------------
def test_wikitext_to_text_exact():
    assert wikitext_to_text(ARTICLE) == ARTICLE_TEXT
    assert wikitext_to_text(ENGLISH) == ENGLISH_TEXT
    assert convert_wikitext(ARTICLE)[1] == convert_wikitext(ENGLISH)[1] == 0  # well-formed: nothing dropped


@pytest.mark.parametrize('wikitext,expected', [
    ("''斜体''と'''太字'''と'''''両方'''''", '斜体と太字と両方'),
    ('[[File:a.jpg|thumb|[[B|b]] の説明]]本文', '本文'),
    ('[[画像:a.jpg]][[FILE:b.jpg]][[category:X]][[カテゴリ:Y|よみ]]本文', '本文'),
    ('[[:カテゴリ:Y]]', 'カテゴリ:Y'),
    ('[[A#節|節]]と[[B#c]]', '節とB#c'),
    ('[[en:Tokyo|Tokyo]]は東京', 'Tokyoは東京'),
    ('*一\n**二\n#三\n;用語:定義', '一\n二\n三\n用語\n定義'),
    ('a<br/>b<br>c', 'a\nb\nc'),
    ('x<ref>a\n\nb</ref>y<references/>', 'xy'),
    ('東京（{{lang|en|Tokyo}}）と大阪（{{要出典}}）', '東京（Tokyo）と大阪'),
    ('=== 節 <!-- c --> ===\n本文', '節\n本文'),
    ('{{{引数|既定}}}本文<pre>code</pre>', '本文'),
    ('', ''),
])
def test_wikitext_cases(wikitext, expected):
    assert convert_wikitext(wikitext) == (expected, 0)


# (wikitext that mwparserfromhell cannot parse cleanly, the text kept, the lines dropped)
BROKEN = [
    # an infobox without its closing }}: its first line and its | rows go, the prose stays
    ("{{Infobox settlement\n| name = Tokyo\n| population = 14,000,000\n\n'''Tokyo''' is the capital of [[Japan]].\n\n"
     "It is large.", 'Tokyo is the capital of Japan.\nIt is large.', 3),
    ("{{基礎情報 日本の都市\n| 名前 = 東京\n| 人口 = 1400万\n\n'''東京都'''は[[日本]]の首都である。\n\n人口が多い。",
     '東京都は日本の首都である。\n人口が多い。', 3),
    # a link without ]]: its paragraph goes
    ("'''Tokyo''' is the capital of [[Japan.\n\nIt is the largest city.", 'It is the largest city.', 1),
    ("'''東京都'''は[[日本の首都である。\n\n人口が多い。", '人口が多い。', 1),
    # a table without |}: every row goes
    ('前文。\n{| class="wikitable"\n|-\n! 名前 !! 人口\n|-\n| 東京 || 1400万\n\n後文。', '前文。\n後文。', 5),
    # <ref> without </ref>, a file link without ]], an unclosed {{{argument, stray closers and rows
    ('本文<ref>{{cite|x}} 出典。\n\n次の段落。', '次の段落。', 1),
    ('[[ファイル:X.jpg|thumb|説明 [[東京]]\n\n本文。', '本文。', 1),
    ('{{{1|既定\n本文。', '本文。', 1),
    ('Text }} more.\nOther ]] there.\n|} end\n!Header\nKept.', 'Kept.', 4),
]


def assert_no_markup(text: str) -> None:
    for line in text.split('\n'):
        assert not any(m in line for m in ('{{', '}}', '[[', ']]', '{|', '|}', '<ref')), line
        assert not line.startswith(('|', '!')), line


@pytest.mark.parametrize('wikitext,expected,dropped', BROKEN, ids=['infobox_en', 'infobox_ja', 'link_en', 'link_ja', 'table',
                                                               'ref', 'file_link', 'argument', 'stray'])
def test_broken_markup_never_reaches_the_text(wikitext, expected, dropped):
    assert_no_markup(wikitext_to_text(wikitext))
    assert convert_wikitext(wikitext) == (expected, dropped)


def test_residue_rule_spares_prose():
    assert RESIDUE_RE.search('| 名前 = 東京') and RESIDUE_RE.search('x<ref name="a">y')
    assert not RESIDUE_RE.search('集合 {x | x > 0} と [注] と f(x)! と a < b <refs>')


def test_pages_with_broken_markup_are_counted(tmp_path, capsys):
    pages = [('1', 'Tokyo', '0', BROKEN[0][0], ''), ('2', '東京都', '0', BROKEN[3][0], ''),
             ('3', '表', '0', '{| class="wikitable"\n|-\n| 東京\n', ''), ('4', '京都', '0', '[[京都市|京都]]は古都。', '')]
    dump = tmp_path / 'broken.xml'
    dump.write_text(''.join(dump_parts(pages=pages)), encoding='utf-8')
    out = tmp_path / 'corpus'
    stats = build_wiki_corpus(dump, out, progress=False)
    docs = saved(out)
    assert [d['text'] for d in docs] == [BROKEN[0][1], BROKEN[3][1], '京都は古都。']
    for doc in docs:
        assert_no_markup(doc['text'])
    expected = {'pages': 4, 'kept': 3, 'empty': 1, 'broken_markup': 3, 'dropped_lines': 3 + 1 + 3}
    assert {k: stats[k] for k in expected} == {k: stats_of(out)[k] for k in expected} == expected
    assert '0 parse errors, 3 with broken markup (7 lines of it dropped)' in capsys.readouterr().out


# ---- reading dumps ------------------------------------------------------------------------
@pytest.mark.parametrize('kind', ['xml', 'bz2', 'multistream'])
def test_documents_and_counts(tmp_path, kind, malformed):
    counts = {}
    docs = list(iter_documents(write_dump(tmp_path, kind), counts=counts))
    assert docs == EXPECTED
    assert counts == EXPECTED_COUNTS


def test_build_corpus(tmp_path, malformed, capsys):
    out = tmp_path / 'corpus'
    stats = build_wiki_corpus(write_dump(tmp_path, 'multistream'), out, progress=False)
    assert {k: stats[k] for k in EXPECTED_COUNTS} == EXPECTED_COUNTS
    assert stats['complete'] is True and stats['cached'] is False
    assert saved(out) == EXPECTED
    on_disk = stats_of(out)
    assert on_disk['complete'] is True and on_disk['error'] is None
    assert {k: on_disk[k] for k in EXPECTED_COUNTS} == EXPECTED_COUNTS
    assert '11 pages read, 3 kept, 3 redirects, 2 in other namespaces, 2 empty, 1 parse errors' in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ['corpus', 'jawiki-pages-articles-multistream.xml.bz2']


def test_num_proc_2_matches_inline(tmp_path, monkeypatch):
    # more pages than a chunk, so several chunks are in flight at once
    monkeypatch.setattr(wikidump, 'CHUNK_PAGES', 2)
    dump = write_dump(tmp_path, 'bz2')
    one, two = {}, {}
    docs = list(iter_documents(dump, num_proc=1, counts=one))
    assert list(iter_documents(dump, num_proc=2, counts=two)) == docs
    assert one == two == {**EXPECTED_COUNTS, 'kept': 4, 'parse_errors': 0}
    assert [d['id'] for d in docs] == ['1', '7', '9', '10']
    build_wiki_corpus(dump, tmp_path / 'a', num_proc=1, progress=False)
    build_wiki_corpus(dump, tmp_path / 'b', num_proc=2, progress=False)
    assert saved(tmp_path / 'a') == saved(tmp_path / 'b') == docs


def test_directory_and_glob_of_parts(tmp_path):
    parts = tmp_path / 'parts'
    parts.mkdir()
    head, rest = dump_parts()
    (parts / 'jawiki-pages-articles10.xml-p9p11.bz2').write_bytes(bz2.compress((head.split('<page>')[0] + rest).encode()))
    (parts / 'jawiki-pages-articles2.xml-p1p5.bz2').write_bytes(bz2.compress((head + '</mediawiki>').encode()))
    (parts / 'jawiki-pages-articles-multistream-index.txt.bz2').write_bytes(bz2.compress(b'0:1:x\n'))
    assert [d['id'] for d in iter_documents(parts)] == ['1', '7', '9', '10']  # part 2 before part 10
    assert [d['id'] for d in iter_documents(str(parts / '*.xml-*.bz2'))] == ['1', '7', '9', '10']


# ---- truncated and corrupt dumps ----------------------------------------------------------
def test_truncated_multistream_keeps_partial_corpus(tmp_path):
    head, rest = dump_parts()
    first, second = bz2.compress(head.encode()), bz2.compress(rest.encode())
    dump = tmp_path / 'cut.xml.bz2'
    dump.write_bytes(first + second[:len(second) // 2])
    out = tmp_path / 'corpus'
    with pytest.raises(ValueError) as e:
        build_wiki_corpus(dump, out, progress=False)
    msg = str(e.value)
    assert '\n' not in msg
    assert str(dump) in msg and 'truncated or corrupt dump' in msg and 'after 5 pages' in msg
    assert f'of {dump.stat().st_size:,}' in msg and 'marked incomplete' in msg
    assert saved(out) == EXPECTED[:1]  # the article of the first, complete stream
    stats = stats_of(out)
    assert stats['complete'] is False and 'EOFError' in stats['error']
    assert {k: stats[k] for k in EXPECTED_COUNTS} == {'pages': 5, 'kept': 1, 'redirects': 3, 'other_namespaces': 1,
                                                     'empty': 0, 'parse_errors': 0, 'broken_markup': 0,
                                                     'dropped_lines': 0}
    with pytest.raises(ValueError, match=r'is incomplete.*allow_incomplete=True'):
        corpus.load_corpus(str(out))
    assert corpus.load_corpus(str(out), allow_incomplete=True)['text'] == [ARTICLE_TEXT]
    # a later run over the same damaged file does not take the partial corpus as cached
    with pytest.raises(ValueError, match='truncated'):
        build_wiki_corpus(dump, out, progress=False)


def test_truncated_xml(tmp_path):
    text = ''.join(dump_parts())
    cut = text[:text.index('<title>Python</title>')]
    dump = tmp_path / 'cut.xml'
    dump.write_text(cut, encoding='utf-8')
    with pytest.raises(ValueError, match=r'cut\.xml: truncated or corrupt dump \(ParseError: .*after 8 pages'):
        build_wiki_corpus(dump, tmp_path / 'out', num_proc=2, progress=False)
    assert [d['id'] for d in saved(tmp_path / 'out')] == ['1', '7']


@pytest.mark.parametrize('content,match', [
    (b'BZh91AY&SY' + b'\x00' * 64, r'bad\.bz2: truncated or corrupt dump \((OSError|EOFError)'),
    ('<html><body/></html>'.encode(), r'bad\.bz2: not a MediaWiki export \(root element <html>'),
    (b'not xml at all', r'bad\.bz2: truncated or corrupt dump \(ParseError'),
])
def test_corrupt_or_wrong_file(tmp_path, content, match):
    dump = tmp_path / 'bad.bz2'
    dump.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        list(iter_documents(dump))


@pytest.mark.parametrize('dump,match', [
    ('nope.xml.bz2', r"dump '.*nope\.xml\.bz2' does not exist"),
    ('*.nothing', r'matches no files'),
    ('.', r'holds no \.xml or \.xml\.bz2 files'),
])
def test_bad_dump_path(tmp_path, dump, match):
    target = str(tmp_path / dump)
    with pytest.raises(ValueError, match=match):
        build_wiki_corpus(target, tmp_path / 'out', progress=False)


def test_bad_num_proc_and_foreign_out_dir(tmp_path):
    dump = write_dump(tmp_path, 'xml')
    with pytest.raises(ValueError, match='num_proc must be a positive integer, got 0'):
        build_wiki_corpus(dump, tmp_path / 'out', num_proc=0)
    mine = tmp_path / 'mine'
    mine.mkdir()
    (mine / 'notes.txt').write_text('keep me', encoding='utf-8')
    with pytest.raises(ValueError, match='exists and is not a wiki corpus; choose another --out'):
        build_wiki_corpus(dump, mine, progress=False)
    assert (mine / 'notes.txt').read_text(encoding='utf-8') == 'keep me'


# ---- caching and the command line ---------------------------------------------------------
def test_second_run_is_cached_and_a_changed_dump_rebuilds(tmp_path, monkeypatch, capsys):
    dump, out = write_dump(tmp_path, 'xml'), tmp_path / 'corpus'
    first = build_wiki_corpus(dump, out, progress=False)
    build = wikidump.iter_documents
    monkeypatch.setattr(wikidump, 'iter_documents', lambda *a, **k: pytest.fail('cached run converted again'))
    again = build_wiki_corpus(dump, out, num_proc=2, progress=False)
    assert again['cached'] is True and {**again, 'cached': False} == first
    assert 'cached' in capsys.readouterr().out
    monkeypatch.setattr(wikidump, 'iter_documents', build)
    os.utime(dump, ns=(0, dump.stat().st_mtime_ns + 10**9))
    assert build_wiki_corpus(dump, out, progress=False)['cached'] is False
    assert [d['id'] for d in saved(out)] == ['1', '7', '9', '10']


def test_cli(tmp_path, capsys):
    dump, out = write_dump(tmp_path, 'bz2'), tmp_path / 'corpus'
    assert main(['wiki', str(dump), '--out', str(out), '--num_proc', '2']) == 0
    assert [d['id'] for d in saved(out)] == ['1', '7', '9', '10']
    assert main(['wiki', str(dump), '--out', str(out)]) == 0
    assert 'cached' in capsys.readouterr().out
    assert main(['wiki', str(tmp_path / 'missing.xml.bz2'), '--out', str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: dump ') and 'missing.xml.bz2' in err and 'does not exist' in err
    assert '\n' not in err


# ---- the 'wikipedia' data name ------------------------------------------------------------
def test_wikipedia_data_name(tmp_path, monkeypatch, malformed):
    out = tmp_path / 'data' / 'corpus' / 'wikipedia'
    monkeypatch.setitem(corpus.BUILT_DATAS, 'wikipedia', (str(out), 'python -m pretrain wiki DUMP'))
    with pytest.raises(ValueError, match=r"data 'wikipedia' is not built yet: run `python -m pretrain wiki DUMP`"):
        corpus.load_corpus('wikipedia')
    build_wiki_corpus(write_dump(tmp_path, 'xml'), out, progress=False)
    corpus.check_data_name('wikipedia')
    ds = corpus.load_corpus('wikipedia')
    assert ds.column_names == ['text'] and ds['text'] == [d['text'] for d in EXPECTED]
    assert corpus.load_corpus(str(out))['text'] == ds['text']  # any saved dataset directory loads
    assert corpus.data_cache_name('wikipedia') == 'wikipedia'
    assert [p.suffix for p in corpus.data_files('wikipedia')] == ['.arrow']


def test_unknown_data_lists_wikipedia():
    with pytest.raises(ValueError, match=r"^unknown data 'openwebtext'; allowed: 'sample', .*'wikipedia'"):
        corpus.check_data_name('openwebtext')


def test_saved_dataset_without_text_column(tmp_path):
    datasets.Dataset.from_dict({'body': ['x']}).save_to_disk(str(tmp_path / 'd'))
    with pytest.raises(ValueError, match=r"no 'text' column \(columns: body\)"):
        corpus.load_corpus(str(tmp_path / 'd'))


def test_a_failed_build_never_replaces_a_complete_corpus(tmp_path, malformed):
    out = tmp_path / 'corpus'
    build_wiki_corpus(write_dump(tmp_path, 'xml'), out, progress=False)
    good = saved(out)
    head, rest = dump_parts()
    cut = tmp_path / 'cut.xml.bz2'
    second = bz2.compress(rest.encode())
    cut.write_bytes(bz2.compress(head.encode()) + second[:len(second) // 2])
    with pytest.raises(ValueError, match=r'corpus\.incomplete marked incomplete.*complete corpus already in .* was left'):
        build_wiki_corpus(cut, out, progress=False)
    assert saved(out) == good and stats_of(out)['complete'] is True
    assert stats_of(tmp_path / 'corpus.incomplete')['complete'] is False


def test_a_killed_builds_scratch_directory_is_removed_by_the_next_build(tmp_path):
    import socket
    dead = tmp_path / f'.corpus.{socket.gethostname()}-99999999.build'  # no such pid
    (dead / 'docs.arrow').parent.mkdir()
    (dead / 'docs.arrow').write_bytes(b'partial')
    build_wiki_corpus(write_dump(tmp_path, 'multistream'), tmp_path / 'corpus', progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['corpus', 'jawiki-pages-articles-multistream.xml.bz2']
