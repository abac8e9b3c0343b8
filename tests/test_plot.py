"""pretrain/tools/plot.py: a valid PNG from a training CSV (with and without the held-out CSV), the
`plot` subcommand, and one-line errors for missing, empty and malformed logs."""
from pathlib import Path

import pytest
from PIL import Image

from pretrain.__main__ import main
from pretrain.run.log_cb import COLUMNS, MLM_COLUMNS
from pretrain.tools.plot import plot_run
from pretrain.run.log_cb import MLM_VALID_COLUMNS, VALID_COLUMNS

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.write_text('\n'.join([','.join(header)] + [','.join(map(str, r)) for r in rows]) + '\n')
    return path


def train_log(dir: Path, name: str = 'run_1') -> Path:
    rows = [[s, 7.8 - s / 100, 0.69 - s / 1000, 0, 1e-4 * s, 0.8 + s / 1000] for s in range(10, 110, 10)]
    for r in rows:
        r[3] = r[1] + 50 * r[2]
    return write_csv(dir / f'{name}.csv', COLUMNS, rows)


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as im:
        im.verify()
        assert im.size[0] > 500 and im.size[1] > 400


def test_plot_training_and_held_out_curves(tmp_path):
    csv = train_log(tmp_path)
    write_csv(tmp_path / 'run_1_valid.csv', VALID_COLUMNS,
              [[50, 7.5, 0.6, 0.05, 0.85, 'nan', 0.0, 0.6, 0.12, 0.5], [100, 7.0, 0.5, 0.1, 0.87, 0.4, 0.1, 0.7, 0.11, 0.6]])
    out = plot_run(tmp_path)  # the directory: its one training log
    assert out == csv.with_suffix('.png')
    assert_png(out)


def test_plot_a_held_out_log_of_an_earlier_version(tmp_path):
    """Held-out logs written before the health signal have no token_cosine column: still plotted."""
    train_log(tmp_path)
    write_csv(tmp_path / 'run_1_valid.csv', VALID_COLUMNS[:-1], [[50, 7.5, 0.6, 0.05, 0.85, 0.3, 0.0, 0.6, 0.12]])
    assert_png(plot_run(tmp_path))


def test_plot_an_mlm_baseline_run(tmp_path):
    """The MLM baseline logs no discriminator: its panels say so, the rest is drawn."""
    write_csv(tmp_path / 'mlm_1.csv', MLM_COLUMNS, [[s, 7.8 - s / 100, 7.8 - s / 100, 1e-4] for s in (10, 20, 30)])
    write_csv(tmp_path / 'mlm_1_valid.csv', MLM_VALID_COLUMNS, [[20, 7.5, 0.05, 0.4], [30, 7.4, 0.06, 0.5]])
    assert_png(plot_run(tmp_path))


def test_plot_without_held_out_csv_to_a_chosen_path(tmp_path):
    out = plot_run(train_log(tmp_path), tmp_path / 'figs' / 'curves.png')
    assert out == tmp_path / 'figs' / 'curves.png'
    assert_png(out)


def test_plot_subcommand(tmp_path, capsys):
    csv = train_log(tmp_path)
    assert main(['plot', str(csv)]) == 0
    assert str(csv.with_suffix('.png')) in capsys.readouterr().out
    assert_png(csv.with_suffix('.png'))


@pytest.mark.parametrize('content, message', [
    ('', 'is empty'),
    (','.join(COLUMNS) + '\n', 'has a header but no rows'),
    ('step,gen_loss\n1,2.0\n', 'lacks column'),
    (','.join(COLUMNS) + '\n10,7.8,0.6,oops,1e-4,0.8\n', "line 2: loss is 'oops', not a number"),
    (','.join(COLUMNS) + '\n10,7.8,0.6\n', 'line 2: 3 fields, expected 6'),
])
def test_bad_logs_fail_clearly(tmp_path, content, message):
    (tmp_path / 'run.csv').write_text(content)
    with pytest.raises(ValueError, match=message):
        plot_run(tmp_path / 'run.csv')


def test_bad_paths_fail_clearly(tmp_path, capsys):
    with pytest.raises(ValueError, match='does not exist'):
        plot_run(tmp_path / 'nope')
    with pytest.raises(ValueError, match='holds no training CSV'):
        plot_run(tmp_path)
    train_log(tmp_path, 'a'), train_log(tmp_path, 'b')
    with pytest.raises(ValueError, match="several runs' logs"):
        plot_run(tmp_path)
    assert main(['plot', str(tmp_path / 'nope')]) == 2
    err = capsys.readouterr().err
    assert err.startswith('error:') and 'does not exist' in err and 'Traceback' not in err
