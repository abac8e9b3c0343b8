"""Japanese tokenizers: MeCab + WordPiece training saved as a BertJapaneseTokenizer, and the
fast batched encoder that must give exactly the slow tokenizer's ids."""
import json
import pickle
import random
import unicodedata

import datasets
import fugashi
import pytest
from transformers import AutoTokenizer, BertJapaneseTokenizer

from pretrain.tools import bench_tokenize
from pretrain.__main__ import main
from pretrain._utils import electra_dataprocessor
from pretrain._utils.electra_dataprocessor import ELECTRADataProcessor
from pretrain.prepare.corpus import load_corpus
from pretrain.prepare.ja_tokenizer import (JapaneseBatchEncoder, fast_japanese_supported,
                                   japanese_batch_encoder, mecab_option, train_japanese_tokenizer)
from pretrain.prepare.vocab import SPECIAL_TOKENS
from pretrain.prepare.tokenizer import batch_encoder, load_tokenizer, train_tokenizer

NUM_UNUSED = 12  # more than 10, so '[unused1]' is a prefix of '[unused10]'

# Lines that stress the details: full-width and half-width forms (NFKC), spaces of all kinds,
# emoji, special tokens inside text, words over 100 characters, control characters.
EXTRA_LINES = [
    'ＡＢＣ１２３　全角の英数字とｶﾀｶﾅとﾊﾟﾋﾟﾌﾟ', '😀🎉川の水👍は冷たい。', '  空白  と\tタブ \u3000 全角空白 ',
    'a' * 150, 'あ' * 120, '川' * 101, 'Supercalifragilisticexpialidocious な単語', 'Straße ÉCOLE café naïve',
    '[MASK]川は[SEP][unused1] [CLS]山[PAD][unused10]x[unused11]', '［ＭＡＳＫ］ は全角', '[unused12] [MASK',
    '[UNK]', '\x00先頭のNUL', '川は\x00山', 'abc\x1cdef\x1fghi', '', '   ', '①②Ⅲⅳ㍻㌔', 'Ω≒∀ 数式 x² + y² = r²',
    'e\u0301 combining', 'The river flows to the sea. 川は海へ流れる。', 'ｱｲｳｴｵ ｶﾞｷﾞｸﾞ',
    '日本語と English と 123,456.78 円', '\u200b見えない\ufeff文字', 'タブ\tの\n改行\r混じり',
    '"quoted" (paren) [bracket] {brace}',
]


def corpus_lines(name):
    return [line for text in load_corpus(name)['text'] for line in text.split('\n')]


def slow_ids(tok, lines):
    return [tok.convert_tokens_to_ids(tok.tokenize(line)) for line in lines]


@pytest.fixture(scope='module')
def ja_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp('ja') / 'tok'
    train_japanese_tokenizer(load_corpus('sample')['text'], out, vocab_size=4000, min_frequency=2,
                             num_unused=NUM_UNUSED)
    return out


@pytest.fixture(scope='module')
def ja_tok(ja_dir):
    return AutoTokenizer.from_pretrained(str(ja_dir), local_files_only=True)


@pytest.fixture(scope='module')
def varied_lines():
    return corpus_lines('sample_ja') + corpus_lines('sample_en') + EXTRA_LINES


# ---- training and loading ----------------------------------------------------------------------
def test_saved_dir_loads_offline_as_bert_japanese(ja_dir, ja_tok):
    assert sorted(p.name for p in ja_dir.iterdir()) == ['special_tokens_map.json', 'tokenizer_config.json', 'vocab.txt']
    config = json.loads((ja_dir / 'tokenizer_config.json').read_text())
    assert config['tokenizer_class'] == 'BertJapaneseTokenizer' and config['do_lower_case'] is False
    assert isinstance(ja_tok, BertJapaneseTokenizer)
    assert (ja_tok.word_tokenizer_type, ja_tok.subword_tokenizer_type) == ('mecab', 'wordpiece')
    assert ja_tok.mecab_kwargs == {'mecab_dic': 'unidic_lite'}
    assert not ja_tok.do_lower_case and ja_tok.model_max_length == 512
    assert isinstance(load_tokenizer(ja_dir), BertJapaneseTokenizer)
    tokens = ja_tok.tokenize('川は山に降った雨が集まって流れていく。The river flows.')
    assert '[UNK]' not in tokens and tokens[:2] == ['川', 'は']
    assert 'The' in tokens  # cased
    ids = ja_tok('川は山', '海へ')['input_ids']
    assert ids[0] == 2 and ids.count(3) == 2 and ids[-1] == 3  # [CLS] A [SEP] B [SEP]


