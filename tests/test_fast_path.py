"""The static-shape path (fixed mask slots, gathers, weighted losses): the same math as the
boolean-indexing path, and one compiled graph with no breaks and no recompiles."""
import math

import pytest
import torch
from fastai.callback.core import Callback

from pretrain.config import electra_configs, get_config
from pretrain.mask_tokens import mask_tokens, max_predictions_per_seq
from pretrain.models import ELECTRALoss, ELECTRAModel, build_electra, mask_slots
from pretrain.train import pretrain

L = 32
N = max_predictions_per_seq(0.15, L)


def batch(tok, seed=0, B=6):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(10, len(tok), (B, L), generator=g)
    lengths = torch.tensor([L, L - 3, 20, 9, L, 14][:B])
    pos = torch.arange(L)[None]
    ids[:, 0] = tok.cls_token_id
    ids[pos == (lengths - 1)[:, None]] = tok.sep_token_id
    ids[pos >= lengths[:, None]] = tok.pad_token_id
    torch.manual_seed(seed)
    masked, labels, chosen = mask_tokens(ids, tok.mask_token_id, len(tok), tok.all_special_ids, 0.15, 0.0, 0.15,
                                         pad_token_index=tok.pad_token_id, max_predictions=N, exact_count=True)
    return masked, lengths // 2, chosen, labels


def models(tok, static):
    torch.manual_seed(0)
    gen, disc = build_electra(*electra_configs(get_config('tiny'), tok))
    model = ELECTRAModel(gen, disc, tok, max_predictions=N if static else None)
    model.sample = lambda logits: logits.argmax(-1)  # the same "sample" on both paths
    return model


def test_mask_slots():
    chosen = torch.tensor([[False, True, False, True], [False, False, False, False], [True, True, True, False]])
    positions, used = mask_slots(chosen, 3)
    assert positions[0, :2].tolist() == [1, 3] and used.tolist() == [[True, True, False], [False] * 3, [True] * 3]
    assert positions[2].tolist() == [0, 1, 2]


def test_static_path_gives_the_plain_losses_and_gradients(tokenizer):
    plain, static = models(tokenizer, False), models(tokenizer, True)
    plain.train(False), static.train(False)  # no dropout: the paths must agree exactly
    x = batch(tokenizer)
    losses = []
    for model in (plain, static):
        loss_fn = ELECTRALoss()
        pred = model(*x)
        loss = loss_fn(pred, x[3])
        loss.backward()
        losses.append((loss.detach(), *loss_fn.last_losses))
    assert static(*x)[0].shape == (6, N, len(tokenizer))
    for a, b in zip(*losses):
        assert torch.allclose(a, b, atol=1e-5), (a, b)
    for (name, p), q in zip(plain.named_parameters(), static.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-5, rtol=1e-4), name


def test_one_graph_no_breaks_no_recompiles(tokenizer):
    torch._dynamo.reset()
    from torch._dynamo.utils import counters
    counters.clear()
    model = models(tokenizer, True)
    model.forward = torch.compile(model.forward, backend='aot_eager', fullgraph=True, dynamic=False)
    for seed in range(3):  # new masks, new counts of masked tokens, same shapes
        masked, sentA, chosen, labels = batch(tokenizer, seed)
        ELECTRALoss()(model(masked, sentA, chosen, labels), labels).backward()
    assert counters['stats']['unique_graphs'] == 1
    assert not counters['graph_break']
    torch._dynamo.reset()


def test_static_run_end_to_end_and_its_checks(tmp_path):
    c = get_config('tiny', steps=4, bs=16, num_workers=0, num_proc=1, device='cpu', static_shapes=True, save_points=[],
                   export=False, data_dir=str(tmp_path / 'data'), checkpoint_dir=str(tmp_path / 'ckpt'))
    learn = pretrain(c)
    assert learn.model.max_predictions == c.max_predictions == 9
    assert learn.dls.train.one_batch()[0].shape == (16, 64)  # padded to max_length
    with pytest.raises(ValueError, match='static_shapes needs exact_mask_count'):
        get_config('tiny', static_shapes=True, exact_mask_count=False)
    with pytest.raises(ValueError, match='compile needs static_shapes'):
        get_config('tiny', compile=True, static_shapes=False)


@pytest.mark.slow
def test_inductor_compiled_learner_gives_the_eager_losses(tmp_path):
    """`compile=True` through `build_learner` with torch's default backend (Inductor, C++ kernels
    on CPU; Triton on a GPU), 2 epochs of 3 steps: one graph, no recompiles at the epoch
    boundary (the last partial batch is dropped), and, without dropout, the first generator loss
    equal to the eager step's (the Gumbel noise differs between Inductor's and eager's RNG
    kernels, so later losses agree only statistically)."""
    from fastai.data.core import DataLoaders
    from torch._dynamo.utils import counters

    from pretrain.tools.bench import SyntheticVocab, synthetic_examples
    from pretrain.get_dataloaders import get_dataloader
    from pretrain.run.progress import replace_progress
    from pretrain.train import build_learner, build_models, set_seed

    tok, gen_losses = SyntheticVocab(500), {}
    dset = synthetic_examples(3 * 8 + 5, 32, 500)  # 3 full batches of 8 and a partial one, dropped
    for compile in (False, True):
        torch._dynamo.reset()
        counters.clear()
        c = get_config('tiny', steps=6, bs=8, max_length=32, device='cpu', static_shapes=True, compile=compile,
                       save_points=[], export=False, plot=False, num_workers=0, checkpoint_dir=str(tmp_path))
        set_seed(c.seed)
        model = build_models(c, tok)
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
        learn = build_learner(c, DataLoaders(get_dataloader(c, tok, dset), path='.'), tok, electra_model=model)
        replace_progress(learn, 'off')
        first = []
        learn.add_cb(type('FirstLoss', (Callback,), {'after_loss': lambda self: first.append(
            self.learn.loss_func.last_losses[0].item())})())
        learn.fit(9999)
        gen_losses[compile] = first
        assert learn.train_iter == 6 and all(map(math.isfinite, first))
        if compile:
            assert counters['stats']['unique_graphs'] == 1 and not counters['graph_break']
    assert gen_losses[True][0] == pytest.approx(gen_losses[False][0], rel=1e-5)
    torch._dynamo.reset()


def test_compile_mode_picks_cuda_graphs_on_cuda_only():
    from pretrain.run.compile_step import compile_mode
    assert compile_mode(True, 'cuda:0') == 'reduce-overhead' and compile_mode(True, 'cpu') == 'default'
    assert compile_mode('max-autotune', 'cpu') == 'max-autotune' and compile_mode(False, 'cuda') is None
