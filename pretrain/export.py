"""Checkpoint -> Hugging Face model directories that `transformers` loads as is:
`OUT_DIR/discriminator` (ElectraForPreTraining, the one to fine-tune) and `OUT_DIR/generator`
(ElectraForMaskedLM), each with safetensors weights, config.json and the tokenizer files."""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from transformers import ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining

from .checkpoint import load_checkpoint, unwrap
from .models import ELECTRAModel, tie_embeddings
from .paths import remove_stale_temps, temp_sibling
from .tokenizer import load_tokenizer, vocab_hash


def model_from_checkpoint(state: dict, hf_tokenizer) -> ELECTRAModel:
    """The `ELECTRAModel` of a loaded checkpoint, weights and sharing restored."""
    configs = state.get('model_configs')
    if not configs:
        raise ValueError("the checkpoint holds no model configs (saved by an older version); cannot rebuild the models")
    generator = ElectraForMaskedLM(ElectraConfig.from_dict(configs['generator']))
    discriminator = ElectraForPreTraining(ElectraConfig.from_dict(configs['discriminator']))
    tie_embeddings(generator, discriminator)
    model = ELECTRAModel(generator, discriminator, hf_tokenizer)
    model.load_state_dict(state['model'])
    return model.eval()


def export(checkpoint: str | Path, out_dir: str | Path, tokenizer: str | Path | None = None) -> Path:
    """Write `out_dir/discriminator` and `out_dir/generator` from a training checkpoint.

    The tokenizer is the run's (`config['tokenizer']`) unless given; a tokenizer whose
    vocabulary differs from the run's is refused. The directory appears complete or not at all.
    """
    state = load_checkpoint(checkpoint)
    hf_tokenizer = checkpoint_tokenizer(state, tokenizer, Path(checkpoint).name)
    return export_model(model_from_checkpoint(state, hf_tokenizer), hf_tokenizer, out_dir)


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


def export_model(electra_model: ELECTRAModel, hf_tokenizer, out_dir: str | Path) -> Path:
    """Save the two models of an `ELECTRAModel` with the tokenizer, atomically (a `.partial`
    directory renamed at the end)."""
    model = unwrap(electra_model)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{str(out)!r} is a file; give a directory to export to")
    tmp = temp_sibling(out, 'partial')  # one per writer
    remove_stale_temps(out, 'partial')
    for name in ('discriminator', 'generator'):
        getattr(model, name).save_pretrained(str(tmp / name), safe_serialization=True)
        hf_tokenizer.save_pretrained(str(tmp / name))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def run_export(args: argparse.Namespace) -> int:
    out = export(args.checkpoint, args.out_dir, args.tokenizer)
    print(f'exported {out}/discriminator and {out}/generator')
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser('export', help='write a checkpoint as Hugging Face discriminator/generator directories')
    p.add_argument('checkpoint')
    p.add_argument('out_dir')
    p.add_argument('--tokenizer', default=None, help="default: the run's tokenizer")
    p.set_defaults(func=run_export)
