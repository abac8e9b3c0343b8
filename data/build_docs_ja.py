#!/usr/bin/env python3
"""Rebuild the Japanese documentation corpus and its two classification tasks from Debian
documentation packages (data/README.md says what each file is, where it comes from and
under which licence):

    python data/build_docs_ja.py                  # apt-get download the packages, build, train the tokenizer
    python data/build_docs_ja.py --debs DIR       # use the .debs already in DIR (PACKAGE_VERSION_all.deb)
    python data/build_docs_ja.py --no-tokenizer   # corpus and tasks only

Writes (each file under a temporary name, then renamed):

- `data/docs_ja/{source}.txt.gz`: one help page per document (a blank line between documents),
  one paragraph per line; only paragraphs that are mostly Japanese and not too short, each
  paragraph once over all sources (the first in source order, then sorted page order, wins);
  the pages of both tasks' dev splits, and every paragraph that also occurs on one of them,
  are left out, so that a dev score is never on text the model was pre-trained on.
- `data/docs_ja/sources.json`: package versions and checksums, and the counts printed.
- `data/tasks/libreoffice_module/{train,dev}.tsv`: LibreOffice help paragraph -> application.
- `data/tasks/gimp_section/{train,dev}.tsv`: GIMP help paragraph -> chapter of the manual.
- `data/docs_ja/tokenizer/`: `python -m pretrain tokenizer --japanese --datas docs_ja ...`.

Only the standard library is used for the build itself; .debs are read directly (ar + tar),
so `dpkg-deb` is not needed. The same .debs give byte-identical outputs.
"""
from __future__ import annotations

import argparse
import fnmatch
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import unicodedata
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Callable, Iterable

from _utils.cli import run_command
from _utils.japanese import JAPANESE as _JA_CHAR, JAPANESE_CHARS as JA_CHARS

REPO_ROOT = Path(__file__).resolve().parent.parent


# ---- sources ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    name: str                      # output file stem: data/docs_ja/{name}.txt.gz
    package: str                   # Debian binary package
    root: str                      # directory of the HTML pages inside the package
    include: tuple[str, ...]       # fnmatch patterns on the page path relative to `root`
    exclude: tuple[str, ...] = ()
    # the licence of the documentation text, as the package's copyright file states it for the
    # files the pages are built from (read by hand; data/README.md quotes the stanzas)
    licence: str = ''


# In this order: a paragraph seen in an earlier source is a duplicate in a later one.
SOURCES: tuple[Source, ...] = (
    Source('libreoffice', 'libreoffice-help-ja', 'usr/share/libreoffice/help/ja/text', ('*.html',),
           licence='MPL-2.0'),
    Source('gimp', 'gimp-help-ja', 'usr/share/gimp/2.0/help/ja', ('*.html',),
           # the licence text (English) and the index pages
           # its copyright file is a link into gimp-help-common, which the build does not read
           exclude=('gfdl*.html', 'legal.html', 'gimp-help-index.html'), licence='GFDL-NIV-1.2+'),
    Source('debian_reference', 'debian-reference-ja', 'usr/share/debian-reference', ('*.ja.html',), licence='GPL-2+'),
    Source('debian_handbook', 'debian-handbook', 'usr/share/doc/debian-handbook/html/ja-JP', ('*.html',),
           licence='GPL-2.0+ or CC-BY-SA-3.0'),
    Source('debian_edu', 'debian-edu-doc-ja', 'usr/share/doc/debian-edu-doc-ja', ('debian-edu-bookworm-manual.html',),
           licence='GPL-2+'),
    Source('debian_policy', 'debian-policy-ja', 'usr/share/doc/debian-policy/ja', ('*.html',),
           exclude=('*/genindex.html', '*/search.html'), licence='GPL-2+'),
    Source('aptitude', 'aptitude-doc-ja', 'usr/share/doc/aptitude/html/ja', ('*.html',), licence='GPL-2+'),
    Source('kicad', 'kicad-doc-ja', 'usr/share/doc/kicad/help/ja', ('*.html',), licence='GPL-2+ or CC-BY-SA-3.0'),
    Source('lilypond', 'lilypond-doc-html-ja', 'usr/share/doc/lilypond/html/Documentation', ('*.ja.html',),
           # one-page copies of the split manuals, generated indices and tables of contents
           exclude=('*-big-page.ja.html', '*-index.ja.html', '*/index_toc.ja.html'), licence='GFDL-1.3+'),
)
SOURCE_NAMES = tuple(s.name for s in SOURCES)

