"""pad_batch, ElectraDataLoader and get_dataloader: batches straight from Arrow."""
import random
from collections import Counter

import datasets
import pyarrow as pa
import pytest
import torch

from pretrain._utils.electra_dataprocessor import FEATURES, ELECTRADataProcessor
from pretrain.prepare.corpus import load_corpus
from pretrain.get_dataloaders import ElectraDataLoader, get_dataloader, pad_batch

PAD = 0
N = 23  # rows; with bs=5 the last batch holds 3


def make_rows(n=N, seed=0):
    """Rows [CLS] A [SEP] (B [SEP]) of varied length; row i is told apart by its token 100 + i."""
    rng = random.Random(seed)
    ids, sentA = [], []
    for i in range(n):
        a = [100 + i] * rng.randint(1, 6)
        b = [7] * rng.randint(0, 5)
        row = [2] + a + [3] + (b + [3] if b else [])
        ids.append(row)
        sentA.append(len(a) + 2)
    return ids, sentA


@pytest.fixture(scope='module')
def dset():
    ids, sentA = make_rows()
    return datasets.Dataset.from_dict({'input_ids': ids, 'sentA_length': sentA}, features=FEATURES)


def row_key(ids_row):
    """The unpadded row of a padded batch line."""
    ids_row = ids_row.tolist()
    while ids_row and ids_row[-1] == PAD:
        ids_row.pop()
    return tuple(ids_row)


def epoch_rows(dl):
    return [row_key(r) for xb, _ in dl for r in xb]


# ---- pad_batch ----------------------------------------------------------------------------
def test_pad_batch_pads_and_keeps_order():
    table = pa.table({'input_ids': [[5, 6, 7], [8], [9, 10]], 'sentA_length': [2, 1, 2]})
    ids, sentA = pad_batch(table, pad_idx=0)
    assert ids.dtype == torch.int64 and sentA.dtype == torch.int64
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0], [9, 10, 0]]
    assert sentA.tolist() == [2, 1, 2]


def test_pad_batch_to_given_length_with_other_pad_id():
    table = pa.table({'input_ids': [[5, 6], [8]], 'sentA_length': [2, 1]})
    ids, _ = pad_batch(table, pad_idx=99, length=5)
    assert ids.tolist() == [[5, 6, 99, 99, 99], [8, 99, 99, 99, 99]]


def test_pad_batch_longer_row_than_length_raises():
    table = pa.table({'input_ids': [[1, 2, 3, 4]], 'sentA_length': [2]})
    with pytest.raises(ValueError, match='4 tokens'):
        pad_batch(table, pad_idx=0, length=3)


def test_pad_batch_on_chunked_and_sliced_tables():
    t1 = pa.table({'input_ids': [[1, 2], [3]], 'sentA_length': [1, 1]})
    t2 = pa.table({'input_ids': [[4, 5, 6], [7, 8]], 'sentA_length': [2, 2]})
    table = pa.concat_tables([t1, t2]).slice(1, 3)  # two chunks, the first sliced
    ids, sentA = pad_batch(table, pad_idx=0)
    assert ids.tolist() == [[3, 0, 0], [4, 5, 6], [7, 8, 0]]
    assert sentA.tolist() == [1, 2, 2]


def test_pad_batch_from_dataset_rows(dset):
    idxs = [4, 0, 17]
    ids, sentA = pad_batch(dset.with_format('arrow')[idxs], pad_idx=PAD)
    for line, i in zip(ids, idxs):
        assert list(row_key(line)) == dset[i]['input_ids']
    assert sentA.tolist() == [dset[i]['sentA_length'] for i in idxs]


# ---- ElectraDataLoader --------------------------------------------------------------------
def test_batches_shapes_and_types(dset):
    dl = ElectraDataLoader(dset, bs=5, pad_idx=PAD, shuffle=False)
    batches = list(dl)
    assert len(dl) == len(batches) == 5
    assert [len(xb) for xb, _ in batches] == [5, 5, 5, 5, 3]  # the last partial batch is kept
    for xb, sa in batches:
        assert xb.dtype == torch.int64 and sa.dtype == torch.int64
        assert xb.ndim == 2 and sa.shape == (xb.shape[0],)
        assert xb.shape[1] == max(len(row_key(r)) for r in xb)  # padded to the longest row
    # unshuffled: rows in dataset order, values and sentA_length intact
    assert epoch_rows(dl) == [tuple(r) for r in dset['input_ids']]
    assert torch.cat([sa for _, sa in batches]).tolist() == dset['sentA_length']
    assert dl.n_inp == 2


def test_every_example_once_per_epoch(dset):
    dl = ElectraDataLoader(dset, bs=5, pad_idx=PAD, seed=1)
    everything = Counter(tuple(r) for r in dset['input_ids'])
    for _ in range(2):
        rows = epoch_rows(dl)
        assert Counter(rows) == everything


