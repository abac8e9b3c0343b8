import pytest

from pretrain.config import MyConfig, SIZES, electra_configs, get_config, save_point_steps


def test_myconfig_attribute_access_as_in_the_seed():
    c = MyConfig({'size': 'small'})
    c.lr = 5e-4
    assert c['lr'] == 5e-4 and c.size == 'small'
    with pytest.raises(AttributeError, match='no key'):
        c.missing


@pytest.mark.parametrize('size, mask_prob, lr, bs, steps, max_length, div, n_pred', [
    ('small', 0.15, 5e-4, 128, 1_000_000, 128, 4, 19),
    ('base', 0.15, 2e-4, 256, 766_000, 512, 3, 79),
    ('large', 0.25, 2e-4, 2048, 400_000, 512, 4, 130),
])
def test_recipe_values_per_size(size, mask_prob, lr, bs, steps, max_length, div, n_pred):
    c = get_config(size)
    assert (c.mask_prob, c.lr, c.bs, c.steps, c.max_length) == (mask_prob, lr, bs, steps, max_length)
    assert c.generator_size_divisor == div and c.max_predictions == n_pred and c.warmup_steps == 10_000


def test_vanilla_defaults_and_run_name():
    c = get_config('small', seed=36)
    assert c.run_name == 'vanilla_36'
    assert (c.adam_bias_correction, c.schedule, c.sampling, c.electra_mask_style) == (False, 'original_linear', 'fp32_gumbel', True)
    assert c.loss_weights == (1.0, 50.0) and c.clip == 1.0
    assert c.save_points == [0.0625, 0.125, 0.25, 0.5, 1.0]


@pytest.mark.parametrize('size, overrides, debiased', [
    ('small', {}, False),                              # Google's recipe: 10,000 warm-up steps, no correction
    ('tiny', {}, True),                                # 30 warm-up steps: debiased
    ('small', {'warmup_steps': 500}, True),            # a short warm-up anywhere
    ('tiny', {'adam_bias_correction': False}, False),  # an explicit choice always wins
])
def test_bias_correction_follows_the_warmup_length(size, overrides, debiased):
    assert get_config(size, **overrides).adam_bias_correction is debiased


def test_missing_seed_is_drawn_and_smoothing_true_means_0_1():
    c = get_config('tiny', seed=None, gen_smooth_label=True)
    assert 0 <= c.seed <= 999999 and c.run_name == f'vanilla_{c.seed}'
    assert c.gen_smooth_label == 0.1 and c.disc_smooth_label is False


def test_overrides_win_over_size_values():
    c = get_config('small', steps=10, bs=4)
    assert (c.steps, c.bs, c.lr) == (10, 4, 5e-4)


@pytest.mark.parametrize('kwargs, message', [
    (dict(size='huge'), "unknown size 'huge'; allowed: 'tiny', 'mini', 'small', 'base', 'large'"),
    (dict(sampling='argmax'), "unknown sampling 'argmax'; allowed: 'fp32_gumbel'"),
    (dict(objective='bert'), "unknown objective 'bert'; allowed: 'electra', 'mlm'"),
    (dict(objective='mlm', init_discriminator='x'), "objective 'mlm' trains one model from scratch"),
    (dict(schedule='cosine'), "unknown schedule 'cosine'; allowed: 'original_linear'"),
    (dict(logger='neptune'), "unknown logger 'neptune'; allowed: 'wandb', None, False"),
    (dict(precision='fp8'), "unknown precision 'fp8'"),
    (dict(datas='sample'), 'non-empty list'),
    (dict(datas=[]), 'non-empty list'),
    (dict(seed=1.5), r'seed must be an integer in \[0, 2\*\*32\)'),
    (dict(seed=2 ** 32), 'seed must be an integer'),
    (dict(seed=-1), 'seed must be an integer'),
    (dict(steps=0), 'steps must be an integer >= 1'),
    (dict(bs=2.5), 'bs must be an integer >= 1'),
    (dict(num_workers=-1), 'num_workers must be an integer >= 0'),
    (dict(mask_prob=1.5), r'mask_prob must be a number in \(0, 1\)'),
    (dict(lr='fast'), 'lr must be a number'),
    (dict(export='flase'), 'export must be true or false'),
    (dict(tokenizer=3), 'tokenizer must be a path'),
    (dict(checkpoint_dir=None), 'checkpoint_dir must be a path'),
    (dict(loss_weights=(1.0,)), 'loss_weights must be two'),
    (dict(loss_weights=50), 'loss_weights must be two'),
    (dict(save_points=0.5), 'save_points must be a list'),
    (dict(size=[1]), 'unknown size'),
    (dict(save_points=[0.5, 400]), 'save_points are fractions'),
    (dict(max_length=1024), r'max_length must be in \[8, 512\]'),
    (dict(gen_smooth_label=2), 'gen_smooth_label must be'),
    (dict(save_points=[0.5, 2.0]), 'save_points are fractions'),
    (dict(learning_rate=1e-3), 'unknown config key'),
    (dict(min_line_chars={'en': 80}), 'min_line_chars must be'),
    (dict(min_line_chars=-1), 'min_line_chars must be'),
    (dict(dropout=1.0), r'dropout must be a number in \[0, 1\)'),
    (dict(dropout='none'), 'dropout must be a number'),
])
def test_bad_values_raise_one_clear_error(kwargs, message):
    size = kwargs.pop('size', 'tiny')
    with pytest.raises(ValueError, match=message):
        get_config(size, **kwargs)


