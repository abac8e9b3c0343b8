"""One progress line over the whole run, in optimizer steps: `step k/N`, steps/s, ETA and the
latest logged losses, in a terminal, a notebook or a log file, without a host sync per step."""
from __future__ import annotations

import os
import sys
import time
from datetime import timedelta

from fastai.callback.core import Callback
from fastai.callback.progress import ProgressCallback
from fastcore.basics import noop

from pretrain._utils.steps import optimizer_step, step_done
from pretrain.run.log_cb import CSVLogger

MODES = ('tty', 'notebook', 'plain', 'off')
ENV = 'PRETRAIN_PROGRESS'  # forces a mode, e.g. PRETRAIN_PROGRESS=plain under a terminal multiplexer


def in_notebook() -> bool:
    """A Jupyter (or Colab) kernel, not a terminal IPython."""
    shell = sys.modules.get('IPython') and sys.modules['IPython'].get_ipython()
    return shell is not None and (type(shell).__name__ == 'ZMQInteractiveShell'
                                  or type(shell).__module__.startswith('google.colab'))


def detect_mode(stream=None) -> str:
    """`$PRETRAIN_PROGRESS` if set, else 'notebook' in a Jupyter kernel, 'tty' when `stream`
    (stdout) is a terminal, else 'plain' (log files, CI, pipes)."""
    forced = os.environ.get(ENV, '').strip().lower()
    if forced:
        if forced not in MODES:
            raise ValueError(f"{ENV}={forced!r}: use one of {', '.join(MODES)}")
        return forced
    if in_notebook():
        return 'notebook'
    try:
        return 'tty' if (stream or sys.stdout).isatty() else 'plain'
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return 'plain'


def format_line(step: int, total: int, rate: float | None, eta: float | None, losses: dict | None,
                elapsed: float | None = None) -> str:
    """`step 150/300 (50%) | 9.8 steps/s | ETA 0:00:15 | gen 5.12 disc 0.41`; with `elapsed`
    (the final line), the run's time instead of the ETA."""
    parts = [f'step {step}/{total} ({100 * step // max(total, 1)}%)',
             f'{rate:.3g} steps/s' if rate else '? steps/s']
    if elapsed is not None:
        parts.append(f'took {timedelta(seconds=round(elapsed))}')
    else:
        parts.append(f'ETA {timedelta(seconds=round(eta))}' if eta is not None else 'ETA ?')
    if losses:
        parts.append(f"gen {losses['gen_loss']:.4g}" + (f" disc {losses['disc_loss']:.4g}" if 'disc_loss' in losses else ''))
    return ' | '.join(parts)