def test_sentA_length_travels_with_its_row(dset):
    dl = ElectraDataLoader(dset, bs=4, pad_idx=PAD, seed=3)
    by_row = {tuple(r): s for r, s in zip(dset['input_ids'], dset['sentA_length'])}
    for xb, sa in dl:
        for r, s in zip(xb, sa.tolist()):
            assert by_row[row_key(r)] == s


def test_drop_last(dset):
    dl = ElectraDataLoader(dset, bs=5, pad_idx=PAD, drop_last=True, seed=0)
    batches = list(dl)
    assert len(dl) == len(batches) == 4 and all(len(xb) == 5 for xb, _ in batches)
    assert len(set(epoch_rows(dl))) == 20


def test_training_loader_has_one_batch_shape(dset):
    """The run's loader drops the last partial batch (Google's fixed-size batches): with static
    shapes every step is (bs, max_length), so a compiled step never recompiles."""
    from pretrain.config import get_config
    tok = type('Tok', (), {'pad_token_id': PAD})()
    c = get_config('tiny', bs=5, max_length=16, num_workers=0, static_shapes=True, device='cpu')
    shapes = {tuple(xb.shape) for xb, _ in get_dataloader(c, tok, dset)}
    assert shapes == {(5, 16)}
    with pytest.raises(ValueError, match='fewer examples .* than one batch'):
        get_dataloader(get_config('tiny', bs=32, num_workers=0, device='cpu'), tok, dset)


def test_shuffle_reproducible_with_seed(dset):
    a = ElectraDataLoader(dset, bs=5, pad_idx=PAD, seed=42)
    b = ElectraDataLoader(dset, bs=5, pad_idx=PAD, seed=42)
    c = ElectraDataLoader(dset, bs=5, pad_idx=PAD, seed=43)
    a1, a2 = epoch_rows(a), epoch_rows(a)
    assert a1 == epoch_rows(b) and a2 == epoch_rows(b)  # epoch by epoch
    assert a1 != a2  # reshuffled each epoch
    assert a1 != [tuple(r) for r in dset['input_ids']]  # actually shuffled
    assert epoch_rows(c) != a1


def test_shuffle_reproducible_by_setting_rng(dset):
    """The seed notebook's way: `dl.rng = random.Random(seed)` after building the loader."""
    a = ElectraDataLoader(dset, bs=5, pad_idx=PAD)
    b = ElectraDataLoader(dset, bs=5, pad_idx=PAD)
    a.rng, b.rng = random.Random(7), random.Random(7)
    assert epoch_rows(a) == epoch_rows(b)
    # the same as passing seed=
    assert epoch_rows(ElectraDataLoader(dset, bs=5, pad_idx=PAD, seed=7)) == epoch_rows(_seeded(dset, 7))
    assert epoch_rows(_seeded(dset, 8)) != epoch_rows(_seeded(dset, 7))


def _seeded(dset, seed):
    dl = ElectraDataLoader(dset, bs=5, pad_idx=PAD)
    dl.rng = random.Random(seed)
    return dl


def test_pad_to_max_length(dset):
    dl = ElectraDataLoader(dset, bs=5, pad_idx=PAD, max_length=16, pad_to_max_length=True, seed=0)
    shapes = {tuple(xb.shape) for xb, _ in dl}
    assert shapes == {(5, 16), (3, 16)}
    assert Counter(epoch_rows(dl)) == Counter(tuple(r) for r in dset['input_ids'])


def test_pad_to_max_length_shorter_than_a_row_raises(dset):
    dl = ElectraDataLoader(dset, bs=5, pad_idx=PAD, max_length=4, pad_to_max_length=True, shuffle=False)
    with pytest.raises(ValueError, match='more than the padded length'):
        list(dl)


def test_max_length_alone_does_not_pad(dset):
    dl = ElectraDataLoader(dset, bs=N, pad_idx=PAD, max_length=64, shuffle=False)
    xb, _ = next(iter(dl))
    assert xb.shape[1] == max(len(r) for r in dset['input_ids']) < 64


def test_num_workers_2_same_examples(dset):
    single = ElectraDataLoader(dset, bs=5, pad_idx=PAD, seed=5, num_workers=0)
    multi = ElectraDataLoader(dset, bs=5, pad_idx=PAD, seed=5, num_workers=2)
    assert multi.fake_l.num_workers == 2  # really uses worker processes
    rows_multi, rows_single = epoch_rows(multi), epoch_rows(single)
    assert Counter(rows_multi) == Counter(rows_single) == Counter(tuple(r) for r in dset['input_ids'])
    assert len(rows_multi) == N
    assert rows_multi == rows_single  # whole batches per worker, returned in order: same order too


def test_new_keeps_padding_settings(dset):
    dl = ElectraDataLoader(dset, bs=5, pad_idx=9, max_length=16, pad_to_max_length=True, seed=0)
    dl2 = dl.new(shuffle=False)
    assert (dl2.pad_idx, dl2.max_length, dl2.pad_to_max_length) == (9, 16, True)
    xb, _ = next(iter(dl2))
    assert xb.shape == (5, 16) and (xb == 9).any()


