"""The CUDA training step: no host sync between log points, the compiled step with CUDA graphs
giving the eager step's losses, and a whole compiled run with held-out evaluation. Skipped
without a GPU; `bench/gpu_check.sh` runs them on one (`pytest -m gpu`)."""
import pytest
import torch
from fastai.callback.core import Callback
from fastai.data.core import DataLoaders

from pretrain.tools.bench import SyntheticVocab, synthetic_examples
from pretrain.config import get_config
from pretrain.get_dataloaders import get_dataloader
from pretrain.run.log_cb import read_log
from pretrain.run.progress import replace_progress
from pretrain.train import build_learner, build_models, pretrain, set_seed
from pretrain.run.run_dir import RunDir

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')]
VOCAB = 3000


class Losses(Callback):
    """Each training batch's loss and generator loss, kept on the device (read after the fit)."""
    order = 99

    def before_fit(self) -> None:
        self.losses, self.gen = [], []

    def after_batch(self) -> None:
        if self.training:
            self.losses.append(self.learn.loss.detach())
            self.gen.append(self.learn.loss_func.last_losses[0])


class NoSyncBetween(Callback):
    """`torch.cuda.set_sync_debug_mode('error')` from batch `start` to batch `stop`: any host
    sync in those steps raises."""
    order = 100

    def __init__(self, start: int, stop: int):
        self.start, self.stop = start, stop

    def after_batch(self) -> None:
        it = self.learn.train_iter
        torch.cuda.set_sync_debug_mode('error' if self.start <= it < self.stop else 0)

    def after_fit(self) -> None:
        torch.cuda.set_sync_debug_mode(0)


def learner(tmp_path, steps: int, dropout: bool = True, **overrides):
    c = get_config('tiny', steps=steps, device='cuda', save_points=[], export=False, plot=False, log_every=1000,
                   num_workers=0, checkpoint_dir=str(tmp_path / 'ckpt'), **overrides)
    tok = SyntheticVocab(VOCAB)
    set_seed(c.seed)
    model = build_models(c, tok)
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout) and not dropout:
            m.p = 0.0
    learn = build_learner(c, DataLoaders(get_dataloader(c, tok, synthetic_examples(c.bs * steps, c.max_length, VOCAB)),
                                         path='.'), tok, electra_model=model)
    replace_progress(learn, 'off')
    return learn


@pytest.mark.parametrize('compile', [False, True])
def test_the_step_never_waits_for_the_gpu(tmp_path, compile):
    """bf16, static shapes, pinned non-blocking batch copies: steps 3..9 run with every host sync
    an error (the CSV log, the non-finite guard and held-out evaluation read the device only
    every `log_every` / `eval_every` steps)."""
    learn = learner(tmp_path, 12, compile=compile)
    assert learn.model.max_predictions and learn.dls.train.pin_memory
    learn.add_cb(NoSyncBetween(3, 10))
    learn.fit(9999)
    assert learn.train_iter == 12


def test_cuda_graph_step_gives_the_eager_losses(tmp_path):
    """The compiled step replayed as CUDA graphs ('reduce-overhead') against the eager step, in
    fp32 from the same weights and masks, without dropout: the first generator loss (before any
    sampling touches the weights) agrees to 1e-4, and the losses stay together over 30 steps (the Gumbel noise
    comes from different RNG kernels, so only statistically)."""
    runs = {}
    for compile in (False, 'reduce-overhead'):
        learn = learner(tmp_path / str(compile), 30, dropout=False, compile=compile, precision='fp32')
        rec = Losses()
        learn.add_cb(rec)
        learn.fit(9999)
        runs[compile] = torch.stack(rec.losses).cpu(), torch.stack(rec.gen).cpu()
    (eager, eager_gen), (graphs, graphs_gen) = runs[False], runs['reduce-overhead']
    assert torch.allclose(eager_gen[0], graphs_gen[0], rtol=1e-4, atol=1e-4)
    assert torch.isfinite(graphs).all()
    assert abs(graphs[-10:].mean() - eager[-10:].mean()) < 0.1 * eager[-10:].mean()


def test_a_compiled_run_with_held_out_evaluation(tmp_path):
    """The whole default GPU run (bf16, static shapes, compiled with CUDA graphs) on the sample
    corpus: training, held-out evaluation between steps, checkpoints and the export."""
    c = get_config('tiny', datas=['sample'], steps=40, bs=8, device='cuda', compile=True, valid_size=16, eval_every=10,
                   save_points=[0.5, 1.0], num_workers=0, num_proc=1, plot=False,
                   data_dir=str(tmp_path / 'data'), checkpoint_dir=str(tmp_path / 'ckpt'))
    learn = pretrain(c)
    train_csv = tmp_path / 'ckpt' / f'{c.run_name}.csv'
    log = read_log(train_csv)
    assert log[-1]['step'] == 40 and all(torch.isfinite(torch.tensor(r['loss'])) for r in log)
    assert len(read_log(RunDir.of_train_csv(train_csv).valid_csv)) >= 4
    assert (tmp_path / 'ckpt' / f'{c.run_name}_export' / 'discriminator').is_dir()
    assert learn.train_iter == 40
