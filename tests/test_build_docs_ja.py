"""data/build_docs_ja.py on a tiny synthetic package tree (no apt-get, no network): HTML to
text, the Japanese filter, global de-duplication, the page-level task split, dev pages kept out
of the corpus, determinism; and the shipped files keep the same promises."""
import gzip
import importlib.util
import sys
from pathlib import Path

import pytest

from finetune.data import load_task
from _utils.paths import REPO_ROOT


def _load_script():
    spec = importlib.util.spec_from_file_location('build_docs_ja', REPO_ROOT / 'data' / 'build_docs_ja.py')
    module = importlib.util.module_from_spec(spec)
    sys.modules['build_docs_ja'] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


bd = _load_script()

# on every LibreOffice page, dev pages included: never in the corpus
BOILERPLATE = 'ヘルプはシステムで既定とされているプログラムの標準設定を参照しています。'
# on two pages that no task uses: in the corpus once
REPEATED = 'この段落は二つのページに同じ文面で現れるので、一度だけ残ります。'


def lo_page(title, paragraphs):
    """A page shaped like LibreOffice's help HTML: navigation around a display area."""
    body = ''.join(f'<p class="paragraph" dir="auto">{p}</p>\n' for p in paragraphs)
    return f'''<!DOCTYPE html><html lang="ja"><head><title>{title}</title>
<script>var x = "スクリプトの中の文字列は本文ではありません。";</script></head><body>
<header id="TopLeftHeader"><a class="logo" href="#"><p>LibreOffice 7.4 ヘルプのヘッダーです</p></a>
<nav id="modules-nav">モジュールを選択するナビゲーション</nav></header>
<aside class="leftside"><div class="index-label">索引の見出しはサイドバーにあります</div></aside>
<div id="DisplayArea"><h1 id="hd_1">{title}</h1>
{body}<p class="paragraph">{BOILERPLATE}</p>
<p class="paragraph">This paragraph was not translated into Japanese yet, so it is English.</p>
<p class="paragraph">短い段落</p>
<p class="paragraph">メニュー 書式 → 段落 → インデントと間隔</p>
<div class="relatedtopics"><p class="related">関連項目のリンクは本文から外します</p></div>
</div><footer><div id="DEBUG"><p>このページのデバッグ情報はフッターです。</p></div></footer></body></html>'''


def gimp_page(title, up, paragraphs):
    """A page shaped like the GIMP manual's DocBook HTML: an 'up' link, navigation header/footer."""
    body = ''.join(f'<p>{p}</p>\n' for p in paragraphs)
    up_link = f'<link rel="up" href="{up}" title="上" />' if up else ''
    return f'''<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<html xmlns="http://www.w3.org/1999/xhtml"><head>
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8" /><title>{title}</title>{up_link}</head><body>
<div class="navheader"><table><tr><th>ナビゲーションの見出しは本文ではありません</th></tr></table></div>
<div class="sect2"><h3 class="title">{title}</h3>
<div class="figure"><img src="images/x.png" alt="画像の代替テキストは本文に入れません" /></div>
{body}<pre class="programlisting">コード例の中の日本語も本文には入りません</pre></div>
<div class="navfooter"><a href="index.html">ホームへ戻るためのリンクです</a></div></body></html>'''


APPS = {'swriter': '文書', 'scalc': '表計算', 'simpress': 'プレゼンテーション'}
GIMP_CHAPTERS = {'gimp-tools.html': '道具', 'filters.html': 'フィルター'}


def lo_texts(app, i):
    word = APPS[app]
    return [f'{word}ドキュメントの{i}番目のページでは、{word}に固有の操作を説明します。',
            f'{word}の{i}番目の機能を使うと、作業がさらに簡単になるでしょう。']


def gimp_texts(chapter, i):
    word = GIMP_CHAPTERS[chapter]
    return [f'{word}の章の{i}番目の項目では、画像を編集する方法を詳しく説明します。',
            f'{word}の{i}番目の設定を変えると、結果の画像が大きく変わります。']


