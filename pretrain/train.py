"""The whole pre-training flow of `Pretrain.ipynb` as functions: the notebook calls them cell by
cell, `python -m pretrain` calls `pretrain(c)`."""
from __future__ import annotations

import random
from pathlib import Path

import datasets
import numpy as np
import torch
from fastai.data.core import DataLoaders
from fastai.learner import Learner

from _utils.gradient_clipping import GradientClipping
from ._utils.electra_dataprocessor import ELECTRADataProcessor
from ._utils.run_steps import RunSteps
from .config import REPO_ROOT, MyConfig, electra_configs
from .corpus import data_cache_name, load_corpus
from .get_dataloaders import get_dataloader
from .log_cb import CSVLogger
from .masked_lm_cb import MaskedLMCallback
from .models import ELECTRALoss, ELECTRAModel, build_electra
from .optim import get_optim
from .scheduler import get_scheduler
from .tokenizer import load_tokenizer


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) RNGs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def repo_path(p: str | Path) -> Path:
    """Relative paths in a config are relative to the repository, wherever the process runs."""
    p = Path(p)
    return p if p.is_absolute() else REPO_ROOT / p


def preprocess(c: MyConfig, hf_tokenizer, num_proc: int | None = None) -> datasets.Dataset:
    """Examples for every corpus in `c.datas`, concatenated. Each corpus is cached at
    `{data_dir}/preprocess/{name}_{docs}_{max_length}/electra.arrow` and reused."""
    dsets = []
    for data in c.datas:
        docs = load_corpus(data)
        cache = repo_path(c.get('data_dir', 'data')) / 'preprocess' / f'{data_cache_name(data)}_{len(docs)}_{c.max_length}' / 'electra.arrow'
        processor = ELECTRADataProcessor(docs, hf_tokenizer=hf_tokenizer, max_length=c.max_length,
                                         min_line_chars=c.get('min_line_chars', 0), seed=c.seed)
        dsets.append(processor.map(cache_file_name=str(cache), num_proc=num_proc or c.get('num_proc', 1)))
    return datasets.concatenate_datasets(dsets) if len(dsets) > 1 else dsets[0]


def resolve_precision(c: MyConfig) -> str:
    """'fp32' on CPU; on CUDA, 'auto' is bf16 where the GPU supports it, else fp16."""
    precision = c.get('precision', 'auto')
    on_cuda = str(c.device).startswith('cuda')
    if not on_cuda:
        if precision in ('fp16', 'bf16'):
            raise ValueError(f"precision {precision!r} needs a CUDA device; use precision='fp32' on {c.device}")
        return 'fp32'
    if precision == 'auto':
        return 'bf16' if torch.cuda.is_bf16_supported() else 'fp16'
    return precision


def check_device(c: MyConfig) -> torch.device:
    device = torch.device(c.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f"device {c.device!r} asked for but CUDA is not available here; set device='cpu'")
    return device


def wandb_run(c: MyConfig):
    """A Weights & Biases run when `c.logger == 'wandb'` (mode from `c.wandb_mode` or the
    WANDB_MODE environment variable; 'offline' needs no network), else None."""
    if c.logger != 'wandb':
        return None
    try:
        import wandb
    except ImportError:
        raise ValueError("logger='wandb' needs the wandb package: pip install wandb") from None
    return wandb.init(name=c.run_name, project='electra_pretrain', config={**c}, mode=c.get('wandb_mode'))


def build_learner(c: MyConfig, dls: DataLoaders, hf_tokenizer, electra_model: ELECTRAModel | None = None) -> Learner:
    """The fastai `Learner` with the ELECTRA loss and optimizer and the callbacks of the recipe:
    masking, exact step count with checkpoints, CSV log, mixed precision, clipping, schedule
    (the schedule callback is added to the learner too, so `learn.fit` needs no extra cbs)."""
    device = check_device(c)
    if electra_model is None:
        generator, discriminator = build_electra(*electra_configs(c, hf_tokenizer))
        electra_model = ELECTRAModel(generator, discriminator, hf_tokenizer, sampling=c.sampling)
    mlm_cb = MaskedLMCallback(mask_tok_id=hf_tokenizer.mask_token_id, special_tok_ids=hf_tokenizer.all_special_ids,
                              vocab_size=len(hf_tokenizer), mlm_probability=c.mask_prob,
                              replace_prob=0.0 if c.electra_mask_style else 0.1,
                              original_prob=0.15 if c.electra_mask_style else 0.1, for_electra=True,
                              pad_tok_id=hf_tokenizer.pad_token_id, max_length=c.max_length,
                              exact_count=c.get('exact_mask_count', True))
    checkpoint_dir = repo_path(c.get('checkpoint_dir', 'checkpoints/pretrain'))
    dls.to(device)
    learn = Learner(dls, electra_model, loss_func=ELECTRALoss(c.get('loss_weights', (1.0, 50.0)), c.gen_smooth_label,
                                                              c.disc_smooth_label),
                    opt_func=get_optim(c), path=checkpoint_dir.parent, model_dir=checkpoint_dir.name,
                    cbs=[mlm_cb, RunSteps(c.steps, c.get('save_points'), c.run_name + '_{percent}'),
                         CSVLogger(checkpoint_dir / f'{c.run_name}.csv', c.get('log_every', 10), wandb_run(c)),
                         get_scheduler(c)])
    precision = resolve_precision(c)
    if precision == 'fp16':
        learn.to_fp16(init_scale=2.**11)  # the seed's initial loss scale
    elif precision == 'bf16':
        learn.to_bf16()
    learn.add_cb(GradientClipping(c.get('clip', 1.0)))
    return learn


def pretrain(c: MyConfig) -> Learner:
    """Tokenizer -> examples -> dataloader -> Learner -> `c.steps` steps of pre-training."""
    check_device(c)
    hf_tokenizer = load_tokenizer(c.tokenizer)
    train_dset = preprocess(c, hf_tokenizer)
    set_seed(c.seed)
    dls = DataLoaders(get_dataloader(c, hf_tokenizer, train_dset), path='.')
    learn = build_learner(c, dls, hf_tokenizer)
    torch.backends.cudnn.benchmark = True
    learn.fit(9999)  # RunSteps stops the fit after exactly c.steps steps
    return learn