MIN_CHARS = 10          # corpus paragraphs
MIN_TASK_CHARS = 20     # task paragraphs
MIN_JAPANESE = 0.3      # share of kana/kanji among the letters of a paragraph
DEV_PERCENT = 20        # pages whose hash falls below this go to dev


# ---- HTML -> paragraphs -------------------------------------------------------------------
# Elements that end a paragraph where they start and where they end.
BLOCK_TAGS = frozenset('''address article aside blockquote body br caption center dd details div dl dt
    fieldset figcaption figure footer form h1 h2 h3 h4 h5 h6 header hr html li main nav ol p pre
    section summary table tbody td tfoot th thead title tr ul'''.split())
VOID_TAGS = frozenset('area base basefont br col embed frame hr img input keygen link meta param source track wbr'.split())
# Elements whose text is never prose: scripts, navigation, code blocks, forms.
SKIP_TAGS = frozenset('''aside button footer head header iframe map math nav noscript object pre script
    select style svg template textarea'''.split())
# Classes of navigation, tables of contents, code and menu-path boxes in the packages' HTML
# (DocBook, Sphinx, Asciidoctor, Texinfo and LibreOffice's help XSLT).
SKIP_CLASSES = frozenset('''navheader navfooter toc list-of-tables list-of-figures list-of-examples
    sphinxsidebar sphinxsidebarwrapper related footer headerlink highlight literal-block
    nav_table toc_header toc_uplink footer_version footer_report contents
    relatedtopics relatedbody howtoget howtogetheader howtogetbody debug reportbug bascode pycode code
    programlisting screen synopsis cmdsynopsis literallayout listingblock literalblock
    indexterm index'''.split())
SKIP_IDS = frozenset('header footer toc toctitle DEBUG SearchFrame DonationFrame Contents Index Bookmarks'.split())
# Implicitly closed by a sibling of the same kind in HTML (<li>a<li>b).
SELF_CLOSING_SIBLINGS = frozenset('p li dt dd td th tr option'.split())


