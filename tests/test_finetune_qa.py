"""The multiple-choice and extractive-QA heads: shapes and masks, Google's windows and
max-context rule, token spans mapped back to characters (Rust offsets and the alignment used for
the MeCab tokenizer), the best valid span, SQuAD's and JGLUE's EM / F1, and a QA task a tiny model
learns."""
import json
import random

import numpy as np
import pytest
import torch

from finetune.benchmarks import load_jglue_dir
from finetune.data import encode, load_task, read_squad
from finetune.metrics import multiple_choice_metrics, qa_metrics, qa_scores
from finetune.model import MultipleChoiceScorer, SpanExtractor, load_encoder, load_tokenizer
from finetune.qa import (align_tokens, answer_token_span, best_span, featurize, max_context_flags, predict,
                         token_spans, windows)
from finetune.train import FinetuneSettings, finetune

JGLUE = 'data/tasks/jglue_fixture'
SQUAD = 'data/tasks/squad_fixture'


@pytest.fixture(scope='module')
def ja_tokenizer():
    from pretrain.prepare.tokenizer import load_tokenizer as load
    return load('data/docs_ja/tokenizer')  # MeCab + WordPiece: a Python tokenizer, no offsets


@pytest.fixture
def sample_tokenizer(finetune_model_dir):
    return load_tokenizer(finetune_model_dir)  # Rust WordPiece: offsets


def test_windows_follow_googles_stride():
    assert windows(10, 4, 2) == [(0, 4), (2, 4), (4, 4), (6, 4)]
    assert windows(10, 4, 128) == [(0, 4), (4, 4), (8, 2)]  # stride above the window: no overlap
    assert windows(3, 8, 2) == [(0, 3)]
    spans = windows(10, 4, 2)
    # token 2: window 0 (left 2, right 1) beats window 1 (left 0); token 3: window 1 (left 1, right 2)
    # beats window 0 (right 0)
    assert max_context_flags(spans, 0) == [True, True, True, False]
    assert max_context_flags(spans, 1) == [False, True, True, False]
    assert max_context_flags(spans, 3) == [False, True, True, True]


def test_alignment_of_python_tokenizer_tokens(ja_tokenizer):
    text = '梅雨 [SEP] 梅雨（つゆ）は、北海道と小笠原諸島を除く日本ｶﾞ㍻の現象。'
    ids = ja_tokenizer(text, add_special_tokens=False)['input_ids']
    tokens = ja_tokenizer.convert_ids_to_tokens(ids)
    spans = align_tokens(text, tokens, ja_tokenizer.unk_token)
    assert len(spans) == len(tokens) and all(s is not None for s in spans)
    for tok, (a, b) in zip(tokens, spans):
        if tok not in ('[UNK]',):
            assert text[a:b].replace('（', '(').replace('）', ')') in (tok.removeprefix('##'), 'ｶﾞ', '㍻'), (tok, text[a:b])
    assert [text[a:b] for (a, b), t in zip(spans, tokens) if t == '[SEP]'] == ['[SEP]']
    # spans grow left to right and never overlap but where [UNK]s share their gap
    starts = [a for a, _ in spans]
    assert starts == sorted(starts)


@pytest.mark.parametrize('which', ['rust', 'mecab'])
def test_every_fixture_answer_maps_back_to_its_characters(which, ja_tokenizer, sample_tokenizer):
    """An answer's characters -> the tokens that cover them -> characters again: the answer, or,
    where a token reaches beyond it ('のり' inside the token 'りを'), the text of those tokens."""
    tok = ja_tokenizer if which == 'mecab' else sample_tokenizer
    exact = total = 0
    for path in ('data/tasks/jglue_fixture/datasets/jsquad-v1.3/train-v1.3.json',
                 'data/tasks/jglue_fixture/datasets/jsquad-v1.3/valid-v1.3.json',
                 f'{SQUAD}/train-v1.1.json', f'{SQUAD}/dev-v1.1.json'):
        ex = read_squad(path)
        contexts = list(dict.fromkeys(ex.contexts))
        spans = dict(zip(contexts, (s for _, s in token_spans(tok, contexts))))
        for context, answers in zip(ex.contexts, ex.answers):
            for text, start in answers:
                first, last = answer_token_span(spans[context], start, start + len(text))
                got = context[spans[context][first][0]:spans[context][last][1]]
                assert text in got and len(got) <= len(text) + 3, (which, text, got)
                exact += got == text
                total += 1
    # the sample tokenizer (2,429 tokens, trained on a little English and Japanese) makes [UNK]s
    # and pieces such as 'りを' out of much Japanese text; the MeCab one splits at words
    assert exact / total >= (0.95 if which == 'mecab' else 0.85), (which, exact, total)


