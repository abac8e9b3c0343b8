import pytest
import torch
import torch.nn.functional as F

from pretrain.config import electra_configs, get_config
from pretrain.models import ELECTRALoss, ELECTRAModel, build_electra, gumbel_noise, tie_embeddings


@pytest.fixture
def model(tokenizer):
    torch.manual_seed(0)
    generator, discriminator = build_electra(*electra_configs(get_config('tiny'), tokenizer))
    return ELECTRAModel(generator, discriminator, tokenizer)


def inputs(tokenizer, B=4, L=16):
    torch.manual_seed(1)
    ids = torch.randint(10, len(tokenizer), (B, L))
    ids[:, 0] = tokenizer.cls_token_id
    ids[:, -1] = tokenizer.sep_token_id
    ids[0, 10:] = tokenizer.pad_token_id
    chosen = torch.zeros(B, L, dtype=torch.bool)
    chosen[:, 3] = chosen[:, 5] = True
    labels = ids.masked_fill(~chosen, -100)
    masked = ids.masked_fill(chosen, tokenizer.mask_token_id)
    sentA = torch.tensor([4, 6, 16, 8])
    return masked, sentA, chosen, labels


def test_embeddings_shared_and_output_tied(model):
    gen, disc = model.generator, model.discriminator
    ge, de = gen.electra.embeddings, disc.electra.embeddings
    for name in ('word_embeddings', 'position_embeddings', 'token_type_embeddings', 'LayerNorm'):
        for p, q in zip(getattr(ge, name).parameters(), getattr(de, name).parameters()):
            assert p is q
    assert gen.generator_lm_head.weight is ge.word_embeddings.weight
    assert gen.generator_lm_head.bias is not None  # its own bias
    # one Parameter object: an update through either model moves both
    assert sum(p is ge.word_embeddings.weight for p in model.parameters()) == 1


def test_separate_embedding_projections_when_sizes_differ(tokenizer):
    gen, disc = build_electra(*electra_configs(get_config('small'), tokenizer))
    assert gen.electra.embeddings_project is not disc.electra.embeddings_project
    assert gen.electra.embeddings_project.out_features == 64 and disc.electra.embeddings_project.out_features == 256


def test_tie_embeddings_on_seed_style_models(tokenizer):
    from transformers import ElectraForMaskedLM, ElectraForPreTraining
    disc_config, gen_config = electra_configs(get_config('tiny'), tokenizer)
    gen, disc = ElectraForMaskedLM(gen_config), ElectraForPreTraining(disc_config)
    tie_embeddings(gen, disc)
    assert disc.electra.embeddings is gen.electra.embeddings


def test_forward_shapes_and_generator_head_only_at_masked_rows(model, tokenizer):
    masked, sentA, chosen, labels = inputs(tokenizer)
    calls = []
    model.generator.generator_lm_head.register_forward_hook(lambda m, i, o: calls.append(i[0].shape))
    mlm_logits, generated, disc_logits, is_replaced, attention_mask, is_mlm = model(masked, sentA, chosen, labels)
    assert calls == [torch.Size([8, 32])]  # 8 masked rows, embedding size 32: not B*L rows
    assert mlm_logits.shape == (8, len(tokenizer))
    assert generated.shape == disc_logits.shape == is_replaced.shape == (4, 16)
    assert torch.equal(attention_mask, masked != tokenizer.pad_token_id)


def test_generated_and_replaced_labels(model, tokenizer):
    masked, sentA, chosen, labels = inputs(tokenizer)
    _, generated, _, is_replaced, _, _ = model(masked, sentA, chosen, labels)
    assert torch.equal(generated[~chosen], masked[~chosen])
    assert not (generated[chosen] == tokenizer.mask_token_id).all()
    # replaced exactly where the sample differs from the original; equal samples count as original
    assert torch.equal(is_replaced, chosen & (generated != labels))
    original = labels[chosen]
    model.sample = lambda logits: original.clone()  # a generator that always guesses right
    _, generated, _, is_replaced, _, _ = model(masked, sentA, chosen, labels)
    assert not is_replaced.any()


def test_token_types_on_device(model, tokenizer):
    ids = torch.tensor([[2, 7, 3, 8, 3, 0], [2, 7, 8, 3, 0, 0]])
    attention_mask, token_type = model._get_pad_mask_and_token_type(ids, torch.tensor([3, 4]))
    assert token_type.tolist() == [[0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 0, 0]]
    assert attention_mask.tolist() == [[True] * 5 + [False], [True] * 4 + [False] * 2]


def test_no_gradient_through_sampling(model, tokenizer):
    masked, sentA, chosen, labels = inputs(tokenizer)
    out = model(masked, sentA, chosen, labels)
    assert not out[1].requires_grad and not out[3].requires_grad
    assert out[0].requires_grad and out[2].requires_grad


def test_gumbel_noise_formula():
    torch.manual_seed(3)
    g = gumbel_noise(torch.Size([200000]), torch.device('cpu'))
    torch.manual_seed(3)
    u = torch.rand(200000)
    assert torch.allclose(g, -torch.log(-torch.log(u + 1e-9) + 1e-9))
    assert abs(g.mean().item() - 0.5772) < 0.01  # Euler-Mascheroni: the Gumbel(0, 1) mean