def make_tree(root: Path) -> Path:
    """An extracted-package tree with libreoffice-help-ja and gimp-help-ja pages."""
    lo = root / 'libreoffice-help-ja' / 'usr/share/libreoffice/help/ja/text'
    for app in APPS:
        for i in range(5):
            f = lo / app / '01' / f'page{i:02d}.html'
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(lo_page(f'ページ{i}', lo_texts(app, i)), encoding='utf-8')
    shared = lo / 'shared' / '01' / 'common.html'
    shared.parent.mkdir(parents=True)
    shared.write_text(lo_page('共通のページ', ['どのアプリケーションでも使える共通の機能について説明します。', REPEATED]),
                      encoding='utf-8')
    gimp = root / 'gimp-help-ja' / 'usr/share/gimp/2.0/help/ja'
    gimp.mkdir(parents=True)
    (gimp / 'index.html').write_text(gimp_page('GIMP', None, ['GIMP のマニュアルの最初のページです。', REPEATED]), encoding='utf-8')
    (gimp / 'gfdl-1.html').write_text(gimp_page('GFDL', 'index.html', ['ライセンスのページは除外されます。']),
                                      encoding='utf-8')
    for chapter in GIMP_CHAPTERS:
        (gimp / chapter).write_text(gimp_page(chapter, 'index.html', []), encoding='utf-8')
        for i in range(5):
            # one level deeper than the chapter: the label comes from following 'up' twice
            section = f'{chapter[:-5]}-section{i // 3}.html'
            if not (gimp / section).exists():
                (gimp / section).write_text(gimp_page(section, chapter, []), encoding='utf-8')
            (gimp / f'{chapter[:-5]}-{i}.html').write_text(
                gimp_page(f'{chapter}{i}', section, gimp_texts(chapter, i)), encoding='utf-8')
    return root


SOURCES = tuple(s for s in bd.SOURCES if s.name in ('libreoffice', 'gimp'))


def run_build(tree: Path, out: Path) -> dict:
    packages = {s.package: bd.Package(s.package, tree=tree / s.package) for s in SOURCES}
    return bd.build(packages, out, SOURCES, log=lambda line: None)


def read_tsv(path: Path) -> list[tuple[str, str]]:
    lines = path.read_text(encoding='utf-8').split('\n')
    assert lines[0] == 'text_a\tlabel' and lines[-1] == ''
    rows = [tuple(line.split('\t')) for line in lines[1:-1]]
    assert all(len(r) == 2 and r[0] and r[1] for r in rows)
    return rows


def corpus_docs(path: Path) -> list[list[str]]:
    text = gzip.decompress(path.read_bytes()).decode('utf-8')
    return [doc.split('\n') for doc in text.strip('\n').split('\n\n')]


# ---- HTML to text -------------------------------------------------------------------------
def test_parse_page_keeps_prose_only():
    html = '''<html><head><title>題名</title><link rel="up" href="ch.html#x"></head><body>
    <nav>ナビ</nav><h2>見出し  です</h2>
    <p>一行目の
       文章です。 次の文です。 Shift キーを押します。</p>
    <p>この機能を無効にするには、<span class="switchinline"><span hidden="true" id="MACtext_1" class="MAC">LibreOffice → 設定</span><span hidden="true" id="defaulttext_1">ツール → オプション</span></span>を選択します。</p>
    <ul><li>項目その一<li>項目その二</ul>
    <table><tr><td><p>セル一</p></td><td>セル二<br>改行後</td></tr></table>
    <div class="bascode"><code>Sub Main</code></div><pre>コード</pre>
    <p>画像 <img src="a.png" alt="代替テキスト"> の後&amp;実体参照&nbsp;です。\u200b</p>
    <div style="display: none">表示されない</div><div class="toc">目次</div>
    </body></html>'''
    page = bd.parse_page('a/b.html', html)
    assert page.title == '題名' and page.links == {'up': 'ch.html#x'}
    assert page.paragraphs == ['見出しです', '一行目の文章です。次の文です。 Shift キーを押します。',
                               'この機能を無効にするには、ツール → オプションを選択します。',
                               '項目その一', '項目その二', 'セル一', 'セル二', '改行後', '画像の後&実体参照です。']