class _PageParser(HTMLParser):
    """Paragraph texts of one HTML page, plus its <title> and <link rel=...> targets."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool]] = []  # open elements: (tag, starts a skipped subtree)
        self.skipping = 0
        self.buf: list[str] = []
        self.paragraphs: list[str] = []
        self.title: list[str] = []
        self.in_title = False
        self.links: dict[str, str] = {}

    def _flush(self) -> None:
        text = clean_text(''.join(self.buf))
        self.buf = []
        if text:
            self.paragraphs.append(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or '' for k, v in attrs}
        if tag == 'link':
            for rel in a.get('rel', '').split():
                self.links.setdefault(rel.lower(), a.get('href', ''))
            return
        if tag in VOID_TAGS:
            if tag in BLOCK_TAGS and not self.skipping:
                self._flush()
            return
        if tag in SELF_CLOSING_SIBLINGS and self.stack and self.stack[-1][0] == tag:
            self.handle_endtag(tag)
        elem_id = a.get('id', '')
        skip = tag not in ('html', 'body') and (
            tag in SKIP_TAGS or elem_id in SKIP_IDS or not SKIP_CLASSES.isdisjoint(a.get('class', '').split())
            # LibreOffice shows one of several hidden variants (macOS, Windows, ...) by script: keep the default
            or ('hidden' in a and not elem_id.startswith('default'))
            or 'display:none' in a.get('style', '').replace(' ', ''))
        self.stack.append((tag, skip))
        if tag == 'title':
            self.in_title = True
        if tag in BLOCK_TAGS and not self.skipping:
            self._flush()
        self.skipping += skip

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID_TAGS or all(t != tag for t, _ in self.stack):
            return  # stray end tag
        while self.stack:
            t, skip = self.stack.pop()
            self.skipping -= skip
            if t == 'title':
                self.in_title = False
            if t == tag:
                break
        if tag in BLOCK_TAGS and not self.skipping:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title.append(data)
        if not self.skipping:
            self.buf.append(data)

    def close(self) -> None:
        super().close()
        if not self.skipping:
            self._flush()


@dataclass
class Page:
    path: str                # relative to the source's root, '/'-separated
    title: str
    links: dict[str, str]
    paragraphs: list[str]


def parse_page(path: str, html: str) -> Page:
    """One HTML page as its cleaned paragraph texts, in order."""
    p = _PageParser()
    p.feed(html)
    p.close()
    return Page(path, clean_text(''.join(p.title)), p.links, p.paragraphs)


# Japanese characters and full-width punctuation: no space belongs between two of them
JA_OR_PUNCT = f'[{JA_CHARS}\u3000-\u303f\uff01-\uff65]'
_SPACE_BETWEEN_JA = re.compile(f'(?<={JA_OR_PUNCT}) (?={JA_OR_PUNCT})')
_SPACES = re.compile(r' {2,}')


def clean_text(text: str) -> str:
    """NFC, every kind of white space as one space, control/format characters removed, no
    space between two Japanese characters (the HTML's line breaks), no tabs or newlines."""
    text = unicodedata.normalize('NFC', text)
    text = ''.join(' ' if c.isspace() else c for c in text
                   if c.isspace() or unicodedata.category(c) not in ('Cc', 'Cf', 'Cs', 'Co', 'Cn'))
    text = _SPACES.sub(' ', text).strip()
    return _SPACE_BETWEEN_JA.sub('', text)


def japanese_ratio(text: str) -> float:
    """The share of kana and kanji among the letters of `text` (0 without letters)."""
    letters = sum(1 for c in text if unicodedata.category(c)[0] == 'L')
    return len(_JA_CHAR.findall(text)) / letters if letters else 0.0


_MENU_ARROWS = re.compile(r'\s*(?:→|⇒|->|>|＞|›|»|\|)\s*')


def is_menu_path(text: str) -> bool:
    """A line that is only a menu path or a row of short labels ('ツール → オプション →
    LibreOffice Writer → 表示'), not a sentence."""
    parts = [p for p in _MENU_ARROWS.split(text) if p]
    return len(parts) >= 2 and len(parts) > text.count('。') * 10 and all(len(p) <= 25 and '。' not in p for p in parts)


def keep_reason(text: str, min_chars: int = MIN_CHARS) -> str | None:
    """None when a paragraph is kept, else why it is dropped: 'short', 'not_japanese', 'menu'."""
    if len(text) < min_chars:
        return 'short'
    if japanese_ratio(text) < MIN_JAPANESE:
        return 'not_japanese'
    if is_menu_path(text):
        return 'menu'
    return None


# ---- reading packages ---------------------------------------------------------------------
class BuildError(Exception):
    """A problem with the inputs, reported as one line."""


def _ar_members(data: bytes, name: str) -> dict[str, bytes]:
    if not data.startswith(b'!<arch>\n'):
        raise BuildError(f'{name}: not a .deb (ar) archive')
    members, i = {}, 8
    while i + 60 <= len(data):
        header = data[i:i + 60]
        try:
            size = int(header[48:58].decode().strip())
        except ValueError:
            raise BuildError(f'{name}: damaged .deb (bad ar header at byte {i})') from None
        members[header[:16].decode('ascii', 'replace').strip().rstrip('/')] = data[i + 60:i + 60 + size]
        i += 60 + size + size % 2
    return members


def _tar_of(members: dict[str, bytes], prefix: str, name: str) -> tarfile.TarFile:
    for member, blob in members.items():
        if member.startswith(prefix + '.tar'):
            if member.endswith('.zst'):
                raise BuildError(f'{name}: {member} is zstd-compressed, which the standard library cannot read; '
                                 f'extract it with dpkg-deb -x and use --extracted')
            try:
                return tarfile.open(fileobj=io.BytesIO(blob), mode='r:*')
            except (tarfile.TarError, lzma.LZMAError, OSError, EOFError) as e:
                raise BuildError(f'{name}: cannot read {member} ({e})') from None
    raise BuildError(f'{name}: no {prefix}.tar.* member; not a .deb')


class Package:
    """The files of an installed-layout package tree: a .deb read in memory, or a directory
    holding the extracted tree (`dpkg-deb -x PKG.deb DIR`)."""

    def __init__(self, package: str, deb: Path | None = None, tree: Path | None = None) -> None:
        self.package, self.tree = package, tree
        self.version, self.sha256, self.size = 'unknown', None, None
        self.files: dict[str, bytes] = {}  # path inside the package -> contents (regular files only)
        if deb is not None:
            self._read_deb(deb)

    def _read_deb(self, deb: Path) -> None:
        data = deb.read_bytes()
        self.sha256, self.size = hashlib.sha256(data).hexdigest(), len(data)
        members = _ar_members(data, deb.name)
        try:
            with _tar_of(members, 'control', deb.name) as tar:
                for m in tar:
                    if m.isfile() and m.name.lstrip('./') == 'control':
                        control = tar.extractfile(m).read().decode('utf-8', 'replace')
                        found = re.search(r'^Version:\s*(\S+)', control, re.M)
                        self.version = found.group(1) if found else 'unknown'
            with _tar_of(members, 'data', deb.name) as tar:
                for m in tar:
                    path = m.name[2:] if m.name.startswith('./') else m.name.lstrip('/')
                    if m.isfile() and (path.endswith(('.html', '.htm')) or path.endswith('/copyright')):
                        self.files[path] = tar.extractfile(m).read()
        except (tarfile.TarError, lzma.LZMAError, EOFError, OSError) as e:
            raise BuildError(f'{deb.name}: damaged .deb ({e})') from None

    def pages(self, root: str, wanted: Callable[[str], bool]) -> list[tuple[str, bytes]]:
        """(path relative to `root`, bytes) of the regular files under `root` whose relative
        path is `wanted`, sorted by path."""
        root = root.strip('/') + '/'
        if self.tree is not None:
            base = self.tree / root
            if not base.is_dir():
                return []
            paths = sorted((p.relative_to(base).as_posix(), p) for p in base.rglob('*')
                           if p.is_file() and not p.is_symlink())
            return [(rel, p.read_bytes()) for rel, p in paths if wanted(rel)]
        return sorted((p[len(root):], b) for p, b in self.files.items() if p.startswith(root) and wanted(p[len(root):]))

    def read(self, path: str) -> bytes | None:
        if self.tree is not None:
            p = self.tree / path
            return p.read_bytes() if p.is_file() else None
        return self.files.get(path)


def download_debs(packages: Iterable[str], dest: Path) -> None:
    """`apt-get download` the packages into `dest`; BuildError with apt's own message."""
    try:
        r = subprocess.run(['apt-get', 'download', *packages], cwd=dest, capture_output=True, text=True)
    except OSError as e:
        raise BuildError(f'cannot run apt-get ({e}); download the packages elsewhere and use --debs DIR') from None
    if r.returncode != 0:
        errors = [line for line in r.stderr.splitlines() if line.startswith('E:')] or r.stderr.strip().splitlines() or ['no message']
        raise BuildError(f'apt-get download failed: {errors[-1]}')


def find_deb(debs: Path, package: str) -> Path:
    found = sorted(debs.glob(f'{package}_*.deb'))
    if not found:
        raise BuildError(f'no {package}_*.deb in {debs}')
    if len(found) > 1:
        raise BuildError(f'several .debs for {package} in {debs}: {", ".join(p.name for p in found)}; keep one')
    return found[0]


def decode_html(data: bytes) -> str:
    """The text of an HTML page, in the encoding it declares (UTF-8 if none)."""
    head = data[:2048].decode('ascii', 'replace').lower()
    found = re.search(r'charset=["\']?([a-z0-9_-]+)', head) or re.search(r'encoding=["\']([a-z0-9_-]+)', head)
    encoding = found.group(1) if found else 'utf-8'
    try:
        return data.decode(encoding, 'replace')
    except LookupError:
        return data.decode('utf-8', 'replace')


def read_source(source: Source, package: Package) -> list[Page]:
    """The pages of one source, parsed, in sorted path order."""
    def wanted(rel: str) -> bool:
        return any(fnmatch.fnmatchcase(rel, pat) for pat in source.include) and \
            not any(fnmatch.fnmatchcase(rel, pat) for pat in source.exclude)
    pages = [parse_page(rel, decode_html(data)) for rel, data in package.pages(source.root, wanted)]
    if not pages:
        raise BuildError(f'{source.package}: no HTML pages under /{source.root} matching {", ".join(source.include)}')
    return pages


# ---- tasks --------------------------------------------------------------------------------
LIBREOFFICE_MODULES = {'swriter': 'writer', 'scalc': 'calc', 'simpress': 'impress', 'sdraw': 'draw',
                       'sdatabase': 'base', 'smath': 'math', 'schart': 'chart', 'sbasic': 'basic'}


def libreoffice_label(page: Page, pages: dict[str, Page]) -> str | None:
    """The application whose help the page belongs to (text/swriter/... -> writer); None for
    the shared pages (text/shared/...), which every application shows."""
    return LIBREOFFICE_MODULES.get(page.path.split('/', 1)[0])


GIMP_CHAPTERS = {'gimp-tools.html': 'tools', 'dialogs.html': 'dialogs', 'menus.html': 'menus',
                 'filters.html': 'filters'}


def gimp_label(page: Page, pages: dict[str, Page]) -> str | None:
    """The chapter of the GIMP manual's function reference the page is in, following the
    DocBook 'up' links: tools, dialogs, menus or filters; None for the other parts."""
    seen, path = set(), page.path
    while path and path not in seen:
        if path in GIMP_CHAPTERS:
            return GIMP_CHAPTERS[path]
        seen.add(path)
        up = pages[path].links.get('up', '') if path in pages else ''
        path = up.split('#', 1)[0]
    return None


@dataclass(frozen=True)
class Task:
    name: str
    source: str
    label: Callable[[Page, dict[str, Page]], str | None]
    cap_train: int      # at most this many rows of a class in train
    cap_dev: int        # ... and in dev


TASKS: tuple[Task, ...] = (
    Task('libreoffice_module', 'libreoffice', libreoffice_label, cap_train=450, cap_dev=110),
    Task('gimp_section', 'gimp', gimp_label, cap_train=600, cap_dev=150),
)


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode('utf-8')).digest()[:8], 'big')


