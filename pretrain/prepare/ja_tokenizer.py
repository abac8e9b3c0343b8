"""Japanese tokenizers as in the published Japanese BERT/ELECTRA models (cl-tohoku): MeCab
splits text into words, WordPiece splits words into subwords, and transformers loads the result
as a `BertJapaneseTokenizer` (word_tokenizer_type 'mecab', subword_tokenizer_type 'wordpiece').

`train_japanese_tokenizer` trains such a vocabulary on a local corpus; `japanese_batch_encoder`
gives exactly the ids of the (pure Python) `BertJapaneseTokenizer`, several times faster: MeCab
prints the words of each line (no Python object per word), the Rust WordPiece model of
`tokenizers` splits the new words of a whole batch in one call, and known words come from a
cache. MeCab itself, which defines the words, is then most of the time left.
"""
from __future__ import annotations

import inspect
import json
import os
import re
import unicodedata
from itertools import chain
from pathlib import Path
from typing import Iterable, Iterator

from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, BertJapaneseTokenizer
from transformers.models.bert_japanese.tokenization_bert_japanese import MecabTokenizer

from pretrain.config import check_allowed
from pretrain.prepare.vocab import SPECIAL_TOKENS

# Dictionaries transformers' MecabTokenizer accepts by name, and the pip package behind each.
DICTIONARIES = {'unidic_lite': 'unidic-lite', 'unidic': 'unidic', 'ipadic': 'ipadic'}
# BertJapaneseTokenizer's WordpieceTokenizer turns longer words into one [UNK]; training uses it too.
MAX_INPUT_CHARS_PER_WORD = 100
# Words whose ids the encoder remembers (per process) before it starts afresh: a few tens of MB.
CACHE_WORDS = 200_000


# ---- MeCab ------------------------------------------------------------------------------------
def mecab_option(dic: str | None = 'unidic_lite', option: str | None = None) -> str:
    """The MeCab option string transformers' `MecabTokenizer` builds for `mecab_dic=dic` and
    `mecab_option=option`, so our tagger reads the very dictionary the tokenizer reads.

    Raises `ValueError` for an unknown or uninstalled dictionary.
    """
    option = option or ''
    if dic is None:  # a system dictionary chosen through `option`
        return option
    check_allowed('MeCab dictionary', dic, DICTIONARIES)
    try:
        module = __import__(dic)
    except ModuleNotFoundError:
        raise ValueError(f"MeCab dictionary {dic!r} is not installed; `pip install {DICTIONARIES[dic]}` "
                         f"or use dic='unidic_lite'") from None
    dic_dir = module.DICDIR
    if not os.path.isdir(dic_dir):  # the `unidic` package needs a separate download
        raise ValueError(f"MeCab dictionary {dic!r} has no files at {dic_dir}; run `python -m {dic} download` "
                         f"or use dic='unidic_lite'")
    return f'-d "{dic_dir}" -r "{os.path.join(dic_dir, "mecabrc")}" {option}'.strip()


class MeCab:
    """MeCab through fugashi, giving the words transformers' `MecabTokenizer` gets with the same
    `option` (see `mecab_option`)."""

    def __init__(self, option: str):
        try:  # imported here: only Japanese tokenizers need it
            import fugashi
        except ModuleNotFoundError:
            raise ValueError("Japanese tokenizers need fugashi; `pip install fugashi unidic-lite` "
                             "(versions in requirements.txt)") from None
        self._fugashi, self.option = fugashi, option
        # -Owakati prints the words separated by spaces: the segmentation of transformers' node
        # walk, without a Python object per word
        self._wakati = fugashi.GenericTagger(f'{option} -Owakati')
        self._nodes = None

    def parse(self, text: str) -> str:
        """The words of `text` (no normalisation), separated by spaces."""
        if '\x00' not in text:
            return self._wakati.parse(text)
        # at a NUL, MeCab's printed output and transformers' node walk part ways: walk the nodes
        if self._nodes is None:
            self._nodes = self._fugashi.GenericTagger(self.option)
        return ' '.join(node.surface for node in self._nodes(text))

    def words(self, text: str, normalize: bool = True) -> list[str]:
        """The words of `text` as `MecabTokenizer` (NFKC, MeCab) and then `WordpieceTokenizer`
        (a whitespace split of each word) see them."""
        if normalize:
            text = unicodedata.normalize('NFKC', text)
        # MeCab words never hold an ASCII space, so one whitespace split of the output equals
        # WordpieceTokenizer's split of each word (which drops e.g. a '\x1c' word)
        return self.parse(text).split()