@pytest.mark.parametrize('size', ['tiny', 'mini', 'small', 'base', 'large'])
def test_model_configs_are_built_locally(size, tokenizer):
    c = get_config(size)
    disc, gen = electra_configs(c, tokenizer)
    arch = SIZES[size]
    assert disc.vocab_size == gen.vocab_size == len(tokenizer)
    assert disc.hidden_size == arch['hidden_size'] and disc.embedding_size == gen.embedding_size == arch['embedding_size']
    assert gen.num_hidden_layers == disc.num_hidden_layers == arch['num_hidden_layers']
    div = arch['generator_size_divisor']
    assert gen.hidden_size == arch['hidden_size'] // div
    assert gen.num_attention_heads == max(1, arch['num_attention_heads'] // div)
    assert gen.intermediate_size == arch['intermediate_size'] // div
    for cfg in (disc, gen):
        assert (cfg.max_position_embeddings, cfg.type_vocab_size, cfg.hidden_act) == (512, 2, 'gelu')
        assert (cfg.hidden_dropout_prob, cfg.layer_norm_eps) == (0.1, 1e-12)
        assert cfg.pad_token_id == tokenizer.pad_token_id


def test_dropout_is_a_pretraining_setting(tokenizer):
    for cfg in electra_configs(get_config('tiny', dropout=0), tokenizer):
        assert cfg.hidden_dropout_prob == cfg.attention_probs_dropout_prob == 0


def test_small_sizes_match_the_paper(tokenizer):
    disc, gen = electra_configs(get_config('small'), tokenizer)
    assert (disc.hidden_size, disc.embedding_size, disc.num_attention_heads, disc.intermediate_size) == (256, 128, 4, 1024)
    assert (gen.hidden_size, gen.num_attention_heads, gen.intermediate_size) == (64, 1, 256)


def test_compile_modes_and_the_static_shapes_they_imply():
    assert get_config('tiny', device='cpu', compile=True).static_shapes is True  # one shape per step
    assert get_config('tiny', device='cpu', compile='reduce-overhead').static_shapes is True
    assert get_config('tiny', device='cpu').static_shapes is False
    for bad in ('fast', 1, 'reduce_overhead'):
        with pytest.raises(ValueError, match="unknown compile"):
            get_config('tiny', device='cpu', compile=bad)


def test_resolve_completes_a_hand_built_config_once():
    """The seed notebook builds MyConfig by hand with a few keys; resolve fills the rest and
    derives the recipe values once, and resolving again changes nothing."""
    from pretrain.config import MyConfig, resolve
    hand = MyConfig({'size': 'small', 'device': 'cpu', 'datas': ['sample'], 'seed': 11081})
    hand.bs, hand.steps = 4, 3
    c = resolve(hand)
    assert (c.bs, c.steps, c.max_length, c.max_predictions, c.warmup_steps, c.weight_decay) == (4, 3, 128, 19, 10_000, 0.01)
    assert c.static_shapes is False and c.run_name == 'vanilla_11081' and 'lr' not in hand
    assert resolve(c) == c
    with pytest.raises(ValueError, match='unknown config key'):
        resolve(MyConfig(hand, learning_rate=1e-3))


@pytest.mark.parametrize('datas, message', [(['openwebtext'], "unknown data 'openwebtext'; allowed: 'sample'"),
                                            (['missing/file.txt'], 'does not exist')])
def test_a_corpus_is_checked_where_it_is_read(datas, message, tmp_path):
    """The config holds corpus names as labels (the seed notebook's 'wikipedia' before it is built);
    reading the corpus - `pretrain` does it before any other work - names what is wrong."""
    from pretrain.train import pretrain
    c = get_config('tiny', datas=datas, device='cpu', checkpoint_dir=str(tmp_path / 'ckpt'), data_dir=str(tmp_path / 'd'))
    with pytest.raises(ValueError, match=message):
        pretrain(c)
    assert not (tmp_path / 'ckpt').exists() and not (tmp_path / 'd').exists()


def test_builders_read_only_the_keys_they_need():
    """`setting` gives a key's value, default, recipe or derived value for any config, hand-built
    ones too, and checks just that key."""
    from pretrain.config import MyConfig, setting
    seed_style = MyConfig({'size': 'small', 'datas': ['wikipedia'], 'adam_bias_correction': False, 'seed': 11081})
    assert (setting(seed_style, 'lr'), setting(seed_style, 'weight_decay'), setting(seed_style, 'max_predictions')) == \
        (5e-4, 0.01, 19)
    assert setting(seed_style, 'datas') == ['wikipedia']  # a label: not built, not checked here
    assert setting(seed_style, 'adam_bias_correction') is False and setting(seed_style, 'run_name') == 'vanilla_11081'
    with pytest.raises(ValueError, match='seed is not set'):
        setting(MyConfig(seed=None), 'run_name')
    with pytest.raises(ValueError, match="unknown sampling 'argmax'"):
        setting(MyConfig(sampling='argmax'), 'sampling')


def test_save_points_as_steps_get_short_tags_that_name_their_step():
    points = save_point_steps([0.0625, 1253, 5013, 25067, 1.0], 25067)
    assert points == {1566: ['6.25%'], 1253: ['5%'], 5013: ['20%'], 25067: ['100%', '100.0%']}
    big = save_point_steps([123457, 123458], 1_000_000)  # neighbours need more digits, and stay apart
    assert big == {123457: ['12.3457%'], 123458: ['12.3458%']}
    assert save_point_steps([1], 2_000_000) == {1: ['0.00005%']}  # no exponent: tags match run_dir.CHECKPOINT_TAG
    # fractions keep the seed's tags, without float noise or an exponent
    assert save_point_steps([0.07, 1e-7], 10 ** 9) == {70_000_000: ['7.0%'], 100: ['0.00001%']}
