"""BERT's input layout (`_utils.segments.bert_input`), the one place it is written."""
from _utils.segments import bert_input

CLS, SEP = 101, 102


def test_one_segment_is_all_type_zero():
    assert bert_input(CLS, SEP, [5, 6]) == ([CLS, 5, 6, SEP], [0, 0, 0, 0])
    assert bert_input(CLS, SEP, []) == ([CLS, SEP], [0, 0])


def test_the_second_segment_is_type_one_after_the_first_sep():
    assert bert_input(CLS, SEP, [5], [7, 8]) == ([CLS, 5, SEP, 7, 8, SEP], [0, 0, 0, 1, 1, 1])


def test_an_empty_second_segment_keeps_its_sep():
    # an empty second text, or a QA window over an empty context
    assert bert_input(CLS, SEP, [5], []) == ([CLS, 5, SEP, SEP], [0, 0, 0, 1])


def test_the_segments_given_are_left_as_they_are():
    a, b = [5, 6], [7]
    ids, _ = bert_input(CLS, SEP, a, b)
    ids.append(0)
    assert a == [5, 6] and b == [7]