def _added_token_pattern(tokens: Iterable[str]) -> re.Pattern | None:
    """A regex splitting text on `tokens`, longest first (the leftmost-longest match of
    transformers' added-token trie), capturing them; None when there are none."""
    tokens = sorted({t for t in tokens if t}, key=len, reverse=True)
    return re.compile('(' + '|'.join(map(re.escape, tokens)) + ')') if tokens else None


# ---- training -----------------------------------------------------------------------------------
def _check_training_args(vocab_size: int, min_frequency: int, num_unused: int, limit_alphabet: int | None,
                         dic: str) -> None:
    check_allowed('MeCab dictionary', dic, DICTIONARIES)
    if not isinstance(num_unused, int) or num_unused < 0:
        raise ValueError(f"num_unused must be an integer >= 0, got {num_unused!r}")
    n_special = len(SPECIAL_TOKENS) + num_unused
    if not isinstance(vocab_size, int) or vocab_size <= n_special:
        raise ValueError(f"vocab_size must be an integer above the {n_special} special and unused tokens, "
                         f"got {vocab_size!r}")
    if not isinstance(min_frequency, int) or min_frequency < 1:
        raise ValueError(f"min_frequency must be an integer >= 1, got {min_frequency!r}")
    if limit_alphabet is not None and (not isinstance(limit_alphabet, int) or limit_alphabet < 1):
        raise ValueError(f"limit_alphabet must be None or an integer >= 1, got {limit_alphabet!r}")


def _segmented_lines(texts: Iterable[str], mecab: MeCab, specials: list[str], counter: list[int]) -> Iterator[str]:
    """Each non-blank line of `texts` as MeCab words joined by spaces, with the special tokens
    cut out as the tokenizer cuts them out before MeCab; `counter[0]` counts the lines."""
    pattern = _added_token_pattern(specials)
    for text in texts:
        if not isinstance(text, str):
            raise ValueError(f"texts must be strings, got {type(text).__name__}; pass an iterable of str")
        for line in text.splitlines():
            pieces = pattern.split(line)[::2]  # even items: the text between special tokens
            words = ' '.join(w for p in pieces for w in mecab.words(p))
            if words:
                counter[0] += 1
                yield words


def _save_bert_japanese(vocab: list[str], out_dir: Path, dic: str, unused: list[str]) -> None:
    """Write `out_dir` as transformers saves a `BertJapaneseTokenizer` (vocab.txt,
    tokenizer_config.json) plus special_tokens_map.json for older readers."""
    out_dir.mkdir(parents=True, exist_ok=True)
    # files of an earlier tokenizer in the same directory would be read instead of ours
    for stale in ('tokenizer.json', 'added_tokens.json', 'spiece.model'):
        (out_dir / stale).unlink(missing_ok=True)
    vocab_file = out_dir / 'vocab.txt'
    vocab_file.write_text(''.join(t + '\n' for t in vocab), encoding='utf-8')
    tok = BertJapaneseTokenizer(
        str(vocab_file), do_lower_case=False, word_tokenizer_type='mecab', subword_tokenizer_type='wordpiece',
        mecab_kwargs={'mecab_dic': dic}, model_max_length=512,
        # [unusedN] are special so that text never splits them, as with our English tokenizer
        extra_special_tokens=unused)
    tok.save_pretrained(str(out_dir))
    names = dict(zip(('pad_token', 'unk_token', 'cls_token', 'sep_token', 'mask_token'), SPECIAL_TOKENS))
    names['additional_special_tokens'] = unused
    (out_dir / 'special_tokens_map.json').write_text(json.dumps(names, indent=2) + '\n', encoding='utf-8')