@pytest.mark.parametrize('sampling', ['fp32_gumbel', 'fp16_gumbel', 'multinomial'])
def test_sampling_follows_the_softmax(model, sampling):
    model.sampling = sampling
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1]])).repeat(20000, 1)
    freq = torch.bincount(model.sample(logits), minlength=3).float() / 20000
    assert torch.allclose(freq, torch.tensor([0.7, 0.2, 0.1]), atol=0.015)


def test_fp32_gumbel_samples_in_fp32_from_half_logits(model):
    logits = torch.randn(64, 50).half()
    torch.manual_seed(0)
    got = model.sample(logits)
    torch.manual_seed(0)
    expected = (logits.float() + gumbel_noise(logits.shape, logits.device)).argmax(-1)
    assert torch.equal(got, expected)


def test_unknown_sampling_raises(tokenizer, model):
    with pytest.raises(ValueError, match="unknown sampling 'greedy'"):
        ELECTRAModel(model.generator, model.discriminator, tokenizer, sampling='greedy')


def test_loss_is_1_gen_plus_50_disc(model, tokenizer):
    masked, sentA, chosen, labels = inputs(tokenizer)
    pred = model(masked, sentA, chosen, labels)
    loss_fn = ELECTRALoss()
    loss = loss_fn(pred, labels)
    mlm_logits, _, disc_logits, is_replaced, non_pad, _ = pred
    gen = F.cross_entropy(mlm_logits, labels[chosen])
    disc = F.binary_cross_entropy_with_logits(disc_logits[non_pad], is_replaced[non_pad].float())
    assert torch.allclose(loss, gen + 50 * disc)
    assert torch.allclose(loss_fn.last_losses[0], gen) and torch.allclose(loss_fn.last_losses[1], disc)


def test_label_smoothing_options(model, tokenizer):
    masked, sentA, chosen, labels = inputs(tokenizer)
    pred = model(masked, sentA, chosen, labels)
    mlm_logits, _, disc_logits, is_replaced, non_pad, _ = pred
    loss = ELECTRALoss(gen_label_smooth=True, disc_label_smooth=0.1)(pred, labels)
    gen = F.cross_entropy(mlm_logits, labels[chosen], label_smoothing=0.1)
    target = is_replaced[non_pad].float().masked_fill(~is_replaced[non_pad], 0.1)
    disc = F.binary_cross_entropy_with_logits(disc_logits[non_pad], target)
    assert torch.allclose(loss, gen + 50 * disc)


def test_the_output_is_named_and_survives_fastais_rebuild():
    """Named fields, the seed's positions, and fastai's `to_float` (mixed precision rebuilds the
    output as `type(x)(list)`, which a NamedTuple would refuse) keeps the type."""
    from fastai.torch_core import to_float

    from pretrain.models import ElectraOutput
    parts = [torch.ones(2, dtype=torch.bfloat16) * i for i in range(6)]
    out = to_float(ElectraOutput(parts))
    assert type(out) is ElectraOutput and out.disc_logits.dtype == torch.float32
    assert out.is_mlm_applied is out[5] and out.attention_mask is out[4] and out.mlm_gen_logits is out[0]


# ---- the MLM baseline (objective='mlm')

def mlm_model(tokenizer, max_predictions=None):
    from pretrain.models import MLMModel, build_mlm
    torch.manual_seed(0)
    disc_config, _ = electra_configs(get_config('tiny', objective='mlm'), tokenizer)
    return MLMModel(build_mlm(disc_config), tokenizer, max_predictions=max_predictions).eval()


def test_mlm_model_is_the_discriminators_size_with_a_tied_output_layer(tokenizer):
    model = mlm_model(tokenizer)
    assert model.PARTS == ('mlm',) and model.finetuned_encoder is model.mlm.electra
    disc_config, _ = electra_configs(get_config('tiny'), tokenizer)
    assert model.mlm.config.hidden_size == disc_config.hidden_size == 32
    assert model.mlm.generator_lm_head.weight is model.mlm.electra.embeddings.word_embeddings.weight


def test_mlm_loss_is_the_cross_entropy_at_masked_positions_on_both_paths(tokenizer):
    from pretrain.models import MLMLoss, loss_from_config
    masked, sentA, chosen, labels = inputs(tokenizer)
    out = mlm_model(tokenizer)(masked, sentA, chosen, labels)
    assert out.mlm_gen_logits.shape == (int(chosen.sum()), len(tokenizer))  # only the masked rows
    loss_func = MLMLoss()
    expected = F.cross_entropy(out.mlm_gen_logits, labels[chosen])
    assert torch.allclose(loss_func(out, labels), expected) and torch.allclose(loss_func.last_losses[0], expected)
    static = mlm_model(tokenizer, max_predictions=3)(masked, sentA, chosen, labels)
    assert static.mlm_gen_logits.shape == (4, 3, len(tokenizer))  # Google's fixed slots, one unused per row
    assert torch.allclose(MLMLoss()(static, labels), expected, atol=1e-6)
    assert isinstance(loss_from_config(get_config('tiny', objective='mlm')), MLMLoss)
    assert isinstance(loss_from_config(get_config('tiny')), ELECTRALoss)