def split_pages(source: str, rows_of_page: dict[str, tuple[str, int]], dev_percent: int = DEV_PERCENT) -> dict[str, str]:
    """'train' or 'dev' for each page (path -> (label, rows)): the pages of each label in the
    order of a hash of their source and path, the first ones (with rows) to dev until dev holds
    `dev_percent`% of the label's rows, the others to train. Every paragraph of a page is on
    the same side, and the same pages always give the same split."""
    split = {}
    for label in sorted({label for label, _ in rows_of_page.values()}):
        paths = sorted((p for p, (l, _) in rows_of_page.items() if l == label), key=lambda p: (_hash(f'{source}/{p}'), p))
        total, dev = sum(rows_of_page[p][1] for p in paths), 0
        for p in paths:
            if rows_of_page[p][1] and dev < total * dev_percent / 100:  # a page without rows stays in the corpus
                split[p], dev = 'dev', dev + rows_of_page[p][1]
            else:
                split[p] = 'train'
    return split


@dataclass
class TaskCandidates:
    """The rows a task could use, before capping: split -> label -> texts, and each page's side."""
    rows: dict[str, dict[str, list[str]]]
    split_of: dict[str, str]

    @property
    def dev_pages(self) -> set[str]:
        return {path for path, split in self.split_of.items() if split == 'dev'}