def test_special_and_unused_tokens(ja_dir, ja_tok):
    unused = [f'[unused{i}]' for i in range(NUM_UNUSED)]
    vocab = (ja_dir / 'vocab.txt').read_text(encoding='utf-8').split('\n')
    assert vocab[:5 + NUM_UNUSED] == SPECIAL_TOKENS + unused
    assert ja_tok.convert_tokens_to_ids(SPECIAL_TOKENS + unused) == list(range(5 + NUM_UNUSED))
    assert (ja_tok.pad_token_id, ja_tok.unk_token_id, ja_tok.cls_token_id, ja_tok.sep_token_id,
            ja_tok.mask_token_id) == (0, 1, 2, 3, 4)
    assert ja_tok.convert_tokens_to_ids(f'[unused{NUM_UNUSED}]') == 1  # only NUM_UNUSED of them
    assert ja_tok.tokenize('川[MASK]山[unused10]') == ['川', '[MASK]', '山', '[unused10]']  # never split
    special_map = json.loads((ja_dir / 'special_tokens_map.json').read_text())
    assert special_map['mask_token'] == '[MASK]' and special_map['additional_special_tokens'] == unused


def test_wordpieces_stay_inside_mecab_words(ja_tok):
    """Joining each token with its '##' continuations gives back exactly MeCab's words:
    no piece crosses a word boundary and '##' only continues a word."""
    tagger = fugashi.GenericTagger(mecab_option('unidic_lite'))  # MeCab's words, straight from fugashi

    def mecab_words(line):
        return [node.surface for node in tagger(unicodedata.normalize('NFKC', line))]

    lines = [line for line in corpus_lines('sample_ja') if line.strip()]
    multi_char = continued = 0
    for line in lines:
        tokens = ja_tok.tokenize(line)
        if '[UNK]' in tokens:
            continue
        words: list[str] = []
        for t in tokens:
            if t.startswith('##'):
                assert words, f'{line!r} starts with a continuation {t!r}'
                words[-1] += t[2:]
                continued += 1
            else:
                words.append(t)
        assert words == mecab_words(line), line
        multi_char += sum(len(t) > 1 and not t.startswith('##') for t in tokens)
    assert multi_char > 100 and continued > 10  # the check above is not vacuous
    # every learned (multi-character) entry is the start, or with '##' an inner part, of a word
    # MeCab found; single characters are the alphabet, added in both forms
    words = {w for text in load_corpus('sample')['text'] for line in text.split('\n')
             for w in mecab_words(line)}
    starts = {w[:j] for w in words for j in range(1, len(w) + 1)}
    inner = {'##' + w[i:j] for w in words for i in range(1, len(w)) for j in range(i + 1, len(w) + 1)}
    learned = [t for t in ja_tok.vocab if t not in ja_tok.all_special_tokens and len(t.removeprefix('##')) > 1]
    assert len(learned) > 500 and all(t in inner if t.startswith('##') else t in starts for t in learned)


def test_retraining_replaces_an_english_tokenizer(tmp_path):
    out = tmp_path / 'tok'
    train_tokenizer(['one two three'] * 3, out, vocab_size=60, min_frequency=1)
    assert (out / 'tokenizer.json').is_file()
    train_japanese_tokenizer(['川は山に流れる。'] * 3, out, vocab_size=100, min_frequency=1)
    assert not (out / 'tokenizer.json').exists()
    tok = load_tokenizer(out)
    assert isinstance(tok, BertJapaneseTokenizer) and tok.tokenize('川は山') == ['川', 'は', '山']


