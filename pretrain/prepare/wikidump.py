"""MediaWiki XML dumps -> a corpus of plain-text articles, streamed and converted in parallel.

Reads `.xml`, `.xml.bz2`, multistream `.bz2` files (concatenated bz2 streams) and directories or
globs of dump parts, one page at a time, so a whole Wikipedia never sits in memory. Keeps
articles (namespace 0) that are not redirects and turns their wikitext into plain text with
mwparserfromhell: one paragraph per line; where the wikitext is broken, the lines that keep raw
markup are dropped and counted. `python -m pretrain wiki DUMP` writes the corpus that the data
name 'wikipedia' loads.
"""
from __future__ import annotations

import argparse
import bz2
import glob
import json
import multiprocessing
import os
import re
import shutil
import xml.etree.ElementTree as ET
from collections import deque
from pathlib import Path
from typing import Any, Iterable, Iterator

import mwparserfromhell
from mwparserfromhell.nodes import (Argument, Comment, ExternalLink, Heading, HTMLEntity, Tag, Template,
                                    Text, Wikilink)
from mwparserfromhell.wikicode import Wikicode

from _utils.atomic import atomic_directory, remove_stale_temps, temp_sibling


DEFAULT_OUT = 'data/corpus/wikipedia'  # relative to the working directory; what the name 'wikipedia' loads
FORMAT_VERSION = 2  # bump when the cleaning changes: cached corpora are rebuilt
# the first six classify every page; broken_markup counts the pages (kept or empty) that lost
# dropped_lines lines of markup residue
COUNT_KEYS = ('pages', 'kept', 'redirects', 'other_namespaces', 'empty', 'parse_errors', 'broken_markup',
              'dropped_lines')
CHUNK_PAGES = 64   # pages per task sent to a worker process
BATCH_ROWS = 1000  # documents per Arrow record batch

REDIRECT_RE = re.compile(r'\s*#(?:redirect|転送)', re.IGNORECASE)
# Link namespaces whose links are media or page metadata, not running text (English and Japanese).
DROP_LINK_NAMESPACES = frozenset({'file', 'image', 'media', 'category', 'ファイル', '画像', 'メディア', 'カテゴリ'})
# Interlanguage links ([[en:Tokyo]]) render in the sidebar, not in the text.
INTERLANGUAGE_RE = re.compile(r'[a-z]{2,3}(?:-[a-z]+)*$')
# Tags whose contents are not prose: references, media, formulas, code, tables, extension widgets.
DROP_TAGS = frozenset({'ref', 'references', 'gallery', 'math', 'chem', 'ce', 'score', 'syntaxhighlight',
                       'source', 'pre', 'timeline', 'graph', 'mapframe', 'maplink', 'imagemap', 'hiero',
                       'templatedata', 'templatestyles', 'inputbox', 'categorytree', 'table', 'includeonly',
                       'noinclude', 'indicator', 'charinsert'})
# Tags that start a new line: list items (the wiki markers *, #, :, ; parse as li/dd/dt), breaks, blocks.
BLOCK_TAGS = frozenset({'li', 'dd', 'dt', 'br', 'hr', 'p', 'div', 'ul', 'ol', 'dl', 'blockquote', 'center',
                        'poem'})
# Inline templates whose text is part of the sentence: name -> index of the parameter to keep.
# Everything else in {{...}} (infoboxes, citations, navigation) is dropped.
KEEP_TEMPLATES = {'lang': 2, '仮リンク': 1, 'nihongo': 1, 'ruby': 1}
MAGIC_WORD_RE = re.compile(r'__[A-Z]+__')
EMPTY_PARENS_RE = re.compile(r'\(\s*[,、;；:：]*\s*\)|（\s*[,、;；:：]*\s*）')
SPACES_RE = re.compile(r'[ \t\r\f\v\xa0]+')
# Markup left in the text: mwparserfromhell turns what it cannot parse (an unclosed {{template,
# [[link, {| table or <ref>) into plain text, with all that follows it on the page (the
# `| key = value` rows of an infobox, the `|` and `!` rows of a table). A line holding any of it
# is dropped: wiki markup never reaches the corpus.
RESIDUE_RE = re.compile(r'\{\{|\}\}|\[\[|\]\]|\{\||\|\}|^[|!]|</?(?:' + '|'.join(sorted(DROP_TAGS)) + r')\b[^>]*>',
                        re.IGNORECASE)


