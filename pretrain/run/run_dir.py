"""A run's files, named in one place: everything a pre-training run writes lives in its
checkpoint directory under its run name, and every reader finds it through `RunDir`."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from _utils.paths import repo_path

# a checkpoint's tag after `{run_name}_`: a save point ('6.25%') or a periodic step ('step5000')
CHECKPOINT_TAG = re.compile(r'_(step\d+|[\d.]+%)$')


@dataclass(frozen=True)
class RunDir:
    """`{directory}/{run_name}...`: the training log `.csv`, the held-out log `_valid.csv`, the
    curves `.png`, checkpoints `_{tag}.pth`, the Hugging Face export `_export/` and the demo's
    report `_demo.json`."""
    directory: Path
    run_name: str

    @classmethod
    def from_config(cls, c) -> RunDir:
        return cls(repo_path(c.checkpoint_dir), c.run_name)

    @classmethod
    def of_train_csv(cls, path: str | Path) -> RunDir:
        """The run whose training log is `path` (`{run_name}.csv`)."""
        path = Path(path)
        return cls(path.parent, path.stem)

    @property
    def train_csv(self) -> Path:
        return self.directory / f'{self.run_name}.csv'

    @property
    def valid_csv(self) -> Path:
        return self.directory / f'{self.run_name}_valid.csv'

    @property
    def plot(self) -> Path:
        return self.directory / f'{self.run_name}.png'

    @property
    def export(self) -> Path:
        return self.directory / f'{self.run_name}_export'

    @property
    def demo_report(self) -> Path:
        return self.directory / f'{self.run_name}_demo.json'

    @property
    def lock(self) -> Path:
        """`{run_name}.lock`: held (flock) by the process training the run (`run_lock.RunLock`)."""
        return self.directory / f'{self.run_name}.lock'

    def checkpoint(self, tag: str) -> Path:
        """`{run_name}_{tag}.pth`, e.g. tag '6.25%' or 'step5000'."""
        return self.directory / f'{self.run_name}_{tag}.pth'

    def checkpoint_files(self) -> list[Path]:
        """This run's checkpoint files (not the `.tmp` of a save in progress), by name."""
        prefix = f'{self.run_name}_'
        return sorted(p for p in self.directory.glob('*.pth')
                      if p.name.startswith(prefix) and CHECKPOINT_TAG.fullmatch(p.stem[len(self.run_name):]))

    def files(self) -> list[Path]:
        """Everything this run has written: checkpoints, both logs, the plot, the export and the
        demo's report (what starting the run afresh, `overwrite`, deletes), those that exist."""
        named = (self.train_csv, self.valid_csv, self.plot, self.export, self.demo_report)
        return self.checkpoint_files() + [p for p in named if p.exists()]


def runs_in(directory: str | Path) -> list[str]:
    """The run names with a training log, an export or a checkpoint in `directory`."""
    d = Path(directory)
    names = {q.stem for q in d.glob('*.csv') if not q.name.endswith('_valid.csv')}
    names |= {q.name[:-len('_export')] for q in d.glob('*_export') if q.is_dir()}
    names |= {q.stem[:m.start()] for q in d.glob('*.pth') if (m := CHECKPOINT_TAG.search(q.stem))}
    return sorted(names)