def train_japanese_tokenizer(texts: Iterable[str], out_dir: str | Path, vocab_size: int = 32768,
                             min_frequency: int = 2, num_unused: int = 0, dic: str = 'unidic_lite',
                             limit_alphabet: int | None = None):
    """Train a MeCab + WordPiece vocabulary on `texts` and save it to `out_dir` as a
    `BertJapaneseTokenizer`; return it as `AutoTokenizer` loads it (offline).

    Lines are NFKC-normalised and split into words by MeCab (dictionary `dic`: 'unidic_lite',
    'unidic' or 'ipadic'), exactly as the loaded tokenizer does; WordPiece then learns subwords
    inside words only, never across a MeCab word boundary. Case is kept. Special tokens come
    first ([PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, [MASK] 4), then `num_unused` [unusedN] slots.
    `limit_alphabet` keeps only that many most frequent characters (rarer ones become [UNK]),
    so a large corpus's rare characters do not crowd words out of the vocabulary.
    """
    _check_training_args(vocab_size, min_frequency, num_unused, limit_alphabet, dic)
    mecab = MeCab(mecab_option(dic))
    unused = [f'[unused{i}]' for i in range(num_unused)]
    specials = SPECIAL_TOKENS + unused
    tok = Tokenizer(models.WordPiece(unk_token='[UNK]', max_input_chars_per_word=MAX_INPUT_CHARS_PER_WORD))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()  # the input is already MeCab words
    limit = {} if limit_alphabet is None else {'limit_alphabet': limit_alphabet}  # the trainer rejects None
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials,
                                        continuing_subword_prefix='##', show_progress=False, **limit)
    counter = [0]
    tok.train_from_iterator(_segmented_lines(texts, mecab, specials, counter), trainer=trainer)
    if not counter[0]:
        raise ValueError("texts hold no words to train on; pass a non-empty corpus")
    by_id = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    vocab = [t for t, _ in by_id]
    assert [i for _, i in by_id] == list(range(len(vocab))) and vocab[:len(specials)] == specials
    out_dir = Path(out_dir)
    _save_bert_japanese(vocab, out_dir, dic, unused)
    return AutoTokenizer.from_pretrained(str(out_dir), local_files_only=True)


# ---- fast batched encoding ----------------------------------------------------------------------
def _unsupported(hf_tokenizer) -> str | None:
    """Why `japanese_batch_encoder` cannot reproduce `hf_tokenizer`, or None when it can."""
    if not isinstance(hf_tokenizer, BertJapaneseTokenizer):
        return f"it is a {type(hf_tokenizer).__name__}, not a BertJapaneseTokenizer"
    if not (hf_tokenizer.do_word_tokenize and hf_tokenizer.word_tokenizer_type == 'mecab'):
        return (f"its word tokenizer is {hf_tokenizer.word_tokenizer_type!r} "
                f"(do_word_tokenize={hf_tokenizer.do_word_tokenize}), not 'mecab'")
    if not (hf_tokenizer.do_subword_tokenize and hf_tokenizer.subword_tokenizer_type == 'wordpiece'):
        return (f"its subword tokenizer is {hf_tokenizer.subword_tokenizer_type!r} "
                f"(do_subword_tokenize={hf_tokenizer.do_subword_tokenize}), not 'wordpiece'")
    if any(t.single_word for t in hf_tokenizer.added_tokens_decoder.values()):
        return "it has single_word added tokens"
    if hf_tokenizer.unk_token not in hf_tokenizer.vocab:
        return f"its unk token {hf_tokenizer.unk_token!r} is not in vocab.txt"
    return None


def fast_japanese_supported(hf_tokenizer) -> bool:
    """Whether `japanese_batch_encoder` handles `hf_tokenizer` (a MeCab + WordPiece
    `BertJapaneseTokenizer`)."""
    return _unsupported(hf_tokenizer) is None


