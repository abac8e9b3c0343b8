"""Run configuration: the seed's `MyConfig` dict plus a builder that fills in the vanilla
ELECTRA recipe for a size, validates every value and builds the model configs locally."""
from __future__ import annotations

import math
import os
import random
from typing import TYPE_CHECKING, Any, Iterable

from _utils.paths import REPO_ROOT, repo_path  # noqa: F401  (REPO_ROOT and repo_path: imported from here by users)

if TYPE_CHECKING:
    from transformers import ElectraConfig

# BERT's special tokens, first in every vocabulary this project trains (ids 0-4)
SPECIAL_TOKENS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']

# the allowed values of config keys (models.py and scheduler.py implement them)
SAMPLINGS = ('fp32_gumbel', 'fp16_gumbel', 'multinomial')
SCHEDULES = ('original_linear', 'separate_linear', 'one_cycle', 'adjusted_one_cycle')
# 'electra': replaced token detection (generator + discriminator); 'mlm': BERT's masked-LM
# pre-training of a discriminator-sized model, the paper's baseline (Google's electra_objective=False)
OBJECTIVES = ('electra', 'mlm')


def max_predictions_per_seq(mask_prob: float, max_length: int) -> int:
    """Google's `max_predictions_per_seq`: int((mask_prob + 0.005) * max_length) (19 for 128)."""
    return int((mask_prob + 0.005) * max_length)


