"""Japanese sentence splitting: terminators, brackets, unbalanced input, English left alone."""
import time

import pytest

from pretrain.prepare.sentences import split_sentences


@pytest.mark.parametrize('paragraph,expected', [
    ('今日は晴れ。明日は雨！本当？', ['今日は晴れ。', '明日は雨！', '本当？']),
    # a terminator inside quotes ends nothing; the quote stays with its sentence
    ('「はい。」と言った。次へ。', ['「はい。」と言った。', '次へ。']),
    # nested quotes, and parentheses
    ('彼は『「あ。」と。』と書いた。終わり。', ['彼は『「あ。」と。』と書いた。', '終わり。']),
    ('東京（首都。人口が多い。）は大きい。以上。', ['東京（首都。人口が多い。）は大きい。', '以上。']),
    # runs of terminators and closers after a terminator stay attached
    ('えっ！？本当。。そう。」次。', ['えっ！？', '本当。。', 'そう。」', '次。']),
    # an opener that is never closed protects nothing
    ('「閉じない。文一。文二。', ['「閉じない。', '文一。', '文二。']),
    ('文一。』文二。', ['文一。』', '文二。']),
    # English (and ASCII punctuation) is not split
    ('This is English. It has two sentences! Really?', ['This is English. It has two sentences! Really?']),
    ('Pythonは言語だ。Version 3.11. が出た。', ['Pythonは言語だ。', 'Version 3.11. が出た。']),
    # whitespace stripped, empty pieces dropped, a newline ends a sentence and resets brackets
    ('  文。  次。 ', ['文。', '次。']),
    ('「改行\nで。閉じ」た。', ['「改行', 'で。', '閉じ」た。']),
    ('', []),
    ('  \n 。 ', ['。']),
    ('終わらない文', ['終わらない文']),
])
def test_split_sentences(paragraph, expected):
    assert split_sentences(paragraph) == expected


def test_long_unbalanced_paragraph_is_fast_and_still_split():
    paragraph = '「' + '長い文です。' * 20000 + '（' * 1000 + '）' * 1000
    start = time.perf_counter()
    sentences = split_sentences(paragraph)
    assert time.perf_counter() - start < 2
    assert len(sentences) == 20001
    assert sentences[:2] == ['「長い文です。', '長い文です。'] and sentences[-1] == '（' * 1000 + '）' * 1000


def test_not_a_string():
    with pytest.raises(ValueError, match='needs a string paragraph, got list'):
        split_sentences(['文。'])