def task_candidates(task: Task, pages: list[Page]) -> TaskCandidates:
    """The candidate rows of `task` and the page split.

    A paragraph is a candidate when its page has a label, it is at least MIN_TASK_CHARS long,
    mostly Japanese, not a menu path, and occurs on no other page of the source (text shared
    between pages is boilerplate, and may belong to several classes)."""
    by_path = {p.path: p for p in pages}
    pages_of: dict[str, set[str]] = {}
    for p in pages:
        for text in p.paragraphs:
            pages_of.setdefault(text, set()).add(p.path)
    candidates = {}  # path -> (label, texts)
    for p in pages:
        label = task.label(p, by_path)
        if label is not None:
            candidates[p.path] = (label, [t for t in dict.fromkeys(p.paragraphs)
                                          if keep_reason(t, MIN_TASK_CHARS) is None and len(pages_of[t]) == 1])
    split_of = split_pages(task.source, {path: (label, len(texts)) for path, (label, texts) in candidates.items()})
    rows: dict[str, dict[str, list[str]]] = {'train': {}, 'dev': {}}
    for path, (label, texts) in candidates.items():
        if texts:
            rows[split_of[path]].setdefault(label, []).extend(texts)
    return TaskCandidates(rows, split_of)


def task_rows(task: Task, cand: TaskCandidates, in_corpus: Callable[[str], bool] = lambda text: False
              ) -> tuple[dict[str, list[tuple[str, str]]], dict]:
    """Rows (text, label) of each split and the per-class counts. Dev candidates for which
    `in_corpus` is true (text the pre-training corpus holds, e.g. inside a longer paragraph of a
    training page) are dropped. Each class is capped in each split (rows chosen by a hash of
    their text); rows are in hash order."""
    out: dict[str, list[tuple[str, str]]] = {}
    counts: dict = {'available': {}, 'kept': {}, 'dev_in_corpus_dropped': 0}
    for split, caps in (('train', task.cap_train), ('dev', task.cap_dev)):
        rows = cand.rows[split]
        if split == 'dev':
            rows = {label: [t for t in texts if not in_corpus(t)] for label, texts in rows.items()}
            counts['dev_in_corpus_dropped'] = sum(map(len, cand.rows['dev'].values())) - sum(map(len, rows.values()))
        chosen = []
        counts['available'][split] = {label: len(texts) for label, texts in sorted(rows.items())}
        for label, texts in sorted(rows.items()):
            chosen += [(t, label) for t in sorted(texts, key=_hash)[:caps]]
        out[split] = sorted(chosen, key=lambda row: (_hash(row[0] + '\t' + row[1]), row))
        counts['kept'][split] = {label: sum(1 for _, l in chosen if l == label) for label in sorted(rows)}
    if out['dev']:
        counts['dev_majority_rate'] = round(max(counts['kept']['dev'].values()) / len(out['dev']), 4)
    dev_pages = cand.dev_pages
    counts['pages'] = {'dev': len(dev_pages), 'train': len(cand.split_of) - len(dev_pages)}
    return out, counts


