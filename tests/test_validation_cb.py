"""HeldOutEval on a short CPU fit of the tiny model: rows at the right steps, values in range,
a fixed mask (same weights -> same metrics), training untouched; split_validation."""
import math

import datasets
import pytest
import torch
from fastai.callback.progress import ProgressCallback
from fastai.data.core import DataLoaders

from pretrain.config import get_config
from pretrain.get_dataloaders import get_dataloader
from pretrain.train import build_learner, preprocess, set_seed
from pretrain.run.log_cb import VALID_COLUMNS, read_log
from pretrain.run.run_dir import RunDir
from pretrain.run.validation_cb import HeldOutEval, split_validation


def config(tmp_path, name):
    return get_config('tiny', steps=10, bs=8, num_workers=0, num_proc=1, log_every=2, device='cpu', save_points=[],
                      data_dir=str(tmp_path / 'data'), checkpoint_dir=str(tmp_path / name))


def same(a, b, tol):
    """Equal metrics, nan (an undefined precision) matching nan."""
    return all(math.isclose(a[k], b[k], rel_tol=tol, abs_tol=tol) or math.isnan(a[k]) and math.isnan(b[k]) for k in a)


def fit(c, tokenizer, train, valid=None, every=4):
    """A short pre-training fit as pretrain() runs it, with HeldOutEval when `valid` is given."""
    set_seed(c.seed)
    learn = build_learner(c, DataLoaders(get_dataloader(c, tokenizer, train), path='.'), tokenizer)
    learn.remove_cb(ProgressCallback)
    cb = None
    if valid is not None:
        cb = HeldOutEval.from_config(c, valid, tokenizer, every=every)
        learn.add_cb(cb)
    learn.fit(9999)
    return learn, cb


@pytest.fixture(scope='module')
def runs(tmp_path_factory, tokenizer):
    tmp = tmp_path_factory.mktemp('valid')
    c = config(tmp, 'with')
    train, valid = split_validation(preprocess(c, tokenizer), 16, seed=0)
    with_eval = fit(c, tokenizer, train, valid)
    c_plain = config(tmp, 'without')
    without_eval, _ = fit(c_plain, tokenizer, train)
    return c, c_plain, with_eval, without_eval


def test_rows_every_n_steps_and_at_the_end(runs):
    c, _, (learn, cb), _ = runs
    path = RunDir.of_train_csv(tmp := (cb.csv_path.parent / f'{c.run_name}.csv')).valid_csv
    assert cb.csv_path == path and tmp.exists()
    assert path.read_text().splitlines()[0] == ','.join(VALID_COLUMNS)
    rows = read_log(path)
    assert [r['step'] for r in rows] == [4, 8, 10]  # every 4 steps, then the final weights once
    for r in rows:
        assert r['gen_loss'] > 0 and r['disc_loss'] > 0
        for key in ('gen_acc', 'disc_acc', 'disc_precision', 'disc_recall', 'disc_auc'):
            assert math.isnan(r[key]) or 0 <= r[key] <= 1, (key, r[key])
        assert 0 <= r['disc_auc'] <= 1  # both classes are present in 16 examples
        # accuracy of "all original" is 1 - replaced_rate; ELECTRA replaces ~15% * 85% of tokens at most
        assert 0 < r['replaced_rate'] < 0.15
    # an untrained generator's loss is about log(vocab size)
    assert rows[0]['gen_loss'] == pytest.approx(math.log(cb.vocab_size), rel=0.2)