def test_clean_text_spaces_and_controls():
    assert bd.clean_text(' 日本語\tの\n 文 。\x07 A  B ') == '日本語の文。 A B'
    assert bd.clean_text('全角\u3000スペース') == '全角スペース'
    assert '\t' not in bd.clean_text('a\tb') and '\n' not in bd.clean_text('a\nb')


@pytest.mark.parametrize('text,reason', [
    ('この段落は日本語で書かれているので残ります。', None),
    ('LibreOffice Calc の SUM 関数を使います。', None),          # enough kana/kanji among the letters
    ('This paragraph is English and is dropped.', 'not_japanese'),
    ('Use the VLOOKUP function of LibreOffice Calc (表).', 'not_japanese'),
    ('短い段落です', 'short'),
    ('ツール → オプション → LibreOffice Writer → 表示', 'menu'),
    ('画像ウィンドウのメニューよりレイヤー → 重なり → レイヤーを前面へ', 'menu'),
    ('メニューからツール → オプションを選択して、設定を変更します。', None),  # a sentence, not a menu path
])
def test_keep_reason(text, reason):
    assert bd.keep_reason(text) == reason


def test_japanese_ratio():
    assert bd.japanese_ratio('ひらがなカタカナ漢字') == 1.0
    assert bd.japanese_ratio('abc') == 0.0 and bd.japanese_ratio('123 !?') == 0.0
    assert bd.japanese_ratio('abcあ') == 0.25


def test_split_pages_is_per_page_stratified_and_stable():
    rows = {f'{label}/{i}.html': (label, 10) for label in 'ab' for i in range(10)}
    split = bd.split_pages('src', rows)
    assert split == bd.split_pages('src', dict(reversed(list(rows.items()))))
    for label in 'ab':
        assert sum(1 for p, s in split.items() if s == 'dev' and p.startswith(label)) == 2  # 20% of the rows
    assert bd.split_pages('other', rows) != split  # the hash includes the source


# ---- the build on a synthetic tree --------------------------------------------------------
@pytest.fixture(scope='module')
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('docs')
    tree = make_tree(tmp / 'extracted')
    report = run_build(tree, tmp / 'out')
    return tree, tmp / 'out', report


def test_outputs_and_counts(built):
    _, out, report = built
    assert sorted(p.name for p in (out / 'docs_ja').iterdir()) == ['gimp.txt.gz', 'libreoffice.txt.gz', 'sources.json']
    assert sorted(p.relative_to(out).as_posix() for p in (out / 'tasks').rglob('*.tsv')) == [
        'tasks/gimp_section/dev.tsv', 'tasks/gimp_section/train.tsv',
        'tasks/libreoffice_module/dev.tsv', 'tasks/libreoffice_module/train.tsv']
    lo, gimp = report['corpus']['libreoffice'], report['corpus']['gimp']
    assert lo['pages'] == 16 and lo['dev_pages_excluded'] == 3  # one page of five per application
    assert lo['documents'] == 13 and lo['kept'] == 12 * 2 + 2
    # per page left in: one English paragraph, a short title and paragraph, a menu path, the boilerplate
    assert lo['dropped'] == {'not_japanese': 13, 'short': 26, 'menu': 13, 'on_dev_page': 13, 'duplicate': 0}
    assert gimp['pages'] == 1 + 2 + 2 * 2 + 2 * 5  # index, chapters, sections, pages; gfdl-*.html excluded
    assert gimp['dev_pages_excluded'] == 2 and gimp['dropped']['duplicate'] == 1  # REPEATED, seen in libreoffice
    tasks = report['tasks']
    assert tasks['libreoffice_module']['kept'] == {'train': {'calc': 8, 'impress': 8, 'writer': 8},
                                                   'dev': {'calc': 2, 'impress': 2, 'writer': 2}}
    assert tasks['libreoffice_module']['dev_majority_rate'] == round(1 / 3, 4)
    assert tasks['gimp_section']['pages'] == {'train': 2 + 2 * 2 + 2 * 4, 'dev': 2}
    assert not list(out.rglob('*.partial'))