@pytest.mark.parametrize('which', ['rust', 'mecab'])
def test_gold_logits_give_back_the_gold_answers(which, ja_tokenizer, sample_tokenizer):
    """featurize -> logits peaked on the gold positions -> predict: the gold texts again (as far as
    the tokens allow), with contexts cut into several overlapping windows."""
    tok = ja_tokenizer if which == 'mecab' else sample_tokenizer
    dev = load_jglue_dir(JGLUE, 'JSQuAD').dev
    gold = featurize(tok, dev, max_length=40, training=True, doc_stride=8)
    assert gold.skipped == 0 and len(gold.items) > 3 * len(dev)  # several windows per question
    logits = np.full((len(gold.items), 40, 2), -10.0)
    for f, (_, _, (s, e)) in enumerate(gold.items):
        logits[f, s, 0] = logits[f, e, 1] = 10.0
    plain = featurize(tok, dev, max_length=40, training=False, doc_stride=8)
    assert [i[0] for i in plain.items] == [i[0] for i in gold.items] and plain.example == gold.example
    answers = predict(plain, logits, dev)
    contexts = list(dict.fromkeys(dev.contexts))
    spans = dict(zip(contexts, (s for _, s in token_spans(tok, contexts))))
    for answer, context, golds in zip(answers, dev.contexts, dev.answers):
        text, start = golds[0]
        first, last = answer_token_span(spans[context], start, start + len(text))
        assert answer == context[spans[context][first][0]:spans[context][last][1]]
    scores = qa_metrics(answers, [[a[0][0]] for a in dev.answers], 'char')
    assert scores['f1'] > 0.9 and scores['exact_match'] >= (0.9 if which == 'mecab' else 0.75)


def test_best_span_is_valid():
    spans = [None, None, (0, 2), (2, 4), (4, 6), (6, 8), None]  # [CLS], question, 4 context tokens, [SEP]
    flags = [False, False, True, True, False, True, False]  # position 4: another window has more context
    start = np.array([9.0, 9.0, 0.0, 1.0, 5.0, 0.0, 9.0])  # the best starts are outside the context or at 4
    end = np.array([9.0, 9.0, 0.0, 3.0, 0.0, 1.0, 9.0])
    assert best_span(start, end, spans, flags) == (4.0, 3, 3)
    assert best_span(start, end, spans, [False] * 7) is None
    end_before = np.array([0.0, 0.0, 8.0, 0.0, 0.0, 0.0, 0.0])  # the best end lies before the best start
    assert best_span(np.array([0, 0, 0, 6.0, 0, 0, 0]), end_before, spans, flags) == (8.0, 2, 2)
    start3, end5 = np.array([0, 0, 0, 5.0, 0, -5.0, 0]), np.array([0, 0, 0, 0, 1.0, 9.0, 0])
    assert best_span(start3, end5, spans, flags)[1:] == (3, 5)
    assert best_span(start3, end5, spans, flags, max_answer_length=2)[1:] == (3, 4)  # (3, 5) is 3 tokens long


