"""Training curves of a run as one PNG: generator and discriminator losses, discriminator
accuracy and learning rate from `{run_name}.csv`, with the held-out curves of
`{run_name}_valid.csv` where it exists. `python -m pretrain plot RUN_DIR_OR_CSV`."""
from __future__ import annotations

import argparse
from pathlib import Path

from .log_cb import COLUMNS, read_log
from .run_dir import RunDir, runs_in
from .validation_cb import VALID_COLUMNS, valid_csv_path


def read_curves(path: Path, columns: list[str]) -> dict[str, list[float]]:
    """Column -> values of a log CSV that must hold `columns` (`read_log`'s errors), with at least
    one row."""
    rows = read_log(path, columns)
    if not rows:
        raise ValueError(f"{path} has a header but no rows: the run has not logged a step yet")
    return {c: [r[c] for r in rows] for c in columns}


def find_train_csv(run_dir_or_csv: str | Path) -> Path:
    """The training CSV: the path itself, or the one training log in a checkpoint directory."""
    p = Path(run_dir_or_csv)
    if not p.exists():
        raise ValueError(f"{p} does not exist; pass a run's checkpoint directory or its {{run_name}}.csv")
    if p.is_file():
        return p
    logs = [RunDir(p, name).train_csv for name in runs_in(p) if RunDir(p, name).train_csv.is_file()]
    if not logs:
        raise ValueError(f"{p} holds no training CSV ({{run_name}}.csv); pass the log file itself")
    if len(logs) > 1:
        raise ValueError(f"{p} holds several runs' logs ({', '.join(q.name for q in logs)}); pass one CSV")
    return logs[0]


def plot_run(run_dir_or_csv: str | Path, out: str | Path | None = None) -> Path:
    """Write the run's curves to `out` (default: `{run_name}.png` beside the CSV); return its path.

    Four panels against the training step: generator loss, discriminator loss (training means
    over each logging window; held-out values as points joined by a dashed line), discriminator
    accuracy (with held-out ROC-AUC) and learning rate.
    """
    import matplotlib
    matplotlib.use('Agg')  # files only: no display needed, none opened
    import matplotlib.pyplot as plt

    train_csv = find_train_csv(run_dir_or_csv)
    train = read_curves(train_csv, COLUMNS)
    valid_path = valid_csv_path(train_csv)
    valid = read_curves(valid_path, VALID_COLUMNS) if valid_path.exists() else None
    out = Path(out) if out is not None else RunDir.of_train_csv(train_csv).plot

    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    panels = [(axes[0, 0], 'gen_loss', 'generator loss (MLM)'), (axes[0, 1], 'disc_loss', 'discriminator loss'),
              (axes[1, 0], 'disc_acc', 'discriminator accuracy')]
    for ax, key, title in panels:
        ax.plot(train['step'], train[key], label='train')
        if valid is not None:
            ax.plot(valid['step'], valid[key], 'o--', label='held-out')
        ax.set_title(title)
    if valid is not None:
        axes[1, 0].plot(valid['step'], valid['disc_auc'], 's:', label='held-out ROC-AUC')
    axes[1, 1].plot(train['step'], train['lr'], color='tab:green')
    axes[1, 1].set_title('learning rate')
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    for ax in axes[1]:
        ax.set_xlabel('step')
    fig.suptitle(train_csv.stem)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def run_plot(args: argparse.Namespace) -> int:
    print(f'wrote {plot_run(args.run, args.out)}')
    return 0


def add_cli(subparsers) -> None:
    """`python -m pretrain plot RUN_DIR_OR_CSV [--out PNG]`."""
    p = subparsers.add_parser('plot', help='plot a run\'s training (and held-out) curves to a PNG')
    p.add_argument('run', metavar='RUN_DIR_OR_CSV', help='a checkpoint directory holding one {run_name}.csv, or the CSV')
    p.add_argument('--out', help='the PNG to write (default: {run_name}.png beside the CSV)')
    p.set_defaults(func=run_plot)