@pytest.mark.parametrize('kwargs, message', [
    ({'dic': 'nope'}, "unknown MeCab dictionary 'nope'"),
    ({'vocab_size': 5}, 'vocab_size must be'),
    ({'min_frequency': 0}, 'min_frequency must be'),
    ({'num_unused': -1}, 'num_unused must be'),
    ({'limit_alphabet': 0}, 'limit_alphabet must be'),
])
def test_bad_training_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        train_japanese_tokenizer(['川は山'], tmp_path / 'tok', **kwargs)
    assert not (tmp_path / 'tok').exists()


def test_uninstalled_dictionary_and_empty_corpus(tmp_path):
    try:
        import ipadic  # noqa: F401
    except ModuleNotFoundError:
        with pytest.raises(ValueError, match="'ipadic' is not installed; `pip install ipadic`"):
            train_japanese_tokenizer(['川は山'], tmp_path / 'a', dic='ipadic')
    with pytest.raises(ValueError, match='no words'):
        train_japanese_tokenizer(['', '  \n '], tmp_path / 'b', vocab_size=100)
    with pytest.raises(ValueError, match='texts must be strings'):
        train_japanese_tokenizer([b'bytes'], tmp_path / 'c', vocab_size=100)


def test_limit_alphabet_drops_rare_characters(tmp_path):
    tok = train_japanese_tokenizer(['川川川川 山山山 海'], tmp_path / 'tok', vocab_size=100, min_frequency=1,
                                   limit_alphabet=2)
    assert tok.tokenize('海') == ['[UNK]'] and tok.tokenize('川') == ['川']


# ---- the fast encoder ----------------------------------------------------------------------------
def test_encoder_equals_slow_path(ja_tok, varied_lines):
    encode = japanese_batch_encoder(ja_tok)
    expected = slow_ids(ja_tok, varied_lines)
    assert encode(varied_lines) == expected
    assert encode(varied_lines[::-1]) == expected[::-1]  # order and warm cache do not matter
    assert [encode([line])[0] for line in EXTRA_LINES] == slow_ids(ja_tok, EXTRA_LINES)
    assert encode([]) == []
    assert sum(map(len, expected)) > 10_000 and any(1 in ids for ids in expected)  # [UNK]s are covered


def test_encoder_equals_slow_path_on_random_text(ja_tok):
    """Random mixes of corpus characters, ASCII, controls, spaces, full-width forms, any code
    point, special tokens and their fragments."""
    rng = random.Random(0)
    corpus = ''.join(load_corpus('sample')['text'])
    specials = ['[MASK]', '[SEP]', '[unused1]', '[unused10]', '[unused1', '[PAD', ']', '\x00', ' ']

    def char():
        r = rng.random()
        if r < 0.5:
            return rng.choice(corpus)
        if r < 0.65:
            return chr(rng.randint(0x20, 0x7e))
        if r < 0.75:
            return rng.choice(specials)
        if r < 0.9:
            return chr(rng.choice([rng.randint(0, 0x20), rng.randint(0x7f, 0xa0), rng.randint(0x2000, 0x206f),
                                   rng.randint(0x3000, 0x303f), rng.randint(0xff00, 0xffef)]))
        return chr(rng.choice([c for c in (rng.randint(0, 0x10ffff) for _ in range(3)) if not 0xd800 <= c <= 0xdfff]
                              or [0x1f600]))

    lines = [''.join(char() for _ in range(rng.randint(0, 80))) for _ in range(600)]
    assert japanese_batch_encoder(ja_tok)(lines) == slow_ids(ja_tok, lines)


@pytest.mark.parametrize('option', ['do_lower_case', 'split_special_tokens'])
def test_encoder_follows_tokenizer_options(ja_dir, varied_lines, option):
    tok = BertJapaneseTokenizer(str(ja_dir / 'vocab.txt'), word_tokenizer_type='mecab',
                                mecab_kwargs={'mecab_dic': 'unidic_lite'}, **{option: True})
    lines = varied_lines[-60:] + ['THE River FLOWS [MASK] [mask]']
    assert japanese_batch_encoder(tok)(lines) == slow_ids(tok, lines)


