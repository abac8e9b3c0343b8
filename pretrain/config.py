"""Run configuration: the seed's `MyConfig` dict plus a builder that fills in the vanilla
ELECTRA recipe for a size, validates every value and builds the model configs locally."""
from __future__ import annotations

import math
import os
import random
from typing import TYPE_CHECKING, Any, Iterable


if TYPE_CHECKING:
    from transformers import ElectraConfig

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
# torch.compile's modes; True picks one by device (pretrain/run/compile_step.py)
COMPILE_MODES = (False, True, 'default', 'reduce-overhead', 'max-autotune', 'max-autotune-no-cudagraphs')
INT_KEYS = {'bs': 1, 'steps': 1, 'max_length': 1, 'log_every': 1, 'eval_every': 1, 'grad_accum': 1, 'save_every': 1,
            'keep_last': 1, 'max_nonfinite': 1, 'num_workers': 0, 'num_proc': 1, 'warmup_steps': 0, 'freeze_layers': 0,
            'max_predictions': 1}
PATH_KEYS = ('tokenizer', 'data_dir', 'checkpoint_dir', 'resume', 'init_generator', 'init_discriminator')
REQUIRED_PATHS = ('tokenizer', 'data_dir', 'checkpoint_dir')  # the others: None is 'not used'
MAX_POSITIONS = 512  # BERT's and ELECTRA's position embeddings: the longest input a model takes

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
    'dropout': 0.1,                 # pre-training dropout (Google's 0.1); the export keeps 0.1 for fine-tuning
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
              'exact_mask_count', 'sampling', 'gen_smooth_label', 'disc_smooth_label', 'loss_weights', 'dropout',
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
    'dropout': "hidden and attention dropout during pre-training (Google's 0.1; Cramming's small-budget recipe: 0); "
               "exports keep 0.1 for fine-tuning",
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


def check_allowed(name: str, value: Any, allowed: Iterable[Any]) -> None:
    """A one-line `ValueError` unless `value` is one of `allowed` (a config key's, or an argument's)."""
    if value not in list(allowed):  # a list: an unhashable value is just not allowed, not a TypeError
        raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(map(repr, allowed))}")


def _number(key: str, v: Any, low: float, high: float, low_open: bool = True) -> None:
    if (not isinstance(v, (int, float)) or isinstance(v, bool) or not (low < v if low_open else low <= v) or not v < high):
        raise ValueError(f"{key} must be a number in {'(' if low_open else '['}{low}, {high}), got {v!r}")


def check_setting(key: str, v: Any) -> None:
    """A one-line `ValueError` naming `key` and what it allows, unless `v` is a valid value of it on
    its own (`check_together` checks the keys that constrain each other)."""
    allowed = {'size': SIZES, 'objective': OBJECTIVES, 'sampling': SAMPLINGS, 'schedule': SCHEDULES,
               'logger': LOGGERS, 'precision': PRECISIONS, 'wandb_mode': WANDB_MODES}
    if key in allowed:
        check_allowed(key, v, allowed[key])
    elif key == 'compile':
        if not (isinstance(v, bool) or isinstance(v, str) and v in COMPILE_MODES[2:]):
            raise ValueError(f"unknown compile {v!r}; allowed: {', '.join(map(repr, COMPILE_MODES))}")
    elif key == 'datas':
        if isinstance(v, str) or not v or not all(isinstance(d, str) for d in v):
            raise ValueError(f"datas must be a non-empty list of data names or paths, got {v!r}")
    elif key in BOOL_KEYS:
        if not isinstance(v, bool):
            raise ValueError(f"{key} must be true or false, got {v!r}")
    elif key in INT_KEYS:
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < INT_KEYS[key]):
            raise ValueError(f"{key} must be an integer >= {INT_KEYS[key]}, got {v!r}")
        if key == 'max_length' and v is not None and not 8 <= v <= MAX_POSITIONS:
            raise ValueError(f"max_length must be in [8, {MAX_POSITIONS}] ({MAX_POSITIONS} position embeddings), got {v}")
    elif key in ('weight_decay', 'dropout'):
        _number(key, v, 0, 1, low_open=False)
    elif key in ('mask_prob',):
        _number(key, v, 0, 1)
    elif key in ('lr', 'clip'):
        _number(key, v, 0, math.inf)
    elif key in PATH_KEYS:
        if not isinstance(v, str) and (v is not None or key in REQUIRED_PATHS):
            raise ValueError(f"{key} must be a path (a string), got {v!r}")
    elif key == 'valid_size':
        if v is not None and (isinstance(v, bool) or not (isinstance(v, int) and v > 0 or isinstance(v, float) and 0 < v < 1)):
            raise ValueError(f"valid_size must be a positive count or a fraction in (0, 1), got {v!r}")
    elif key == 'min_line_chars':
        if not (isinstance(v, int) and v >= 0 or isinstance(v, dict) and set(v) <= {'ja', 'default'}
                and all(isinstance(n, int) and n >= 0 for n in v.values())):
            raise ValueError(f"min_line_chars must be a non-negative int or {{'ja': n, 'default': m}}, got {v!r}")
    elif key in ('gen_smooth_label', 'disc_smooth_label'):
        if v is not False and not (isinstance(v, float) and 0 < v < 1):
            raise ValueError(f"{key} must be False, True (0.1) or a float in (0, 1), got {v!r}")
    elif key == 'seed':  # after the draw for 0/None: numpy's and torch's generators take [0, 2**32)
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 2 ** 32:
            raise ValueError(f"seed must be an integer in [0, 2**32) (0 or None draws one), got {v!r}")
    elif key == 'save_points':
        if not isinstance(v, list):
            raise ValueError(f"save_points must be a list of fractions in (0, 1] or step counts, got {v!r}")
    elif key == 'loss_weights':
        if not isinstance(v, tuple) or len(v) != 2 or not all(isinstance(w, (int, float)) and w >= 0 for w in v):
            raise ValueError(f"loss_weights must be two non-negative numbers (generator, discriminator), got {v!r}")


