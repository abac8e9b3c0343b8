"""WordPiece tokenizers: training on a local corpus, loading from local directories."""
import pytest
from transformers import AutoTokenizer

from pretrain.prepare.vocab import SPECIAL_TOKENS
from pretrain.prepare.tokenizer import load_tokenizer, train_tokenizer

TEXTS = [
    'がぎぐげご ざじずぜぞ だぢづでど ばびぶべぼ パピプペポ かきくけこ',
    '東京都に行く。東京都は大きい都市です。日本語の文章です。',
    'The quick brown fox jumps over the lazy dog.',
    'A glacier is a large, slowly moving body of ice.',
] * 10


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp('tok') / 'wordpiece'
    tok = train_tokenizer(TEXTS, out, vocab_size=400, min_frequency=1, num_unused=4)
    return out, tok


# ---- training ---------------------------------------------------------------------------------
def test_trained_dir_loads_with_load_tokenizer_and_auto(trained):
    out, tok = trained
    assert out.is_dir() and (out / 'tokenizer.json').is_file()
    ours = load_tokenizer(out)
    auto = AutoTokenizer.from_pretrained(str(out), local_files_only=True)
    text = 'The quick fox は東京都に行く。'
    assert ours(text)['input_ids'] == auto(text)['input_ids'] == tok(text)['input_ids']
    assert len(ours) == len(auto) == len(tok) <= 400


def test_special_and_unused_tokens(trained):
    out, _ = trained
    for tok in (load_tokenizer(out), AutoTokenizer.from_pretrained(str(out), local_files_only=True)):
        ids = tok.convert_tokens_to_ids(SPECIAL_TOKENS + [f'[unused{i}]' for i in range(4)])
        assert ids == list(range(9))  # specials first, in order, then the unused slots
        assert (tok.pad_token, tok.unk_token, tok.cls_token, tok.sep_token, tok.mask_token) == tuple(SPECIAL_TOKENS)
        assert (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id) == (0, 1, 2, 3, 4)
        assert tok.convert_tokens_to_ids('[unused4]') == tok.unk_token_id  # only num_unused of them
        assert tok.tokenize('fox [unused2] dog') == ['fox', '[unused2]', 'dog']  # never split


def test_single_and_pair_encoding_add_cls_sep(trained):
    _, tok = trained
    a = tok('quick fox', add_special_tokens=False)['input_ids']
    b = tok('lazy dog', add_special_tokens=False)['input_ids']
    assert tok('quick fox')['input_ids'] == [2] + a + [3]
    assert tok('quick fox', 'lazy dog')['input_ids'] == [2] + a + [3] + b + [3]
    assert tok.decode(tok('The quick fox')['input_ids'], skip_special_tokens=True) == 'the quick fox'


def test_voiced_kana_survive(trained):
    _, tok = trained
    for ch in 'がぎぐげござじずぜぞだぢづでどばびぶべぼパピプペポ':
        toks = tok.tokenize(ch)
        assert toks == [ch], f'{ch!r} became {toks}'
        assert tok.unk_token_id not in tok.convert_tokens_to_ids(toks)
    # NFKC composes half-width voiced katakana; no accent stripping decomposes it
    assert tok.tokenize('ﾊﾟ') == ['パ']
    assert tok.backend_tokenizer.normalizer.normalize_str('がぱ') == 'がぱ'
    assert tok.tokenize('が') != tok.tokenize('か')


def test_kanji_split_one_per_token(trained):
    _, tok = trained
    # '東京都' appears many times in training, yet stays three tokens, none a '##' piece
    assert tok.tokenize('東京都') == ['東', '京', '都']
    toks = tok.tokenize('日本語の文章')
    assert toks[:3] == ['日', '本', '語']
    assert all(not t.startswith('##') for t in tok.tokenize('東京都日本語文章都市'))


def test_lowercase_option(tmp_path):
    lower = train_tokenizer(['Café Tokyo Café Tokyo'] * 5, tmp_path / 'lower', vocab_size=100, min_frequency=1)
    cased = train_tokenizer(['Café Tokyo Café Tokyo'] * 5, tmp_path / 'cased', vocab_size=100, min_frequency=1,
                            lowercase=False)
    assert lower.tokenize('Café') == ['café']  # lowercased, accent kept
    assert cased.tokenize('Café Tokyo') == ['Café', 'Tokyo']
    assert load_tokenizer(tmp_path / 'cased').tokenize('Café Tokyo') == ['Café', 'Tokyo']


