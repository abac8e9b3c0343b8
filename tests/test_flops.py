"""pretrain/run/flops.py: the counted FLOPs of a step equal a real count with the real loss, for both
objectives, and counting leaves the model, its gradients and every RNG as they were."""
import torch
from torch.utils.flop_counter import FlopCounterMode

from pretrain.run.safe_load import load_checkpoint
from pretrain.config import get_config
from pretrain.run.flops import row_flops
from pretrain.models import loss_from_config
from pretrain.run.run_dir import RunDir
from pretrain.train import build_models


def real_count(c, tokenizer, model) -> float:
    """FLOPs of the real loss's forward and backward on two real rows whose slots are all used, per row."""
    L, n = c.max_length, c.max_predictions
    ids = torch.randint(5, len(tokenizer), (2, L))
    is_mlm = torch.zeros(2, L, dtype=torch.bool)
    is_mlm[:, 1:1 + n] = True
    labels = torch.where(is_mlm, ids, -100)
    with FlopCounterMode(display=False) as counter:
        loss_from_config(c)(model(torch.where(is_mlm, tokenizer.mask_token_id, ids), torch.tensor([L // 2] * 2),
                                  is_mlm, labels), labels).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / 2


def test_counted_flops_equal_a_real_count_and_touch_nothing(tokenizer):
    counts = {}
    for objective in ('electra', 'mlm'):
        c = get_config('tiny', objective=objective, device='cpu', static_shapes=True)
        torch.manual_seed(0)
        model = build_models(c, tokenizer)
        model.max_predictions = None  # the boolean-indexing path: counting still uses the slots
        rng = torch.get_rng_state()
        counts[objective] = row_flops(model, c.max_length, c.max_predictions)
        assert torch.equal(rng, torch.get_rng_state())  # no draw: dropout and sampling ran on fake tensors
        assert model.max_predictions is None and all(p.grad is None for p in model.parameters())
        model.max_predictions = c.max_predictions
        assert counts[objective] == real_count(c, tokenizer, model)
    assert counts['electra'] > counts['mlm'] > 0  # ELECTRA adds the generator


def test_attention_is_counted_with_or_without_dropout(tokenizer):
    """Dropout changes no matrix product. Without it, SDPA runs a fused CPU kernel that torch's
    counter has no formula for; the count must not lose attention then (it did: 8 % of a `mini` step)."""
    counts = {}
    for objective in ('electra', 'mlm'):
        for dropout in (0.0, 0.1):
            c = get_config('tiny', objective=objective, device='cpu', dropout=dropout)
            counts[objective, dropout] = row_flops(build_models(c, tokenizer), c.max_length, c.max_predictions)
        assert counts[objective, 0.0] == counts[objective, 0.1]


def test_checkpoints_record_the_flops_of_a_step(tiny_run, tiny_mlm_run, tokenizer):
    for c in (tiny_run, tiny_mlm_run):
        state = load_checkpoint(RunDir.from_config(c).checkpoint('100.0%'))
        model = build_models(c, tokenizer)
        assert state['flops_per_step'] == c.bs * row_flops(model, c.max_length, c.max_predictions)
