"""Run by tests/test_distributed.py, alone or under torchrun: one deterministic pre-training
step (fixed masks, no dropout, argmax sampling) so one process with the global batch and N
processes with shares of it must end with the same parameters."""
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import pretrain.mask_tokens as mask_tokens  # noqa: E402
import pretrain.train as train  # noqa: E402
from pretrain.config import get_config  # noqa: E402
from pretrain.models import ELECTRAModel  # noqa: E402


def fixed_mask(inputs, mask_token_index, vocab_size, special_token_indices, *args, **kwargs):
    positions = torch.arange(inputs.shape[1])[None]
    chosen = ~torch.isin(inputs, torch.tensor(list(special_token_indices))) & ((inputs * 7 + positions) % 5 == 0)
    return inputs.masked_fill(chosen, mask_token_index), inputs.masked_fill(~chosen, -100), chosen


def no_dropout_configs(c, tok, _orig=train.electra_configs):
    configs = _orig(c, tok)
    for cfg in configs:
        cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = 0.0
    return configs


def recording_build_models(c, tok, _orig=train.build_models):
    model = _orig(c, tok)
    if int(__import__('os').environ.get('RANK', '0')) == 0:
        torch.save({k: v.clone() for k, v in model.state_dict().items()}, out / 'init.pt')
    return model


out = Path(sys.argv[1])
mask_tokens.mask_tokens = fixed_mask  # where MaskSpec.apply finds it
train.build_models = recording_build_models
train.electra_configs = no_dropout_configs
ELECTRAModel.sample = lambda self, logits: logits.argmax(-1)

c = get_config('tiny', steps=2, warmup_steps=0, lr=1e-2, bs=8, num_workers=0, num_proc=1, device='cpu', save_points=[], export=False,
               log_every=1, plot=False, data_dir=str(out / 'data'), checkpoint_dir=str(out / 'ckpt'))
learn = train.pretrain(c)
if int(__import__('os').environ.get('RANK', '0')) == 0:
    torch.save(learn.model.state_dict(), out / 'final.pt')