def test_unknown_characters_become_unk(trained):
    _, tok = trained
    assert tok.tokenize('Ω') == ['[UNK]']


def test_train_into_existing_nested_dir(tmp_path):
    out = tmp_path / 'a' / 'b'
    train_tokenizer(['one two three'] * 3, out, vocab_size=60, min_frequency=1)
    assert load_tokenizer(out).tokenize('one two') == ['one', 'two']
    # retraining over the same directory replaces it
    train_tokenizer(['four five six'] * 3, out, vocab_size=60, min_frequency=1)
    assert load_tokenizer(out).tokenize('four five') == ['four', 'five']


# ---- the shipped tokenizer ----------------------------------------------------------------------
def test_shipped_tokenizer(tokenizer):
    assert (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.cls_token_id,
            tokenizer.sep_token_id, tokenizer.mask_token_id) == (0, 1, 2, 3, 4)
    assert tokenizer.convert_tokens_to_ids('[unused0]') == 5
    assert len(tokenizer) > 1000
    assert tokenizer.tokenize('川は山') == ['川', 'は', '山']
    assert tokenizer.unk_token_id not in tokenizer('が A glacier', add_special_tokens=False)['input_ids']
    assert tokenizer('a', 'b')['input_ids'][0] == 2 and tokenizer('a', 'b')['input_ids'].count(3) == 2


def test_shipped_tokenizer_loads_with_auto_tokenizer():
    auto = AutoTokenizer.from_pretrained('data/sample/tokenizer', local_files_only=True)
    ours = load_tokenizer('data/sample/tokenizer')
    text = '氷河は長い年月をかけて動く。A glacier moves slowly.'
    assert auto(text)['input_ids'] == ours(text)['input_ids']


def test_load_tokenizer_relative_to_repo_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths fall back to the repository root
    assert load_tokenizer('data/sample/tokenizer').mask_token_id == 4


# ---- load errors ------------------------------------------------------------------------------
def test_load_missing_dir(tmp_path):
    with pytest.raises(ValueError, match='does not exist'):
        load_tokenizer(tmp_path / 'nope')


def test_load_dir_without_tokenizer(tmp_path):
    (tmp_path / 'readme.txt').write_text('no tokenizer here')
    with pytest.raises(ValueError, match='holds no tokenizer.json, vocab.txt or tokenizer_config.json'):
        load_tokenizer(tmp_path)


def test_load_broken_tokenizer_json(tmp_path):
    (tmp_path / 'tokenizer.json').write_text('{broken')
    with pytest.raises(ValueError, match='cannot load a tokenizer'):
        load_tokenizer(tmp_path)


def test_load_tokenizer_without_mask_token(trained, tmp_path):
    from transformers import PreTrainedTokenizerFast
    _, tok = trained
    no_mask = PreTrainedTokenizerFast(tokenizer_object=tok.backend_tokenizer, unk_token='[UNK]', pad_token='[PAD]',
                                      cls_token='[CLS]', sep_token='[SEP]')
    no_mask.save_pretrained(str(tmp_path / 'nomask'))
    with pytest.raises(ValueError, match='mask_token'):
        load_tokenizer(tmp_path / 'nomask')


# ---- vocabularies checked against their config ------------------------------------------------
def edited_copy(tmp_path, edit, source='data/docs_ja/tokenizer', name='tok'):
    """A copy of a shipped tokenizer directory with `edit(directory)` applied."""
    import shutil
    from _utils.paths import repo_path
    d = tmp_path / name
    shutil.copytree(repo_path(source), d)
    edit(d)
    return d


def without_mask_line(d):
    lines = (d / 'vocab.txt').read_text(encoding='utf-8').splitlines()
    (d / 'vocab.txt').write_text('\n'.join(t for t in lines if t != '[MASK]') + '\n', encoding='utf-8')


NO_MASK = (r"its config gives special token '\[MASK\]' id 4 but vocab.txt has no '\[MASK\]' and gives id 4 to '!', "
           r"so every later id is shifted; put '\[MASK\]' back in vocab.txt \(line 5\)")


