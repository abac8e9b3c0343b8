"""WordPiece tokenizers: train one on a local corpus, or load one from a local directory."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from _utils.cli import first_line
from pretrain.prepare.vocab import SPECIAL_TOKENS
from pretrain.prepare.vocab import check_tokenizer_files, check_vocabulary
from pretrain.prepare.ja_tokenizer import fast_japanese_supported, japanese_batch_encoder, train_japanese_tokenizer
from _utils.atomic import atomic_directory
from _utils.paths import repo_path


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
    with atomic_directory(out) as tmp:
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
    return load_tokenizer(out), False


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
        raise ValueError(f"cannot load a tokenizer from {str(p)!r}: {first_line(e)}") from None
    missing = [name for name in ('pad_token', 'cls_token', 'sep_token', 'mask_token') if getattr(tok, name + '_id') is None]
    if missing:
        raise ValueError(f"tokenizer at {str(p)!r} lacks {', '.join(missing)}; ELECTRA needs [PAD], [CLS], [SEP] and [MASK]")
    return check_vocabulary(tok, p)
