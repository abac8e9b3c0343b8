"""The whole pre-training flow of `Pretrain.ipynb` as functions: the notebook calls them cell by
cell, `python -m pretrain` calls `pretrain(c)`."""
from __future__ import annotations

import datasets
import torch
from fastai.data.core import DataLoaders
from fastai.learner import Learner

from _utils.cli import first_line
from _utils.gradient_clipping import GradientClipping
from pretrain._utils.electra_dataprocessor import ELECTRADataProcessor
from pretrain._utils.run_steps import RunSteps
from pretrain._utils.steps import micro_batch_size, optimizer_step
from pretrain.run.checkpoint import check_same_run, resume
from pretrain.run.checkpoint_files import find_resume
from pretrain.run.safe_load import load_checkpoint
from pretrain.run.compile_step import compile_model
from _utils.paths import repo_path
from pretrain.config import SIZES, MyConfig, electra_configs, resolve, setting
from pretrain.grad_accum import accumulate
from pretrain.prepare.corpus import check_data_name, default_cache_dir, examples_cache, load_corpus
from pretrain.run.distributed import DataParallel, init_distributed, rank0_first, teardown, unwrap
from pretrain.run.export import export_model
from pretrain.run.flops import flops_per_step
from pretrain.run.model_card import run_facts
from pretrain.get_dataloaders import get_dataloader
from pretrain.run.health import StopOnNonFinite
from pretrain.run.log_cb import CSVLogger, replace_recorder
from pretrain.masked_lm_cb import MaskedLMCallback
from pretrain.models import ELECTRAModel, MLMModel, build_electra, build_mlm, from_pretrained_pair, loss_from_config
from pretrain.optim import get_optim
from pretrain.tools.plot import plot_run
from pretrain.run.progress import replace_progress
from pretrain.run.run_dir import RunDir
from pretrain.run.run_lock import claim_run
from _utils.rng import set_seed  # noqa: F401  (the seed notebook imports it from here)
from pretrain.scheduler import get_scheduler
from pretrain.prepare.tokenizer import load_tokenizer
from pretrain.prepare.vocab import vocab_hash
from pretrain.run.validation_cb import HeldOutEval, split_validation


def preprocess(c: MyConfig, hf_tokenizer, num_proc: int | None = None) -> datasets.Dataset:
    """Examples for every corpus in `c.datas`, concatenated (columns `input_ids`,
    `sentA_length`, `doc_id`). Each corpus is cached at
    `{data_dir}/preprocess/{name}_{docs}_{max_length}/electra.arrow` and reused; a large text
    corpus is first streamed into `{data_dir}/preprocess/corpus/` (`load_corpus`). Fewer examples
    than one batch is a `ValueError` saying where the tokens went (`check_enough_examples`)."""
    data_dir, max_length = setting(c, 'data_dir'), setting(c, 'max_length')
    dsets, n_docs, stats = [], 0, {}
    for data in setting(c, 'datas'):
        docs = load_corpus(data, cache_dir=default_cache_dir(data_dir))
        processor = ELECTRADataProcessor(docs, hf_tokenizer=hf_tokenizer, max_length=max_length,
                                         min_line_chars=setting(c, 'min_line_chars'), seed=setting(c, 'seed'),
                                         split_sentences=setting(c, 'split_sentences'))
        dsets.append(processor.map(cache_file_name=str(examples_cache(data_dir, data, len(docs), max_length)),
                                   num_proc=num_proc or setting(c, 'num_proc')))
        n_docs += len(docs)
        for k, v in (processor.stats or {}).items():
            stats[k] = stats.get(k, 0) + v
    dset = datasets.concatenate_datasets(dsets) if len(dsets) > 1 else dsets[0]
    check_enough_examples(len(dset), n_docs, stats, c)
    return dset


def check_enough_examples(n_examples: int, n_docs: int, stats: dict[str, int], c: MyConfig) -> None:
    """A one-line `ValueError` when the corpora give fewer examples than one batch, saying where
    the tokens went (`stats`: the processors' token counts): an example holds at most
    `max_length` tokens and a line is one sentence, so a long line without breaks is one
    truncated example."""
    if n_examples >= setting(c, 'bs'):
        return
    kept, cut, dropped = (stats.get(k, 0) for k in ('kept_tokens', 'truncated_tokens', 'filtered_tokens'))
    total = kept + cut + dropped
    why = ''
    if cut > total / 2:
        why = (f"; {cut:,} of their {total:,} tokens were cut off: a line is one sentence (Japanese ones are split at "
               f"。！？) and an example holds at most max_length={setting(c, 'max_length')} tokens, so a long line without breaks "
               f"gives one truncated example; put one sentence per line")
    elif dropped > total / 2:
        why = f"; {dropped:,} of their {total:,} tokens were in lines shorter than min_line_chars={setting(c, 'min_line_chars')!r}"
    raise ValueError(f"the corpus {', '.join(map(str, setting(c, 'datas')))} gives {n_examples} example(s) from "
                     f"{n_docs} document(s) but one batch needs bs={setting(c, 'bs')}{why}; use a smaller bs or a "
                     f"bigger corpus")


