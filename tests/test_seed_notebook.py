"""The seed notebook's code cells (../shared/seed), as our users have them in their own
notebooks, run against this library, with their own hand-built config (whose corpus label,
'wikipedia', names a corpus that is not built: the seed loads its data itself). Lines marked
`# local:` are the only changes: data and tokenizer from local sources instead of hub downloads,
CPU, and a short run."""
import os
import random
from pathlib import Path

import numpy as np
import torch


def test_seed_cells_run_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from transformers import ElectraConfig, ElectraTokenizerFast, ElectraForMaskedLM, ElectraForPreTraining  # noqa: F401
    from pretrain.config import MyConfig

    c = MyConfig({
        'device': 'cpu',  # local: no GPU in CI
        'base_run_name': 'vanilla',
        'seed': 11081,
        'adam_bias_correction': False,
        'schedule': 'original_linear',
        'sampling': 'fp32_gumbel',
        'electra_mask_style': True,
        'gen_smooth_label': False,
        'disc_smooth_label': False,
        'size': 'small',
        'datas': ['wikipedia'],  # a label, as in the seed: not built here, and no builder needs it built
        'logger': None,
        'num_workers': 0,
    })

    assert c.sampling in ['fp32_gumbel', 'fp16_gumbel', 'multinomial']
    assert c.schedule in ['original_linear', 'separate_linear', 'one_cycle', 'adjusted_one_cycle']
    assert c.logger in ['wandb', 'neptune', None, False]
    if not c.seed:
        c.seed = random.randint(0, 999999)
    c.run_name = f'{c.base_run_name}_{c.seed}'
    if c.gen_smooth_label is True:
        c.gen_smooth_label = 0.1
    if c.disc_smooth_label is True:
        c.disc_smooth_label = 0.1
    i = ['small', 'base', 'large'].index(c.size)
    c.mask_prob = [0.15, 0.15, 0.25][i]
    c.lr = [5e-4, 2e-4, 2e-4][i]
    c.bs = [128, 256, 2048][i]
    c.steps = [10**6, 766*1000, 400*1000][i]
    c.max_length = [128, 512, 512][i]
    generator_size_divisor = [4, 3, 4][i]
    c.bs, c.steps = 4, 3  # local: a short run

    from pretrain.config import electra_configs  # local: configs built here, not downloaded
    from pretrain.prepare.tokenizer import load_tokenizer
    hf_tokenizer = load_tokenizer('data/sample/tokenizer')
    disc_config, gen_config = electra_configs(c, hf_tokenizer)
    gen_config.hidden_size = int(disc_config.hidden_size/generator_size_divisor)
    gen_config.num_attention_heads = disc_config.num_attention_heads//generator_size_divisor
    gen_config.intermediate_size = disc_config.intermediate_size//generator_size_divisor
    print(f"process id: {os.getpid()}")
    Path('./checkpoints/pretrain').mkdir(exist_ok=True, parents=True)

    from pretrain.prepare.corpus import load_corpus  # local: instead of load_dataset('./pretrain/wikipedia.py', ...)
    wiki = load_corpus('sample')

    from functools import partial
    import datasets
    from pretrain._utils.electra_dataprocessor import ELECTRADataProcessor
    data_dir = Path('./data')

    def preprocess(sources, c, hf_tokenizer, num_proc):
        dsets = []
        ELECTRAProcessor = partial(ELECTRADataProcessor, hf_tokenizer=hf_tokenizer, max_length=c.max_length)
        for name, ds in sources.items():
            cache_dir = data_dir / "preprocess" / f"{name}_{len(ds)}_{c.max_length}"
            cache_dir.mkdir(parents=True, exist_ok=True)
            path = cache_dir / "electra.arrow"
            cache_file_name = str(path.resolve())
            mapped = ELECTRAProcessor(ds).map(cache_file_name=cache_file_name, num_proc=num_proc)
            dsets.append(mapped)
        assert len(dsets) == len(sources)
        train_dset = datasets.concatenate_datasets(dsets)
        return train_dset

    sources = {'wiki': wiki}
    train_dset = preprocess(sources, c, hf_tokenizer, num_proc=2)
    assert (data_dir / 'preprocess' / f'wiki_{len(wiki)}_128' / 'electra.arrow').exists()

    from pretrain.get_dataloaders import get_dataloader
    dl = get_dataloader(c, hf_tokenizer, train_dset)
    from fastai.text.all import DataLoaders
    dls = DataLoaders(dl, path='.')
    assert len(dls.train) == len(train_dset) // 4  # fixed-size batches: the last partial one is dropped

    from pretrain.masked_lm_cb import MaskedLMCallback
    mlm_cb = MaskedLMCallback(mask_tok_id=hf_tokenizer.mask_token_id,
                              special_tok_ids=hf_tokenizer.all_special_ids,
                              vocab_size=hf_tokenizer.vocab_size,
                              mlm_probability=c.mask_prob,
                              replace_prob=0.0 if c.electra_mask_style else 0.1,
                              original_prob=0.15 if c.electra_mask_style else 0.1,
                              for_electra=True)
    from pretrain.models import ELECTRAModel, ELECTRALoss

    torch.backends.cudnn.benchmark = True
    dls[0].rng = random.Random(c.seed)
    random.seed(c.seed)
    np.random.seed(c.seed)
    torch.manual_seed(c.seed)

    generator = ElectraForMaskedLM(gen_config)
    discriminator = ElectraForPreTraining(disc_config)
    discriminator.electra.embeddings = generator.electra.embeddings
    generator.generator_lm_head.weight = generator.electra.embeddings.word_embeddings.weight
    electra_model = ELECTRAModel(generator, discriminator, hf_tokenizer, sampling=c.sampling)
    electra_loss_func = ELECTRALoss(gen_label_smooth=c.gen_smooth_label, disc_label_smooth=c.disc_smooth_label)

    from pretrain.optim import get_optim
    opt_func = get_optim(c)
    from pretrain.scheduler import get_scheduler
    lr_shedule = get_scheduler(c)

    from fastai.text.all import Learner
    from pretrain._utils.run_steps import RunSteps
    dls.to(torch.device(c.device))
    learn = Learner(dls, electra_model,
                    loss_func=electra_loss_func,
                    opt_func=opt_func,
                    path='./checkpoints',
                    model_dir='pretrain',
                    cbs=[mlm_cb,
                         RunSteps(c.steps, [0.0625, 0.125, 0.25, 0.5, 1.0], c.run_name+"_{percent}"),
                         ],
                    )
    from _utils.gradient_clipping import GradientClipping
    if torch.cuda.is_available():  # local: fastai's MixedPrecision is CUDA-only
        learn.to_fp16(init_scale=2.**11)
    learn.add_cb(GradientClipping(1.))
    learn.fit(9999, cbs=[lr_shedule])

    assert learn.train_iter == 3
    saved = sorted(p.name for p in Path('checkpoints/pretrain').glob('*.pth'))
    assert saved == sorted(f'vanilla_11081_{p}%.pth' for p in ('6.25', '12.5', '25.0', '50.0', '100.0'))