class StepProgress(Callback):
    """Progress of a run in optimizer steps: step k/N, steps/s and ETA (measured from the start
    of this fit, so a resumed run counts from its checkpoint's step), and the generator and
    discriminator losses of the latest CSV row (the values `CSVLogger` has already read to the
    host every `log_every` steps: the progress itself never reads the device).

    `mode`: 'tty' (one line redrawn with '\\r' at most every `tty_every` seconds), 'notebook'
    (an HTML bar updated in place), 'plain' (a full line every `plain_every` seconds or every
    `max(1, N // 20)` steps, whichever comes first, and a final line; never '\\r'), 'off'; None
    detects it (`detect_mode`). N is `RunSteps.n_steps` (or the fit's batches). Replaces
    fastai's `ProgressCallback`, whose per-epoch bars and table mean nothing when `RunSteps`
    stops the fit (and whose comment reads the loss every batch); fastai's per-epoch log is
    silenced during the fit. Use `replace_progress(learn)` to swap it in.
    """
    order = 65  # after CSVLogger (55) has flushed a row, before RunSteps (70) ends the fit

    def __init__(self, mode: str | None = None, stream=None, n_steps: int | None = None,
                 tty_every: float = 0.25, notebook_every: float = 0.5, plain_every: float = 60.0):
        if mode is not None and mode not in MODES:
            raise ValueError(f"unknown progress mode {mode!r}; use one of {', '.join(MODES)}")
        self.mode, self.stream, self.n_steps = mode, stream, n_steps
        self.tty_every, self.notebook_every, self.plain_every = tty_every, notebook_every, plain_every

    # --- fit events -------------------------------------------------------------------------
    def before_fit(self) -> None:
        self.old_logger, self.learn.logger = self.learn.logger, noop  # no per-epoch table
        self.active = self.mode or detect_mode(self.stream)
        self.total = self.n_steps or self.find_total()
        self.start_step = self.step = optimizer_step(self.learn)  # the resumed step, if any
        self.t0 = self.last_shown = time.monotonic()
        self.every_steps = max(1, self.total // 20)
        self.width, self.handle = 0, None
        if self.active in ('tty', 'notebook'):
            self.show(self.line())

    def after_batch(self) -> None:
        step = step_done(self.learn)
        if step is None:
            return
        self.step = step
        if self.active == 'off' or self.step >= self.total:  # the final line comes from after_fit
            return
        now = time.monotonic()
        if self.active == 'plain':
            due = self.step % self.every_steps == 0 or now - self.last_shown >= self.plain_every
        else:
            due = now - self.last_shown >= (self.tty_every if self.active == 'tty' else self.notebook_every)
        if due:
            self.last_shown = now
            self.show(self.line(now))

    def after_fit(self) -> None:
        self.learn.logger = self.old_logger
        if self.active == 'off':
            return
        self.step = optimizer_step(self.learn)
        self.show(self.line(final=True), final=True)

    # --- the line -------------------------------------------------------------------------------
    def find_total(self) -> int:
        # the run's length as a step-counting callback (RunSteps) holds it, else the fit's batches
        n_steps = next((vars(cb)['n_steps'] for cb in self.learn.cbs if cb is not self and vars(cb).get('n_steps')), None)
        if n_steps is not None:
            return n_steps
        return self.learn.n_epoch * len(self.learn.dls.train) // getattr(self.learn, 'grad_accum', 1)

    def losses(self) -> dict | None:
        """The latest row `CSVLogger` has already read to the host (None before its first)."""
        return next((cb.last_row for cb in self.learn.cbs if isinstance(cb, CSVLogger)), None)

    def rate(self, now: float | None = None) -> float | None:
        seconds = (time.monotonic() if now is None else now) - self.t0
        done = self.step - self.start_step
        return done / seconds if done > 0 and seconds > 0 else None

    def line(self, now: float | None = None, final: bool = False) -> str:
        now = time.monotonic() if now is None else now
        rate = self.rate(now)
        eta = (self.total - self.step) / rate if rate else None
        return format_line(self.step, self.total, rate, eta, self.losses(), now - self.t0 if final else None)

    def show(self, text: str, final: bool = False) -> None:
        if self.active == 'notebook':
            return self.show_notebook(text)
        stream = self.stream or sys.stdout
        if self.active == 'tty':
            pad = ' ' * max(0, self.width - len(text))  # clear what a longer line left
            self.width = len(text)
            stream.write(f'\r{bar(self.step, self.total)} {text}{pad}' + ('\n' if final else ''))
        else:
            stream.write(text + '\n')
        stream.flush()

    def show_notebook(self, text: str) -> None:
        from IPython.display import display
        html = (f'<progress value="{self.step}" max="{self.total}" style="width:300px;vertical-align:middle">'
                f'</progress> <code>{text}</code>')
        data = {'text/html': html, 'text/plain': text}
        if self.handle is None:
            self.handle = display(data, raw=True, display_id=True)
        else:
            self.handle.update(data, raw=True)


def bar(step: int, total: int, width: int = 20) -> str:
    filled = width * min(step, total) // max(total, 1)
    return '[' + '#' * filled + '-' * (width - filled) + ']'


def replace_progress(learn, mode: str | None = None, **kwargs):
    """Swap fastai's per-epoch `ProgressCallback` for `StepProgress` (mode 'off' on ranks other
    than 0 shows nothing and still silences fastai's per-epoch log); returns `learn`."""
    learn.remove_cb(ProgressCallback)
    learn.remove_cbs([cb for cb in learn.cbs if isinstance(cb, StepProgress)])
    learn.add_cb(StepProgress(mode, **kwargs))
    return learn
