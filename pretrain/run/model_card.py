"""Model cards for exports: a `README.md` in each exported model directory, so a model uploaded to
the Hugging Face Hub says what it is. YAML metadata (language, licence of the training corpus,
library, tags, pipeline tag) written by `huggingface_hub.ModelCardData`, and a body written from
the run itself: architecture, tokenizer, corpora, steps, tokens, FLOPs, device, held-out
metrics and how to load it."""
from __future__ import annotations

import json
from typing import Any

from pretrain.prepare.corpus import HUB_PREFIX, data_files
from pretrain.run.log_cb import read_log
from _utils.paths import repo_path
from pretrain.run.run_dir import RunDir
from _utils.japanese import vocab_language

# what each exported part is, and the Hub's pipeline for it (the discriminator has no task head
# of its own: its encoder gives features, which is what fine-tuning starts from)
PARTS = {'discriminator': ('ELECTRA discriminator (replaced-token detection); fine-tune this one',
                           'AutoModelForPreTraining', 'feature-extraction'),
         'generator': ("ELECTRA generator (masked LM); a by-product of pre-training, not the model to fine-tune",
                       'AutoModelForMaskedLM', 'fill-mask'),
         'mlm': ('masked-LM encoder (BERT objective, the ELECTRA paper\'s baseline); fine-tune this one',
                 'AutoModelForMaskedLM', 'fill-mask')}
DOCS_JA_SOURCES_JSON = 'data/docs_ja/sources.json'
# licences of the corpora this project names (the shipped documentation corpus: data/README.md)
KNOWN_LICENCES = {'wikipedia': 'CC-BY-SA-4.0 (Wikipedia text)'}
# the Hub's licence identifiers for licences a single corpus may have
HUB_LICENCES = {'MPL-2.0': 'mpl-2.0', 'GPL-2+': 'gpl-2.0', 'GFDL-NIV-1.2+': 'gfdl', 'GFDL-1.3+': 'gfdl',
                'CC-BY-SA-4.0 (Wikipedia text)': 'cc-by-sa-4.0'}


def corpus_licence(name: str) -> str | None:
    """The licence of a corpus this project knows (docs_ja's from its build record), else None."""
    if name in KNOWN_LICENCES:
        return KNOWN_LICENCES[name]
    if name.startswith('docs_ja'):
        try:
            packages = json.loads(repo_path(DOCS_JA_SOURCES_JSON).read_text(encoding='utf-8'))['packages']
        except (OSError, ValueError, KeyError):
            return None
        licences = {p['source']: p['licence'] for p in packages.values()}
        if name != 'docs_ja':  # one package's corpus
            return licences.get(name[len('docs_ja_'):])
        return '; '.join(f'{s}: {licences[s]}' for s in sorted(licences))
    return None


def corpus_facts(name: str) -> dict[str, Any]:
    """Name, files, bytes on disk and licence of one entry of a run's `datas`."""
    facts: dict[str, Any] = {'name': name, 'licence': corpus_licence(name)}
    if name.startswith(HUB_PREFIX):
        return facts
    try:
        files = data_files(name)
    except ValueError:  # a corpus moved or deleted since the run: the card still names it
        return facts
    facts.update(files=len(files), bytes=sum(f.stat().st_size for f in files if f.is_file()))
    return facts


def held_out_row(config: dict, step: int) -> dict[str, float] | None:
    """The last held-out metrics logged at or before `step` by the run of `config`, if any."""
    if not config.get('checkpoint_dir') or not config.get('run_name'):
        return None
    path = RunDir(repo_path(config['checkpoint_dir']), config['run_name']).valid_csv
    try:
        rows = [r for r in read_log(path) if r['step'] <= step]
    except (OSError, ValueError):
        return None
    return rows[-1] if rows else None


def run_facts(config: dict, step: int, flops_per_step: int | None, hf_tokenizer) -> dict[str, Any]:
    """What the cards of one export say about the run that trained it."""
    bs, length = config.get('bs'), config.get('max_length')
    return {'run_name': config.get('run_name'), 'objective': config.get('objective', 'electra'),
            'size': config.get('size'), 'step': step, 'steps': config.get('steps'), 'bs': bs, 'max_length': length,
            'tokens': step * bs * length if bs and length else None,
            'flops': step * flops_per_step if flops_per_step else None, 'device': config.get('device'),
            'lr': config.get('lr'), 'mask_prob': config.get('mask_prob'), 'seed': config.get('seed'),
            'corpora': [corpus_facts(d) for d in config.get('datas') or []],
            'tokenizer': {'path': config.get('tokenizer'), 'class': type(hf_tokenizer).__name__,
                          'vocab_size': len(hf_tokenizer)},
            'language': vocab_language(hf_tokenizer), 'held_out': held_out_row(config, step)}


