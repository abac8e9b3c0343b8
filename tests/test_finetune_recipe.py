"""The six places where fine-tuning now follows Google's ELECTRA code (finetune/ and
configure_finetuning.py of google-research/electra), one test each: Glorot-uniform heads, 10
epochs for RTE and STS, STS labels on [0, 1], MRPC/STS trained on both pair orders, weight decay
spared on LayerNorm weights and biases, and the batched tokenizer of preprocessing."""
import math

import pytest
import torch

from finetune.benchmarks import load_glue_dir, load_jglue_dir
from finetune.data import Examples, encode, load_task
from finetune.model import (MultipleChoiceScorer, SentenceClassifier, SpanExtractor, finetune_opt, layer_groups,
                            load_encoder)
from finetune.train import FinetuneSettings, Finetuner, default_epochs, finetune

GLUE = 'data/tasks/glue_fixture'
JGLUE = 'data/tasks/jglue_fixture'


@pytest.fixture
def runner(finetune_model_dir):
    return Finetuner(finetune_model_dir, FinetuneSettings(seeds=[0], lr=1e-3, max_length=48), verbose=False)


# 1. ---------------------------------------------------------------------------------------------
def test_heads_are_glorot_uniform_with_zero_bias(finetune_model_dir):
    """tf.layers.dense without an initializer: Glorot-uniform, U(-a, a), a = sqrt(6 / (fan_in +
    fan_out)), bias 0; not BERT's normal(0.02)."""
    torch.manual_seed(0)
    encoder = load_encoder(finetune_model_dir)
    H = encoder.config.hidden_size
    for head, fan_out in ((SentenceClassifier(encoder, 3, 0).head, 3), (MultipleChoiceScorer(encoder, 0).head, 1),
                          (SpanExtractor(encoder, 0).head, 1)):  # QA: two dense layers of one output
        bound = math.sqrt(6 / (H + fan_out))
        w = head.weight.detach()
        assert torch.all(head.bias == 0)
        assert w.abs().max() <= bound and w.abs().max() > 0.8 * bound  # uniform up to the bound
        assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.25)
        assert w.std().item() > 5 * 0.02  # far from normal(0.02)


# 2. ---------------------------------------------------------------------------------------------
def test_rte_and_sts_train_10_epochs_others_3_qa_2(tmp_path):
    tasks = {n: load_glue_dir(GLUE, n) for n in ('rte', 'stsb', 'mrpc', 'sst2', 'cola')}
    assert {n: default_epochs(t) for n, t in tasks.items()} == {'rte': 10, 'stsb': 10, 'mrpc': 3, 'sst2': 3, 'cola': 3}
    assert default_epochs(load_jglue_dir(JGLUE, 'JSTS')) == 10 and default_epochs(load_jglue_dir(JGLUE, 'JNLI')) == 3
    assert default_epochs(load_jglue_dir(JGLUE, 'JSQuAD')) == 2  # Google's QA: 2 epochs
    assert default_epochs(load_jglue_dir(JGLUE, 'JCommonsenseQA')) == 3
    # a local copy named like Google's task gets its recipe too
    rte = tmp_path / 'RTE'
    rte.mkdir()
    (rte / 'train.tsv').write_text('text_a\ttext_b\tlabel\na\tb\tentailment\nc\td\tnot_entailment\n')
    (rte / 'dev.tsv').write_text('text_a\ttext_b\tlabel\na\tb\tentailment\n')
    assert default_epochs(load_task(rte / 'train.tsv', rte / 'dev.tsv', 'classification', text_b='text_b')) == 10


def test_the_epochs_are_the_ones_trained(runner):
    """A run of RTE takes 10 passes over its training set (and an explicit --epochs wins)."""
    task = load_glue_dir(GLUE, 'rte')
    encoded = runner.encode_task(task)
    learn = runner.learner(task, encoded, 'random', 0)
    with learn.no_bar(), learn.no_logging():
        learn.fit(encoded['epochs'])
    assert encoded['epochs'] == 10 and learn.train_iter == 10 * len(learn.dls.train)
    runner.settings.epochs = 1
    assert runner.encode_task(task)['epochs'] == 1


# 3. ---------------------------------------------------------------------------------------------
def test_sts_labels_are_trained_on_0_to_1(runner):
    """Google's RegressionTask: (label - 0) / 5 for STS-B; JSTS the same; a label off the 0-5
    scale is an error."""
    for task in (load_glue_dir(GLUE, 'stsb'), load_jglue_dir(JGLUE, 'JSTS')):
        assert task.label_range == (0.0, 5.0)
        encoded = runner.encode_task(task)
        targets = [label for _, _, label in encoded['train']]
        n = len(task.train)
        assert targets[:n] == pytest.approx([y / 5 for y in task.train.labels])
        assert 0 <= min(targets) and max(targets) <= 1 and max(task.train.labels) > 1
        assert [label for _, _, label in encoded['dev']] == pytest.approx([y / 5 for y in task.dev.labels])


def test_local_regression_is_normalised_with_its_training_range(tmp_path, runner):
    (tmp_path / 'train.tsv').write_text('text_a\tlabel\na\t-2\nb\t6\nc\t2\n')
    (tmp_path / 'dev.tsv').write_text('text_a\tlabel\nd\t10\n')  # outside the training range: allowed
    task = load_task(tmp_path / 'train.tsv', tmp_path / 'dev.tsv', 'regression')
    assert task.label_range == (-2.0, 6.0)
    assert [y for *_, y in runner.encode_task(task)['train']] == pytest.approx([0.0, 1.0, 0.5])