def test_corpus_is_clean_japanese_without_duplicates(built):
    _, out, _ = built
    docs = corpus_docs(out / 'docs_ja' / 'libreoffice.txt.gz') + corpus_docs(out / 'docs_ja' / 'gimp.txt.gz')
    paragraphs = [p for doc in docs for p in doc]
    assert all(p for p in paragraphs)
    assert len(paragraphs) == len(set(paragraphs))
    assert paragraphs.count(REPEATED) == 1 and BOILERPLATE not in paragraphs
    text = '\n'.join(paragraphs)
    for junk in ('not translated', '短い段落', '→ 段落', '関連項目', 'デバッグ', 'ヘッダー', 'ナビゲーション', 'スクリプト',
                 '代替テキスト', 'コード例', 'ホームへ', 'ライセンスのページ', '索引の見出し'):
        assert junk not in text
    assert all(bd.japanese_ratio(p) >= bd.MIN_JAPANESE and len(p) >= bd.MIN_CHARS for p in paragraphs)


def test_tasks_split_by_page_and_dev_pages_left_out_of_corpus(built):
    _, out, _ = built
    corpus = {p for name in ('libreoffice', 'gimp') for doc in corpus_docs(out / 'docs_ja' / f'{name}.txt.gz') for p in doc}
    page_of = {}
    for app in APPS:
        for i in range(5):
            page_of.update({t: ('libreoffice', app, i) for t in lo_texts(app, i)})
    for chapter in GIMP_CHAPTERS:
        for i in range(5):
            page_of.update({t: ('gimp', chapter, i) for t in gimp_texts(chapter, i)})
    for task, labels in (('libreoffice_module', {'writer', 'calc', 'impress'}), ('gimp_section', {'tools', 'filters'})):
        train, dev = (read_tsv(out / 'tasks' / task / f'{s}.tsv') for s in ('train', 'dev'))
        assert {l for _, l in train} == {l for _, l in dev} == labels
        train_pages, dev_pages = {page_of[t] for t, _ in train}, {page_of[t] for t, _ in dev}
        assert train_pages and dev_pages and not train_pages & dev_pages  # no page on both sides
        # every paragraph of a page is on its page's side
        assert {t for t, _ in train} == {t for t, p in page_of.items() if p in train_pages}
        assert {t for t, _ in dev} == {t for t, p in page_of.items() if p in dev_pages}
        # dev pages are not in the corpus at all, training pages are
        assert not {t for t, p in page_of.items() if p in dev_pages} & corpus
        assert {t for t, _ in train} <= corpus
    assert BOILERPLATE not in {t for t, _ in read_tsv(out / 'tasks' / 'libreoffice_module' / 'train.tsv')}


def test_tasks_load_for_finetuning(built):
    _, out, _ = built
    task = load_task(out / 'tasks' / 'gimp_section' / 'train.tsv', out / 'tasks' / 'gimp_section' / 'dev.tsv',
                     'classification')
    assert sorted(task.label_names) == ['filters', 'tools']


def test_build_is_deterministic(built, tmp_path):
    tree, out, _ = built
    run_build(tree, tmp_path / 'again')
    files = sorted(p.relative_to(out) for p in out.rglob('*') if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / 'again') for p in (tmp_path / 'again').rglob('*') if p.is_file())
    for f in files:
        assert (out / f).read_bytes() == (tmp_path / 'again' / f).read_bytes(), f
    assert (out / 'docs_ja' / 'gimp.txt.gz').read_bytes()[4:8] == b'\0\0\0\0'  # gzip mtime 0


