"""A run's checkpoint files: when they are written and how many are kept (`SaveCheckpoints`),
and which of them exist and can be read (`scan_checkpoints`, `checkpoints_of`, the latest for
`find_resume`). What a checkpoint holds is `checkpoint.py`'s; how it is read, `safe_load.py`'s."""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from fastai.callback.core import Callback

from pretrain._utils.steps import step_done
from pretrain.config import save_point_steps
from pretrain.run.checkpoint import alias_checkpoint, save_checkpoint
from pretrain.run.run_dir import RunDir
from pretrain.run.safe_load import read_checkpoint


class SaveCheckpoints(Callback):
    """Checkpoint cadence: at each of `save_points`, fractions of `n_steps` (the seed's 0.0625 ...
    1.0) or step counts, a checkpoint `base_name.format(percent=...)`, e.g.
    `vanilla_11081_6.25%.pth`, under `learn.path/learn.model_dir`; with `save_every`, also every
    N steps as `..._step{N}.pth`, keeping the last `keep_last` of those. Checkpoints are complete
    training states (pretrain/run/checkpoint.py), written atomically, only by rank 0, and never while
    the loss is not finite (the last good one stays)."""
    order = 69  # after the logger and held-out evaluation, just before RunSteps (70) ends the fit

    def __init__(self, n_steps: int, save_points: list[float | int] | None = None, base_name: str | None = None,
                 save_every: int | None = None, keep_last: int | None = None, rank: int = 0):
        points = save_point_steps(save_points or [], n_steps)
        if (points or save_every) and (not base_name or '{percent}' not in base_name):
            raise ValueError("base_name must contain '{percent}', e.g. 'vanilla_11081_{percent}'")
        if save_every is not None and save_every < 1 or keep_last is not None and keep_last < 1:
            raise ValueError(f"save_every and keep_last must be positive, got {save_every}, {keep_last}")
        self.save_points, self.base_name = points, base_name
        self.save_every, self.keep_last, self.rank = save_every, keep_last, rank

    def after_batch(self) -> None:
        step = step_done(self.learn)
        if step is None:
            return
        names = [self.base_name.format(percent=p) for p in self.save_points.get(step, [])]
        if self.save_every and step % self.save_every == 0:
            names.append(self.base_name.format(percent=f'step{step}'))
        if names and self.rank == 0 and bool(torch.isfinite(self.learn.loss)):  # one sync per save, not per step
            saved = self.save(names[0])
            for name in names[1:]:  # one state under each of its step's tags, stored once
                alias_checkpoint(saved, self.directory / f'{name}.pth')
            self.prune()

    @property
    def directory(self) -> Path:
        return Path(self.learn.path) / self.learn.model_dir

    def save(self, name: str) -> Path:
        return save_checkpoint(self.learn, self.directory / f'{name}.pth')

    def prune(self) -> None:
        """Keep only the last `keep_last` periodic checkpoints (the fraction ones stay)."""
        if not self.keep_last:
            return
        prefix, suffix = self.base_name.split('{percent}')
        periodic = []
        for p in self.directory.glob('*.pth'):
            middle = p.stem[len(prefix):len(p.stem) - len(suffix)] if p.stem.startswith(prefix) and p.stem.endswith(suffix) else ''
            if middle.startswith('step') and middle[4:].isdigit():
                periodic.append((int(middle[4:]), p))
        for _, p in sorted(periodic)[:-self.keep_last]:
            p.unlink(missing_ok=True)


def scan_checkpoints(run_dir: str | Path, run_name: str) -> tuple[list[tuple[int, Path]], list[str]]:
    """(step, path) of the readable checkpoints of a run, oldest first, and a one-line reason for
    each `{run_name}_*.pth` skipped (damaged, foreign, or refused as unsafe). Temporary files
    (`.pth.{host}-{pid}.tmp`) are not candidates."""
    found, skipped = [], []
    for p in RunDir(Path(run_dir), run_name).checkpoint_files():
        try:
            state = read_checkpoint(p, mmap=True)  # mmap: the weights are not read, only the small entries
            found.append((int(state['step']), p))
        except ValueError as e:
            skipped.append(str(e))
        except Exception as e:  # a checkpoint-like dict without a usable step
            skipped.append(f"{str(p)!r} is not a usable checkpoint ({type(e).__name__})")
    return sorted(found), sorted(skipped)


def checkpoints_of(run_dir: str | Path, run_name: str) -> list[tuple[int, Path]]:
    """(step, path) of the readable checkpoints of a run, oldest first; each file skipped is a
    warning line on stderr (a refused or damaged file is never silently ignored)."""
    found, skipped = scan_checkpoints(run_dir, run_name)
    for reason in skipped:
        print(f'warning: skipped {reason}', file=sys.stderr)
    return found


def find_resume(resume: str | Path, run_dir: str | Path, run_name: str) -> Path:
    """The checkpoint to resume from: a path, or 'latest' (the highest step of `run_name`)."""
    if str(resume) != 'latest':
        return Path(resume)
    found, skipped = scan_checkpoints(run_dir, run_name)
    if not found:
        why = f" (skipped {len(skipped)}: {skipped[-1]})" if skipped else ''
        raise ValueError(f"resume='latest' but {run_dir} holds no readable checkpoint of run {run_name!r}{why}")
    for reason in skipped:
        print(f'warning: skipped {reason}', file=sys.stderr)
    return found[-1][1]
