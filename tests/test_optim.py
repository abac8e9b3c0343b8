import math

import pytest
import torch
from torch import nn

from pretrain.config import get_config
from pretrain.optim import ElectraAdam, get_optim, param_groups


def reference_step(p, g, m, v, lr, wd, b1=0.9, b2=0.999, eps=1e-6, step=None):
    """Google's AdamWeightDecayOptimizer, written out element-wise."""
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    if step is None:
        update = m / (v.sqrt() + eps)
    else:  # standard Adam bias correction
        update = (m / (1 - b1 ** step)) / ((v / (1 - b2 ** step)).sqrt() + eps)
    return p - lr * (update + wd * p), m, v


@pytest.mark.parametrize('bias_correction', [False, True])
def test_update_matches_the_formula(bias_correction):
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(5, 3))
    opt = ElectraAdam([dict(params=[w], weight_decay=0.01)], lr=0.1, bias_correction=bias_correction)
    p, m, v = w.detach().clone(), torch.zeros(5, 3), torch.zeros(5, 3)
    for step in range(1, 6):
        g = torch.randn(5, 3)
        w.grad = g.clone()
        opt.step()
        p, m, v = reference_step(p, g, m, v, lr=0.1, wd=0.01, step=step if bias_correction else None)
        assert torch.allclose(w.detach(), p, atol=1e-6)


def test_first_step_without_bias_correction_is_small():
    # m = 0.1 g, v = 0.001 g^2 -> |update| = 0.1/sqrt(0.001) ~ 3.16, not 1 as with bias correction
    w = nn.Parameter(torch.zeros(1))
    w.grad = torch.ones(1)
    ElectraAdam([w], lr=1.0).step()
    assert math.isclose(-w.item(), 0.1 / (math.sqrt(0.001) + 1e-6), rel_tol=1e-5)


def test_weight_decay_skips_layernorm_and_biases():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 4), nn.LayerNorm(4))
    groups = param_groups(list(model.parameters()), 0.01)
    decayed = {id(p) for p in groups[0]['params']}
    assert groups[0]['weight_decay'] == 0.01 and groups[1]['weight_decay'] == 0.0
    assert decayed == {id(model[0].weight), id(model[1].weight)}
    assert {id(p) for p in groups[1]['params']} == {id(model[1].bias), id(model[2].weight), id(model[2].bias)}


def test_zero_gradient_leaves_undecayed_params_still_and_decays_the_rest():
    model = nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3))
    before = [p.detach().clone() for p in model.parameters()]
    opt = get_optim(get_config('tiny', lr=0.5))(list(model.parameters()), lr=0.5)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    w, b, ln_w, ln_b = model.parameters()
    assert torch.allclose(w.detach(), before[0] * (1 - 0.5 * 0.01))  # decoupled: lr * wd * p
    for p, q in zip((b, ln_w, ln_b), before[1:]):
        assert torch.equal(p.detach(), q)


def test_get_optim_is_a_fastai_opt_func_with_recipe_hypers():
    opt_func = get_optim(get_config('small'))
    assert opt_func.keywords['lr'] == 5e-4  # so fastai's Learner picks the peak lr up
    opt = opt_func([nn.Parameter(torch.ones(2, 2)), nn.Parameter(torch.ones(2))], lr=5e-4)
    assert [h['wd'] for h in opt.hypers] == [0.01, 0.0]
    h = opt.hypers[0]
    assert (h['mom'], h['sqr_mom'], h['eps'], h['lr'], h['bias_correction']) == (0.9, 0.999, 1e-6, 5e-4, False)
    opt.set_hyper('lr', 1e-3)  # what the schedule does
    assert all(g['lr'] == 1e-3 for g in opt.opt.param_groups)
    assert get_optim(get_config('small', adam_bias_correction=True)).keywords['bias_correction'] is True
    opt = get_optim(get_config('small', weight_decay=0.1))([nn.Parameter(torch.ones(2, 2)), nn.Parameter(torch.ones(2))])
    assert [h['wd'] for h in opt.hypers] == [0.1, 0.0]
    for bad in (-0.1, 'none', True):
        with pytest.raises(ValueError, match='weight_decay must be'):
            get_config('small', weight_decay=bad)


def test_invalid_hyperparameters_raise():
    with pytest.raises(ValueError, match='invalid Adam'):
        ElectraAdam([nn.Parameter(torch.ones(1))], lr=-1)