class JapaneseBatchEncoder:
    """Lines -> token ids (no [CLS]/[SEP]) equal to `convert_tokens_to_ids(tokenize(line))` of a
    MeCab + WordPiece `BertJapaneseTokenizer`. Holds plain data only: it pickles, and builds
    its MeCab tagger, Rust WordPiece model and word cache on first use in each process."""

    def __init__(self, hf_tokenizer):
        reason = _unsupported(hf_tokenizer)
        if reason:
            raise ValueError(f"japanese_batch_encoder needs a MeCab + WordPiece BertJapaneseTokenizer, but {reason}; "
                             f"use pretrain.prepare.tokenizer.batch_encoder, which falls back to the per-line path")
        tok = hf_tokenizer
        kwargs = dict(tok.mecab_kwargs or {})
        # MecabTokenizer's own default dictionary when the config names none (it changed across versions)
        default_dic = inspect.signature(MecabTokenizer.__init__).parameters['mecab_dic'].default
        self.mecab_option = mecab_option(kwargs.get('mecab_dic', default_dic), kwargs.get('mecab_option'))
        self.normalize = kwargs.get('normalize_text', True)
        self.lower = bool(tok.do_lower_case)
        self.never_lower = set(tok.never_split or []) | set(tok.all_special_tokens)
        words = list(tok.vocab)
        # ids as convert_tokens_to_ids gives them: an added token's id wins over vocab.txt's
        self.vocab = dict(zip(words, tok.convert_tokens_to_ids(words)))
        self.unk_token = str(tok.unk_token)
        self.max_chars = tok.subword_tokenizer.max_input_chars_per_word
        # text is first split on added tokens (special tokens), which pass through whole
        self.added = dict(tok.added_tokens_encoder)
        self.specials = set(tok.all_special_tokens)
        decoder = tok.added_tokens_decoder.values()
        self.lstrip = {t.content for t in decoder if t.lstrip}
        self.rstrip = {t.content for t in decoder if t.rstrip}
        # with split_special_tokens, tokenize() runs MeCab on the whole line, specials included
        self.keep_specials = not tok.split_special_tokens
        self.first_chars = {t[0] for t in self.added if t}
        self._pattern = self._mecab = self._wordpiece = None
        self._cache: dict[str, list[int]] = {}  # MeCab word -> its WordPiece ids

    def __getstate__(self) -> dict:
        # the tagger, model and cache are rebuilt lazily in the receiving process
        return {**self.__dict__, '_pattern': None, '_mecab': None, '_wordpiece': None, '_cache': {}}

    def _build(self) -> None:
        self._mecab = MeCab(self.mecab_option)
        # no pre-tokenizer: each input string is one MeCab word
        self._wordpiece = Tokenizer(models.WordPiece(self.vocab, unk_token=self.unk_token,
                                                     max_input_chars_per_word=self.max_chars,
                                                     continuing_subword_prefix='##'))
        self._pattern = _added_token_pattern(self.added)

    def _may_hold_added(self, line: str) -> bool:
        return self.keep_specials and self._pattern is not None and any(c in line for c in self.first_chars)

    def _pieces(self, line: str) -> list[str]:
        """`line` split on added tokens (odd items), with their lstrip/rstrip applied, as
        `PreTrainedTokenizer.tokenize` splits it."""
        if not self._may_hold_added(line):
            return [line]
        pieces = self._pattern.split(line)
        for i in range(1, len(pieces), 2):
            if pieces[i] in self.rstrip:
                pieces[i + 1] = pieces[i + 1].lstrip()
            if pieces[i] in self.lstrip:
                pieces[i - 1] = pieces[i - 1].rstrip()
        return pieces

    def _words(self, text: str) -> list[str]:
        if not self.lower:
            return self._mecab.words(text, self.normalize)
        # MecabTokenizer lowercases each MeCab word unless it is a never-split token
        if self.normalize:
            text = unicodedata.normalize('NFKC', text)
        words = self._mecab.parse(text).split(' ')
        return ' '.join(w if w in self.never_lower else w.lower() for w in words).split()

    def _plan(self, line: str) -> list[list[str] | int]:
        """`line` as runs of MeCab words and ids of the added tokens between them."""
        if not self._may_hold_added(line):  # the usual line: one run of words
            words = self._words(line)
            return [words] if words else []
        plan: list[list[str] | int] = []
        for i, piece in enumerate(self._pieces(line)):
            if i % 2 or (self.keep_specials and piece in self.specials):  # an added token, or text that is one
                if piece:
                    plan.append(self.added.get(piece, self.vocab.get(piece, self.vocab[self.unk_token])))
                continue
            words = self._words(piece)
            if words:
                plan.append(words)
        return plan

    def __call__(self, lines: list[str]) -> list[list[int]]:
        if isinstance(lines, str):
            raise ValueError("the encoder takes a list of lines, got one str; wrap it in a list")
        if self._mecab is None:
            self._build()
        if len(self._cache) > CACHE_WORDS:  # bound the memory of each worker
            self._cache.clear()
        plans = [self._plan(line) for line in lines]
        runs = [part for plan in plans for part in plan if isinstance(part, list)]
        # WordPiece of the words not seen before, in one call into Rust; a word's pieces never
        # depend on its neighbours, so the cache gives the same ids
        cache = self._cache
        new = list(set(chain.from_iterable(runs)).difference(cache))
        for word, encoding in zip(new, self._wordpiece.encode_batch_fast(new, add_special_tokens=False)):
            cache[word] = encoding.ids
        pieces_of = cache.__getitem__
        out = []
        for plan in plans:
            if len(plan) == 1 and isinstance(plan[0], list):  # the usual line: one run of words
                out.append(list(chain.from_iterable(map(pieces_of, plan[0]))))
                continue
            ids: list[int] = []
            for part in plan:
                if isinstance(part, list):
                    ids.extend(chain.from_iterable(map(pieces_of, part)))
                else:
                    ids.append(part)
            out.append(ids)
        return out


def japanese_batch_encoder(hf_tokenizer) -> JapaneseBatchEncoder:
    """A picklable function from a list of lines to their token ids without special tokens,
    equal to `hf_tokenizer.convert_tokens_to_ids(hf_tokenizer.tokenize(line))` per line, for a
    MeCab + WordPiece `BertJapaneseTokenizer`. Raises `ValueError` for other tokenizers."""
    return JapaneseBatchEncoder(hf_tokenizer)