def save_point_steps(save_points: Iterable[float | int], steps: int) -> dict[int, list[str]]:
    """The seed's save points as {step: [checkpoint tags]}: a fraction in (0, 1] of `steps` (tag
    '6.25%'; a fraction of a short run that rounds to step 0 saves after step 1) or a step count in
    [1, steps] (tagged by its share of the run, in the fewest digits that still name that step: step
    1253 of 25067 is '5%', not '4.998603741971516%'). A point outside the run is a one-line error."""
    points: dict[int, list[str]] = {}
    for p in save_points:
        if not (isinstance(p, float) and 0 < p <= 1 or isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= steps):
            raise ValueError(f"save point {p!r} is outside the run of {steps} steps: save_points are fractions in (0, 1] "
                             f"or step counts in [1, steps]")
        step = p if isinstance(p, int) else max(1, int(steps * p))
        points.setdefault(step, []).append(_fraction_tag(p) if isinstance(p, float) else _share_tag(step, steps))
    return points


def _fraction_tag(p: float) -> str:
    """The seed's tag of fraction `p` ('6.25%', '100.0%'), without float noise (0.07 * 100 is
    7.000000000000001) or an exponent (run_dir.CHECKPOINT_TAG)."""
    share = round(p * 100, 10)
    text = repr(share)
    return f"{text if 'e' not in text else f'{share:.10f}'.rstrip('0')}%"


def _share_tag(step: int, steps: int) -> str:
    share = step / steps * 100
    for decimals in range(17):  # fixed-point: an exponent ('5e-05%') is no checkpoint tag (run_dir.CHECKPOINT_TAG)
        tag = f'{share:.{decimals}f}'
        if round(float(tag) * steps / 100) == step:
            return f'{tag}%'
    return f'{share:.17f}%'


def _device(c) -> str:
    import torch  # here, not at the top: the config module stays free of torch
    return 'cuda:0' if torch.cuda.is_available() else 'cpu'


def _seed(c) -> int:
    raise ValueError("seed is not set; build the config with get_config (which draws one when seed is None or 0) "
                     "or give c.seed a number")


