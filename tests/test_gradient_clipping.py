import pytest
import torch
from fastai.callback.core import Callback
from fastai.callback.fp16 import MixedPrecision
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.learner import Learner
from fastai.optimizer import SGD
from torch import nn
from torch.amp import GradScaler, autocast

from _utils.gradient_clipping import GradientClipping


class CPUMixedPrecision(MixedPrecision):
    """fastai's MixedPrecision with its GradScaler on the CPU (fastai hard-codes CUDA); autocast
    off so the only difference from fp32 is the loss scaling under test."""
    def before_fit(self):
        self.autocast = autocast('cpu', enabled=False)
        self.learn.scaler, self.scales = GradScaler('cpu', init_scale=2.**11), []


class GradRecorder(Callback):
    order = GradientClipping.order + 1  # sees the gradients the optimizer will use

    def before_step(self):
        self.grads = [p.grad.detach().clone() for p in self.learn.model.parameters()]


def make_learner(cbs):
    torch.manual_seed(0)
    x = torch.randn(16, 4) * 10
    y = torch.randn(16, 1) * 10
    dl = DataLoader(list(zip(x, y)), bs=16)
    model = nn.Linear(4, 1)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    return Learner(DataLoaders(dl, dl), model, loss_func=nn.MSELoss(), opt_func=SGD, lr=0.0, cbs=cbs), x, y, init


def reference_grads(x, y, init):
    model = nn.Linear(4, 1)
    model.load_state_dict(init)
    nn.MSELoss()(model(x), y).backward()
    return [p.grad for p in model.parameters()]


@pytest.mark.parametrize('fp16', [False, True])
def test_clipped_to_global_norm_1_of_the_true_gradients(fp16):
    rec = GradRecorder()
    cbs = [GradientClipping(1.0), rec] + ([CPUMixedPrecision()] if fp16 else [])
    learn, x, y, init = make_learner(cbs)
    learn.fit(1)
    ref = reference_grads(x, y, init)
    ref_norm = torch.sqrt(sum((g ** 2).sum() for g in ref))
    assert ref_norm > 10  # the test only means something if clipping bites
    got_norm = torch.sqrt(sum((g ** 2).sum() for g in rec.grads))
    assert torch.isclose(got_norm, torch.tensor(1.0), atol=1e-4)  # unscaled exactly once
    for g, r in zip(rec.grads, ref):
        assert torch.allclose(g, r / ref_norm, atol=1e-5)


def test_clip_must_be_positive():
    with pytest.raises(ValueError, match='clip must be a positive number'):
        GradientClipping(0)


@pytest.mark.parametrize('fp16', [False, True])
def test_gradients_below_the_clip_reach_the_optimizer_unchanged(fp16):
    # a double unscale (the seed's after_backward unscale_ + GradScaler.step) would shrink them 2048x
    rec = GradRecorder()
    learn, x, y, init = make_learner([GradientClipping(1e4), rec] + ([CPUMixedPrecision()] if fp16 else []))
    learn.fit(1)
    for g, r in zip(rec.grads, reference_grads(x, y, init)):
        assert torch.allclose(g, r, rtol=1e-5)