# ---- corpus -------------------------------------------------------------------------------
@dataclass
class SourceStats:
    pages: int = 0
    documents: int = 0
    dev_pages_excluded: int = 0
    paragraphs: int = 0
    kept: int = 0
    dropped: dict = field(default_factory=lambda: {'duplicate': 0, 'short': 0, 'not_japanese': 0, 'menu': 0,
                                                    'on_dev_page': 0})
    chars: int = 0
    raw_bytes: int = 0
    gz_bytes: int = 0


def build_corpus(pages_by_source: dict[str, list[Page]], dev_pages: dict[str, set[str]]
                 ) -> tuple[dict[str, list[list[str]]], dict[str, SourceStats]]:
    """Documents (lists of paragraphs) of each source and the counts. The dev pages of the
    tasks are left out, and so is every paragraph that also occurs on a dev page."""
    dev_texts = {t for name, paths in dev_pages.items() for p in pages_by_source.get(name, [])
                 if p.path in paths for t in p.paragraphs}
    seen: set[str] = set()
    docs_by_source, stats = {}, {}
    for name, pages in pages_by_source.items():
        st, docs = SourceStats(pages=len(pages)), []
        for page in pages:
            if page.path in dev_pages.get(name, ()):
                st.dev_pages_excluded += 1
                continue
            doc = []
            for text in page.paragraphs:
                st.paragraphs += 1
                reason = keep_reason(text)
                if reason is None and text in dev_texts:
                    reason = 'on_dev_page'
                if reason is None and text in seen:
                    reason = 'duplicate'
                if reason:
                    st.dropped[reason] += 1
                    continue
                seen.add(text)
                doc.append(text)
            if doc:
                docs.append(doc)
                st.kept += len(doc)
                st.chars += sum(map(len, doc))
        st.documents = len(docs)
        docs_by_source[name], stats[name] = docs, st
    return docs_by_source, stats


def corpus_text(docs: list[list[str]]) -> str:
    """One paragraph per line, a blank line between documents."""
    return '\n\n'.join('\n'.join(doc) for doc in docs) + '\n' if docs else ''