def hub_licence(corpora: list[dict]) -> str:
    """One Hub licence identifier for the card's metadata: the corpus's own when every corpus has
    the same one the Hub knows, 'other' when they are known but several, else 'unknown'."""
    licences = {c['licence'] for c in corpora}
    if None in licences or not licences:
        return 'unknown'
    return HUB_LICENCES.get(licences.pop(), 'other') if len(licences) == 1 else 'other'


def _num(x: float | None, fmt: str = ',') -> str:
    return '—' if x is None else format(x, fmt)


def model_card(facts: dict[str, Any], part: str, model_config) -> str:
    """The README.md of exported part `part` ('discriminator', 'generator' or 'mlm') with the
    Hugging Face config `model_config` of that part."""
    from huggingface_hub import ModelCardData
    what, auto_class, pipeline = PARTS[part]
    lang = facts['language']
    data = ModelCardData(language=[lang], license=hub_licence(facts['corpora']), library_name='transformers',
                         pipeline_tag=pipeline, tags=['electra', 'electra-pretrain', 'pretraining',
                                                      'mlm-baseline' if facts['objective'] == 'mlm' else part])
    m = model_config
    corpora = '\n'.join(f"| `{c['name']}` | {_num(c.get('files'))} | {_num(c.get('bytes'))} | "
                        f"{c['licence'] or 'unknown: fill in the licence of this corpus'} |" for c in facts['corpora'])
    held = facts['held_out']
    held_lines = ('\n'.join(f'| {k} | {v:.4f} |' for k, v in held.items() if k != 'step')
                  if held else '| (none: the run held out no examples; train with `--valid_size N`) | |')
    tok = facts['tokenizer']
    japanese = ('\nThe tokenizer splits words with MeCab: `pip install fugashi unidic-lite` before loading it.\n'
                if tok['class'].startswith('BertJapanese') else '')
    steps_line = f"{facts['step']:,} of {facts['steps']:,}" if facts['steps'] else f"{facts['step']:,}"
    return f"""---
{data.to_yaml()}
---

# {facts['run_name']}: {facts['size']} {part}

{what}. Pre-trained from scratch with electra-pretrain (a PyTorch + fastai re-implementation of
Google's ELECTRA recipe, Clark et al., ICLR 2020), objective `{facts['objective']}`, language `{lang}`.

## Model

| | |
|---|---|
| architecture | {m.num_hidden_layers} layers, hidden {m.hidden_size}, embedding {m.embedding_size}, {m.num_attention_heads} heads, FFN {m.intermediate_size} |
| vocabulary | {m.vocab_size:,} tokens (`{tok['class']}`, from `{tok['path']}`) |
| positions | {m.max_position_embeddings} (pre-trained on {facts['max_length']}-token examples) |

## Training

| | |
|---|---|
| steps | {steps_line} |
| batch | {facts['bs']} examples of {facts['max_length']} tokens |
| tokens processed | {_num(facts['tokens'])} (steps x batch x length, padding included) |
| training FLOPs | {_num(facts['flops'], '.3g')} (counted per step by torch's FlopCounterMode) |
| peak learning rate, mask probability, seed | {facts['lr']}, {facts['mask_prob']}, {facts['seed']} |
| device | {facts['device']} |

| corpus | files | bytes | licence |
|---|---|---|---|
{corpora}

## Held-out metrics (step {int(held['step']) if held else '—'})

| metric | value |
|---|---|
{held_lines}

## How to load

```python
from transformers import {auto_class}, AutoTokenizer
model = {auto_class}.from_pretrained("PATH_OR_HUB_ID")
tokenizer = AutoTokenizer.from_pretrained("PATH_OR_HUB_ID")
```
{japanese}
To fine-tune, load it with a task head, e.g. `AutoModelForSequenceClassification.from_pretrained(PATH, num_labels=N)`,
or with electra-pretrain: `python -m finetune --model PATH --train train.tsv --dev dev.tsv --task_type classification`.

## Licence

The weights are learnt from the corpora above; their licences ({', '.join(sorted({c['licence'] or 'unknown' for c in facts['corpora']}))})
may bear on how you share the model.
"""
