"""Checkpoint -> Hugging Face model directories that `transformers` loads as is:
`OUT_DIR/discriminator` (ElectraForPreTraining, the one to fine-tune) and `OUT_DIR/generator`
(ElectraForMaskedLM), each with safetensors weights, config.json and the tokenizer files; for
the MLM baseline (`objective='mlm'`), `OUT_DIR/mlm` (ElectraForMaskedLM, the one to fine-tune)."""
from __future__ import annotations

import argparse
import copy
from pathlib import Path

from transformers import ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining

from pretrain.run.safe_load import load_checkpoint
from pretrain.run.distributed import unwrap
from pretrain.run.model_card import model_card, run_facts
from pretrain.models import ELECTRAModel, MLMModel, tie_embeddings
from _utils.atomic import atomic_directory
from _utils.quiet_transformers import quiet_transformers

# the directory of an export that fine-tuning takes: ELECTRA's discriminator, or the MLM baseline's model
FINETUNED_PARTS = ('discriminator', 'mlm')
FINETUNE_DROPOUT = 0.1  # Google's fine-tuning dropout, whatever dropout pre-training used


def finetuned_model_dir(export_dir: str | Path) -> Path:
    """The model directory of an export that fine-tuning takes (`discriminator/`, or the MLM
    baseline's `mlm/`); a directory holding neither is a one-line error."""
    for part in FINETUNED_PARTS:
        if (Path(export_dir) / part / 'config.json').is_file():
            return Path(export_dir) / part
    raise ValueError(f"{export_dir} holds no exported discriminator/ or mlm/ model; export a checkpoint with "
                     f"`python -m pretrain export CHECKPOINT OUT_DIR`")
from pretrain.prepare.tokenizer import load_tokenizer
from pretrain.prepare.vocab import vocab_hash


def model_from_checkpoint(state: dict, hf_tokenizer) -> ELECTRAModel | MLMModel:
    """The `ELECTRAModel` (or the MLM baseline's `MLMModel`) of a loaded checkpoint, weights and
    sharing restored, in eval mode."""
    configs = state.get('model_configs')
    if not configs:
        raise ValueError("the checkpoint holds no model configs (saved by an older version); cannot rebuild the models")
    if 'mlm' in configs:
        model = MLMModel(ElectraForMaskedLM(ElectraConfig.from_dict(configs['mlm'])), hf_tokenizer)
        model.load_state_dict(state['model'])
        return model.eval()
    generator = ElectraForMaskedLM(ElectraConfig.from_dict(configs['generator']))
    discriminator = ElectraForPreTraining(ElectraConfig.from_dict(configs['discriminator']))
    tie_embeddings(generator, discriminator)
    model = ELECTRAModel(generator, discriminator, hf_tokenizer)
    model.load_state_dict(state['model'])
    return model.eval()


def export(checkpoint: str | Path, out_dir: str | Path, tokenizer: str | Path | None = None) -> Path:
    """Write `out_dir/discriminator` and `out_dir/generator` (the MLM baseline: `out_dir/mlm`) from
    a training checkpoint.

    The tokenizer is the run's (`config['tokenizer']`) unless given; a tokenizer whose
    vocabulary differs from the run's is refused. The directory appears complete or not at all.
    """
    state = load_checkpoint(checkpoint)
    hf_tokenizer = checkpoint_tokenizer(state, tokenizer, Path(checkpoint).name)
    facts = run_facts(state.get('config') or {}, int(state['step']), state.get('flops_per_step'), hf_tokenizer)
    return export_model(model_from_checkpoint(state, hf_tokenizer), hf_tokenizer, out_dir, facts)


def checkpoint_tokenizer(state: dict, tokenizer: str | Path | None, what: str, load=load_tokenizer):
    """The tokenizer of a checkpoint's run (`config['tokenizer']`), or `tokenizer` if given,
    loaded with `load`; one whose vocabulary is not the run's is refused (`what` names the
    checkpoint in the errors)."""
    tok_path = tokenizer or (state.get('config') or {}).get('tokenizer')
    if not tok_path:
        raise ValueError(f"{what} does not name its tokenizer; pass one with --tokenizer DIR")
    hf_tokenizer = load(tok_path)
    if state.get('vocab') and state['vocab'] != vocab_hash(hf_tokenizer):
        raise ValueError(f"tokenizer {str(tok_path)!r} has another vocabulary than the one {what} was trained with; "
                         f"pass the run's tokenizer with --tokenizer DIR")
    return hf_tokenizer


def export_model(electra_model: ELECTRAModel | MLMModel, hf_tokenizer, out_dir: str | Path,
                 facts: dict | None = None) -> Path:
    """Save the models inside (`PARTS`: the generator and discriminator of an `ELECTRAModel`,
    the one model of an `MLMModel`) with the tokenizer, atomically (a `.partial` directory renamed
    at the end); with the run's `facts` (`model_card.run_facts`), a model card README.md in each."""
    model = unwrap(electra_model)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{str(out)!r} is a file; give a directory to export to")
    with atomic_directory(out) as tmp, quiet_transformers():  # no progress bar per saved shard
        for name in model.PARTS:
            part = getattr(model, name)
            part.save_pretrained(str(tmp / name), safe_serialization=True)
            # a run pre-trained without dropout (config `dropout`) still fine-tunes with Google's 0.1
            config = copy.deepcopy(part.config)
            config.hidden_dropout_prob = config.attention_probs_dropout_prob = FINETUNE_DROPOUT
            config.save_pretrained(str(tmp / name))  # over the one save_pretrained wrote
            hf_tokenizer.save_pretrained(str(tmp / name))
            if facts is not None:
                card = model_card(facts, name, getattr(model, name).config)
                (tmp / name / 'README.md').write_text(card, encoding='utf-8')
    return out


def run_export(args: argparse.Namespace) -> int:
    out = export(args.checkpoint, args.out_dir, args.tokenizer)
    print(f"exported {' and '.join(str(p) for p in sorted(out.iterdir()))}")
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser('export', help='write a checkpoint as Hugging Face discriminator/generator (MLM: mlm) directories')
    p.add_argument('checkpoint')
    p.add_argument('out_dir')
    p.add_argument('--tokenizer', default=None, help="default: the run's tokenizer")
    p.set_defaults(func=run_export)