# 4. ---------------------------------------------------------------------------------------------
def test_mrpc_and_sts_also_train_on_the_swapped_pairs(runner):
    """configure_finetuning.py's double_unordered: MRPC's and STS's training sets get every pair
    a second time, texts swapped; dev sets and other tasks do not."""
    for name, task in (('mrpc', load_glue_dir(GLUE, 'mrpc')), ('stsb', load_glue_dir(GLUE, 'stsb')),
                       ('JSTS', load_jglue_dir(JGLUE, 'JSTS'))):
        n = len(task.train)
        encoded = runner.encode_task(task)
        assert len(encoded['train']) == 2 * n and len(encoded['dev']) == len(task.dev), name
        sep = runner.tokenizer.sep_token_id
        for (ids, types, y), (ids2, types2, y2) in zip(encoded['train'][:n], encoded['train'][n:]):
            cut = ids.index(sep)
            a, b = ids[1:cut], ids[cut + 1:-1]
            cut2 = ids2.index(sep)
            assert (ids2[1:cut2], ids2[cut2 + 1:-1]) == (b, a) and y2 == y
    for task in (load_glue_dir(GLUE, 'rte'), load_jglue_dir(JGLUE, 'JNLI')):  # order matters in NLI
        assert len(runner.encode_task(task)['train']) == len(task.train)
    runner.settings.double_unordered = False
    task = load_glue_dir(GLUE, 'mrpc')
    assert len(runner.encode_task(task)['train']) == len(task.train)


# 5. ---------------------------------------------------------------------------------------------
def test_weight_decay_spares_layernorm_and_biases(finetune_model_dir):
    """AdamWeightDecayOptimizer with exclude_from_weight_decay=["LayerNorm", "layer_norm", "bias"]:
    with a zero gradient a step moves decayed weights by -lr * wd * w, and leaves LayerNorm
    weights and biases alone; each layer keeps its learning rate."""
    torch.manual_seed(0)
    model = SentenceClassifier(load_encoder(finetune_model_dir), 2, 0)
    opt = finetune_opt(layer_groups(model), lr=0.1, weight_decay=0.01).opt
    names = {id(p): n for n, p in model.named_parameters()}
    for g in opt.param_groups:
        for p in g['params']:
            spared = 'LayerNorm' in names[id(p)] or names[id(p)].endswith('bias')
            assert g['weight_decay'] == (0.0 if spared else 0.01), names[id(p)]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for n, p in model.named_parameters():
        spared = 'LayerNorm' in n or n.endswith('bias')
        expected = before[n] if spared else before[n] * (1 - 0.1 * 0.01)
        assert torch.allclose(p.detach(), expected, atol=1e-7), n
    assert any('LayerNorm' in n for n in names.values())


def test_default_weight_decay_is_googles(runner):
    assert FinetuneSettings().weight_decay == 0.01
    with pytest.raises(ValueError, match=r"weight_decay must be in \[0, 1\)"):
        FinetuneSettings(weight_decay=-1).check()


# 6. ---------------------------------------------------------------------------------------------
def test_japanese_texts_use_the_fast_exact_encoder(monkeypatch):
    """encode() goes through preprocessing's batch_encoder: for the MeCab + WordPiece tokenizer,
    the same ids as its per-text path, without calling that path."""
    from pretrain.prepare.tokenizer import load_tokenizer
    tok = load_tokenizer('data/docs_ja/tokenizer')
    task = load_jglue_dir(JGLUE, 'JNLI')
    expected = [tok(a, b)['input_ids'] for a, b in zip(task.train.texts_a, task.train.texts_b)]

    def slow(*args, **kwargs):
        raise AssertionError('the per-text tokenizer path was called')
    monkeypatch.setattr(tok, 'tokenize', slow)
    monkeypatch.setattr(tok, '_tokenize', slow)
    got = [ids for ids, _, _ in encode(tok, task.train, 128)]  # short pairs: nothing truncated
    assert got == expected and len({len(ids) for ids in got}) > 1


def test_rust_tokenizers_give_the_tokenizers_own_ids(finetune_model_dir):
    from finetune.model import load_tokenizer
    tok = load_tokenizer(finetune_model_dir)
    ex = Examples(['It rains in the park.', '公園で雨が降る。'], ['Soup.', 'みそ汁'], [0, 1])
    assert [ids for ids, _, _ in encode(tok, ex, 64)] == [tok(a, b)['input_ids'] for a, b in
                                                         zip(ex.texts_a, ex.texts_b)]


def test_sts_run_end_to_end(finetune_model_dir):
    """STS-B through finetune() against a random init: 10 epochs, both orders, the 0-5 scale
    recorded."""
    r = finetune(finetune_model_dir, [load_glue_dir(GLUE, 'stsb')],
                 FinetuneSettings(seeds=[0], lr=1e-3, max_length=48), compare_random=True, verbose=False)['tasks']['stsb']
    assert r['epochs'] == 10 and r['double_unordered'] and r['train_rows'] == 2 * r['n_train']
    assert r['label_range'] == [0.0, 5.0] and r['metric'] == 'spearman'
    assert set(r['pretrained']) == set(r['random']) == {'spearman', 'pearson'}