def test_cap_balances_classes():
    cand = bd.TaskCandidates({'train': {'a': [f'a{i}' for i in range(50)], 'b': ['b0', 'b1']}, 'dev': {'a': ['x', 'y']}},
                             {'p1': 'train', 'p2': 'dev'})
    task = bd.Task('t', 'src', lambda page, pages: None, cap_train=5, cap_dev=1)
    rows, counts = bd.task_rows(task, cand, in_corpus=lambda text: text == 'x')
    assert counts['kept']['train'] == {'a': 5, 'b': 2} and counts['available']['train'] == {'a': 50, 'b': 2}
    assert rows['dev'] == [('y', 'a')] and counts['dev_in_corpus_dropped'] == 1 and counts['dev_majority_rate'] == 1.0
    assert rows == bd.task_rows(task, cand, in_corpus=lambda text: text == 'x')[0]


# ---- errors -------------------------------------------------------------------------------
def test_source_without_pages_is_one_line_error(tmp_path, capsys):
    (tmp_path / 'libreoffice-help-ja' / 'usr').mkdir(parents=True)
    code = bd.main(['--extracted', str(tmp_path), '--sources', 'libreoffice', '--no-tokenizer',
                    '--data_dir', str(tmp_path / 'out')])
    err = capsys.readouterr().err
    assert code == 1 and err.count('\n') == 1 and 'libreoffice-help-ja: no HTML pages' in err
    assert not (tmp_path / 'out').exists()


def test_missing_debs_and_unknown_source(tmp_path, capsys):
    assert bd.main(['--debs', str(tmp_path), '--no-tokenizer', '--data_dir', str(tmp_path / 'out')]) == 1
    assert capsys.readouterr().err == f'error: no libreoffice-help-ja_*.deb in {tmp_path}\n'
    assert bd.main(['--extracted', str(tmp_path), '--sources', 'nope', '--no-tokenizer']) == 1
    assert 'unknown source(s) nope' in capsys.readouterr().err


def test_apt_failure_is_one_line(tmp_path, monkeypatch):
    import subprocess

    def fake_run(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 100, '', 'W: something\nE: Unable to locate package gimp-help-ja\n')
    monkeypatch.setattr(bd.subprocess, 'run', fake_run)
    with pytest.raises(bd.BuildError, match=r'^apt-get download failed: E: Unable to locate package gimp-help-ja$'):
        bd.download_debs(['gimp-help-ja'], tmp_path)


# ---- the shipped files --------------------------------------------------------------------
SHIPPED = REPO_ROOT / 'data' / 'docs_ja'


@pytest.mark.skipif(not (SHIPPED / 'libreoffice.txt.gz').is_file(), reason='docs_ja corpus not built')
def test_shipped_dev_paragraphs_are_not_in_the_corpus():
    corpus = set()
    for f in sorted(SHIPPED.glob('*.txt.gz')):
        corpus.update(gzip.decompress(f.read_bytes()).decode('utf-8').split('\n'))
    for task in ('libreoffice_module', 'gimp_section'):
        train, dev = (read_tsv(REPO_ROOT / 'data' / 'tasks' / task / f'{s}.tsv') for s in ('train', 'dev'))
        assert 2000 <= len(train) <= 4000 and 500 <= len(dev) <= 1000
        assert not {t for t, _ in dev} & corpus
        assert not {t for t, _ in dev} & {t for t, _ in train}


def test_the_build_writes_the_corpora_that_corpus_names():
    """`docs_ja` in pretrain/prepare/corpus.py names exactly the files this build writes, in its order."""
    from pretrain.prepare.corpus import DOCS_JA_SOURCES
    assert bd.SOURCE_NAMES == DOCS_JA_SOURCES