def test_qa_metrics_squad_words_and_jsquad_characters():
    assert qa_scores('The cat sat.', ['a cat sat'], 'word') == (1.0, 1.0)  # articles, punctuation, case
    em, f1 = qa_scores('the cat sat', ['a cat'], 'word')
    assert em == 0 and f1 == pytest.approx(2 / 3)
    assert qa_scores('東京。', ['東京'], 'char') == (1.0, 1.0)  # JGLUE strips a final 。
    em, f1 = qa_scores('東京駅', ['東京', '大阪'], 'char')
    assert em == 0 and f1 == pytest.approx(0.8)  # P 2/3, R 1
    assert qa_scores('「東京」', ['東京'], 'char')[0] == 0  # JGLUE keeps punctuation
    assert qa_scores('', ['東京'], 'char') == (0.0, 0.0)
    assert qa_metrics(['東京', '京都'], [['東京'], ['大阪']], 'char') == {'exact_match': 0.5, 'f1': 0.5}


def test_multiple_choice_scores_each_option_on_its_cls(finetune_model_dir, sample_tokenizer):
    torch.manual_seed(0)
    model = MultipleChoiceScorer(load_encoder(finetune_model_dir), sample_tokenizer.pad_token_id).eval()
    task = load_jglue_dir(JGLUE, 'JCommonsenseQA')
    from finetune.data import pad_examples
    ids, types, labels = pad_examples(encode(sample_tokenizer, task.dev, 32)[:3], sample_tokenizer.pad_token_id)
    assert ids.shape[:2] == (3, 5) and types[0, 0, 1].item() == 0 and types.max().item() == 1
    scores = model(ids, types)
    assert scores.shape == (3, 5)
    for c in range(5):
        hidden = model.encoder(ids[:, c], attention_mask=ids[:, c] != 0, token_type_ids=types[:, c]).last_hidden_state
        assert torch.allclose(scores[:, c], model.head(hidden[:, 0]).squeeze(-1), atol=1e-6)
    assert multiple_choice_metrics(np.eye(5)[[1, 2, 0]], np.array([1, 2, 3])) == {'accuracy': pytest.approx(2 / 3)}


def test_span_extractor_masks_everything_but_the_context(finetune_model_dir, sample_tokenizer):
    model = SpanExtractor(load_encoder(finetune_model_dir), sample_tokenizer.pad_token_id).eval()
    ids = torch.tensor([[2, 50, 60, 3, 70, 80, 90, 3, 0, 0]])
    types = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 1, 0, 0]])
    logits = model(ids, types)
    assert logits.shape == (1, 10, 2)
    assert (logits[0, 1:4] < -500).all() and (logits[0, 8:] < -500).all()  # question, first [SEP], padding
    assert (logits[0, 4:8].abs() < 100).all() and (logits[0, 0].abs() < 100).all()  # context, last [SEP], [CLS]


def test_extractive_qa_learns_where_the_answer_is(finetune_model_dir, tmp_path):
    """Answers at a fixed word of the context: the tiny model finds them after a few epochs (EM
    from 0 at random to well above 0.5), so targets, loss, windows and predictions agree."""
    rng = random.Random(0)
    words = ['river', 'mountain', 'forest', 'glacier', 'valley', 'island', 'desert', 'lake', 'ocean', 'city']
    data = {}
    for split, n in (('train', 60), ('dev', 20)):
        articles = []
        for i in range(n):
            picks = rng.sample(words, 6)
            context = ' '.join(picks) + '.'
            articles.append({'title': str(i), 'paragraphs': [{'context': context, 'qas': [
                {'id': f'{split}{i}', 'question': 'which is third?',
                 'answers': [{'text': picks[2], 'answer_start': context.index(' ' + picks[2] + ' ') + 1}]}]}]})
        data[split] = tmp_path / f'{split}.json'
        data[split].write_text(json.dumps({'data': articles}))
    task = load_task(data['train'], data['dev'], 'extractive_qa', name='third')
    r = finetune(finetune_model_dir, [task], FinetuneSettings(seeds=[0], epochs=8, lr=3e-3, max_length=32, bs=16),
                 verbose=False)['tasks']['third']
    assert r['pretrained']['exact_match']['mean'] > 0.5, r['pretrained']  # 1 in 6 by chance