# How a key left out (or None) gets its value: the size's recipe, or other keys.
DERIVED = {
    **{key: (lambda c, key=key: SIZES[setting(c, 'size')][key])
       for key in ('mask_prob', 'lr', 'bs', 'steps', 'max_length', 'warmup_steps', 'generator_size_divisor')},
    'adam_bias_correction': lambda c: setting(c, 'warmup_steps') < SHORT_WARMUP,
    'max_predictions': lambda c: max_predictions_per_seq(setting(c, 'mask_prob'), setting(c, 'max_length')),
    'eval_every': lambda c: max(1, setting(c, 'steps') // 20) if setting(c, 'valid_size') else None,
    'device': _device,
    # a compiled step needs one shape per step
    'static_shapes': lambda c: str(setting(c, 'device')).startswith('cuda') or setting(c, 'compile') is not False,
    'base_run_name': lambda c: 'run',
    'run_name': lambda c: f"{setting(c, 'base_run_name')}_{setting(c, 'seed')}",
    'seed': _seed,
}


def setting(c: dict, key: str) -> Any:
    """Config key `key` of `c`, checked (`check_setting`): the value `c` holds, else its default:
    the size's recipe value, or one derived from other keys (`DERIVED`), or `DEFAULTS`'. This is
    how every builder reads a config, so a config built by hand (the seed notebook's `MyConfig`,
    with a dozen keys) works with the builders that need only those; `resolve` applies it to every
    key at once."""
    if key not in DEFAULTS:
        raise ValueError(f"unknown config key {key!r}; known keys: {', '.join(sorted(DEFAULTS))}")
    v = c.get(key, DEFAULTS[key])
    if key in DERIVED and (not v if key in ('seed', 'base_run_name', 'run_name') else v is None):
        v = DERIVED[key](c)
    if key in ('gen_smooth_label', 'disc_smooth_label') and v is True:
        v = 0.1  # the seed notebook's rule
    elif key == 'datas' and isinstance(v, (list, tuple)):
        v = list(v)
    elif key == 'save_points' and (v is None or isinstance(v, (list, tuple))):
        v = list(v or [])
    elif key == 'loss_weights' and isinstance(v, list):
        v = tuple(v)
    check_setting(key, v)
    return v


def check_together(c: MyConfig) -> None:
    """The checks of keys that constrain each other, on a resolved config."""
    if c.objective == 'mlm' and (c.init_generator or c.init_discriminator):
        raise ValueError("init_generator/init_discriminator continue an ELECTRA pair; objective 'mlm' trains one "
                         "model from scratch: drop them or use objective='electra'")
    if c.static_shapes and not c.exact_mask_count:
        raise ValueError("static_shapes needs exact_mask_count=True (Bernoulli masking can overflow the mask slots)")
    if c.compile and not c.static_shapes:
        raise ValueError("compile needs static_shapes=True (one shape per step, no data-dependent indexing)")
    if c.max_predictions > c.max_length:
        raise ValueError(f"max_predictions ({c.max_predictions}) cannot exceed max_length ({c.max_length})")
    if c.overwrite and c.resume:
        raise ValueError("overwrite deletes the run's checkpoints and resume continues from them; give one of the two")
    check_accumulation(c.bs, c.grad_accum)
    save_point_steps(c.save_points, c.steps)


def check_accumulation(bs: int, grad_accum: int, world_size: int = 1) -> None:
    """A step's `bs` examples split evenly over `world_size` processes x `grad_accum` micro-batches."""
    if bs % (grad_accum * world_size):
        over = f"{world_size} processes x {grad_accum} micro-batches" if world_size > 1 else f"grad_accum {grad_accum}"
        raise ValueError(f"bs {bs} is not divisible by {over}; each micro-batch must be bs / (processes x grad_accum)")


def get_config(size: str = 'small', datas: list[str] | None = None, seed: int | None = 11081,
               **overrides: Any) -> MyConfig:
    """The full vanilla config for `size`, with `overrides` applied, validated (`resolve`).

    Unknown keys raise `ValueError` listing the known ones, so a typo never goes unnoticed.
    """
    return resolve(MyConfig(size=size, seed=seed, datas=list(DEFAULTS['datas']) if datas is None else datas, **overrides))


def resolve(c: dict) -> MyConfig:
    """The one place a config is completed, called by the entry points only (`get_config`,
    `pretrain`; tests/test_architecture.py checks it): every key of `DEFAULTS` read through
    `setting` (values set win; the recipe's and derived values fill the rest; each checked), a
    seed drawn when none is set, then the keys that constrain each other checked. Returns a new
    `MyConfig`; resolving a resolved config gives the same one. A corpus is checked where it is
    read (`prepare.corpus`), not here."""
    unknown = sorted(set(c) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown config key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(DEFAULTS))}")
    c = dict(c)
    if not c.get('seed', DEFAULTS['seed']):
        c['seed'] = random.randint(0, 999999)
    r = MyConfig({key: setting(c, key) for key in DEFAULTS})
    check_together(r)
    return r


def electra_configs(c: MyConfig, hf_tokenizer) -> tuple[ElectraConfig, ElectraConfig]:
    """(discriminator, generator) `ElectraConfig`s for `c.size`, built locally (no hub).

    The generator keeps the number of layers and shrinks hidden size, heads and FFN by
    `generator_size_divisor` (the public electra-small checkpoints are "small++" and do not).
    """
    from transformers import ElectraConfig  # here: the config module stays free of torch and transformers
    arch, dropout = SIZES[setting(c, 'size')], setting(c, 'dropout')
    common = dict(vocab_size=len(hf_tokenizer), embedding_size=arch['embedding_size'],
                  num_hidden_layers=arch['num_hidden_layers'], hidden_act='gelu',
                  hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
                  max_position_embeddings=MAX_POSITIONS, type_vocab_size=2, initializer_range=0.02,
                  layer_norm_eps=1e-12, pad_token_id=hf_tokenizer.pad_token_id)
    div = setting(c, 'generator_size_divisor')
    disc = ElectraConfig(hidden_size=arch['hidden_size'], num_attention_heads=arch['num_attention_heads'],
                         intermediate_size=arch['intermediate_size'], **common)
    gen = ElectraConfig(hidden_size=int(arch['hidden_size'] / div),
                        num_attention_heads=max(1, arch['num_attention_heads'] // div),
                        intermediate_size=arch['intermediate_size'] // div, **common)
    return disc, gen