def resolve_precision(c: MyConfig) -> str:
    """'fp32' on CPU; on CUDA, 'auto' is bf16 where the GPU supports it, else fp16."""
    precision = c.precision
    on_cuda = str(c.device).startswith('cuda')
    if not on_cuda:
        if precision in ('fp16', 'bf16'):
            raise ValueError(f"precision {precision!r} needs a CUDA device; use precision='fp32' on {c.device}")
        return 'fp32'
    if precision == 'auto':
        return 'bf16' if torch.cuda.is_bf16_supported() else 'fp16'
    return precision


def check_device(c: MyConfig) -> torch.device:
    try:
        device = torch.device(c.device)
    except RuntimeError:
        raise ValueError(f"unknown device {c.device!r}; use 'cpu', 'cuda' or 'cuda:N'") from None
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
    try:
        return wandb.init(name=c.run_name, project='electra_pretrain', config={**c}, mode=c.wandb_mode)
    except Exception as e:  # wandb raises UsageError/CommError without a login or a network
        raise ValueError(f"Weights & Biases could not start ({first_line(e)}); "
                         f"log in with `wandb login`, or set wandb_mode='offline'") from None


def build_models(c: MyConfig, hf_tokenizer) -> ELECTRAModel | MLMModel:
    """Fresh models for `c.size`, or the local Hugging Face pair in `c.init_generator` /
    `c.init_discriminator` to continue pre-training from (lowest `c.freeze_layers` frozen).
    With `c.objective == 'mlm'`, one masked-LM model of the discriminator's architecture."""
    max_predictions = c.max_predictions if c.static_shapes else None
    if c.objective == 'mlm':
        return MLMModel(build_mlm(electra_configs(c, hf_tokenizer)[0]), hf_tokenizer, max_predictions=max_predictions)
    if c.init_generator or c.init_discriminator:
        if not (c.init_generator and c.init_discriminator):
            raise ValueError("continued pre-training needs both init_generator and init_discriminator directories")
        generator, discriminator = from_pretrained_pair(c.init_generator, c.init_discriminator, c.freeze_layers)
        arch, got = SIZES[c.size], discriminator.config
        if (got.hidden_size, got.num_hidden_layers) != (arch['hidden_size'], arch['num_hidden_layers']):
            raise ValueError(f"the init models are {got.num_hidden_layers} layers x {got.hidden_size} wide but size "
                             f"{c.size!r} is {arch['num_hidden_layers']} x {arch['hidden_size']}; pass the matching --size")
        if discriminator.config.vocab_size != len(hf_tokenizer):
            raise ValueError(f"the models have a vocabulary of {discriminator.config.vocab_size} but tokenizer "
                             f"{c.tokenizer!r} has {len(hf_tokenizer)}; use the tokenizer saved with the models")
    else:
        generator, discriminator = build_electra(*electra_configs(c, hf_tokenizer))
    return ELECTRAModel(generator, discriminator, hf_tokenizer, sampling=c.sampling, max_predictions=max_predictions)


def build_learner(c: MyConfig, dls: DataLoaders, hf_tokenizer, electra_model: ELECTRAModel | MLMModel | None = None,
                  rank: int = 0, valid_dset: datasets.Dataset | None = None, logger_run=None) -> Learner:
    """The fastai `Learner` with the ELECTRA loss and optimizer and the callbacks of the recipe:
    masking, exact step count with checkpoints, non-finite guard, schedule, CSV log (rank 0),
    held-out metrics (with a `valid_dset`), then `prepare_learner`'s precision, clipping and
    progress (all added to the learner, so `learn.fit` needs no extra cbs). Both logs also go to
    `logger_run`, a W&B run already started (`wandb_run`), else to one started here when
    `c.logger == 'wandb'`. Pretrain.ipynb builds the same parts cell by cell."""
    electra_model = electra_model or build_models(c, hf_tokenizer)
    cbs = [MaskedLMCallback.from_config(c, hf_tokenizer), RunSteps.from_config(c, rank), StopOnNonFinite.from_config(c),
           get_scheduler(c)]
    if rank == 0:
        run = logger_run if logger_run is not None else wandb_run(c)
        cbs.append(CSVLogger.from_config(c, run))
        if valid_dset is not None:
            cbs.append(HeldOutEval.from_config(c, valid_dset, hf_tokenizer, wandb_run=run))
    checkpoint_dir = repo_path(c.checkpoint_dir)
    learn = Learner(dls, electra_model, loss_func=loss_from_config(c), opt_func=get_optim(c),
                    path=checkpoint_dir.parent, model_dir=checkpoint_dir.name, cbs=cbs)
    return prepare_learner(learn, c, hf_tokenizer, rank)