def gzip_bytes(data: bytes) -> bytes:
    """gzip with no name and mtime 0: the same text always gives the same bytes."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename='', mode='wb', fileobj=buf, compresslevel=9, mtime=0) as f:
        f.write(data)
    return buf.getvalue()


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.partial')
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def tsv_bytes(rows: list[tuple[str, str]]) -> bytes:
    lines = ['text_a\tlabel']
    for text, label in rows:
        assert '\t' not in text and '\n' not in text and '\r' not in text, text
        lines.append(f'{text}\t{label}')
    return ('\n'.join(lines) + '\n').encode('utf-8')


# ---- the build ----------------------------------------------------------------------------
def build(packages: dict[str, Package], data_dir: Path, sources: tuple[Source, ...] = SOURCES,
          tasks: tuple[Task, ...] = TASKS, log: Callable[[str], None] = print) -> dict:
    """Read the sources' pages from `packages` (by package name), write the corpus to
    `data_dir/docs_ja` and the tasks to `data_dir/tasks`, and return the counts."""
    pages_by_source = {}
    for source in sources:
        pages_by_source[source.name] = read_source(source, packages[source.package])
    names = {s.name for s in sources}
    tasks = tuple(t for t in tasks if t.source in names)
    candidates = {task.name: task_candidates(task, pages_by_source[task.source]) for task in tasks}
    dev_pages: dict[str, set[str]] = {}
    for task in tasks:
        dev_pages.setdefault(task.source, set()).update(candidates[task.name].dev_pages)
    docs, stats = build_corpus(pages_by_source, dev_pages)
    corpus_blob = '\n'.join(text for source_docs in docs.values() for doc in source_docs for text in doc)
    task_out, task_stats = {}, {}
    for task in tasks:
        rows, counts = task_rows(task, candidates[task.name], lambda text: text in corpus_blob)
        if not rows['train'] or not rows['dev']:
            raise BuildError(f'task {task.name}: no {"train" if not rows["train"] else "dev"} rows from {task.source}')
        task_out[task.name], task_stats[task.name] = rows, counts

    for name, source_docs in docs.items():
        raw = corpus_text(source_docs).encode('utf-8')
        if not raw:
            raise BuildError(f'{name}: no paragraph kept from {len(pages_by_source[name])} pages')
        packed = gzip_bytes(raw)
        stats[name].raw_bytes, stats[name].gz_bytes = len(raw), len(packed)
        write_atomic(data_dir / 'docs_ja' / f'{name}.txt.gz', packed)
    for name, rows in task_out.items():
        for split in ('train', 'dev'):
            write_atomic(data_dir / 'tasks' / name / f'{split}.tsv', tsv_bytes(rows[split]))

    report = {
        'packages': {s.package: {'source': s.name, 'version': packages[s.package].version,
                                 'sha256': packages[s.package].sha256, 'deb_bytes': packages[s.package].size,
                                 'licence': s.licence,
                                 'copyright_file_licences': licence_of(packages[s.package], s)} for s in sources},
        'corpus': {name: vars(st) for name, st in stats.items()},
        'tasks': task_stats,
    }
    write_atomic(data_dir / 'docs_ja' / 'sources.json',
                 (json.dumps(report, ensure_ascii=False, indent=1, sort_keys=True) + '\n').encode('utf-8'))
    print_report(report, log)
    return report


def licence_of(package: Package, source: Source) -> list[str]:
    """Every License: name of the package's machine-readable copyright file (all its stanzas,
    program sources included), in order; empty when the package does not hold the file."""
    data = package.read(f'usr/share/doc/{source.package}/copyright')
    if data is None:
        return []
    return list(dict.fromkeys(m.strip() for m in re.findall(r'^License:\s*(.+)$', data.decode('utf-8', 'replace'), re.M)))


def print_report(report: dict, log: Callable[[str], None] = print) -> None:
    log(f"{'source':<17}{'pages':>6}{'dev-out':>8}{'docs':>6}{'paras':>8}{'kept':>7}{'dup':>7}{'short':>7}"
        f"{'not-ja':>7}{'menu':>6}{'on-dev':>7}{'chars':>10}{'raw MB':>8}{'gz MB':>7}")
    total = dict.fromkeys(('pages', 'dev', 'docs', 'paras', 'kept', 'chars', 'raw', 'gz'), 0)
    for name, st in report['corpus'].items():
        d = st['dropped']
        log(f"{name:<17}{st['pages']:>6}{st['dev_pages_excluded']:>8}{st['documents']:>6}{st['paragraphs']:>8}"
            f"{st['kept']:>7}{d['duplicate']:>7}{d['short']:>7}{d['not_japanese']:>7}{d['menu']:>6}"
            f"{d['on_dev_page']:>7}{st['chars']:>10}{st['raw_bytes'] / 1e6:>8.2f}{st['gz_bytes'] / 1e6:>7.2f}")
        for k, v in (('pages', 'pages'), ('dev', 'dev_pages_excluded'), ('docs', 'documents'), ('paras', 'paragraphs'),
                     ('kept', 'kept'), ('chars', 'chars'), ('raw', 'raw_bytes'), ('gz', 'gz_bytes')):
            total[k] += st[v]
    log(f"{'total':<17}{total['pages']:>6}{total['dev']:>8}{total['docs']:>6}{total['paras']:>8}{total['kept']:>7}"
        f"{'':>34}{total['chars']:>10}{total['raw'] / 1e6:>8.2f}{total['gz'] / 1e6:>7.2f}")
    for name, t in report['tasks'].items():
        for split in ('train', 'dev'):
            kept = t['kept'][split]
            log(f"task {name} {split}: {sum(kept.values())} rows from {t['pages'][split]} pages; "
                + ', '.join(f"{label} {n}" + (f"/{t['available'][split][label]}" if t['available'][split][label] > n else '')
                            for label, n in kept.items()))
        log(f"task {name}: dev majority-class rate {t.get('dev_majority_rate')}; "
            f"{t['dev_in_corpus_dropped']} dev paragraphs dropped as found inside the corpus")


def train_tokenizer(vocab_size: int) -> None:
    """The project's own tokenizer command on the corpus just written."""
    cmd = [sys.executable, '-m', 'pretrain', 'tokenizer', '--japanese', '--datas', 'docs_ja',
           '--out', 'data/docs_ja/tokenizer', '--vocab_size', str(vocab_size)]
    print('$ ' + ' '.join(['python', *cmd[1:]]), flush=True)
    if subprocess.run(cmd, cwd=REPO_ROOT).returncode != 0:
        raise BuildError('training the tokenizer failed (see above)')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    src = parser.add_mutually_exclusive_group()
    src.add_argument('--debs', type=Path, help='a directory holding the .debs (default: apt-get download them)')
    src.add_argument('--extracted', type=Path,
                     help='a directory with one extracted tree per package (DIR/PACKAGE/usr/...), e.g. from dpkg-deb -x')
    parser.add_argument('--data_dir', type=Path, default=REPO_ROOT / 'data', help='where docs_ja/ and tasks/ go')
    parser.add_argument('--sources', default=','.join(SOURCE_NAMES), help='comma-separated subset of: ' + ', '.join(SOURCE_NAMES))
    parser.add_argument('--no-tokenizer', dest='tokenizer', action='store_false', help='skip training the tokenizer')
    parser.add_argument('--vocab_size', type=int, default=8000)
    args = parser.parse_args(argv)
    return run_command(lambda: build_all(args), (BuildError, OSError), status=1)