def test_encoder_pickles_without_heavy_objects(ja_tok, varied_lines):
    encode = japanese_batch_encoder(ja_tok)
    fresh = pickle.loads(pickle.dumps(encode))
    expected = slow_ids(ja_tok, varied_lines)
    assert fresh(varied_lines) == expected
    used = pickle.dumps(fresh)  # after use: the tagger, Rust model and cache stay behind
    again = pickle.loads(used)
    assert again._mecab is None and again._cache == {} and len(used) < 2 * len(pickle.dumps(encode))
    assert again(varied_lines) == expected


def test_batch_encoder_dispatch(ja_tok, tokenizer):
    assert isinstance(batch_encoder(ja_tok), JapaneseBatchEncoder)
    assert not isinstance(batch_encoder(tokenizer), JapaneseBatchEncoder)  # the shipped fast tokenizer
    lines = ['川は山', 'A glacier moves.']
    assert batch_encoder(tokenizer)(lines) == slow_ids(tokenizer, lines)


def test_encoder_refuses_what_it_cannot_reproduce(ja_dir, tokenizer):
    assert not fast_japanese_supported(tokenizer)
    with pytest.raises(ValueError, match='not a BertJapaneseTokenizer'):
        japanese_batch_encoder(tokenizer)
    basic = BertJapaneseTokenizer(str(ja_dir / 'vocab.txt'), word_tokenizer_type='basic')
    assert not fast_japanese_supported(basic)
    assert not isinstance(batch_encoder(basic), JapaneseBatchEncoder)  # falls back to the per-line path
    with pytest.raises(ValueError, match="word tokenizer is 'basic'"):
        japanese_batch_encoder(basic)
    with pytest.raises(ValueError, match='list of lines'):
        japanese_batch_encoder(load_tokenizer(ja_dir))('川は山')


# ---- with the data processor ---------------------------------------------------------------------
class SlowEncoder:
    """The seed's per-line path, picklable for worker processes."""

    def __init__(self, tok):
        self.tok = tok

    def __call__(self, lines):
        return slow_ids(self.tok, lines)


def test_data_processor_num_proc_2_matches_slow_path(ja_tok, monkeypatch):
    texts = list(load_corpus('sample')['text']) + ['[MASK]川は＂山＂\n\n😀 ｶﾀｶﾅ']
    docs = datasets.Dataset.from_dict({'text': texts})
    fast_proc = ELECTRADataProcessor(docs, ja_tok, max_length=48, seed=5)
    assert isinstance(fast_proc.encode, JapaneseBatchEncoder)
    fast = fast_proc.map(num_proc=2, batch_size=8)
    monkeypatch.setattr(electra_dataprocessor, 'batch_encoder', SlowEncoder)
    slow_proc = ELECTRADataProcessor(docs, ja_tok, max_length=48, seed=5)
    assert isinstance(slow_proc.encode, SlowEncoder)
    slow = slow_proc.map(num_proc=2, batch_size=8)
    assert len(fast) > 50
    assert fast['input_ids'] == slow['input_ids'] and fast['sentA_length'] == slow['sentA_length']


# ---- command line and benchmark ----------------------------------------------------------------
def test_cli_trains_japanese_tokenizer(tmp_path, capsys):
    out = tmp_path / 'cli'
    assert main(['tokenizer', '--datas', 'sample_ja', '--out', str(out), '--japanese', '--vocab_size', '2000',
                 '--num_unused', '2']) == 0
    tok = load_tokenizer(out)
    assert isinstance(tok, BertJapaneseTokenizer) and tok.convert_tokens_to_ids('[unused1]') == 6
    assert main(['tokenizer', '--out', str(tmp_path / 'x'), '--dic', 'ipadic']) == 2
    assert 'add --japanese' in capsys.readouterr().err
    assert not (tmp_path / 'x').exists()


def test_bench_runs_and_checks_ids(ja_dir, capsys):
    assert bench_tokenize.main(['--data', 'data/sample/ja.txt', '--tokenizer', str(ja_dir), '--repeat', '1']) == 0
    out = capsys.readouterr().out
    assert 'identical ids: True' in out and 'MeCab alone' in out
