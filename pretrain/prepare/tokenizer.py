"""WordPiece tokenizers: train one on a local corpus, or load one from a local directory."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from pretrain.config import SPECIAL_TOKENS
from pretrain.prepare.ja_tokenizer import fast_japanese_supported, japanese_batch_encoder, train_japanese_tokenizer
from _utils.paths import remove_stale_temps, repo_path, temp_sibling


def train_tokenizer(texts: Iterable[str], out_dir: str | Path, vocab_size: int = 32768,
                    min_frequency: int = 2, num_unused: int = 0, lowercase: bool = True) -> PreTrainedTokenizerFast:
    """Train a BERT-style WordPiece vocabulary on `texts` and save it to `out_dir`.

    NFKC then BERT normalisation without accent stripping (stripping accents decomposes
    Japanese voiced kana: が -> か). Kanji are split one per word, as BERT does for CJK.
    `num_unused` adds `[unused0]`... tokens that fine-tuning can repurpose.
    """
    tok = Tokenizer(models.WordPiece(unk_token='[UNK]', max_input_chars_per_word=100))
    tok.normalizer = normalizers.Sequence([
        normalizers.NFKC(),
        normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=False,
                                   lowercase=lowercase)])
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix='##')
    specials = SPECIAL_TOKENS + [f'[unused{i}]' for i in range(num_unused)]
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                        special_tokens=specials, continuing_subword_prefix='##',
                                        show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    cls, sep = tok.token_to_id('[CLS]'), tok.token_to_id('[SEP]')
    tok.post_processor = processors.TemplateProcessing(
        single='[CLS] $A [SEP]', pair='[CLS] $A [SEP] $B:1 [SEP]:1',
        special_tokens=[('[CLS]', cls), ('[SEP]', sep)])
    hf_tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token='[UNK]', pad_token='[PAD]',
                                           cls_token='[CLS]', sep_token='[SEP]', mask_token='[MASK]',
                                           model_max_length=512,
                                           # so pairs come with segment ids, as BERT/ELECTRA expect
                                           model_input_names=['input_ids', 'token_type_ids', 'attention_mask'])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    hf_tokenizer.save_pretrained(str(out_dir))
    return hf_tokenizer


def build_tokenizer(datas: list[str], out_dir: str | Path, vocab_size: int = 32768, min_frequency: int = 2,
                    num_unused: int = 0, japanese: bool = False, dic: str | None = None,
                    limit_alphabet: int | None = None) -> tuple[PreTrainedTokenizerBase, bool]:
    """Train a tokenizer on the corpora `datas` into `out_dir`, unless `out_dir` already holds
    one trained on the same corpora with the same settings (then it is loaded: `(tok, True)`).

    `japanese`: MeCab words + WordPiece (`ja_tokenizer`), else BERT pre-tokenisation. The
    directory is written under a temporary name and renamed, so it is complete or absent. A
    `vocab_size` below the corpus's special tokens and characters (which WordPiece always keeps)
    is a `ValueError`; a corpus too small for `vocab_size` gives fewer tokens (`len(tok)`).
    """
    import json
    import shutil
    from pretrain.prepare.corpus import load_corpus
    if vocab_size < len(SPECIAL_TOKENS) + num_unused + 1 or min_frequency < 1 or num_unused < 0:
        raise ValueError(f"vocab_size ({vocab_size}) must exceed the special and unused tokens, min_frequency "
                         f"({min_frequency}) must be >= 1 and num_unused ({num_unused}) >= 0")
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise ValueError(f"--out {str(out_dir)!r} is a file; give a directory for the tokenizer")
    if not japanese and (dic is not None or limit_alphabet is not None):
        raise ValueError("dic and limit_alphabet apply to the Japanese (MeCab) tokenizer; add --japanese")
    corpora = {data: load_corpus(data) for data in datas}
    record = {'datas': {d: ds._fingerprint for d, ds in corpora.items()}, 'vocab_size': vocab_size,
              'min_frequency': min_frequency, 'num_unused': num_unused, 'japanese': japanese,
              'dic': dic, 'limit_alphabet': limit_alphabet}
    out = repo_path(out_dir)
    record_path = out / 'training.json'
    if record_path.is_file() and json.loads(record_path.read_text()) == record:
        return load_tokenizer(out), True
    texts = (t for ds in corpora.values() for t in ds['text'])
    tmp = temp_sibling(out, 'partial')  # one per writer
    remove_stale_temps(out, 'partial')
    try:
        if japanese:
            trained = train_japanese_tokenizer(texts, tmp, vocab_size, min_frequency, num_unused,
                                               dic=dic or 'unidic_lite', limit_alphabet=limit_alphabet)
        else:
            trained = train_tokenizer(texts, tmp, vocab_size, min_frequency, num_unused)
        if len(trained) > vocab_size:  # WordPiece keeps every character it saw, whatever vocab_size says
            raise ValueError(f"vocab_size {vocab_size} is below what this corpus needs: its special tokens and "
                             f"characters alone make {len(trained)} tokens; give --vocab_size {len(trained)} or more"
                             + (" or keep fewer characters with --limit_alphabet N" if japanese else ''))
        (tmp / 'training.json').write_text(json.dumps(record, indent=1))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return load_tokenizer(out), False


def vocab_hash(hf_tokenizer) -> str:
    """A fingerprint of the vocabulary (token -> id): caches and checkpoints record it, so
    examples or weights made with another vocabulary are never reused by mistake."""
    import hashlib
    import json
    vocab = json.dumps(sorted(hf_tokenizer.get_vocab().items()), ensure_ascii=False).encode()
    return hashlib.sha256(vocab).hexdigest()


def batch_encoder(hf_tokenizer) -> Callable[[list[str]], list[list[int]]]:
    """A function from lines to token ids without special tokens, giving the same ids as the
    seed's `convert_tokens_to_ids(tokenize(line))` per line, but batched: one call into the
    Rust tokenizer for a whole batch of lines. A MeCab + WordPiece `BertJapaneseTokenizer` (pure
    Python) gets `ja_tokenizer.japanese_batch_encoder`: the same ids, several times faster."""
    if fast_japanese_supported(hf_tokenizer):  # a MeCab + WordPiece tokenizer, whatever its class name
        return japanese_batch_encoder(hf_tokenizer)

    backend = getattr(hf_tokenizer, 'backend_tokenizer', None)

    def encode(lines: list[str]) -> list[list[int]]:
        if not lines:
            return []
        if backend is not None:  # straight into Rust, without offsets or Python-side padding logic
            return [e.ids for e in backend.encode_batch_fast(lines, add_special_tokens=False)]
        return hf_tokenizer(lines, add_special_tokens=False, return_attention_mask=False,
                            return_token_type_ids=False)['input_ids']
    return encode


# the files a tokenizer directory keeps its vocabulary in (WordPiece, BPE, SentencePiece)
VOCABULARY_FILES = ('tokenizer.json', 'vocab.txt', 'vocab.json', '*.model')


def check_tokenizer_files(p: Path, what: str = 'tokenizer directory') -> None:
    """A one-line `ValueError` unless directory `p` holds a vocabulary file (`VOCABULARY_FILES`):
    transformers fails on a config without one with a message about a `NoneType` path."""
    if not any(next(p.glob(f), None) for f in VOCABULARY_FILES):
        held = sorted(q.name for q in p.iterdir())
        raise ValueError(f"{what} {str(p)!r} holds no vocabulary file (tokenizer.json or vocab.txt), only "
                         f"{', '.join(held[:4]) or 'nothing'}{' ...' if len(held) > 4 else ''}; copy the whole tokenizer "
                         f"directory, or train one with `python -m pretrain tokenizer`")


def _vocabulary_file(hf_tokenizer) -> tuple[dict[str, int] | None, str]:
    """The vocabulary of the tokenizer's model alone, without the tokens its config adds
    (token -> id), and the file it comes from; None where the tokenizer does not expose it."""
    backend = getattr(hf_tokenizer, 'backend_tokenizer', None)
    if backend is not None:
        return backend.get_vocab(with_added_tokens=False), 'tokenizer.json'
    vocab = getattr(hf_tokenizer, 'vocab', None)
    return (dict(vocab), 'vocab.txt') if isinstance(vocab, dict) else (None, 'vocabulary')


def check_vocabulary(hf_tokenizer, where: str | Path) -> PreTrainedTokenizerBase:
    """`hf_tokenizer`, or a one-line `ValueError` when its vocabulary disagrees with its config:
    a special token it declares (`[MASK]`, ...) missing from the vocabulary file or there at
    another id than the config gives it, or token ids that are not unique and contiguous
    (0 .. len - 1). Without this, a `[MASK]` line deleted from vocab.txt trains silently: the
    config still maps `[MASK]` to id 4, which the file now gives to the next token, and every
    later id is shifted by one."""
    vocab = hf_tokenizer.get_vocab()
    declared = {str(t): i for i, t in hf_tokenizer.added_tokens_decoder.items()}
    for name in ('pad_token', 'unk_token', 'cls_token', 'sep_token', 'mask_token'):
        token = getattr(hf_tokenizer, name, None)
        if token is not None and str(token) not in vocab:
            raise ValueError(f"tokenizer {str(where)!r} declares {name} {str(token)!r} but its vocabulary has no "
                             f"such token; add it to the vocabulary or use the tokenizer directory as it was saved")
        if token is not None:
            declared.setdefault(str(token), vocab[str(token)])
    base, file = _vocabulary_file(hf_tokenizer)
    if base is not None:
        by_id = {i: t for t, i in base.items()}
        for token, i in sorted(declared.items(), key=lambda kv: kv[1]):
            if token in base and base[token] != i:
                raise ValueError(f"tokenizer {str(where)!r}: its config gives special token {token!r} id {i} but "
                                 f"{file} has it at id {base[token]}; use the tokenizer directory as it was saved")
            if token not in base and i in by_id:
                line = f" (line {i + 1})" if file == 'vocab.txt' else ''
                raise ValueError(f"tokenizer {str(where)!r}: its config gives special token {token!r} id {i} but "
                                 f"{file} has no {token!r} and gives id {i} to {by_id[i]!r}, so every later id is "
                                 f"shifted; put {token!r} back in {file}{line} or use the tokenizer as it was saved")
    ids = sorted(vocab.values())
    if len(set(ids)) != len(ids) or ids != list(range(len(ids))):
        shared = next((i for i, j in zip(ids, ids[1:]) if i == j), None)
        gap = next((n for n, i in enumerate(sorted(set(ids))) if n != i), None)
        why = (f"id {shared} belongs to {sorted(t for t, i in vocab.items() if i == shared)}" if shared is not None
               else f"no token has id {gap}" if gap is not None else f"ids run past {len(ids) - 1}")
        raise ValueError(f"tokenizer {str(where)!r} has token ids that are not unique and contiguous ({why}); "
                         f"use the tokenizer directory as it was saved, or train one with `python -m pretrain tokenizer`")
    return hf_tokenizer


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """A tokenizer from a local directory (ours, or a copy of e.g. google/electra-small-generator).

    Never touches the network. Raises `ValueError` when the path is missing or a file, holds no
    vocabulary, lacks a token needed by ELECTRA ([PAD], [CLS], [SEP], [MASK]), or its
    vocabulary disagrees with its config (`check_vocabulary`).
    """
    p = repo_path(path)
    if p.is_file():
        raise ValueError(f"tokenizer {str(path)!r} is a file; point `tokenizer` at the directory that holds it "
                         f"({str(p.parent)!r}) with its vocabulary and config")
    if not p.is_dir():
        raise ValueError(f"tokenizer directory {str(path)!r} does not exist; train one with "
                         f"`python -m pretrain tokenizer` or point `tokenizer` at a local copy")
    if not any((p / f).is_file() for f in ('tokenizer.json', 'vocab.txt', 'tokenizer_config.json')):
        raise ValueError(f"tokenizer directory {str(path)!r} holds no tokenizer.json, vocab.txt or "
                         f"tokenizer_config.json; point `tokenizer` at a saved tokenizer")
    check_tokenizer_files(p)
    try:
        tok = AutoTokenizer.from_pretrained(str(p), local_files_only=True)
    except Exception as e:  # transformers raises OSError/ValueError/KeyError for broken dirs
        raise ValueError(f"cannot load a tokenizer from {str(p)!r}: {str(e).splitlines()[0]}") from None
    missing = [name for name in ('pad_token', 'cls_token', 'sep_token', 'mask_token') if getattr(tok, name + '_id') is None]
    if missing:
        raise ValueError(f"tokenizer at {str(p)!r} lacks {', '.join(missing)}; ELECTRA needs [PAD], [CLS], [SEP] and [MASK]")
    return check_vocabulary(tok, p)


KANA = re.compile('[\u3040-\u30ff]')


def vocab_language(hf_tokenizer) -> str:
    """'ja' when kana make up 5% or more of the vocabulary, else 'en': the language a model card
    declares and `inspect`'s default sentence is in."""
    vocab = hf_tokenizer.get_vocab()
    kana = sum(1 for token in vocab if KANA.search(token))
    return 'ja' if kana >= 0.05 * max(len(vocab), 1) else 'en'