def test_one_batch(dset):
    xb, sa = ElectraDataLoader(dset, bs=4, pad_idx=PAD, seed=0).one_batch()
    assert xb.shape[0] == 4 and sa.shape == (4,)


# ---- errors -------------------------------------------------------------------------------
def test_empty_dataset_raises():
    empty = datasets.Dataset.from_dict({'input_ids': [], 'sentA_length': []}, features=FEATURES)
    with pytest.raises(ValueError, match='no examples'):
        ElectraDataLoader(empty, bs=4, pad_idx=PAD)


@pytest.mark.parametrize('drop', ['input_ids', 'sentA_length'])
def test_missing_column_raises(dset, drop):
    with pytest.raises(ValueError, match=drop):
        ElectraDataLoader(dset.remove_columns(drop), bs=4, pad_idx=PAD)


def test_raw_documents_rejected():
    docs = datasets.Dataset.from_dict({'text': ['a b c']})
    with pytest.raises(ValueError, match='ELECTRADataProcessor'):
        ElectraDataLoader(docs, bs=4, pad_idx=PAD)


def test_pad_to_max_length_needs_max_length(dset):
    with pytest.raises(ValueError, match='max_length'):
        ElectraDataLoader(dset, bs=4, pad_idx=PAD, pad_to_max_length=True)


# ---- get_dataloader -----------------------------------------------------------------------
@pytest.fixture(scope='module')
def sample_examples(tokenizer):
    return ELECTRADataProcessor(load_corpus('sample'), tokenizer, max_length=64, seed=0).map()


def test_get_dataloader_from_config(tiny_config, tokenizer, sample_examples):
    c = tiny_config
    dl = get_dataloader(c, tokenizer, sample_examples)
    assert isinstance(dl, ElectraDataLoader)
    assert dl.bs == c.bs == 8 and dl.pad_idx == tokenizer.pad_token_id and dl.max_length == c.max_length
    assert dl.shuffle and not dl.pad_to_max_length
    n = 0
    for xb, sa in dl:
        assert xb.dtype == torch.int64 and xb.shape[0] == 8 and xb.shape[1] <= c.max_length
        assert (xb[:, 0] == tokenizer.cls_token_id).all()
        assert ((sa >= 3) & (sa <= xb.shape[1])).all()
        n += len(xb)
    assert n == len(sample_examples) // 8 * 8  # the last partial batch is dropped
    # shuffled with a RNG seeded from c.seed: the same config gives the same order
    first = [x.tolist() for x, _ in get_dataloader(c, tokenizer, sample_examples)]
    assert first == [x.tolist() for x, _ in get_dataloader(c, tokenizer, sample_examples)]
    unshuffled = [x.tolist() for x, _ in ElectraDataLoader(sample_examples, bs=8, pad_idx=tokenizer.pad_token_id,
                                                            shuffle=False)]
    assert first != unshuffled


def test_get_dataloader_pad_to_max_length(tiny_config, tokenizer, sample_examples):
    c = tiny_config
    c['pad_to_max_length'] = True
    dl = get_dataloader(c, tokenizer, sample_examples)
    assert {xb.shape[1] for xb, _ in dl} == {c.max_length}
    pads = torch.cat([xb for xb, _ in dl])
    assert (pads[:, -1] == tokenizer.pad_token_id).any()  # short rows padded with [PAD]


def test_get_dataloader_different_seed_differs(tiny_config, tokenizer, sample_examples):
    from pretrain.config import get_config
    other = get_config('tiny', datas=['sample'], seed=12345, bs=8, num_workers=0, device='cpu')
    a = [x.tolist() for x, _ in get_dataloader(tiny_config, tokenizer, sample_examples)]
    b = [x.tolist() for x, _ in get_dataloader(other, tokenizer, sample_examples)]
    assert len(a) == len(b) and a != b


def test_batches_are_copied_to_the_device_without_blocking_from_pinned_memory(dset, monkeypatch):
    """`to` does not set fastai's `device` (its copy blocks the host until the previous step ends):
    the loader copies each batch itself, non-blocking when its memory is pinned."""
    import pretrain.get_dataloaders as get_dataloaders
    calls = []
    real = get_dataloaders.to_device
    monkeypatch.setattr(get_dataloaders, 'to_device', lambda b, device, non_blocking: calls.append(non_blocking) or real(b, device))
    dl = ElectraDataLoader(dset, bs=4, pad_idx=0, pin_memory=False, seed=0)
    dl.to(torch.device('cpu'))
    assert dl.device is None and len(list(dl)) == len(dl) and calls == [False] * len(dl)
    dl.pin_memory = True
    next(iter(dl))
    assert calls[-1] is True
