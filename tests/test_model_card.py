"""pretrain/run/model_card.py: every export carries a model card that huggingface_hub parses, whose
metadata and body come from the run (architecture, corpus and its licence, steps, tokens, FLOPs,
held-out metrics), and the directory still loads with the Auto classes offline."""
from pathlib import Path

from huggingface_hub import ModelCard
from transformers import AutoModel, AutoModelForMaskedLM, AutoModelForPreTraining

from pretrain.run.safe_load import load_checkpoint
from pretrain.run.export import export
from pretrain.run.model_card import corpus_licence, hub_licence
from pretrain.run.run_dir import RunDir


def card_of(directory: Path) -> ModelCard:
    return ModelCard.load(directory / 'README.md')


def test_an_electra_export_has_a_card_per_model(tiny_run, tmp_path):
    run = RunDir.from_config(tiny_run)
    state = load_checkpoint(run.checkpoint('100.0%'))
    out = export(run.checkpoint('100.0%'), tmp_path / 'hf')
    for part, auto, pipeline in (('discriminator', AutoModelForPreTraining, 'feature-extraction'),
                                 ('generator', AutoModelForMaskedLM, 'fill-mask')):
        card = card_of(out / part)
        meta = card.data.to_dict()
        assert meta['library_name'] == 'transformers' and meta['pipeline_tag'] == pipeline
        assert meta['language'] == ['ja'] and meta['license'] == 'unknown'  # the sample corpus has no licence yet
        assert {'electra', 'electra-pretrain', part} <= set(meta['tags'])
        text = card.text
        config = auto.from_pretrained(out / part, local_files_only=True).config
        assert f'{config.num_hidden_layers} layers, hidden {config.hidden_size}' in text
        assert '| steps | 4 of 4 |' in text and f"| tokens processed | {4 * 8 * 64:,} " in text
        assert f"{4 * state['flops_per_step']:.3g}" in text
        assert '| `sample` | 2 |' in text and '## Held-out metrics (step 4)' in text and '| disc_auc |' in text
    assert AutoModel.from_pretrained(out / 'discriminator', local_files_only=True)  # the card does not get in the way


def test_the_run_writes_cards_and_an_mlm_export_says_what_it_is(tiny_run, tiny_mlm_run):
    assert card_of(RunDir.from_config(tiny_run).export / 'discriminator').data.pipeline_tag == 'feature-extraction'
    card = card_of(RunDir.from_config(tiny_mlm_run).export / 'mlm')
    assert card.data.pipeline_tag == 'fill-mask' and 'mlm-baseline' in card.data.tags
    assert 'objective `mlm`' in card.text and '| token_cosine |' in card.text and '| disc_auc |' not in card.text


def test_corpus_licences():
    assert corpus_licence('docs_ja_libreoffice') == 'MPL-2.0'  # from data/docs_ja/sources.json
    assert 'gimp: GFDL-NIV-1.2+' in corpus_licence('docs_ja') and 'libreoffice: MPL-2.0' in corpus_licence('docs_ja')
    assert corpus_licence('sample') is None and corpus_licence('my_corpus.txt') is None
    assert hub_licence([{'licence': 'MPL-2.0'}]) == 'mpl-2.0'
    assert hub_licence([{'licence': 'MPL-2.0'}, {'licence': 'GPL-2+'}]) == 'other'
    assert hub_licence([{'licence': corpus_licence('docs_ja')}]) == 'other'
    assert hub_licence([{'licence': 'MPL-2.0'}, {'licence': None}]) == 'unknown'