def build_all(args: argparse.Namespace) -> int:
    """The build the flags ask for: the sources' corpus and task files, then the tokenizer."""
    wanted = [s.strip() for s in args.sources.split(',') if s.strip()]
    unknown = [s for s in wanted if s not in SOURCE_NAMES]
    if unknown or not wanted:
        raise BuildError(f'unknown source(s) {", ".join(unknown) or "(none)"}; choose from {", ".join(SOURCE_NAMES)}')
    sources = tuple(s for s in SOURCES if s.name in wanted)
    packages: dict[str, Package] = {}
    with tempfile.TemporaryDirectory(prefix='docs_ja_debs_') as tmp:
        debs = args.debs
        if args.extracted is None and debs is None:
            debs = Path(tmp)
            os.chmod(debs, 0o755)
            print(f'apt-get download {" ".join(s.package for s in sources)}', flush=True)
            download_debs([s.package for s in sources], debs)
        for s in sources:
            if args.extracted is not None:
                tree = args.extracted / s.package
                if not tree.is_dir():
                    raise BuildError(f'no extracted tree {tree} for {s.package}')
                packages[s.package] = Package(s.package, tree=tree)
            else:
                packages[s.package] = Package(s.package, deb=find_deb(debs, s.package))
        build(packages, args.data_dir, sources)
    if args.tokenizer:
        if args.data_dir.resolve() != (REPO_ROOT / 'data').resolve() or set(wanted) != set(SOURCE_NAMES):
            raise BuildError('the tokenizer is trained on the named corpus docs_ja: build all sources into '
                             'the repository\'s data/ directory, or pass --no-tokenizer')
        train_tokenizer(args.vocab_size)
    return 0


if __name__ == '__main__':
    sys.exit(main())
