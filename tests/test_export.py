"""Export to Hugging Face directories and continued pre-training from them."""
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForMaskedLM, AutoModelForPreTraining, AutoTokenizer

from pretrain.__main__ import main
from pretrain.run.safe_load import load_checkpoint
from pretrain.config import get_config
from pretrain.run.export import export, model_from_checkpoint
from pretrain.train import pretrain


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('export')
    # without dropout (Cramming's small-budget recipe): the export still carries Google's 0.1 for fine-tuning
    c = get_config('tiny', steps=6, bs=16, num_workers=0, num_proc=1, device='cpu', save_points=[1.0], dropout=0.0,
                   data_dir=str(tmp / 'data'), checkpoint_dir=str(tmp / 'ckpt'))
    learn = pretrain(c)
    return c, learn, Path(c.checkpoint_dir) / f'{c.run_name}_100.0%.pth', tmp


def batch(tok):
    enc = tok(['日本の川は短い。', 'Rivers are short and fast.'], ['流れが速い。', 'The tea is hot.'],
              padding=True, return_tensors='pt')
    return enc['input_ids'], enc['attention_mask'], enc['token_type_ids']


def test_export_loads_with_auto_classes_and_gives_the_same_logits(run, tmp_path):
    c, learn, ckpt, _ = run
    out = export(ckpt, tmp_path / 'hf')
    disc, info = AutoModelForPreTraining.from_pretrained(out / 'discriminator', output_loading_info=True)
    assert not any(info[k] for k in ('missing_keys', 'unexpected_keys', 'mismatched_keys')), info
    gen, info = AutoModelForMaskedLM.from_pretrained(out / 'generator', output_loading_info=True)
    assert not any(info[k] for k in ('missing_keys', 'unexpected_keys', 'mismatched_keys')), info
    assert gen.generator_lm_head.weight.data_ptr() == gen.electra.embeddings.word_embeddings.weight.data_ptr()
    tok = AutoTokenizer.from_pretrained(out / 'discriminator', local_files_only=True)
    ids, mask, types = batch(tok)
    trained = model_from_checkpoint(load_checkpoint(ckpt), tok)
    disc.eval(), gen.eval()
    with torch.no_grad():
        assert torch.allclose(disc(ids, attention_mask=mask, token_type_ids=types).logits,
                              trained.discriminator(ids, attention_mask=mask, token_type_ids=types).logits, atol=1e-5)
        assert torch.allclose(gen(ids, attention_mask=mask, token_type_ids=types).logits,
                              trained.generator(ids, attention_mask=mask, token_type_ids=types).logits, atol=1e-5)


def test_runs_export_at_the_end_by_default(run):
    c, learn, _, _ = run
    out = Path(c.checkpoint_dir) / f'{c.run_name}_export'
    disc = AutoModelForPreTraining.from_pretrained(out / 'discriminator').eval()
    ids = torch.tensor([[2, 50, 60, 3]])
    with torch.no_grad():
        assert torch.allclose(disc(ids).logits, learn.model.discriminator.eval()(ids).logits, atol=1e-5)
    assert not list(Path(c.checkpoint_dir).glob('*.partial'))


