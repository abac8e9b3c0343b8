"""Extractive question answering as in ELECTRA's fine-tuning code (finetune/qa/qa_tasks.py,
qa_metrics.py): [CLS] question [SEP] context window [SEP] features of the questions of
SQuAD-style files (read by `data.read_squad`), long contexts split into windows `doc_stride`
tokens apart, each token scored in the window where it has the most context, and the best valid
span (start <= end, at most `max_answer_length` tokens, inside the context) mapped back to the
context's characters.

Google splits the context at whitespace and maps answers through those words; Japanese text has
no spaces, so here every context token carries its own character span instead: the Rust
tokenizer's offsets, or, for a Python tokenizer (MeCab + WordPiece `BertJapaneseTokenizer`), an
alignment of its tokens to the text (`align_tokens`). The token ids are those of
`pretrain.prepare.tokenizer.batch_encoder`, as everywhere in fine-tuning."""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .data import QAExamples, check_special_tokens, text_encoder
from _utils.segments import bert_input

Span = tuple[int, int]  # [start, end) in characters of the context

# Google's configure_finetuning.py
DOC_STRIDE, MAX_QUERY_LENGTH, MAX_ANSWER_LENGTH = 128, 64, 30


# ---- token ids with character spans ------------------------------------------------------
def _fold(text: str) -> str:
    """What a tokenizer may have done to the characters: NFKC, lower case, accents stripped
    (NFD without combining marks); whitespace dropped."""
    text = unicodedata.normalize('NFD', unicodedata.normalize('NFKC', text).lower())
    return ''.join(c for c in text if not unicodedata.combining(c) and not c.isspace())


def align_tokens(text: str, tokens: list[str], unk_token: str | None = None, window: int = 8,
                 unk_window: int = 200) -> list[Span | None]:
    """The character span in `text` of each WordPiece token (None where it cannot be placed).

    Tokens (their '##' / '▁' marks removed) are matched in order against the text, both folded
    as a tokenizer folds them (NFKC, lower case, no accents, no spaces), each within `window`
    characters of where the previous one ended; an [UNK] (and a run of them) spans the text up to
    the next token that matches, searched within `unk_window` characters."""
    src: list[int] = []  # folded character -> index in `text`
    folded = []
    for i, ch in enumerate(text):
        f = _fold(ch)
        folded.append(f)
        src.extend([i] * len(f))
    norm = ''.join(folded)
    spans: list[Span | None] = []
    pos, pending = 0, []  # pending: indices of [UNK]s waiting for the next match
    for t, tok in enumerate(tokens):
        if tok == unk_token:
            pending.append(t)
            spans.append(None)
            continue
        piece = _fold(tok.removeprefix('##').lstrip('▁'))
        if not piece:
            spans.append(None)
            continue
        limit = pos + (unk_window if pending else window) + len(piece)
        j = norm.find(piece, pos, limit)
        if j < 0:
            spans.append(None)
            continue
        if pending and j > pos:  # the [UNK]s cover the characters they skipped
            for u in pending:
                spans[u] = (src[pos], src[j - 1] + 1)
        pending = []
        spans.append((src[j], src[j + len(piece) - 1] + 1))
        pos = j + len(piece)
    if pending and pos < len(norm):
        for u in pending:
            spans[u] = (src[pos], src[len(norm) - 1] + 1)

    def extend(end: int) -> int:  # over characters a tokenizer folds away (a half-width ﾞ ...), not spaces
        while end < len(text) and not folded[end] and not text[end].isspace():
            end += 1
        return end
    return [None if s is None else (s[0], extend(s[1])) for s in spans]


def token_spans(hf_tokenizer, texts: list[str], encoder: Callable | None = None
                ) -> list[tuple[list[int], list[Span | None]]]:
    """(ids, character span of each token) for each text, no special tokens added. A Rust
    tokenizer gives its offsets; otherwise the ids come from `encoder` (`data.text_encoder`)
    and the spans from `align_tokens`."""
    backend = getattr(hf_tokenizer, 'backend_tokenizer', None)
    if backend is not None:
        return [(e.ids, [tuple(o) if o[1] > o[0] else None for o in e.offsets])
                for e in backend.encode_batch(texts, add_special_tokens=False)]
    encoder = encoder or text_encoder(hf_tokenizer)
    out = []
    for text, ids in zip(texts, encoder(texts)):
        out.append((ids, align_tokens(text, hf_tokenizer.convert_ids_to_tokens(ids), hf_tokenizer.unk_token)))
    return out


# ---- features: windows over the context ---------------------------------------------------
@dataclass
class QAFeatures:
    """Windows of a QA split. items[f] = (input_ids, token_type_ids, (start, end)) is what the
    model trains on ((0, 0), the [CLS] position, for a window without the answer);
    example[f] is the question it belongs to, spans[f][p] the context characters of position p
    (None outside the context) and max_context[f][p] whether this window is the one where that
    token has the most context. `skipped`: training questions whose answer could not be placed
    on tokens (Google skips those too)."""
    items: list[tuple[list[int], list[int], tuple[int, int]]] = field(default_factory=list)
    example: list[int] = field(default_factory=list)
    spans: list[list[Span | None]] = field(default_factory=list)
    max_context: list[list[bool]] = field(default_factory=list)
    skipped: int = 0


