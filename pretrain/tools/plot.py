"""Training curves of a run as one PNG: generator (or MLM) and discriminator losses, the
held-out generator accuracy, discriminator accuracy and ROC-AUC, the representation-health
signal and the learning rate, from `{run_name}.csv` and, where it exists, `{run_name}_valid.csv`.
`python -m pretrain plot RUN_DIR_OR_CSV`."""
from __future__ import annotations

import argparse
from pathlib import Path

from pretrain.run.log_cb import MLM_COLUMNS, MLM_VALID_COLUMNS, read_log
from pretrain.run.run_dir import RunDir, runs_in

# the columns every training / held-out log has, ELECTRA's or the MLM baseline's (older held-out
# logs lack token_cosine)
TRAIN_REQUIRED = MLM_COLUMNS
VALID_REQUIRED = [c for c in MLM_VALID_COLUMNS if c != 'token_cosine']


def read_curves(path: Path, columns: list[str]) -> dict[str, list[float]]:
    """Column -> values of a log CSV, every column it has; it must hold `columns` (`read_log`'s
    errors) and at least one row."""
    rows = read_log(path, columns)
    if not rows:
        raise ValueError(f"{path} has a header but no rows: the run has not logged a step yet")
    return {c: [r[c] for r in rows] for c in rows[0]}


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

    Six panels against the training step: generator loss, discriminator loss (training means over
    each logging window; held-out values as points joined by a dashed line), held-out generator
    accuracy, discriminator accuracy with held-out ROC-AUC, the held-out token-state cosine and the
    learning rate. A panel whose values the run does not log (the MLM baseline has no
    discriminator; older held-out logs no cosine) says so.
    """
    import matplotlib
    matplotlib.use('Agg')  # files only: no display needed, none opened
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    train_csv = find_train_csv(run_dir_or_csv)
    train = read_curves(train_csv, TRAIN_REQUIRED)
    valid_path = RunDir.of_train_csv(train_csv).valid_csv
    valid = read_curves(valid_path, VALID_REQUIRED) if valid_path.exists() else {}
    out = Path(out) if out is not None else RunDir.of_train_csv(train_csv).plot

    fig, axes = plt.subplots(2, 3, figsize=(14, 7), sharex=True)
    panels = [(axes[0, 0], 'generator loss (MLM)', [('gen_loss', 'train'), ('gen_loss', 'held-out')]),
              (axes[0, 1], 'discriminator loss', [('disc_loss', 'train'), ('disc_loss', 'held-out')]),
              (axes[0, 2], 'generator accuracy at masked positions', [('gen_acc', 'held-out')]),
              (axes[1, 0], 'discriminator', [('disc_acc', 'train'), ('disc_acc', 'held-out'),
                                             ('disc_auc', 'held-out ROC-AUC')]),
              (axes[1, 1], 'token-state cosine (health: 1 = collapsed)', [('token_cosine', 'held-out')]),
              (axes[1, 2], 'learning rate', [('lr', 'train')])]
    for ax, title, curves in panels:
        drawn = False
        for key, label in curves:
            source = train if label == 'train' else valid
            if key in source:
                style = '-' if label == 'train' else ('s:' if 'AUC' in label else 'o--')
                ax.plot(source['step'], source[key], style, label=label)
                drawn = True
        if not drawn:
            ax.text(0.5, 0.5, 'not logged by this run', ha='center', va='center', transform=ax.transAxes,
                    color='gray')
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        if len(ax.get_legend_handles_labels()[0]) > 1:
            ax.legend()
    for ax in axes[1]:
        ax.set_xlabel('step')
    # at most 6 step labels: five-digit steps at every 2,500 ran into each other
    axes[1, 0].xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
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
