"""A look inside a checkpoint or an exported model: the run's step, config and last logged
metrics, then, on one sentence, the generator's top predictions at masked positions and the
discriminator's probability that each token was replaced.

    python -m pretrain inspect CHECKPOINT_OR_EXPORT [--text "..."] [--mask 3 川] [--top_k 5]

From a notebook: `result = inspect_run(path, text=...)` (a dict) and `print_report(result)`.
Accepted paths: a training checkpoint (`.pth`; its config names the tokenizer, `tokenizer=`
overrides it), an export directory (`{run_name}_export/` with `discriminator/` and
`generator/`, or the MLM baseline's `mlm/`), one Hugging Face ELECTRA directory (a discriminator or a generator, with its
tokenizer), or a run's checkpoint directory (its latest checkpoint). Every bad input is a
one-line `ValueError`.
"""
from __future__ import annotations

import argparse
import json
import textwrap
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import ElectraForMaskedLM, ElectraForPreTraining

from _utils.cli import first_line
from _utils.quiet_transformers import quiet_transformers

from pretrain.run.checkpoint_files import checkpoints_of
from pretrain.run.safe_load import load_checkpoint
from _utils.paths import repo_path
from pretrain.run.export import checkpoint_tokenizer, model_from_checkpoint
from pretrain.mask_tokens import max_predictions_per_seq, never_masked
from pretrain.tools.plot import TRAIN_REQUIRED, VALID_REQUIRED, read_curves
from pretrain.run.run_dir import CHECKPOINT_TAG, RunDir, runs_in
from pretrain.prepare.tokenizer import load_tokenizer
from _utils.japanese import vocab_language

# in the domain of the shipped sample corpus (rivers; glaciers), so a tiny model has a chance
DEFAULT_TEXTS = {'ja': '川の水は山から海へと流れていく。',
                 'en': 'The river carries water from the mountains down to the sea.'}
CONFIG_KEYS = ('size', 'datas', 'tokenizer', 'steps', 'bs', 'max_length', 'lr', 'mask_prob', 'sampling', 'seed')
MODEL_KEYS = ('num_hidden_layers', 'hidden_size', 'embedding_size', 'num_attention_heads', 'intermediate_size',
              'vocab_size')
# the Hugging Face directories of an export: ELECTRA's pair, or the MLM baseline's one model
MODEL_CLASSES = {'discriminator': ElectraForPreTraining, 'generator': ElectraForMaskedLM, 'mlm': ElectraForMaskedLM}


@dataclass
class Loaded:
    """What `load_for_inspection` found: the models (either may be None), the tokenizer, and
    where the run's logs may be."""
    kind: str  # 'checkpoint', 'export', 'discriminator', 'generator' or 'mlm'
    path: Path
    tokenizer: Any
    generator: ElectraForMaskedLM | None = None
    discriminator: ElectraForPreTraining | None = None
    step: int | None = None
    config: dict = field(default_factory=dict)
    run_name: str | None = None
    log_dirs: list[Path] = field(default_factory=list)
    lm_name: str = 'generator'  # what `generator` is: ELECTRA's generator, or the MLM baseline's model ('mlm')


