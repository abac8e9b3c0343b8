"""BERT's input layout, the one place it is written: [CLS] A [SEP] for one segment, [CLS] A [SEP]
B [SEP] for two, token type 0 up to and including the first [SEP] and 1 after it. Plain lists of
ids, no tokenizer and no imports, so that every user (sentence and pair tasks, multiple-choice
options, QA windows, pre-training examples) can share it."""
from __future__ import annotations


def bert_input(cls_id: int, sep_id: int, ids_a: list[int], ids_b: list[int] | None = None
               ) -> tuple[list[int], list[int]]:
    """(input_ids, token_type_ids), both of length len(ids_a) + 2 (+ len(ids_b) + 1 with a
    second segment). `ids_b` None: one segment; an empty list is a second segment too (its [SEP]
    is kept), as an empty second text or an empty context window gives."""
    input_ids = [cls_id, *ids_a, sep_id]
    token_types = [0] * len(input_ids)
    if ids_b is not None:
        input_ids += [*ids_b, sep_id]
        token_types += [1] * (len(ids_b) + 1)
    return input_ids, token_types
