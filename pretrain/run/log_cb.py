"""Training log: a CSV row every `log_every` steps, read from device-side sums so the step
itself never waits for the host."""
from __future__ import annotations

import csv
from pathlib import Path

import torch
from fastai.callback.core import Callback
from fastai.learner import AvgSmoothLoss, Recorder

from pretrain._utils.steps import optimizer_step, step_done
from pretrain.run.run_dir import RunDir

COLUMNS = ['step', 'gen_loss', 'disc_loss', 'loss', 'lr', 'disc_acc']
MLM_COLUMNS = ['step', 'gen_loss', 'loss', 'lr']  # the MLM baseline's log: no discriminator
# the held-out log (run/validation_cb.py)
# replaced_rate: the share of replaced tokens, the discriminator's accuracy when it says "all original";
# token_cosine: the mean cosine between the fine-tuned encoder's token states (`HEALTH_ROWS` held-out rows):
# it rises towards 1 when the representation collapses (random weights, `mini` on docs_ja: 0.15 for the
# discriminator, 0.20 for the MLM baseline's model)
VALID_COLUMNS = ['step', 'gen_loss', 'disc_loss', 'gen_acc', 'disc_acc', 'disc_precision', 'disc_recall', 'disc_auc',
                 'replaced_rate', 'token_cosine']
MLM_VALID_COLUMNS = ['step', 'gen_loss', 'gen_acc', 'token_cosine']  # the MLM baseline has no discriminator


def log_columns(loss_func) -> list[str]:
    """The training log's columns for a loss: ELECTRA's `COLUMNS`, or `MLM_COLUMNS` for a loss
    whose parts (`PARTS`, the names of its `last_losses`) have no discriminator."""
    parts = list(getattr(loss_func, 'PARTS', ('gen_loss', 'disc_loss')))
    return ['step', *parts, 'loss', 'lr'] + (['disc_acc'] if 'disc_loss' in parts else [])


class CSVLogger(Callback):
    """Appends `step, gen_loss, disc_loss, loss, lr, disc_acc` (means over the last
    `log_every` steps) to `path`, which is started afresh at the start of `fit`; with a
    `wandb_run`, logs the same values there (fastai's WandbCallback would sync every step).

    Reads the loss's `last_losses` (`ELECTRALoss`: generator, discriminator; `MLMLoss`: the
    masked-LM part alone, logged as `MLM_COLUMNS`) and, for ELECTRA, `ELECTRAModel`'s outputs in
    `learn.pred`: `disc_acc` is the discriminator's accuracy over non-pad tokens. `last_row`: the
    latest row written, as a dict of the columns (None before the first), for displays that must
    not read the device themselves (`StepProgress`).
    """
    order = 55

    def __init__(self, path: str | Path, log_every: int = 10, wandb_run=None):
        self.path, self.log_every, self.wandb_run = Path(path), log_every, wandb_run
        self.resumed, self.last_row = None, None

    @classmethod
    def from_config(cls, c, wandb_run=None) -> CSVLogger:
        """The run's log, `{checkpoint_dir}/{run_name}.csv`, a row every `c.log_every` steps."""
        return cls(RunDir.from_config(c).train_csv, c.log_every, wandb_run)

    def state_dict(self) -> dict:
        """The running sums, so a resumed run writes the same rows as an uninterrupted one."""
        return {'sums': self.sums, 'n': self.n}

    def load_state_dict(self, state: dict) -> None:
        self.resumed = state

    def before_fit(self) -> None:
        # when resuming, ResumeCallback (order -5) has already restored train_iter
        self.columns = log_columns(self.learn.loss_func)
        start_csv(self.path, self.columns, optimizer_step(self.learn) if self.resumed is not None else None)
        self.sums, self.n = (self.resumed['sums'], self.resumed['n']) if self.resumed is not None else (None, 0)
        self.resumed, self.last_row = None, None

    def after_batch(self) -> None:
        if not self.training or self.learn.loss_func.last_losses is None:
            return
        values = [part.float() for part in self.learn.loss_func.last_losses] + [self.learn.loss.detach().float()]
        if 'disc_acc' in self.columns:
            pred = self.learn.pred  # an ElectraOutput
            non_pad = pred.attention_mask
            values.append(((((pred.disc_logits > 0) == pred.is_replaced) & non_pad).sum() / non_pad.sum()).float())
        row = torch.stack(values)
        self.sums = row if self.sums is None else self.sums + row
        self.n += 1  # batches (micro-batches under gradient accumulation) in the window
        step = step_done(self.learn)
        if step is not None and step % self.log_every == 0:
            self.flush()

    def after_fit(self) -> None:
        if getattr(self, 'n', 0):
            self.flush()
        if self.wandb_run is not None:
            self.wandb_run.finish()

    def flush(self) -> None:
        means = (self.sums / self.n).tolist()  # the one host sync per log_every steps
        row = dict(zip([c for c in self.columns if c not in ('step', 'lr')], means),
                   step=optimizer_step(self.learn), lr=self.opt.hypers[0]['lr'])
        with self.path.open('a', newline='') as f:
            csv.writer(f).writerow([row['step']] + [f"{row[c]:.6g}" if c == 'lr' else f"{row[c]:.6f}"
                                                     for c in self.columns[1:]])
        self.last_row = {c: row[c] for c in self.columns}
        if self.wandb_run is not None:
            self.wandb_run.log({c: row[c] for c in self.columns[1:]}, step=row['step'])
        self.sums, self.n = None, 0