def load_for_inspection(path: str | Path, tokenizer: str | Path | None = None) -> Loaded:
    """The models behind `path` (a checkpoint, an export, a model or a run directory), in eval mode on the CPU."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ValueError(f"{str(path)!r} does not exist; pass a checkpoint (.pth), an export directory "
                         f"or a run's checkpoint directory")
    if p.is_file():
        return _from_checkpoint(p, tokenizer)
    if any((p / name).is_dir() for name in MODEL_CLASSES):
        return _from_export(p, tokenizer)
    if (p / 'config.json').is_file():
        return _from_model_dir(p, tokenizer)
    return _from_run_dir(p, tokenizer)


def _tokenizer(tok_path: str | Path, what: Path):
    try:
        return load_tokenizer(tok_path)
    except ValueError as e:  # keep load_tokenizer's reason, not its advice for training configs
        raise ValueError(f"no tokenizer for {what}: {str(e).split('; ')[0]}; pass one with --tokenizer DIR") from None


def _run_name_of(checkpoint: Path) -> str:
    return CHECKPOINT_TAG.sub('', checkpoint.stem)


def _from_checkpoint(p: Path, tokenizer) -> Loaded:
    state = load_checkpoint(p)  # a missing, foreign or truncated file: a ValueError
    config = dict(state.get('config') or {})
    hf_tokenizer = checkpoint_tokenizer(state, tokenizer, p.name, load=lambda t: _tokenizer(t, p))
    try:
        model = model_from_checkpoint(state, hf_tokenizer)
    except ValueError:
        raise
    except Exception as e:  # missing or misshapen weights, a mangled config
        raise ValueError(f"{str(p)!r} is a damaged checkpoint: its model does not load ({type(e).__name__}); "
                         f"use an earlier checkpoint of the run") from None
    run_name = config.get('run_name') or _run_name_of(p)
    log_dirs = [p.parent] + ([repo_path(config['checkpoint_dir'])] if config.get('checkpoint_dir') else [])
    lm_name = 'mlm' if 'mlm' in model.PARTS else 'generator'
    return Loaded('checkpoint', p, hf_tokenizer, getattr(model, lm_name), getattr(model, 'discriminator', None),
                  int(state['step']), config, run_name, log_dirs, lm_name)


def _hf_model(d: Path, name: str):
    if not (d / 'config.json').is_file():
        raise ValueError(f"{d} holds no model (no config.json); pass an export or a Hugging Face model directory")
    cls = MODEL_CLASSES[name]
    try:
        with quiet_transformers():
            model, info = cls.from_pretrained(str(d), local_files_only=True, output_loading_info=True)
    except Exception as e:  # OSError (no weights), a safetensors error (damaged), ValueError (another model type)
        raise ValueError(f"cannot load the {name} in {str(d)!r}: {first_line(e)}") from None
    if info.get('missing_keys'):
        raise ValueError(f"the weights in {d} are not an ELECTRA {name} ({cls.__name__} lacks "
                         f"{len(info['missing_keys'])} of them, e.g. {info['missing_keys'][0]})")
    return model.eval()


def _export_run(d: Path) -> tuple[str | None, list[Path]]:
    """The run name and log directory of `{run_name}_export` (as training writes it)."""
    if d.name.endswith('_export'):
        return d.name[:-len('_export')], [d.parent]
    return None, []


def _from_export(p: Path, tokenizer) -> Loaded:
    models = {name: _hf_model(p / name, name) for name in MODEL_CLASSES if (p / name).is_dir()}
    tok_path = tokenizer or p / next(iter(models))
    run_name, log_dirs = _export_run(p)
    lm_name = 'mlm' if 'mlm' in models else 'generator'
    loaded = Loaded('export', p, _tokenizer(tok_path, p), models.get(lm_name), models.get('discriminator'),
                    run_name=run_name, log_dirs=log_dirs, lm_name=lm_name)
    return _check_vocab_size(loaded, tok_path)


def _from_model_dir(p: Path, tokenizer) -> Loaded:
    try:
        archs = json.loads((p / 'config.json').read_text()).get('architectures') or []
    except (ValueError, OSError, AttributeError) as e:
        raise ValueError(f"{p / 'config.json'} is not a readable model config ({type(e).__name__})") from None
    if 'ElectraForPreTraining' in archs or (not archs and p.name == 'discriminator'):
        name = 'discriminator'
    elif 'ElectraForMaskedLM' in archs or (not archs and p.name in ('generator', 'mlm')):
        name = 'mlm' if p.name == 'mlm' else 'generator'  # an MLM baseline's export names its model mlm/
    else:
        raise ValueError(f"{p} holds a {'/'.join(archs) or 'model of unknown type'}, not an ELECTRA discriminator "
                         f"(ElectraForPreTraining) or generator (ElectraForMaskedLM)")
    model = _hf_model(p, name)
    tok_path = tokenizer or p
    run_name, log_dirs = _export_run(p.parent)
    if name == 'discriminator':
        loaded = Loaded(name, p, _tokenizer(tok_path, p), run_name=run_name, log_dirs=log_dirs, discriminator=model)
    else:
        loaded = Loaded(name, p, _tokenizer(tok_path, p), run_name=run_name, log_dirs=log_dirs, generator=model,
                        lm_name=name)
    return _check_vocab_size(loaded, tok_path)


def _check_vocab_size(loaded: Loaded, tok_path) -> Loaded:
    for model in (loaded.generator, loaded.discriminator):
        if model is not None and len(loaded.tokenizer) > model.config.vocab_size:
            raise ValueError(f"tokenizer {str(tok_path)!r} has {len(loaded.tokenizer)} tokens but the model "
                             f"{model.config.vocab_size}; pass the model's tokenizer with --tokenizer DIR")
    return loaded


def _from_run_dir(p: Path, tokenizer) -> Loaded:
    """A checkpoint directory: the latest checkpoint of its one run, else its export."""
    runs = set(runs_in(p))
    if not runs:
        raise ValueError(f"{p} holds no model: pass a checkpoint (.pth), an export directory (discriminator/, "
                         f"generator/) or a Hugging Face model directory")
    if len(runs) > 1:
        raise ValueError(f"{p} holds several runs ({', '.join(sorted(runs))}); pass one checkpoint or export")
    run_name = runs.pop()
    found = checkpoints_of(p, run_name)
    if found:
        return _from_checkpoint(found[-1][1], tokenizer)
    if RunDir(p, run_name).export.is_dir():
        return _from_export(RunDir(p, run_name).export, tokenizer)
    raise ValueError(f"{p} holds no readable checkpoint or export of run {run_name!r}")


def read_last_rows(loaded: Loaded) -> dict[str, Any]:
    """The last training-log and held-out rows of the run (at or before the checkpoint's step),
    from `{run_name}.csv` / `{run_name}_valid.csv` beside the checkpoint or in its config's
    `checkpoint_dir`. A missing log is None; an unreadable one is a note, not an error."""
    log: dict[str, Any] = {'train': None, 'valid': None, 'train_csv': None, 'valid_csv': None, 'notes': []}
    if not loaded.run_name:
        return log
    train_csv = next((d / f'{loaded.run_name}.csv' for d in loaded.log_dirs
                      if (d / f'{loaded.run_name}.csv').is_file()), None)
    if train_csv is None:
        return log
    for key, path, required in (('train', train_csv, TRAIN_REQUIRED), ('valid', RunDir.of_train_csv(train_csv).valid_csv, VALID_REQUIRED)):
        if not path.is_file():
            continue
        log[f'{key}_csv'] = str(path)
        try:
            curves = read_curves(path, required)
        except ValueError as e:
            log['notes'].append(f'{path.name} unreadable: {e}')
            continue
        rows = [{c: values[i] for c, values in curves.items()} for i in range(len(curves['step']))]
        for row in rows:
            row['step'] = int(row['step'])
        upto = [r for r in rows if loaded.step is None or r['step'] <= loaded.step]
        log[key] = upto[-1] if upto else None
        if upto and len(upto) < len(rows):
            log['notes'].append(f"{path.name} goes on to step {rows[-1]['step']}, past this checkpoint")
    return log


def default_text(hf_tokenizer) -> tuple[str, str]:
    """(language, sentence): Japanese when kana make up 5% or more of the vocabulary, else English."""
    lang = vocab_language(hf_tokenizer)
    return lang, DEFAULT_TEXTS[lang]


def encode(hf_tokenizer, text: str, max_tokens: int) -> list[int]:
    """`[CLS] text [SEP]` ids, the text cut to fit `max_tokens`."""
    ids = hf_tokenizer(text, add_special_tokens=False)['input_ids']
    if not ids:
        raise ValueError(f"the text {text!r} has no tokens; pass a sentence with --text")
    return [hf_tokenizer.cls_token_id] + ids[:max_tokens - 2] + [hf_tokenizer.sep_token_id]


def choose_mask(hf_tokenizer, ids: list[int], mask: list[int | str] | None, mask_prob: float) -> list[int]:
    """Positions to mask: by default about `mask_prob` of the text's tokens, evenly spread
    (deterministic); else the given positions (0 is [CLS]) and tokens or words of the text."""
    tokens = hf_tokenizer.convert_ids_to_tokens(ids)
    special = set(never_masked(hf_tokenizer))  # as in training: [UNK] and [unusedN] may be masked
    candidates = [i for i in range(1, len(ids) - 1) if ids[i] not in special]
    if not candidates:
        raise ValueError("the text has no token that can be masked")
    if not mask:  # Google's count for a row of this length, as in training
        n = max(1, min(max_predictions_per_seq(mask_prob, len(ids)), len(candidates)))
        return [candidates[int((k + 0.5) * len(candidates) / n)] for k in range(n)]
    shown = ' '.join(f'{i}:{tokens[i]}' for i in candidates)
    chosen: set[int] = set()
    for item in mask:
        if isinstance(item, int) or str(item).isdigit():
            pos = int(item)
            if pos not in candidates:
                raise ValueError(f"mask position {pos} is not a token of the text (positions: {shown})")
            chosen.add(pos)
            continue
        word = str(item).casefold()
        hits = [i for i in candidates if tokens[i].casefold() in (word, '##' + word)]
        if not hits:  # a word of several tokens: every occurrence of its token sequence
            sub = hf_tokenizer(str(item), add_special_tokens=False)['input_ids']
            hits = [i + j for i in range(1, len(ids) - len(sub)) if sub and ids[i:i + len(sub)] == sub
                    for j in range(len(sub))]
        if not hits:
            raise ValueError(f"mask {item!r} is not in the text (its tokens: {shown})")
        chosen.update(hits)
    return sorted(chosen)


def _model_summary(model) -> dict[str, Any]:
    return {k: getattr(model.config, k) for k in MODEL_KEYS}


@torch.no_grad()
def inspect_run(path: str | Path, text: str | None = None, top_k: int = 5, mask: list[int | str] | None = None,
                tokenizer: str | Path | None = None, fill: str = 'sample', seed: int = 0) -> dict[str, Any]:
    """Inspect a checkpoint, export or model directory (see the module's docstring).

    Returns a JSON-ready dict: `path`, `kind`, `step`, `config` (the run's main keys), `models`
    (architecture of each model), `log` (last training and held-out rows, see `read_last_rows`),
    `text`, `tokens`, `masked` (positions), `generator` (per masked position: the original
    token, its probability and the `top_k` predictions, and the token filled in) and
    `discriminator` (per token: P(replaced) on the text, and on the text with the generator's
    tokens at the masked positions, with which were replaced). A part whose model is absent is None.
    `fill`: the generator's tokens are a seeded sample of its distribution ('sample', as in
    training) or its most likely token ('argmax').
    """
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    if fill not in ('sample', 'argmax'):
        raise ValueError(f"fill must be 'sample' or 'argmax', got {fill!r}")
    loaded = load_for_inspection(path, tokenizer)
    tok = loaded.tokenizer
    models = {name: m for name, m in ((loaded.lm_name, loaded.generator), ('discriminator', loaded.discriminator))
              if m is not None}
    lang = None
    if text is None:
        lang, text = default_text(tok)
    max_tokens = min(m.config.max_position_embeddings for m in models.values())
    ids = encode(tok, text, max_tokens)
    tokens = tok.convert_ids_to_tokens(ids)
    config = loaded.config
    result: dict[str, Any] = {
        'path': str(loaded.path), 'kind': loaded.kind, 'step': loaded.step, 'run_name': loaded.run_name,
        'config': {k: config[k] for k in CONFIG_KEYS if k in config},
        'models': {name: _model_summary(m) for name, m in models.items()},
        'log': read_last_rows(loaded), 'text': text, 'default_text_language': lang, 'tokens': tokens,
        'masked': [], 'generator': None, 'discriminator': None}
    input_ids = torch.tensor([ids])
    inputs = dict(attention_mask=torch.ones_like(input_ids), token_type_ids=torch.zeros_like(input_ids))
    corrupted = None
    if loaded.generator is not None:
        positions = choose_mask(tok, ids, mask, float(config.get('mask_prob') or 0.15))
        masked = input_ids.clone()
        masked[0, positions] = tok.mask_token_id
        logits = loaded.generator(masked, **inputs).logits[0, positions].float()
        probs = logits.softmax(-1)
        top = probs.topk(min(top_k, probs.shape[-1]))
        if fill == 'argmax':
            filled = logits.argmax(-1)
        else:
            filled = torch.multinomial(probs, 1, generator=torch.Generator().manual_seed(seed))[:, 0]
        corrupted = input_ids.clone()
        corrupted[0, positions] = filled
        result['masked'] = positions
        result['generator'] = [
            {'position': pos, 'original': tokens[pos], 'p_original': probs[i, ids[pos]].item(),
             'top': [(t, p) for t, p in zip(tok.convert_ids_to_tokens(top.indices[i].tolist()), top.values[i].tolist())],
             'filled': tok.convert_ids_to_tokens([int(filled[i])])[0]}
            for i, pos in enumerate(positions)]
    if loaded.discriminator is not None:
        p_text = torch.sigmoid(loaded.discriminator(input_ids, **inputs).logits[0].float()).tolist()
        rows = [{'position': i, 'token': t, 'p_replaced': p} for i, (t, p) in enumerate(zip(tokens, p_text))]
        if corrupted is not None:
            p_corrupted = torch.sigmoid(loaded.discriminator(corrupted, **inputs).logits[0].float()).tolist()
            for row, new_id, p in zip(rows, corrupted[0].tolist(), p_corrupted):
                row['input'] = tok.convert_ids_to_tokens([new_id])[0]
                row['replaced'] = new_id != ids[row['position']]
                row['p_replaced_after_fill'] = p
        result['discriminator'] = rows
    return result


# ---------------------------------------------------------------- the text report

def _width(s: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in 'WF' else 1 for ch in s)


def _pad(s: str, width: int) -> str:
    return s + ' ' * max(0, width - _width(s))


def _table(header: list[str], rows: list[list[str]], right: set[int] = frozenset()) -> list[str]:
    widths = [max(_width(r[i]) for r in [header] + rows) for i in range(len(header))]
    lines = []
    for r in [header] + rows:
        cells = [' ' * (w - _width(c)) + c if i in right else _pad(c, w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append('  ' + '  '.join(cells).rstrip())
    return lines


def _num(x: float) -> str:
    return f'{x:.4g}' if abs(x) >= 1e-3 or x == 0 else f'{x:.2e}'


def _line(label: str, text: str) -> str:
    """`label` in a 15-wide column, then `text` wrapped at 100 columns."""
    return textwrap.fill(text, width=100, initial_indent=f'{label:<15}', subsequent_indent=' ' * 15,
                         break_long_words=False, break_on_hyphens=False)


def format_report(result: dict[str, Any]) -> str:
    """The text report of an `inspect_run` result: run, models, log, then the two tables."""
    out = []
    step, config = result['step'], result['config']
    if step is not None:
        total = config.get('steps')
        where = f'step {step}' + (f' of {total} ({100 * step / total:.1f}%)' if total else '')
    else:
        where = 'no step recorded (a Hugging Face directory)'
    out.append(f"{result['path']}: {result['kind']}, {where}")
    if result['run_name'] or config:
        out.append(_line('run', (result['run_name'] or '?') + (': ' if config else '') +
                         ', '.join(f'{k} {v}' for k, v in config.items())))
    for name, m in result['models'].items():
        out.append(_line(name, f"{m['num_hidden_layers']} layers x {m['hidden_size']}, embedding "
                               f"{m['embedding_size']}, heads {m['num_attention_heads']}, FFN "
                               f"{m['intermediate_size']}, vocabulary {m['vocab_size']}"))
    log = result['log']
    for key, label in (('train', 'last log'), ('valid', 'held-out')):
        row = log[key]
        if row is not None:
            values = ', '.join(f'{k} {_num(v)}' for k, v in row.items() if k != 'step')
            out.append(_line(label, f"step {row['step']}: {values} ({Path(log[key + '_csv']).name})"))
        elif key == 'train':
            out.append(_line(label, 'none found' + (f" ({result['run_name']}.csv)" if result['run_name'] else '')))
        else:
            out.append(_line(label, 'none (train with --valid_size N for held-out metrics)'))
    out.extend(_line('', f'note: {n}') for n in log['notes'])
    lang = result.get('default_text_language')
    out.append(_line('text', result['text'] + (f' (the default {"Japanese" if lang == "ja" else "English"} '
                                               f'sentence; --text to change)' if lang else '')))
    out.append(_line('tokens', ' '.join(result['tokens'])))

    gen = result['generator']
    if gen is not None:
        k = max(len(g['top']) for g in gen)
        lm = 'masked LM (MLM baseline)' if 'mlm' in result['models'] else 'generator'
        out += ['', f'{lm}: top-{k} predictions at {len(gen)} masked position(s) (the input has [MASK] there)']
        rows = [[str(g['position']), g['original'], f"{g['p_original']:.3f}",
                 '  '.join(f'{t} {p:.3f}' for t, p in g['top'])] for g in gen]
        out += _table(['pos', 'original', 'p(orig)', 'predictions'], rows, right={0})
    disc = result['discriminator']
    if disc is not None:
        filled = gen is not None
        out += ['', 'discriminator: P(replaced) per token, on the text' +
                (", then with the generator's tokens in (* replaced)" if filled else '')]
        header = ['pos', 'token', 'P(replaced)'] + (['with generator', 'P(replaced)'] if filled else [])
        rows = []
        for r in disc:
            row = [str(r['position']), r['token'], f"{r['p_replaced']:.3f}"]
            if filled:
                row += [r['input'] + (' *' if r['replaced'] else ''), f"{r['p_replaced_after_fill']:.3f}"]
            rows.append(row)
        out += _table(header, rows, right={0, 2, 4})
        if filled:
            replaced = [r['p_replaced_after_fill'] for r in disc if r['replaced']]
            kept = [r['p_replaced_after_fill'] for r in disc if not r['replaced']]
            summary = f'mean P(replaced) after the fill: {len(replaced)} replaced token(s) '
            summary += f'{sum(replaced) / len(replaced):.3f}' if replaced else '-'
            summary += f', {len(kept)} kept {sum(kept) / len(kept):.3f}' if kept else ''
            out.append('  ' + summary)
    return '\n'.join(out)


def print_report(result: dict[str, Any]) -> None:
    print(format_report(result))


def run_inspect(args: argparse.Namespace) -> int:
    result = inspect_run(args.path, text=args.text, top_k=args.top_k, mask=args.mask or None, tokenizer=args.tokenizer,
                         fill=args.fill, seed=args.seed)
    print(json.dumps(result, ensure_ascii=False, indent=1) if args.json else format_report(result))
    return 0


def add_cli(subparsers) -> None:
    """`python -m pretrain inspect CHECKPOINT_OR_EXPORT [--text ...] [--mask ...] [--top_k K]`."""
    p = subparsers.add_parser('inspect', help="a run's step, config and last metrics, and what its generator and "
                                              "discriminator make of a sentence")
    p.add_argument('path', metavar='CHECKPOINT_OR_EXPORT',
                   help="a checkpoint (.pth), an export directory ({run_name}_export, or its discriminator/ or "
                        "generator/), or a run's checkpoint directory (its latest checkpoint)")
    p.add_argument('--text', help='the sentence to look at (default: a fixed Japanese or English sentence, '
                                  "whichever the tokenizer's vocabulary suits)")
    p.add_argument('--mask', nargs='+', metavar='POS_OR_TOKEN',
                   help='positions (0 is [CLS]) or tokens/words of the text to mask (default: about mask_prob '
                        'of the tokens, evenly spread)')
    p.add_argument('--top_k', type=int, default=5, help="the generator's predictions shown per masked position")
    p.add_argument('--tokenizer', help="a tokenizer directory (default: the run's, or the export's own)")
    p.add_argument('--fill', choices=('sample', 'argmax'), default='sample',
                   help="what the generator puts at the masked positions for the discriminator: a seeded sample "
                        "of its distribution (as in training; default) or its top prediction")
    p.add_argument('--seed', type=int, default=0, help='the seed of the generator sample')
    p.add_argument('--json', action='store_true', help='print the result as JSON instead of the report')
    p.set_defaults(func=run_inspect)