class DumpReadError(ValueError):
    """The dump file is truncated or corrupt; the message names the file and how far it got."""


# ---- wikitext -> text ---------------------------------------------------------------------
def _template_text(node: Template) -> str:
    name = str(node.name).strip().lower()
    index = KEEP_TEMPLATES.get(name, 1 if name.startswith('lang-') else None)
    if index is None or not node.has(str(index)):
        return ''
    return _render(node.get(str(index)).value)


def _link_text(node: Wikilink) -> str:
    title = _render(node.title).strip()
    if title.startswith(':'):  # [[:Category:X]] links to the page instead of categorizing
        title = title[1:].strip()
    elif ':' in title:
        prefix = title.split(':', 1)[0].strip()
        if prefix.lower() in DROP_LINK_NAMESPACES or (INTERLANGUAGE_RE.match(prefix) and node.text is None):
            return ''
    if node.text is not None and str(node.text).strip():
        return _render(node.text)
    return title  # [[target]] shows the target


def _node_text(node: Any) -> str:
    if isinstance(node, Text):
        return node.value
    if isinstance(node, Wikilink):
        return _link_text(node)
    if isinstance(node, ExternalLink):
        # [http://x label] shows the label; bare URLs and [http://x] (a footnote number) are noise
        return _render(node.title) if node.brackets and node.title is not None else ''
    if isinstance(node, Tag):
        name = str(node.tag).strip().lower()
        if name in DROP_TAGS:
            return ''
        inner = _render(node.contents) if node.contents is not None else ''
        return f'\n{inner}\n' if name in BLOCK_TAGS else inner  # b, i, span, sup, ... keep their text
    if isinstance(node, Heading):
        return f'\n{_render(node.title)}\n'
    if isinstance(node, HTMLEntity):
        return node.normalize()
    if isinstance(node, Template):
        return _template_text(node)
    if isinstance(node, (Comment, Argument)):
        return ''
    return str(node)


def _render(code: Wikicode) -> str:
    return ''.join(_node_text(node) for node in code.nodes)


def convert_wikitext(wikitext: str) -> tuple[str, int]:
    """(plain text, lines dropped as markup residue) of an article's wikitext: one paragraph
    (or list item, or heading) per line, each stripped, no empty lines.

    Drops templates (but keeps the text of a few inline ones such as {{lang}} and {{仮リンク}}),
    <ref>s and other non-prose tags, tables, comments, file/image/category links and
    interlanguage links; keeps link labels ([[target|label]] -> label, [[target]] -> target),
    external link labels, heading text, the text of formatting tags and list items. Where the
    markup is broken (unclosed `{{`, `[[`, `{|`, `<ref>`), the lines that keep raw markup are
    dropped and counted (`RESIDUE_RE`); a well-formed page loses nothing.
    """
    text = _render(mwparserfromhell.parse(wikitext))
    text = EMPTY_PARENS_RE.sub('', MAGIC_WORD_RE.sub('', text))  # （） left by a removed template
    lines = [line for line in (SPACES_RE.sub(' ', line).strip() for line in text.split('\n')) if line]
    clean = [line for line in lines if not RESIDUE_RE.search(line)]
    return '\n'.join(clean), len(lines) - len(clean)


def wikitext_to_text(wikitext: str) -> str:
    """The plain text of `convert_wikitext`."""
    return convert_wikitext(wikitext)[0]


# ---- reading the dump ---------------------------------------------------------------------
def _natural_key(path: Path) -> list:
    # dump parts are numbered: ...articles2.xml-p... sorts before ...articles10.xml-p...
    return [int(part) if part.isdigit() else part for part in re.split(r'(\d+)', str(path))]


def _is_dump_part(path: Path) -> bool:
    # '.xml' in the name keeps the multistream index (...-index.txt.bz2) out
    return path.is_file() and '.xml' in path.name and path.name.endswith(('.xml', '.bz2'))


def dump_files(dump: str | Path) -> list[Path]:
    """The dump files behind `dump`: a file, a directory of dump parts, or a glob, in order."""
    text = str(dump)
    path = Path(text).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if _is_dump_part(p)), key=_natural_key)
        if not files:
            raise ValueError(f"dump directory {text!r} holds no .xml or .xml.bz2 files; "
                             "give a dump file or a directory of dump parts")
        return files
    if glob.has_magic(text):
        files = sorted((Path(p) for p in glob.glob(os.path.expanduser(text)) if Path(p).is_file()), key=_natural_key)
        if not files:
            raise ValueError(f"dump pattern {text!r} matches no files; check the path")
        return files
    raise ValueError(f"dump {text!r} does not exist; give a MediaWiki XML dump (.xml, .xml.bz2, multistream .bz2), "
                     "a directory or a glob of its parts")


