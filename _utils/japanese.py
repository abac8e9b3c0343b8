"""Japanese character classes, for every place that asks whether text is Japanese: the corpus
build (data/build_docs_ja.py), preprocessing's per-language line filter and the vocabulary's
language (model cards, inspect's default sentence)."""
import re

KANA = '\u3040-\u30ff\u31f0-\u31ff'  # hiragana, katakana and its phonetic extensions
HALFWIDTH_KATAKANA = '\uff66-\uff9f'
KANJI = '\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff々〆〇'  # CJK ideographs (extension A, unified, compatibility)
JAPANESE_CHARS = KANA + HALFWIDTH_KATAKANA + KANJI  # for character classes: f'[{JAPANESE_CHARS}]'
JAPANESE = re.compile(f'[{JAPANESE_CHARS}]')
KANA_CHAR = re.compile(f'[{KANA}]')


def vocab_language(hf_tokenizer) -> str:
    """'ja' when kana make up 5% or more of the vocabulary, else 'en': the language a model card
    declares and `inspect`'s default sentence is in."""
    vocab = hf_tokenizer.get_vocab()
    kana = sum(1 for token in vocab if KANA_CHAR.search(token))
    return 'ja' if kana >= 0.05 * max(len(vocab), 1) else 'en'