def prepare_learner(learn: Learner, c: MyConfig, hf_tokenizer, rank: int = 0) -> Learner:
    """What every ELECTRA `Learner` gets once its model, loss and callbacks are in, for the CLI,
    the notebook and the benchmark alike: data on `c.device`, the config and vocabulary recorded
    for checkpoints, gradient accumulation, mixed precision (the one place it is applied),
    clipping, `StepProgress` and `StepRecorder` instead of fastai's per-step host reads, and
    `torch.compile`. Returns `learn`."""
    device = check_device(c)
    learn.dls.to(device)
    learn.config, learn.vocab_hash = c, vocab_hash(hf_tokenizer)  # recorded in checkpoints
    accumulate(learn, setting(c, 'grad_accum'))
    precision = resolve_precision(c)
    if precision == 'fp16':
        learn.to_fp16(init_scale=2.**11)  # the seed's initial loss scale
    elif precision == 'bf16':
        learn.to_bf16()
    learn.add_cb(GradientClipping(setting(c, 'clip')))
    replace_progress(learn, 'off' if rank else None)  # one line in optimizer steps, on rank 0 only
    replace_recorder(learn)  # fastai's Recorder copies the loss to the host every step
    compile_model(learn, setting(c, 'compile'), device)
    return learn


def pretrain(c: MyConfig) -> Learner | None:
    """Tokenizer -> examples -> dataloader -> Learner -> `c.steps` steps of pre-training, resumed
    from `c.resume` if given, data-parallel when launched by torchrun, exported at the end.
    Returns None when resuming a run that had already finished."""
    c = resolve(c)  # the entry point: the only place besides get_config that completes a config
    check_device(c)
    for data in c.datas:  # a corpus is checked where it is read; reading starts here, before any other work
        check_data_name(data)
    rank, world = init_distributed(c)
    micro_batch_size(c, world)  # a step's batch splits evenly over the processes: checked before any work
    run_lock = None
    try:
        # before any work: writable directories, one process per run name, earlier files kept unless asked
        run_lock = claim_run(c, rank)
        hf_tokenizer = load_tokenizer(c.tokenizer)
        resume_from = resume_state = None
        if c.resume:  # before the data work, so a wrong path fails at once
            resume_from = find_resume(c.resume, repo_path(c.checkpoint_dir), c.run_name)
            resume_state = load_checkpoint(resume_from)
            check_same_run(resume_state, c, str(resume_from))
            if resume_state['step'] > c.steps:
                raise ValueError(f"{resume_from} is at step {resume_state['step']} but the run has steps={c.steps}; "
                                 f"give the run's steps (or more)")
            if resume_state['step'] == c.steps:
                print(f"run {c.run_name} already finished at step {c.steps} ({resume_from}); nothing to resume")
                return None
        # W&B starts before the data work: a missing package, login or network fails at once
        logger_run = wandb_run(c) if rank == 0 else None
        train_dset = rank0_first(lambda: preprocess(c, hf_tokenizer))
        valid_dset = None
        if c.valid_size:
            train_dset, valid_dset = split_validation(train_dset, c.valid_size, c.seed)
        set_seed(c.seed + rank)  # same data order on every rank (loader seed), different masks
        dl = get_dataloader(c, hf_tokenizer, train_dset, rank=rank, world_size=world)
        learn = build_learner(c, DataLoaders(dl, path='.'), hf_tokenizer, rank=rank, valid_dset=valid_dset,
                              logger_run=logger_run)
        if resume_from is not None:
            step = resume(learn, resume_state, hf_tokenizer, str(resume_from))
            if rank == 0:
                print(f'resuming {c.run_name} from {resume_from} at step {step}')
        if world > 1:
            learn.add_cb(DataParallel())
        torch.backends.cudnn.benchmark = True
        learn.fit(9999)  # RunSteps stops the fit after exactly c.steps steps
        if c.export and rank == 0:
            facts = run_facts(c, optimizer_step(learn), flops_per_step(learn), hf_tokenizer)
            out = export_model(learn.model, hf_tokenizer, RunDir.from_config(c).export, facts)
            print(f"exported {' and '.join(type(unwrap(learn.model)).PARTS)} to {out}")
        if c.plot and rank == 0:
            print(f"curves plotted to {plot_run(RunDir.from_config(c).train_csv)}")
        return learn
    finally:
        if run_lock is not None:
            run_lock.release()
        teardown()