def _local(tag: str) -> str:
    """An element name without its namespace: the export schema version varies by dump."""
    return tag.rsplit('}', 1)[-1]


def _page_fields(page: ET.Element) -> dict[str, Any]:
    fields: dict[str, Any] = {'id': '', 'title': '', 'ns': '0', 'redirect': False, 'text': ''}
    for child in page:
        name = _local(child.tag)
        if name in ('id', 'title', 'ns'):
            fields[name] = (child.text or '').strip()
        elif name == 'redirect':
            fields['redirect'] = True
        elif name == 'revision':  # a history dump has several: the last one is current
            for item in child:
                if _local(item.tag) == 'text':
                    fields['text'] = item.text or ''
    fields['ns'] = fields['ns'] or '0'  # old export versions have no <ns>
    return fields


class _Read1:
    """A file whose read(n) is the wrapped BZ2File's read1(n): BZ2File.read(n) keeps reading
    until n bytes and loses what it decompressed when the next stream is cut off, so the
    pages before the damage would never reach the parser."""

    def __init__(self, stream: bz2.BZ2File):
        self.read = stream.read1


def iter_pages(path: str | Path) -> Iterator[dict[str, Any]]:
    """Every <page> of one dump file as {'id', 'title', 'ns', 'redirect', 'text', 'offset'},
    `offset` being the bytes of the file read so far. bz2 (multistream too) is detected from
    the file's first bytes. A truncated or corrupt file raises `DumpReadError` after the pages
    read before the damage."""
    path = Path(path)
    size, pages = path.stat().st_size, 0
    with path.open('rb') as raw:
        compressed = raw.read(3) == b'BZh'
        raw.seek(0)
        stream = _Read1(bz2.BZ2File(raw)) if compressed else raw
        try:
            root = None
            for event, elem in ET.iterparse(stream, events=('start', 'end')):
                if root is None:
                    root = elem
                    if _local(root.tag) != 'mediawiki':
                        raise ValueError(f"{path}: not a MediaWiki export (root element <{_local(root.tag)}>, "
                                         "expected <mediawiki>); give a pages-articles dump")
                elif event == 'end' and _local(elem.tag) == 'page':
                    fields = _page_fields(elem)
                    root.clear()  # drop the finished page: memory stays flat
                    pages += 1
                    yield {**fields, 'offset': raw.tell()}
        except (EOFError, OSError, ET.ParseError) as e:
            raise DumpReadError(f"{path}: truncated or corrupt dump ({type(e).__name__}: {e}) after {pages} pages, "
                                f"at byte {raw.tell():,} of {size:,}; re-download the dump") from None


def _skip_reason(page: dict[str, Any]) -> str | None:
    if page['ns'] != '0':
        return 'other_namespaces'
    if page['redirect'] or REDIRECT_RE.match(page['text']):
        return 'redirects'
    return None


def convert_page(page: tuple[str, str, str]) -> tuple[str, dict[str, str] | None, int]:
    """(status, document, lines dropped as markup residue) for one (id, title, wikitext): status
    'kept', 'empty' or 'parse_errors'. Never raises: a page the converter fails on is counted,
    not fatal."""
    page_id, title, wikitext = page
    try:
        text, dropped = convert_wikitext(wikitext)
    except Exception:  # any bug or pathological markup costs one page, not the whole dump
        return 'parse_errors', None, 0
    if not text:
        return 'empty', None, dropped
    return 'kept', {'id': page_id, 'title': title, 'text': text}, dropped


def _convert_chunk(chunk: list[tuple[str, str, str]]) -> list[tuple[str, dict[str, str] | None, int]]:
    return [convert_page(page) for page in chunk]


def _chunks(files: list[Path], counts: dict[str, int]) -> Iterator[tuple[list[tuple[str, str, str]], int]]:
    """Articles to convert, CHUNK_PAGES at a time, with the input bytes read so far. Counts
    pages and skipped ones. On a read error the chunk in hand is yielded before the error."""
    chunk, done_bytes, offset = [], 0, 0
    try:
        for path in files:
            for page in iter_pages(path):
                counts['pages'] += 1
                offset = done_bytes + page['offset']
                reason = _skip_reason(page)
                if reason:
                    counts[reason] += 1
                    continue
                chunk.append((page['id'], page['title'], page['text']))
                if len(chunk) == CHUNK_PAGES:
                    yield chunk, offset
                    chunk = []
            done_bytes += path.stat().st_size
    except DumpReadError:
        if chunk:  # the pages read before the damage still count
            yield chunk, offset
        raise
    if chunk:
        yield chunk, offset