def windows(n_tokens: int, max_tokens: int, stride: int) -> list[tuple[int, int]]:
    """(start, length) of each window over `n_tokens` context tokens: Google's sliding windows,
    each `min(length, stride)` after the previous, the last one reaching the end."""
    out, start = [], 0
    while True:
        length = min(n_tokens - start, max_tokens)
        out.append((start, length))
        if start + length >= n_tokens:
            return out
        start += min(length, stride)


def max_context_flags(spans: list[tuple[int, int]], w: int) -> list[bool]:
    """For each token of window `w`, whether `w` gives it the most context among the windows
    holding it: score min(left, right) + 0.01 * window length, the first best window wins
    (Google's `_check_is_max_context`)."""
    start, length = spans[w]
    flags = []
    for p in range(start, start + length):
        best, best_w = None, None
        for v, (s, n) in enumerate(spans):
            if s <= p < s + n:
                score = min(p - s, s + n - 1 - p) + 0.01 * n
                if best is None or score > best:
                    best, best_w = score, v
        flags.append(best_w == w)
    return flags


def answer_token_span(spans: list[Span | None], start: int, end: int) -> tuple[int, int] | None:
    """The first and last context tokens overlapping characters [start, end), or None."""
    covered = [i for i, s in enumerate(spans) if s is not None and s[0] < end and s[1] > start]
    return (covered[0], covered[-1]) if covered else None


def featurize(hf_tokenizer, examples: QAExamples, max_length: int, training: bool, doc_stride: int = DOC_STRIDE,
              max_query_length: int = MAX_QUERY_LENGTH, encoder: Callable | None = None) -> QAFeatures:
    """Windows of every question: [CLS] question [SEP] context window [SEP], types 0 then 1.

    The question keeps at most `max_query_length` tokens (and at most half of `max_length`, so a
    window always holds context); windows hold `max_length` - question - 3 context tokens."""
    cls, sep = check_special_tokens(hf_tokenizer)
    if max_length < 8:
        raise ValueError(f"max_length must be at least 8 for extractive QA, got {max_length}")
    if doc_stride < 1:
        raise ValueError(f"doc_stride must be a positive number of tokens, got {doc_stride}")
    encoder = encoder or text_encoder(hf_tokenizer)
    q_limit = min(max_query_length, (max_length - 3) // 2)
    questions = [q[:q_limit] for q in encoder(list(examples.questions))]
    unique = list(dict.fromkeys(examples.contexts))  # a paragraph's questions share its context
    tokenized = dict(zip(unique, token_spans(hf_tokenizer, unique, encoder)))
    out = QAFeatures()
    for e, (q, context) in enumerate(zip(questions, examples.contexts)):
        ids, spans = tokenized[context]
        answer = None
        if training:
            text, start = examples.answers[e][0]
            answer = answer_token_span(spans, start, start + len(text))
            if answer is None:
                out.skipped += 1
                continue
        max_tokens = max_length - len(q) - 3
        parts = windows(len(ids), max_tokens, doc_stride) if ids else [(0, 0)]
        for w, (start, length) in enumerate(parts):
            offset = len(q) + 2  # [CLS] question [SEP]
            input_ids, types = bert_input(cls, sep, q, ids[start:start + length])
            target = (0, 0)
            if answer is not None and start <= answer[0] and answer[1] < start + length:
                target = (answer[0] - start + offset, answer[1] - start + offset)
            out.items.append((input_ids, types, target))
            out.example.append(e)
            out.spans.append([None] * offset + spans[start:start + length] + [None])
            out.max_context.append([False] * offset + max_context_flags(parts, w) + [False])
    return out


# ---- predictions --------------------------------------------------------------------------
def best_span(start_logits: np.ndarray, end_logits: np.ndarray, spans: list[Span | None], max_context: list[bool],
              max_answer_length: int = MAX_ANSWER_LENGTH) -> tuple[float, int, int] | None:
    """(score, start, end) of the best valid span of one window: start and end inside the
    context, start where the window has the token's most context, start <= end < start +
    `max_answer_length`; score = start logit + end logit. None when no span is valid."""
    L = min(len(spans), len(start_logits))
    can_end = np.array([s is not None for s in spans[:L]])
    can_start = can_end & np.array(max_context[:L], dtype=bool)
    best = None
    for k in range(min(max_answer_length, L)):
        ok = can_start[:L - k] & can_end[k:L]
        if not ok.any():
            continue
        scores = np.where(ok, start_logits[:L - k] + end_logits[k:L], -np.inf)
        i = int(scores.argmax())
        if best is None or scores[i] > best[0]:
            best = (float(scores[i]), i, i + k)
    return best


def predict(features: QAFeatures, logits: np.ndarray, examples: QAExamples,
            max_answer_length: int = MAX_ANSWER_LENGTH) -> list[str]:
    """The answer text of each question: the best valid span over all its windows, cut from the
    context by the characters of its first and last token ('' when no span is valid).
    `logits`: (windows, L, 2) start and end logits."""
    best: dict[int, tuple[float, int, int, int]] = {}
    for f, e in enumerate(features.example):
        span = best_span(logits[f, :, 0], logits[f, :, 1], features.spans[f], features.max_context[f],
                         max_answer_length)
        if span is not None and (e not in best or span[0] > best[e][0]):
            best[e] = (span[0], f, span[1], span[2])
    out = []
    for e, context in enumerate(examples.contexts):
        if e not in best:
            out.append('')
            continue
        _, f, s, t = best[e]
        out.append(context[features.spans[f][s][0]:features.spans[f][t][1]])
    return out
