"""The Japanese Wikipedia recipe end to end on a small dump of our own: dump -> corpus ->
MeCab/WordPiece tokenizer -> examples -> pre-training, each step skipped when run again."""
import bz2
from pathlib import Path
from xml.sax.saxutils import escape

from pretrain.__main__ import main
from pretrain.prepare.corpus import read_txt_documents

REPO = Path(__file__).resolve().parent.parent


def fixture_dump(path: Path) -> Path:
    """Each sample document as a wiki page, its sentences one paragraph, with wiki markup."""
    docs = read_txt_documents(REPO / 'data' / 'sample' / 'ja.txt')
    pages = []
    for i, doc in enumerate(docs):
        sentences = doc.split('\n')
        text = (f"{{{{Infobox|名前=記事{i}}}}}\n'''記事{i}'''は[[日本|日本の]]話題である。<ref>出典{i}</ref>\n\n"
                + ''.join(sentences) + f"\n\n== 概要 ==\n[[ファイル:絵{i}.png|thumb|説明]]\n[[カテゴリ:話題]]")
        pages.append(f'<page><title>記事{i}</title><ns>0</ns><id>{i + 1}</id><revision><id>{i + 100}</id>'
                     f'<text xml:space="preserve">{escape(text)}</text></revision></page>')
    pages.append('<page><title>転送</title><ns>0</ns><id>999</id><revision><id>1999</id>'
                 '<text xml:space="preserve">#転送 [[記事0]]</text></revision></page>')
    xml = ('<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10" xml:lang="ja">'
           + ''.join(pages) + '</mediawiki>')
    path.write_bytes(bz2.compress(xml.encode('utf-8')))
    return path


def test_dump_to_pretraining_each_step_cached(tmp_path, capsys):
    dump = fixture_dump(tmp_path / 'jawiki-test-pages-articles.xml.bz2')
    corpus, tok = tmp_path / 'corpus', tmp_path / 'tokenizer'
    train = ['--size', 'tiny', '--datas', str(corpus), '--tokenizer', str(tok), '--steps', '4', '--bs', '8',
             '--num_workers', '0', '--device', 'cpu', '--save_points', '1.0', '--export', 'false',
             '--data_dir', str(tmp_path / 'data'), '--checkpoint_dir', str(tmp_path / 'ckpt')]
    steps = [['wiki', str(dump), '--out', str(corpus)],
             ['tokenizer', '--japanese', '--datas', str(corpus), '--out', str(tok), '--vocab_size', '3000'],
             train]
    first = []
    for args in steps:
        assert main(args) == 0
        first.append(capsys.readouterr())
    assert '42 kept' in first[0].out and '1 redirects' in first[0].out
    assert 'saved to' in first[1].out
    assert 'examples,' in first[2].out  # the processor ran and reported its token counts
    assert (tmp_path / 'ckpt' / 'vanilla_11081_100.0%.pth').is_file()

    again = []
    for args in steps[:2] + [train + ['--overwrite', 'true']]:  # the same run, trained afresh on the cached examples
        assert main(args) == 0
        again.append(capsys.readouterr())
    assert 'cached' in again[0].out
    assert 'already in' in again[1].out
    assert 'examples,' not in again[2].out  # examples loaded from data/preprocess