def test_a_vocabulary_without_mask_is_refused_wherever_a_tokenizer_is_loaded(tmp_path, tiny_run, finetune_model_dir):
    """The issue's case: the [MASK] line deleted from vocab.txt, its config still declaring [MASK]
    (id 4): transformers gives id 4 to both [MASK] and '!' and shifts every later token."""
    import shutil
    from finetune.model import load_tokenizer as finetune_tokenizer
    from pretrain.config import get_config
    from pretrain.run.export import export
    from pretrain.tools.inspect import inspect_run
    from pretrain.train import pretrain
    broken = edited_copy(tmp_path, without_mask_line)
    with pytest.raises(ValueError, match=NO_MASK):
        load_tokenizer(broken)
    c = get_config('tiny', tokenizer=str(broken), steps=4, bs=8, num_workers=0, num_proc=1, device='cpu',
                   data_dir=str(tmp_path / 'data'), checkpoint_dir=str(tmp_path / 'ckpt'))
    with pytest.raises(ValueError, match=NO_MASK):
        pretrain(c)
    assert not (tmp_path / 'data' / 'preprocess').exists()  # before any preprocessing
    ckpt = f"{tiny_run.checkpoint_dir}/{tiny_run.run_name}_100.0%.pth"
    with pytest.raises(ValueError, match=NO_MASK):
        export(ckpt, tmp_path / 'out', tokenizer=broken)
    with pytest.raises(ValueError, match=r"no tokenizer for .*: tokenizer .*: its config gives special token '\[MASK\]'"):
        inspect_run(ckpt, tokenizer=broken)
    model_dir = tmp_path / 'model'
    model_dir.mkdir()
    shutil.copy(finetune_model_dir / 'config.json', model_dir)
    for f in broken.iterdir():
        shutil.copy(f, model_dir)
    with pytest.raises(ValueError, match=NO_MASK):
        finetune_tokenizer(model_dir)


def test_a_special_token_at_another_id_than_its_config_says(tmp_path):
    def swap(d):
        lines = (d / 'vocab.txt').read_text(encoding='utf-8').splitlines()
        lines[4], lines[5] = lines[5], lines[4]  # [MASK] and '!'
        (d / 'vocab.txt').write_text('\n'.join(lines) + '\n', encoding='utf-8')
    with pytest.raises(ValueError, match=r"its config gives special token '\[MASK\]' id 4 but vocab.txt has it at id 5"):
        load_tokenizer(edited_copy(tmp_path, swap))


def test_token_ids_must_be_unique_and_contiguous(tmp_path):
    import json

    def drop_id_100(d):
        j = json.loads((d / 'tokenizer.json').read_text(encoding='utf-8'))
        vocab = j['model']['vocab']
        del vocab[next(t for t, i in vocab.items() if i == 100)]
        (d / 'tokenizer.json').write_text(json.dumps(j), encoding='utf-8')
    with pytest.raises(ValueError, match=r"has token ids that are not unique and contiguous \(no token has id 100\)"):
        load_tokenizer(edited_copy(tmp_path, drop_id_100, source='data/sample/tokenizer'))


def test_a_tokenizer_without_its_vocabulary_or_given_as_a_file(tmp_path):
    no_vocab = edited_copy(tmp_path, lambda d: (d / 'vocab.txt').unlink())
    with pytest.raises(ValueError, match=r"^tokenizer directory '.*tok' holds no vocabulary file \(tokenizer.json or "
                                         r"vocab.txt\), only special_tokens_map.json, tokenizer_config.json, training.json; "
                                         r"copy the whole tokenizer directory"):
        load_tokenizer(no_vocab)
    with pytest.raises(ValueError, match=r"^tokenizer 'data/sample/tokenizer/tokenizer.json' is a file; point `tokenizer` "
                                         r"at the directory that holds it"):
        load_tokenizer('data/sample/tokenizer/tokenizer.json')


def test_a_vocab_size_the_corpus_cannot_honour_is_refused(tmp_path, capsys):
    from pretrain.__main__ import main
    from pretrain.prepare.tokenizer import build_tokenizer
    out = tmp_path / 'tok'
    with pytest.raises(ValueError, match=r"^vocab_size 10 is below what this corpus needs: its special tokens and "
                                         r"characters alone make (\d+) tokens; give --vocab_size \1 or more$"):
        build_tokenizer(['sample'], out, vocab_size=10)
    assert list(tmp_path.iterdir()) == []  # neither the tokenizer nor its temporary directory
    assert main(['tokenizer', '--datas', 'sample', '--out', str(out), '--vocab_size', '5000']) == 0
    printed = capsys.readouterr().out
    n = len(load_tokenizer(out))
    assert n < 5000 and f"tokenizer with {n} tokens (fewer than --vocab_size 5000: the corpus has no more pieces" in printed
