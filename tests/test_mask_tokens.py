import torch

from pretrain.mask_tokens import mask_tokens, max_predictions_per_seq

PAD, CLS, SEP, MASK, VOCAB = 0, 2, 3, 4, 1000
SPECIAL = [PAD, 1, CLS, SEP, MASK]


def batch(B=256, L=128, lengths=None):
    """Rows [CLS] tokens... [SEP] [PAD]..., real lengths `lengths`."""
    torch.manual_seed(0)
    ids = torch.randint(10, VOCAB, (B, L))
    lengths = lengths if lengths is not None else torch.randint(8, L + 1, (B,))
    pos = torch.arange(L)[None]
    ids[:, 0] = CLS
    ids[pos == (lengths - 1)[:, None]] = SEP
    ids[pos >= lengths[:, None]] = PAD
    return ids, lengths


def electra_mask(ids, **kw):
    # orginal_prob: the seed's spelling of original_prob still works
    return mask_tokens(ids, MASK, VOCAB, SPECIAL, mlm_probability=0.15, replace_prob=0.0, orginal_prob=0.15,
                       pad_token_index=PAD, max_predictions=max_predictions_per_seq(0.15, 128), exact_count=True, **kw)


def test_max_predictions_per_seq_is_googles():
    assert max_predictions_per_seq(0.15, 128) == 19
    assert max_predictions_per_seq(0.15, 512) == 79
    assert max_predictions_per_seq(0.25, 512) == 130


def test_exact_count_per_row():
    ids, lengths = batch()
    _, labels, chosen = electra_mask(ids)
    expected = torch.round(lengths.float() * 0.15).clamp(1, 19)
    assert torch.equal(chosen.sum(1).float(), expected)


def test_special_tokens_never_chosen_and_labels_only_at_chosen():
    ids, _ = batch()
    masked, labels, chosen = electra_mask(ids)
    assert not chosen[torch.isin(ids, torch.tensor(SPECIAL))].any()
    assert torch.equal(labels[chosen], ids[chosen])
    assert (labels[~chosen] == -100).all()
    assert torch.equal(masked[~chosen], ids[~chosen])


def test_electra_style_85_mask_15_original_0_random():
    ids, _ = batch(B=2048)
    masked, _, chosen = electra_mask(ids)
    n = chosen.sum().item()
    is_mask = (masked[chosen] == MASK).float().mean().item()
    kept = (masked[chosen] == ids[chosen]).float().mean().item()
    assert n > 20000
    assert abs(is_mask - 0.85) < 0.01 and abs(kept - 0.15) < 0.01
    assert ((masked[chosen] == MASK) | (masked[chosen] == ids[chosen])).all()  # no random replacement


def test_bert_style_80_10_10():
    ids, _ = batch(B=2048)
    masked, _, chosen = mask_tokens(ids, MASK, VOCAB, SPECIAL, 0.15, replace_prob=0.1, original_prob=0.1)
    m, o = masked[chosen], ids[chosen]
    assert abs((m == MASK).float().mean().item() - 0.8) < 0.015
    assert abs((m == o).float().mean().item() - 0.1) < 0.015  # (a random draw equal to the original is rare)
    assert abs(((m != MASK) & (m != o)).float().mean().item() - 0.1) < 0.015


def test_positions_uniform_among_candidates():
    L = 32
    ids, _ = batch(B=20000, L=L, lengths=torch.full((20000,), L))
    _, _, chosen = mask_tokens(ids, MASK, VOCAB, SPECIAL, 0.15, 0.0, 0.15, pad_token_index=PAD,
                               max_predictions=max_predictions_per_seq(0.15, L), exact_count=True)
    per_position = chosen[:, 1:-1].float().mean(0)
    assert chosen[:, 0].sum() == 0 and chosen[:, -1].sum() == 0
    assert (per_position - per_position.mean()).abs().max() < 0.01


def test_bernoulli_option_approximates_the_rate():
    ids, _ = batch(B=1024)
    _, _, chosen = mask_tokens(ids, MASK, VOCAB, SPECIAL, 0.15, 0.0, 0.15)
    cand = ~torch.isin(ids, torch.tensor(SPECIAL))
    assert abs(chosen.sum().item() / cand.sum().item() - 0.15) < 0.01


def test_row_with_fewer_candidates_than_the_count():
    ids = torch.tensor([[CLS, 50, SEP, PAD, PAD, PAD, PAD, PAD]])
    _, _, chosen = mask_tokens(ids, MASK, VOCAB, SPECIAL, 0.5, 0.0, 0.15, pad_token_index=PAD,
                               max_predictions=4, exact_count=True)
    assert chosen.tolist() == [[False, True] + [False] * 6]


def test_input_not_modified_and_masking_is_dynamic():
    ids, _ = batch(B=8)
    before = ids.clone()
    a = electra_mask(ids)[2]
    b = electra_mask(ids)[2]
    assert torch.equal(ids, before)
    assert not torch.equal(a, b)


def test_unk_may_be_masked_but_not_cls_sep_mask_pad(tokenizer):
    from pretrain.mask_tokens import never_masked
    excluded = never_masked(tokenizer)
    assert sorted(excluded) == sorted([tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.mask_token_id,
                                       tokenizer.pad_token_id])
    unk = tokenizer.unk_token_id
    ids = torch.tensor([[tokenizer.cls_token_id] + [unk] * 20 + [tokenizer.sep_token_id]])
    _, _, chosen = mask_tokens(ids, tokenizer.mask_token_id, len(tokenizer), excluded, 0.15, 0.0, 0.15,
                               pad_token_index=tokenizer.pad_token_id, max_predictions=19, exact_count=True)
    assert chosen.sum() == 3 and (ids[chosen] == unk).all()
