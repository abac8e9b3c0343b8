"""A vocabulary's identity and soundness, with nothing heavy imported: its fingerprint (caches and
checkpoints record it), its language, and the checks every loaded tokenizer passes."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

# BERT's special tokens, first in every vocabulary this project trains (ids 0-4)
SPECIAL_TOKENS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']


def vocab_hash(hf_tokenizer) -> str:
    """A fingerprint of the vocabulary (token -> id): caches and checkpoints record it, so
    examples or weights made with another vocabulary are never reused by mistake."""
    vocab = json.dumps(sorted(hf_tokenizer.get_vocab().items()), ensure_ascii=False).encode()
    return hashlib.sha256(vocab).hexdigest()


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


def check_vocabulary(hf_tokenizer, where: str | Path):
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