class MyConfig(dict):
    """A dict whose keys read and write as attributes: `c.lr` is `c['lr']`."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"config has no key {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


# Discriminator architecture and recipe values per size (ELECTRA paper, table 6 / Google's
# configure_pretraining.py). `tiny` (tests, quick demo) and `mini` (CPU recipe) are ours.
SIZES: dict[str, dict[str, Any]] = {
    'tiny': dict(num_hidden_layers=2, hidden_size=32, embedding_size=32, num_attention_heads=2,
                 intermediate_size=64, generator_size_divisor=2, mask_prob=0.15, lr=5e-4,
                 bs=32, steps=300, max_length=64, warmup_steps=30),
    # ours: the CPU recipe, chosen by measurement on 2 cores (README, "The mini recipe")
    'mini': dict(num_hidden_layers=4, hidden_size=128, embedding_size=128, num_attention_heads=2,
                 intermediate_size=512, generator_size_divisor=2, mask_prob=0.15, lr=5e-4,
                 bs=32, steps=3000, max_length=64, warmup_steps=300),
    'small': dict(num_hidden_layers=12, hidden_size=256, embedding_size=128, num_attention_heads=4,
                  intermediate_size=1024, generator_size_divisor=4, mask_prob=0.15, lr=5e-4,
                  bs=128, steps=1_000_000, max_length=128, warmup_steps=10_000),
    'base': dict(num_hidden_layers=12, hidden_size=768, embedding_size=768, num_attention_heads=12,
                 intermediate_size=3072, generator_size_divisor=3, mask_prob=0.15, lr=2e-4,
                 bs=256, steps=766_000, max_length=512, warmup_steps=10_000),
    'large': dict(num_hidden_layers=24, hidden_size=1024, embedding_size=1024, num_attention_heads=16,
                  intermediate_size=4096, generator_size_divisor=4, mask_prob=0.25, lr=2e-4,
                  bs=2048, steps=400_000, max_length=512, warmup_steps=10_000),
}
LOGGERS = ('wandb', None, False)
WANDB_MODES = (None, 'online', 'offline', 'disabled')
PRECISIONS = ('auto', 'fp32', 'fp16', 'bf16')
# Adam without bias correction scales early updates by (1-b1^t)/sqrt(1-b2^t): x6.5 at step 10,
# x2 at step 300. Google's 10,000-step warm-up (>> 1/(1-b2) = 1,000 steps) hides that; a shorter
# warm-up does not, so short recipes debias unless told otherwise.
SHORT_WARMUP = 1000
SAVE_POINTS = [0.0625, 0.125, 0.25, 0.5, 1.0]  # the seed's checkpoint fractions
BOOL_KEYS = ('adam_bias_correction', 'electra_mask_style', 'exact_mask_count', 'split_sentences', 'export', 'plot',
             'pad_to_max_length', 'static_shapes', 'overwrite')
# torch.compile's modes; True picks one by device (pretrain/compile_step.py)
COMPILE_MODES = (False, True, 'default', 'reduce-overhead', 'max-autotune', 'max-autotune-no-cudagraphs')
INT_KEYS = {'bs': 1, 'steps': 1, 'max_length': 1, 'log_every': 1, 'eval_every': 1, 'grad_accum': 1, 'save_every': 1,
            'keep_last': 1, 'max_nonfinite': 1, 'num_workers': 0, 'num_proc': 1, 'warmup_steps': 0, 'freeze_layers': 0,
            'max_predictions': 1}
PATH_KEYS = ('tokenizer', 'data_dir', 'checkpoint_dir', 'resume', 'init_generator', 'init_discriminator')

# Every key a config may hold, with the vanilla default (None: derived from `size`).
DEFAULTS: dict[str, Any] = {
    'device': None,                 # None: 'cuda:0' when CUDA is available, else 'cpu'
    'base_run_name': 'vanilla',     # run_name = {base_run_name}_{seed}
    'seed': 11081,                  # None/False/0: draw one from [0, 999999]
    'objective': 'electra',         # or 'mlm': BERT's masked-LM baseline, a model the discriminator's size
    'adam_bias_correction': None,   # None: Google's False, but True when warmup_steps < SHORT_WARMUP
    'schedule': 'original_linear',
    'sampling': 'fp32_gumbel',
    'electra_mask_style': True,     # 85% [MASK] / 15% kept; False: BERT's 80/10/10
    'exact_mask_count': True,       # Google's fixed count per row; False: Bernoulli per token
    'gen_smooth_label': False,
    'disc_smooth_label': False,
    'loss_weights': (1.0, 50.0),
    'size': 'small',
    'datas': ['sample'],
    'tokenizer': 'data/sample/tokenizer',
    'min_line_chars': 0,            # int or {'ja': n, 'default': m}; English Wikipedia recipe: 80
    'split_sentences': True,        # split Japanese lines into sentences at 。！？
    'logger': None,                 # or 'wandb'
    'wandb_mode': None,             # None: wandb's own (WANDB_MODE); 'offline' needs no network
    'log_every': 10,
    'num_workers': min(3, os.cpu_count() or 1),
    'num_proc': min(8, os.cpu_count() or 1),
    'precision': 'auto',            # auto: bf16 on GPUs that have it, else fp16; fp32 on CPU
    'clip': 1.0,
    'weight_decay': 0.01,           # Google's decoupled decay, not on LayerNorm weights and biases
    'save_points': SAVE_POINTS,
    'save_every': None,             # also checkpoint every N steps ...
    'keep_last': 3,                 # ... keeping the last K of those
    'resume': None,                 # a checkpoint path, or 'latest' of this run_name
    'overwrite': False,             # start afresh: delete this run_name's checkpoints, logs, plot and export
    'export': True,                 # Hugging Face directories of both models at the end
    'init_generator': None,         # continued pre-training: local Hugging Face ELECTRA directories
    'init_discriminator': None,
    'freeze_layers': 0,             # ... with the lowest N layers frozen
    'max_nonfinite': 20,            # stop after this many consecutive non-finite losses
    'pad_to_max_length': False,     # pad every batch to max_length
    'grad_accum': 1,                # micro-batches per optimizer step (bs stays the batch per step)
    'static_shapes': None,          # None: on CUDA or with compile. Fixed mask slots, max_length batches, no host sync
    'compile': False,               # torch.compile the model (fullgraph; needs static_shapes). True: with
                                    # CUDA graphs on CUDA ('reduce-overhead'), 'default' on CPU; or a mode
    'valid_size': None,             # hold out whole documents, at least this many examples (or a fraction)
    'eval_every': None,             # steps between held-out evaluations (None: steps // 20)
    'plot': True,                   # a PNG of the curves beside the checkpoints at the end
    'data_dir': 'data',
    'checkpoint_dir': 'checkpoints/pretrain',
    # derived from size unless given
    'mask_prob': None, 'lr': None, 'bs': None, 'steps': None, 'max_length': None,
    'warmup_steps': None, 'generator_size_divisor': None, 'max_predictions': None,
    'run_name': None,
}

# The groups `python -m pretrain --help` shows the keys in; every key of DEFAULTS is in exactly
# one (tests/test_main.py checks it, so a new key needs a place here and a line in KEY_HELP).
KEY_GROUPS: dict[str, tuple[str, ...]] = {
    'data': ('datas', 'tokenizer', 'min_line_chars', 'split_sentences', 'max_length', 'valid_size', 'data_dir',
             'num_proc'),
    'model': ('size', 'objective', 'generator_size_divisor', 'mask_prob', 'max_predictions', 'electra_mask_style',
              'exact_mask_count', 'sampling', 'gen_smooth_label', 'disc_smooth_label', 'loss_weights',
              'init_generator', 'init_discriminator', 'freeze_layers'),
    'schedule': ('steps', 'bs', 'lr', 'warmup_steps', 'schedule', 'adam_bias_correction', 'weight_decay', 'clip'),
    'run': ('base_run_name', 'seed', 'run_name', 'checkpoint_dir', 'save_points', 'save_every', 'keep_last', 'resume',
            'overwrite', 'export', 'plot', 'log_every', 'eval_every', 'logger', 'wandb_mode', 'max_nonfinite'),
    'speed': ('device', 'precision', 'compile', 'static_shapes', 'pad_to_max_length', 'grad_accum', 'num_workers'),
}
# what each group holds, as its heading says it
GROUP_TITLES: dict[str, str] = {
    'data': 'data: corpora, tokenizer, examples', 'model': 'model and pre-training objective',
    'schedule': 'schedule and optimisation', 'run': 'run: name, checkpoints, logging, evaluation',
    'speed': 'speed and memory',
}
# One line per key: what it means (the default is added by the command line).
KEY_HELP: dict[str, str] = {
    'datas': "corpora: shipped names (sample, sample_ja, sample_en, docs_ja, docs_ja_SOURCE), 'wikipedia' once "
             "built, .txt/.jsonl/.parquet files (.gz too) or directories of them, hf:NAME[:CONFIG]",
    'tokenizer': 'a local tokenizer directory',
    'min_line_chars': "drop shorter lines: an int or {'ja': n, 'default': m}",
    'split_sentences': 'split Japanese lines into sentences at 。！？',
    'max_length': 'tokens per example',
    'valid_size': 'hold out whole documents: at least this many examples, or a fraction; evaluated every eval_every steps',
    'data_dir': 'where preprocessed examples are cached (a relative path: under the working directory)',
    'num_proc': 'preprocessing processes (the default is 8 or the CPU count, whichever is less)',
    'size': f"the recipe: {', '.join(SIZES)} (the architecture, and the defaults that say 'by size')",
    'objective': "pre-training objective: 'electra' (generator + discriminator) or 'mlm' (masked language model only)",
    'generator_size_divisor': "the generator's hidden size, heads and FFN are the discriminator's divided by this",
    'mask_prob': 'fraction of the tokens masked',
    'max_predictions': "mask slots per row on the static path (Google's max_predictions_per_seq)",
    'electra_mask_style': "85% [MASK] / 15% kept; false: BERT's 80/10/10",
    'exact_mask_count': "Google's fixed count of masked tokens per row; false: each token with probability mask_prob",
    'sampling': f"how the generator's replacements are drawn: {', '.join(SAMPLINGS)}",
    'gen_smooth_label': "label smoothing of the generator's loss: false, true (0.1) or a float",
    'disc_smooth_label': "label smoothing of the discriminator's loss: false, true (0.1) or a float",
    'loss_weights': 'weights of the generator and discriminator losses',
    'init_generator': 'continued pre-training: start the generator from a local Hugging Face ELECTRA directory',
    'init_discriminator': 'continued pre-training: start the discriminator from a local Hugging Face ELECTRA directory',
    'freeze_layers': 'continued pre-training: freeze the lowest N layers',
    'steps': 'optimizer steps',
    'bs': 'examples per optimizer step',
    'lr': 'peak learning rate',
    'warmup_steps': 'linear warm-up steps',
    'schedule': f"learning-rate schedule: {', '.join(SCHEDULES)}",
    'adam_bias_correction': "standard Adam; None: true when warmup_steps < 1,000, else Google's false",
    'weight_decay': 'decoupled weight decay (not on LayerNorm weights and biases)',
    'clip': 'global gradient norm to clip to',
    'base_run_name': 'run_name is {base_run_name}_{seed}',
    'seed': 'seed of every random number generator; 0 or None draws one',
    'run_name': 'the prefix of the run\'s files (None: {base_run_name}_{seed})',
    'checkpoint_dir': 'where checkpoints, logs, the plot and the export go (a relative path: under the working directory)',
    'save_points': 'checkpoint at these fractions of steps (or step counts)',
    'save_every': 'also checkpoint every N steps ({run_name}_step{N}.pth)',
    'keep_last': 'keep the last K of the save_every checkpoints',
    'resume': "continue from a checkpoint path, or 'latest' of this run_name",
    'overwrite': "start afresh: delete this run_name's earlier checkpoints, logs, plot and export (a run whose "
                 "name has files is refused without this or resume)",
    'export': 'write Hugging Face directories of both models at the end',
    'plot': 'plot the curves to {run_name}.png at the end',
    'log_every': 'a CSV (and W&B) row every N steps',
    'eval_every': 'steps between held-out evaluations (None: steps // 20)',
    'logger': "'wandb' to log to Weights & Biases too; None: the CSV log only",
    'wandb_mode': "'online', 'offline' (no network) or 'disabled'; None: wandb's own (WANDB_MODE)",
    'max_nonfinite': 'stop after this many consecutive non-finite losses',
    'device': "'cpu', 'cuda', 'cuda:1' ...; None: cuda:0 when CUDA is available, else cpu",
    'precision': f"{', '.join(PRECISIONS)}; auto: bf16 on GPUs that have it, else fp16; fp32 on CPU",
    'compile': "torch.compile the forward: true (CUDA graphs on CUDA, Inductor's default elsewhere) or a mode name",
    'static_shapes': 'fixed mask slots, max_length batches, no host sync in the step; None: on CUDA or with compile',
    'pad_to_max_length': 'pad every batch to max_length',
    'grad_accum': 'micro-batches per optimizer step (bs stays the batch per step)',
    'num_workers': 'dataloader worker processes (the default is 3 or the CPU count, whichever is less)',
}


def _allowed(name: str, value: Any, allowed: Iterable[Any]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(map(repr, allowed))}")


def validate(c: MyConfig) -> MyConfig:
    """Check every value a run depends on; raise `ValueError` naming the key and the fix."""
    from pretrain.prepare.corpus import check_data_name

    _allowed('size', c.size, SIZES)
    _allowed('objective', c.objective, OBJECTIVES)
    _allowed('sampling', c.sampling, SAMPLINGS)
    _allowed('schedule', c.schedule, SCHEDULES)
    _allowed('logger', c.logger, LOGGERS)
    _allowed('precision', c.get('precision', 'auto'), PRECISIONS)
    _allowed('wandb_mode', c.get('wandb_mode'), WANDB_MODES)
    if not (isinstance(c.get('compile', False), bool) or c.get('compile') in COMPILE_MODES[2:]):
        raise ValueError(f"unknown compile {c.get('compile')!r}; allowed: {', '.join(map(repr, COMPILE_MODES))}")
    if isinstance(c.datas, str) or not c.datas:
        raise ValueError(f"datas must be a non-empty list of data names or paths, got {c.datas!r}")
    for data in c.datas:
        check_data_name(data)
    if c.objective == 'mlm' and (c.get('init_generator') or c.get('init_discriminator')):
        raise ValueError("init_generator/init_discriminator continue an ELECTRA pair; objective 'mlm' trains one "
                         "model from scratch: drop them or use objective='electra'")
    if c.get('static_shapes') and not c.get('exact_mask_count', True):
        raise ValueError("static_shapes needs exact_mask_count=True (Bernoulli masking can overflow the mask slots)")
    if c.get('compile') and not c.get('static_shapes'):
        raise ValueError("compile needs static_shapes=True (one shape per step, no data-dependent indexing)")
    for key in BOOL_KEYS:
        if not isinstance(c.get(key, False), bool) and not (key in ('static_shapes', 'adam_bias_correction') and c.get(key) is None):
            raise ValueError(f"{key} must be true or false, got {c.get(key)!r}")
    for key, low in INT_KEYS.items():
        v = c.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < low):
            raise ValueError(f"{key} must be an integer >= {low}, got {v!r}")
    wd = c.get('weight_decay', 0.01)
    if not isinstance(wd, (int, float)) or isinstance(wd, bool) or not 0 <= wd < 1:
        raise ValueError(f"weight_decay must be a number in [0, 1), got {wd!r}")
    for key, low, high in (('mask_prob', 0, 1), ('lr', 0, math.inf), ('clip', 0, math.inf)):
        v = c.get(key)
        if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or not low < v < high):
            raise ValueError(f"{key} must be a number in ({low}, {high}), got {v!r}")
    if c.get('max_predictions') is not None and c.get('max_length') and c.max_predictions > c.max_length:
        raise ValueError(f"max_predictions ({c.max_predictions}) cannot exceed max_length ({c.max_length})")
    if c.get('overwrite') and c.get('resume'):
        raise ValueError("overwrite deletes the run's checkpoints and resume continues from them; give one of the two")
    for key in PATH_KEYS:
        if c.get(key) is not None and not isinstance(c.get(key), str):
            raise ValueError(f"{key} must be a path (a string), got {c.get(key)!r}")
    vs = c.get('valid_size')
    if vs is not None and (isinstance(vs, bool) or not (isinstance(vs, int) and vs > 0 or isinstance(vs, float) and 0 < vs < 1)):
        raise ValueError(f"valid_size must be a positive count or a fraction in (0, 1), got {vs!r}")
    mlc = c.get('min_line_chars', 0)
    if not (isinstance(mlc, int) and mlc >= 0 or isinstance(mlc, dict) and set(mlc) <= {'ja', 'default'}
            and all(isinstance(v, int) and v >= 0 for v in mlc.values())):
        raise ValueError(f"min_line_chars must be a non-negative int or {{'ja': n, 'default': m}}, got {mlc!r}")
    if c.bs % c.get('grad_accum', 1):
        raise ValueError(f"bs {c.bs} is not divisible by grad_accum {c.grad_accum}; each micro-batch must be bs / grad_accum")
    if not 8 <= c.max_length <= 512:
        raise ValueError(f"max_length must be in [8, 512] (512 position embeddings), got {c.max_length}")
    for key in ('gen_smooth_label', 'disc_smooth_label'):
        v = c[key]
        if v is not False and not (isinstance(v, float) and 0 < v < 1):
            raise ValueError(f"{key} must be False, True (0.1) or a float in (0, 1), got {v!r}")
    lw = c.get('loss_weights', (1.0, 50.0))
    if len(lw) != 2 or not all(isinstance(w, (int, float)) and w >= 0 for w in lw):
        raise ValueError(f"loss_weights must be two non-negative numbers (generator, discriminator), got {lw!r}")
    if any(not (isinstance(p, float) and 0 < p <= 1 or isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= c.steps)
           for p in c.get('save_points') or []):
        raise ValueError(f"save_points must be fractions in (0, 1] or step counts in [1, steps], got {c.save_points!r}")
    return c


def derive(c: MyConfig) -> MyConfig:
    """Fill the values the seed's notebook derives: seed, run_name, label smoothing, and the
    size-dependent recipe values (only those not already set)."""
    if c.size not in SIZES:
        _allowed('size', c.size, SIZES)
    if not c.get('seed'):
        c.seed = random.randint(0, 999999)
    if not c.get('base_run_name'):
        c.base_run_name = 'run'
    c.run_name = c.get('run_name') or f'{c.base_run_name}_{c.seed}'
    for key in ('gen_smooth_label', 'disc_smooth_label'):
        if c.get(key) is True:
            c[key] = 0.1
    recipe = SIZES[c.size]
    for key in ('mask_prob', 'lr', 'bs', 'steps', 'max_length', 'warmup_steps', 'generator_size_divisor'):
        if c.get(key) is None:
            c[key] = recipe[key]
    if c.get('adam_bias_correction') is None:
        c.adam_bias_correction = c.warmup_steps < SHORT_WARMUP
    if c.get('max_predictions') is None:
        c.max_predictions = max_predictions_per_seq(c.mask_prob, c.max_length)
    if c.get('valid_size') and c.get('eval_every') is None:
        c.eval_every = max(1, c.steps // 20)
    if c.get('device') is None:
        import torch  # here, not at the top: the config module stays free of torch
        c.device = 'cuda:0' if torch.cuda.is_available() else 'cpu'
    if c.get('static_shapes') is None:  # a compiled step needs one shape per step
        c.static_shapes = str(c.device).startswith('cuda') or c.get('compile', False) is not False
    return c


def get_config(size: str = 'small', datas: list[str] | None = None, seed: int | None = 11081,
               **overrides: Any) -> MyConfig:
    """The full vanilla config for `size`, with `overrides` applied, validated (`resolve`).

    Unknown keys raise `ValueError` listing the known ones, so a typo never goes unnoticed.
    """
    return resolve(MyConfig(size=size, seed=seed, datas=datas, **overrides))


def resolve(c: dict) -> MyConfig:
    """The one place a config is completed: every key of `DEFAULTS` filled in (values already
    set win), the recipe's derived values computed (`derive`: lr, bs, max_predictions,
    static_shapes...), every value validated. Returns a new `MyConfig`; resolving a resolved
    config gives the same one. Every entry point (`pretrain`, `build_learner`, `preprocess`,
    `get_dataloader`, `get_optim`, `get_scheduler`) resolves what it is given, so a config built
    by hand as the seed notebook does works too; the code behind them reads resolved values."""
    unknown = sorted(set(c) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown config key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(DEFAULTS))}")
    r = MyConfig(DEFAULTS)
    r.update(c)
    r.datas = list(r.datas) if isinstance(r.datas, (list, tuple)) else (r.datas or list(DEFAULTS['datas']))
    r.save_points = list(r.save_points or [])
    r.loss_weights = tuple(r.loss_weights)
    return validate(derive(r))


def electra_configs(c: MyConfig, hf_tokenizer) -> tuple[ElectraConfig, ElectraConfig]:
    """(discriminator, generator) `ElectraConfig`s for `c.size`, built locally (no hub).

    The generator keeps the number of layers and shrinks hidden size, heads and FFN by
    `generator_size_divisor` (the public electra-small checkpoints are "small++" and do not).
    """
    from transformers import ElectraConfig  # here: the config module stays free of torch and transformers
    arch = SIZES[c.size]
    common = dict(vocab_size=len(hf_tokenizer), embedding_size=arch['embedding_size'],
                  num_hidden_layers=arch['num_hidden_layers'], hidden_act='gelu',
                  hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                  max_position_embeddings=512, type_vocab_size=2, initializer_range=0.02,
                  layer_norm_eps=1e-12, pad_token_id=hf_tokenizer.pad_token_id)
    div = c.get('generator_size_divisor') or arch['generator_size_divisor']
    disc = ElectraConfig(hidden_size=arch['hidden_size'], num_attention_heads=arch['num_attention_heads'],
                         intermediate_size=arch['intermediate_size'], **common)
    gen = ElectraConfig(hidden_size=int(arch['hidden_size'] / div),
                        num_attention_heads=max(1, arch['num_attention_heads'] // div),
                        intermediate_size=arch['intermediate_size'] // div, **common)
    return disc, gen