def start_csv(path: Path, columns: list[str], keep_until: int | None = None) -> None:
    """A fresh CSV with a header; when resuming (`keep_until`: the step resumed from), keep
    the rows up to that step and drop those written after the checkpoint by the lost run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    if keep_until is not None and path.exists():
        with path.open(newline='') as f:
            rows = [r for r in list(csv.reader(f))[1:] if r and int(r[0]) <= keep_until]
    with path.open('w', newline='') as f:
        csv.writer(f).writerows([columns] + rows)


def read_log(path: str | Path, columns: list[str] | None = None) -> list[dict[str, float]]:
    """The rows of a run's CSV log (training or held-out) as dicts of floats, the one reader of
    both. A `ValueError` names the file, and the line or the columns, when it is empty, lacks one
    of `columns` (default: `step`), has a row of the wrong length or a value that is no number."""
    path = Path(path)
    with path.open(newline='') as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise ValueError(f"{path} is empty: the run has not logged anything yet")
        missing = [c for c in columns or ['step'] if c not in header]
        if missing:
            raise ValueError(f"{path} lacks column(s) {', '.join(missing)} (it has {', '.join(header)}); "
                             f"pass a CSV written by pretrain's CSVLogger or HeldOutEval")
        rows = []
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise ValueError(f"{path} line {line_no}: {len(row)} fields, expected {len(header)}")
            values = {}
            for k, v in zip(header, row):
                try:
                    values[k] = float(v)
                except ValueError:
                    raise ValueError(f"{path} line {line_no}: {k} is {v!r}, not a number") from None
            rows.append(values)
    return rows


class DeviceSmoothLoss(AvgSmoothLoss):
    """fastai's exponentially smoothed loss, kept on the loss's device (fastai's copies the loss
    to the host at every step)."""

    def accumulate(self, learn) -> None:
        self.count += 1
        loss = learn.loss.mean().detach()
        self.val = torch.lerp(loss, self.val.to(loss.device, loss.dtype), self.beta)


class StepRecorder(Recorder):
    """fastai's `Recorder` (`learn.recorder`: metric names, the per-epoch log, validation
    metrics) without its per-step work: no host copy of the loss and no per-step `lrs`/`losses`
    lists, which grow by a tensor per step (a million over a long run). `CSVLogger` keeps the
    curves; `learn.smooth_loss` stays a device tensor, read only at the end of an epoch."""

    @property
    def name(self) -> str:
        return 'recorder'  # replaces fastai's as `learn.recorder`

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.smooth_loss = DeviceSmoothLoss(beta=self.smooth_loss.beta)

    def after_batch(self) -> None:
        if not self.training:
            return super().after_batch()  # validation metrics, if a user validates
        if len(self.yb):
            self.smooth_loss.accumulate(self.learn)
            self.learn.smooth_loss = self.smooth_loss.value


def replace_recorder(learn):
    """Swap fastai's `Recorder` for `StepRecorder`; returns `learn`."""
    learn.remove_cb(Recorder)
    learn.add_cb(StepRecorder())
    return learn