def _converted(chunks: Iterator, num_proc: int) -> Iterator:
    """Converted chunks in input order; num_proc > 1 converts in a process pool with a bounded
    number of chunks in flight (Pool.imap would read the whole dump ahead into memory)."""
    if num_proc == 1:
        for chunk, offset in chunks:
            yield _convert_chunk(chunk), offset
        return
    pending: deque = deque()
    error = None
    with multiprocessing.Pool(num_proc) as pool:
        try:
            for chunk, offset in chunks:
                pending.append((pool.apply_async(_convert_chunk, (chunk,)), offset))
                if len(pending) >= 4 * num_proc:
                    result, off = pending.popleft()
                    yield result.get(), off
        except DumpReadError as e:
            error = e  # finish the chunks sent before the damage, then report it
        while pending:
            result, off = pending.popleft()
            yield result.get(), off
    if error is not None:
        raise error


def _check_num_proc(num_proc: int) -> None:
    if not isinstance(num_proc, int) or isinstance(num_proc, bool) or num_proc < 1:
        raise ValueError(f"num_proc must be a positive integer, got {num_proc!r}")


def iter_documents(dump: str | Path, num_proc: int = 1, counts: dict[str, int] | None = None,
                   progress: Any = None) -> Iterator[dict[str, str]]:
    """Articles of a dump as {'id', 'title', 'text'} documents, in dump order.

    `counts` (if given) is updated as pages go by with the COUNT_KEYS; `progress` (a tqdm bar
    over the input bytes) is advanced. Raises `DumpReadError` for a truncated or corrupt file,
    after yielding every document read before the damage.
    """
    _check_num_proc(num_proc)
    files = dump_files(dump)
    counts = {key: 0 for key in COUNT_KEYS} if counts is None else counts
    for key in COUNT_KEYS:
        counts.setdefault(key, 0)
    for results, offset in _converted(_chunks(files, counts), num_proc):
        for status, doc, dropped in results:
            counts[status] += 1
            counts['broken_markup'] += int(dropped > 0)
            counts['dropped_lines'] += dropped
            if doc is not None:
                yield doc
        if progress is not None:
            progress.update(offset - progress.n)
            progress.set_postfix_str(f"pages={counts['pages']:,} kept={counts['kept']:,}", refresh=False)


# ---- writing the corpus -------------------------------------------------------------------
def _inputs(files: list[Path]) -> list[dict[str, Any]]:
    """What identifies the input: a corpus built from the same files is reused."""
    return [{'path': str(f.resolve()), 'size': f.stat().st_size, 'mtime_ns': f.stat().st_mtime_ns} for f in files]


def _read_stats(out_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out_dir / 'stats.json').read_text(encoding='utf-8'))
    except (OSError, ValueError):
        return None


def _check_out_dir(out_dir: Path) -> None:
    # Never replace a directory this module did not write: it may be the user's data.
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir()) and not (out_dir / 'stats.json').is_file())):
        raise ValueError(f"output {str(out_dir)!r} exists and is not a wiki corpus; choose another --out or remove it")


def _write_arrow(docs: Iterable[dict[str, str]], path: Path) -> DumpReadError | None:
    """Write documents to an Arrow stream file; return the read error that ended the dump early."""
    import pyarrow as pa
    schema = pa.schema([(name, pa.string()) for name in ('id', 'title', 'text')])
    rows: list[dict[str, str]] = []
    with pa.OSFile(str(path), 'wb') as sink, pa.ipc.new_stream(sink, schema) as writer:
        def flush() -> None:
            if rows:
                writer.write_batch(pa.RecordBatch.from_pylist(rows, schema=schema))
                rows.clear()
        try:
            for doc in docs:
                rows.append(doc)
                if len(rows) == BATCH_ROWS:
                    flush()
        except DumpReadError as e:
            return e
        finally:
            flush()
    return None