def test_a_run_without_dropout_exports_fine_tuning_dropout(run):
    c, learn, _, _ = run
    dropouts = [m.p for m in learn.model.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts and set(dropouts) == {0.0}
    for part in ('discriminator', 'generator'):
        cfg = AutoConfig.from_pretrained(Path(c.checkpoint_dir) / f'{c.run_name}_export' / part)
        assert cfg.hidden_dropout_prob == cfg.attention_probs_dropout_prob == 0.1


def test_export_cli(run, tmp_path, capsys):
    _, _, ckpt, _ = run
    assert main(['export', str(ckpt), str(tmp_path / 'cli')]) == 0
    assert (tmp_path / 'cli' / 'discriminator' / 'model.safetensors').is_file()
    assert capsys.readouterr().err == ''  # no progress bar per saved shard
    assert main(['export', str(tmp_path / 'missing.pth'), str(tmp_path / 'x')]) == 2
    assert 'does not exist' in capsys.readouterr().err


def test_continued_pretraining_from_exported_models(run, tmp_path):
    c, learn, ckpt, tmp = run
    out = export(ckpt, tmp_path / 'hf')
    c2 = get_config('tiny', steps=3, bs=16, num_workers=0, num_proc=1, device='cpu', save_points=[], export=False,
                    init_generator=str(out / 'generator'), init_discriminator=str(out / 'discriminator'),
                    freeze_layers=1, warmup_steps=0, data_dir=str(tmp / 'data'), checkpoint_dir=str(tmp_path / 'cont'))
    start = {k: v.clone() for k, v in learn.model.state_dict().items()}
    learn2 = pretrain(c2)
    m = learn2.model
    assert m.discriminator.electra.embeddings is m.generator.electra.embeddings
    assert m.generator.generator_lm_head.weight is m.generator.electra.embeddings.word_embeddings.weight
    after = m.state_dict()
    frozen = [k for k in after if '.encoder.layer.0.' in k]
    assert frozen and all(torch.equal(after[k], start[k]) for k in frozen)  # lowest layer frozen
    assert not torch.equal(after['discriminator.electra.encoder.layer.1.output.dense.weight'],
                           start['discriminator.electra.encoder.layer.1.output.dense.weight'])


def test_continued_pretraining_errors(run, tmp_path):
    c, _, _, tmp = run
    with pytest.raises(ValueError, match='needs both'):
        pretrain(get_config('tiny', device='cpu', init_generator=str(tmp_path)))
    with pytest.raises(ValueError, match='not a Hugging Face model directory'):
        pretrain(get_config('tiny', device='cpu', num_workers=0, data_dir=str(tmp / 'data'),
                            init_generator=str(tmp_path), init_discriminator=str(tmp_path)))


def test_continued_pretraining_refuses_another_size(run, tmp_path):
    c, _, ckpt, tmp = run
    out = export(ckpt, tmp_path / 'hf')
    with pytest.raises(ValueError, match="2 layers x 32 wide but size 'small' is 12 x 256; pass the matching --size"):
        pretrain(get_config('small', device='cpu', num_workers=0, bs=8, data_dir=str(tmp / 'data'),
                            checkpoint_dir=str(tmp_path / 'c'), init_generator=str(out / 'generator'),
                            init_discriminator=str(out / 'discriminator')))


def test_an_mlm_baseline_exports_one_encoder_that_fine_tuning_loads(tiny_mlm_run, tmp_path):
    from finetune.model import load_encoder
    from pretrain.run.run_dir import RunDir
    run = RunDir.from_config(tiny_mlm_run)
    assert sorted(p.name for p in run.export.iterdir()) == ['mlm']  # written at the end of the run
    out = export(run.checkpoint('100.0%'), tmp_path / 'hf')
    mlm, info = AutoModelForMaskedLM.from_pretrained(out / 'mlm', output_loading_info=True)
    assert not any(info[k] for k in ('missing_keys', 'unexpected_keys', 'mismatched_keys')), info
    tok = AutoTokenizer.from_pretrained(out / 'mlm', local_files_only=True)
    ids, mask, types = batch(tok)
    trained = model_from_checkpoint(load_checkpoint(run.checkpoint('100.0%')), tok)
    encoder = load_encoder(out / 'mlm').eval()  # what `python -m finetune --model .../mlm` fine-tunes
    with torch.no_grad():
        assert torch.allclose(mlm.eval()(ids, attention_mask=mask, token_type_ids=types).logits,
                              trained.mlm(ids, attention_mask=mask, token_type_ids=types).logits, atol=1e-5)
        assert torch.allclose(encoder(ids, attention_mask=mask, token_type_ids=types).last_hidden_state,
                              trained.mlm.electra(ids, attention_mask=mask, token_type_ids=types).last_hidden_state,
                              atol=1e-5)


def test_the_model_to_finetune_in_an_export(tmp_path):
    from pretrain.run.export import finetuned_model_dir
    (tmp_path / 'a' / 'mlm').mkdir(parents=True)
    (tmp_path / 'a' / 'mlm' / 'config.json').write_text('{}')
    assert finetuned_model_dir(tmp_path / 'a') == tmp_path / 'a' / 'mlm'
    (tmp_path / 'a' / 'discriminator').mkdir()
    (tmp_path / 'a' / 'discriminator' / 'config.json').write_text('{}')
    assert finetuned_model_dir(tmp_path / 'a') == tmp_path / 'a' / 'discriminator'
    with pytest.raises(ValueError, match='holds no exported discriminator/ or mlm/ model'):
        finetuned_model_dir(tmp_path)