def test_the_health_signal_is_the_mean_cosine_of_the_discriminators_token_states(runs):
    """token_cosine: over the first HEALTH_ROWS held-out rows, unmasked, every non-pad token's state
    in the discriminator's last layer (the encoder that fine-tuning takes)."""
    from pretrain.run.metrics import mean_pairwise_cosine
    from pretrain.models import pad_mask_and_token_types
    from pretrain.run.validation_cb import HEALTH_ROWS
    _, _, (learn, cb), _ = runs
    model = learn.model.eval()
    rows = [(torch.where(is_mlm, labels, masked), sentA) for masked, sentA, is_mlm, labels in cb.masked_batches]
    ids, sentA = torch.cat([r[0] for r in rows])[:HEALTH_ROWS], torch.cat([r[1] for r in rows])[:HEALTH_ROWS]
    mask, types = pad_mask_and_token_types(ids, sentA, cb.pad_tok_id)
    with torch.no_grad():
        states = model.discriminator.electra(ids, attention_mask=mask, token_type_ids=types).last_hidden_state[mask]
    assert cb.evaluate(model)['token_cosine'] == pytest.approx(mean_pairwise_cosine(states), abs=1e-6)
    assert 0 < read_log(cb.csv_path)[-1]['token_cosine'] < 1


def test_same_weights_same_metrics(runs):
    c, _, (learn, cb), _ = runs
    first, second = cb.evaluate(learn.model), cb.evaluate(learn.model)
    assert same(first, second, tol=0)  # bit for bit
    assert same(first, read_log(cb.csv_path)[-1], tol=1e-5)  # the row of the final weights


def test_evaluation_restores_mode_and_rng(runs):
    _, _, (learn, cb), _ = runs
    learn.model.train()
    state = torch.get_rng_state()
    cb.evaluate(learn.model)
    assert learn.model.training and torch.equal(torch.get_rng_state(), state)
    learn.model.eval()
    cb.evaluate(learn.model)
    assert not learn.model.training


def test_training_losses_unchanged_by_evaluation(runs):
    c, c_plain, _, _ = runs
    with_eval = read_log(f'{c.checkpoint_dir}/{c.run_name}.csv')
    without = read_log(f'{c_plain.checkpoint_dir}/{c_plain.run_name}.csv')
    assert [r['step'] for r in with_eval] == [2, 4, 6, 8, 10]
    assert with_eval == without


def test_wandb_gets_the_rows(runs, tokenizer):
    c, _, (learn, cb), _ = runs

    class FakeRun:
        logged = []

        def log(self, values, step):
            self.logged.append((step, values))

    run = FakeRun()
    hook = HeldOutEval(cb.valid_dset, 5, tokenizer, cb.csv_path.with_name('w.csv'), seed=c.seed, wandb_run=run)
    hook.write_row(7, hook.evaluate(learn.model))
    step, values = run.logged[0]
    assert step == 7 and set(values) == {f'valid/{k}' for k in VALID_COLUMNS[1:]}


def examples_of_documents(sizes, first=0):
    """A processed-looking dataset: document d gives sizes[d] examples [CLS] first+d k [SEP]."""
    rows = [(d, k) for d, n in enumerate(sizes) for k in range(n)]
    return datasets.Dataset.from_dict({'input_ids': [[2, first + d, k, 3] for d, k in rows], 'sentA_length': [4] * len(rows),
                                       'doc_id': [d for d, _ in rows]})


def docs_of(ds):
    return [row[1] for row in ds['input_ids']]


def test_split_validation_holds_out_whole_documents():
    sizes = [1, 5, 2, 7, 3, 1, 4, 6, 2, 3] * 3
    ds = examples_of_documents(sizes)
    train, valid = split_validation(ds, 20, seed=1)
    assert set(docs_of(train)).isdisjoint(docs_of(valid))  # no document on both sides
    assert set(docs_of(train)) | set(docs_of(valid)) == set(range(len(sizes)))
    for d in set(docs_of(valid)):  # every held-out document is there whole
        assert docs_of(valid).count(d) == sizes[d]
    assert 20 <= len(valid) < 20 + max(sizes) and len(train) + len(valid) == len(ds)
    rows = lambda d: [tuple(r) for r in d['input_ids']]
    assert rows(valid) == sorted(rows(valid)) and rows(train) == sorted(rows(train))  # dataset order
    assert rows(split_validation(ds, 20, seed=1)[1]) == rows(valid)  # seeded
    assert rows(split_validation(ds, 20, seed=2)[1]) != rows(valid)
    assert 0.25 * len(ds) <= len(split_validation(ds, 0.25, seed=1)[1]) < 0.25 * len(ds) + max(sizes)