def _save(arrow_file: Path, out_dir: Path, stats: dict[str, Any]) -> None:
    """Save the documents as a `datasets` dataset plus stats.json, replacing `out_dir` atomically."""
    import datasets
    with atomic_directory(out_dir) as tmp:
        ds = datasets.Dataset.from_file(str(arrow_file))
        ds.save_to_disk(str(tmp), num_shards=1 if len(ds) == 0 else None)  # 0 shards would not load
        del ds
        (tmp / 'stats.json').write_text(json.dumps(stats, ensure_ascii=False, indent=2) + '\n', encoding='utf-8')


def _summary(stats: dict[str, Any]) -> str:
    return (f"{stats['pages']} pages read, {stats['kept']} kept, {stats['redirects']} redirects, "
            f"{stats['other_namespaces']} in other namespaces, {stats['empty']} empty, {stats['parse_errors']} parse errors, "
            f"{stats['broken_markup']} with broken markup ({stats['dropped_lines']} lines of it dropped)")


def build_wiki_corpus(dump: str | Path, out_dir: str | Path = DEFAULT_OUT, num_proc: int = 1,
                      progress: bool = True) -> dict[str, Any]:
    """Convert a MediaWiki dump into a `datasets` dataset (columns id, title, text) saved at
    `out_dir`, with stats.json holding the counts (COUNT_KEYS), the inputs and "complete".

    Reuses a complete corpus built from the same files (the result has "cached": True). A
    truncated or corrupt file saves the documents read before it, marked "complete": false,
    then raises `ValueError`.
    """
    from tqdm.auto import tqdm
    _check_num_proc(num_proc)
    files = dump_files(dump)
    out_dir = Path(out_dir).expanduser()
    inputs = _inputs(files)
    previous = _read_stats(out_dir)
    if previous and previous.get('complete') and previous.get('inputs') == inputs \
            and previous.get('format_version') == FORMAT_VERSION:
        print(f"wiki: {out_dir} is already built from this dump (cached): {_summary(previous)}")
        return {**previous, 'cached': True}
    _check_out_dir(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # this writer's scratch directory; a killed build's (its multi-GB docs.arrow) is removed here
    scratch = out_dir.with_name(f'.{out_dir.name}')
    remove_stale_temps(scratch, 'build')
    build = temp_sibling(scratch, 'build')
    build.mkdir(exist_ok=True)
    counts = {key: 0 for key in COUNT_KEYS}
    try:
        with tqdm(total=sum(i['size'] for i in inputs), unit='B', unit_scale=True, desc='wiki',
                  disable=not progress) as bar:
            error = _write_arrow(iter_documents(dump, num_proc, counts, bar), build / 'docs.arrow')
        stats = {**counts, 'complete': error is None, 'error': None if error is None else str(error),
                 'inputs': inputs, 'format_version': FORMAT_VERSION}
        # a failed build never replaces a complete corpus: its partial output goes beside it
        target = out_dir if error is None or not (previous and previous.get('complete')) \
            else out_dir.with_name(out_dir.name + '.incomplete')
        _save(build / 'docs.arrow', target, stats)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    if error is not None:
        kept = '' if target == out_dir else f"; the complete corpus already in {out_dir} was left as it was"
        raise ValueError(f"{error}; the {counts['kept']} documents read before it were saved to {target} "
                         f"marked incomplete (stats.json){kept}") from None
    print(f"wiki: {_summary(stats)}; saved to {out_dir}")
    return {**stats, 'cached': False}


# ---- command line -------------------------------------------------------------------------
def run_wiki(args: argparse.Namespace) -> int:
    out = args.out if args.out is not None else DEFAULT_OUT
    build_wiki_corpus(args.dump, out, args.num_proc)
    return 0


def add_cli(subparsers: Any) -> None:
    """Add `python -m pretrain wiki DUMP [--out DIR] [--num_proc N]`."""
    parser = subparsers.add_parser('wiki', help='build a plain-text corpus from a MediaWiki XML dump',
                                   description='Convert a MediaWiki XML dump (.xml, .xml.bz2, multistream .bz2, '
                                               'or a directory or glob of parts) into the corpus the data name '
                                               "'wikipedia' loads.")
    parser.add_argument('dump', help='dump file, directory of dump parts, or glob')
    parser.add_argument('--out', default=None, help=f'output directory (default: {DEFAULT_OUT} under the working directory)')
    parser.add_argument('--num_proc', type=int, default=min(8, os.cpu_count() or 1),
                        help='processes converting wikitext (default: %(default)s)')
    parser.set_defaults(func=run_wiki)
