"""Japanese sentence splitting: one paragraph in, its sentences out.

Google's ELECTRA data layout wants one sentence per line. Japanese sentences end with 。！？;
a terminator inside quotes 「…」 『…』 or parentheses （…） ends nothing, so 「はい。」と言った。
is one sentence. English text is never split: its periods are too ambiguous (Mr., 3.14, e.g.).
"""
from __future__ import annotations

TERMINATORS = frozenset('。！？')
# Opening bracket -> its closer. A terminator inside a matched pair does not end a sentence.
PAIRS = {'「': '」', '『': '』', '（': '）'}
CLOSERS = {close: open_ for open_, close in PAIRS.items()}
# Characters that stay with the sentence when they follow its terminator: more terminators
# (「えっ！？」) and closing brackets or quotes left over from an unmatched opener.
TRAILERS = TERMINATORS | set(CLOSERS) | set('】〕〉》)"”’\'')


def _protected(line: str) -> list[bool]:
    """For each character, whether it lies strictly inside a matched bracket pair.

    Pairs are matched with a stack, so nesting works (『「あ。」』). An opener that is never
    closed protects nothing: an unbalanced 「 cannot stop splitting for the rest of the text.
    """
    stack: list[tuple[str, int]] = []
    spans: list[tuple[int, int]] = []
    for i, ch in enumerate(line):
        if ch in PAIRS:
            stack.append((ch, i))
        elif ch in CLOSERS:
            # Close the nearest matching opener; openers above it were never closed.
            for depth in range(len(stack) - 1, -1, -1):
                if stack[depth][0] == CLOSERS[ch]:
                    spans.append((stack[depth][1], i))
                    del stack[depth:]
                    break
            # A closer without any opener is a stray character: ignored.
    # Difference array: linear time even for deeply nested pairs.
    delta = [0] * (len(line) + 1)
    for start, end in spans:
        delta[start + 1] += 1
        delta[end] -= 1
    inside, depth = [], 0
    for d in delta[:-1]:
        depth += d
        inside.append(depth > 0)
    return inside


def _split_line(line: str) -> list[str]:
    inside = _protected(line)
    pieces, start, i = [], 0, 0
    while i < len(line):
        if line[i] in TERMINATORS and not inside[i]:
            i += 1
            while i < len(line) and line[i] in TRAILERS:
                i += 1
            pieces.append(line[start:i])
            start = i
        else:
            i += 1
    pieces.append(line[start:])
    return pieces


def split_sentences(paragraph: str) -> list[str]:
    """The sentences of `paragraph`, each stripped, empty ones dropped.

    Splits after 。！？ (with any terminators and closing brackets right after them) outside
    「」『』（） pairs. A newline always ends a sentence, and brackets never span lines.
    """
    if not isinstance(paragraph, str):
        raise ValueError(f"split_sentences needs a string paragraph, got {type(paragraph).__name__}")
    sentences = []
    for line in paragraph.splitlines():
        sentences += [s.strip() for s in _split_line(line) if s.strip()]
    return sentences