def test_split_validation_of_concatenated_corpora():
    """Each corpus numbers its documents from 0: documents are runs of equal doc_id."""
    first, second = examples_of_documents([3, 3]), examples_of_documents([3, 3], first=2)
    both = datasets.concatenate_datasets([first, second])
    for seed in range(5):
        train, valid = split_validation(both, 2, seed=seed)
        assert len(valid) == 3 and len(train) == 9
        starts = [i for i, row in enumerate(both['input_ids']) if row in valid['input_ids']]
        assert starts in ([0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11])


def test_split_validation_of_processed_sample_by_document(tokenizer, tmp_path):
    ds = preprocess(config(tmp_path, 'split'), tokenizer)
    train, valid = split_validation(ds, 16, seed=0)
    assert set(train['doc_id']).isdisjoint(valid['doc_id']) and len(valid) >= 16
    assert len(set(valid['doc_id'])) > 1


@pytest.mark.parametrize('sizes, size, message', [([10], 3, r'as whole documents: the examples come from 1 document'),
                                                  ([5, 5], 6, r'cannot hold out 6 of 10 examples as whole documents')])
def test_split_validation_needs_enough_documents(sizes, size, message):
    with pytest.raises(ValueError, match=message):
        split_validation(examples_of_documents(sizes), size, seed=0)


def test_split_validation_needs_doc_id():
    ds = examples_of_documents([2, 2]).remove_columns('doc_id')
    with pytest.raises(ValueError, match='no doc_id column.*ELECTRADataProcessor'):
        split_validation(ds, 1)


@pytest.mark.parametrize('size, message', [(0, 'cannot hold out 0 of 20'), (20, 'cannot hold out 20 of 20'),
                                           (1.5, r'must be in \(0, 1\)'), (True, 'count or a fraction'),
                                           ('10', 'count or a fraction')])
def test_split_validation_rejects_bad_sizes(size, message):
    ds = datasets.Dataset.from_dict({'input_ids': [[2, 3]] * 20, 'sentA_length': [2] * 20})
    with pytest.raises(ValueError, match=message):
        split_validation(ds, size)


def test_bad_validation_sets_and_settings(tokenizer, tmp_path):
    ds = datasets.Dataset.from_dict({'input_ids': [[2, 3]], 'sentA_length': [2]})
    with pytest.raises(ValueError, match='lacks column'):
        HeldOutEval(ds.remove_columns('sentA_length'), 5, tokenizer, tmp_path / 'v.csv')
    with pytest.raises(ValueError, match='empty'):
        HeldOutEval(ds.select([]), 5, tokenizer, tmp_path / 'v.csv')
    with pytest.raises(ValueError, match='every must be a positive integer'):
        HeldOutEval(ds, 0, tokenizer, tmp_path / 'v.csv')
    c = get_config('tiny')
    c.pop('eval_every', None)
    with pytest.raises(ValueError, match='needs eval_every'):
        HeldOutEval.from_config(c, ds, tokenizer)


def test_held_out_masks_follow_the_training_mask_spec(tokenizer, tmp_path):
    """The held-out mask is the training callback's (MaskSpec.from_config): the config's
    max_predictions caps every row, as it caps the generator's slots."""
    c = get_config('tiny', max_predictions=3, valid_size=8, device='cpu', data_dir=str(tmp_path / 'data'), num_proc=1)
    valid = split_validation(preprocess(c, tokenizer), 8, seed=0)[1]
    batches = HeldOutEval.from_config(c, valid, tokenizer, csv_path=tmp_path / 'v.csv').build_masked_batches()
    per_row = torch.cat([is_mlm.sum(1) for _, _, is_mlm, _ in batches])
    assert per_row.max() == 3 and per_row.min() >= 1
