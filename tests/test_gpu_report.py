"""bench/gpu_report.py: the curve comparison that decides whether a device run tracks the CPU
reference, and the summary JSON of bench/gpu_check.sh."""
import csv
import importlib.util
import json
import math
from pathlib import Path

spec = importlib.util.spec_from_file_location('gpu_report', Path(__file__).resolve().parent.parent / 'bench' / 'gpu_report.py')
gpu_report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_report)


def write_log(path: Path, gen, disc, every: int = 10) -> Path:
    with path.open('w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['step', 'gen_loss', 'disc_loss', 'loss', 'lr', 'disc_acc'])
        for i, (g, d) in enumerate(zip(gen, disc)):
            w.writerow([(i + 1) * every, g, d, g + 50 * d, 1e-4, 0.9])
    return path


def test_window_means_split_the_run_in_thirds(tmp_path):
    rows = gpu_report.read_log(write_log(tmp_path / 'a.csv', range(1, 31), [0.5] * 30))
    assert gpu_report.window_means(rows, 300, 'gen_loss') == [5.5, 15.5, 25.5]
    assert all(math.isnan(m) for m in gpu_report.window_means(rows[:0], 300, 'gen_loss'))


def test_a_run_tracks_its_reference_only_within_the_tolerance(tmp_path):
    ref = write_log(tmp_path / 'ref.csv', [8, 7, 6] * 10, [0.4] * 30)
    close = write_log(tmp_path / 'close.csv', [8.4, 7.2, 6.1] * 10, [0.42] * 30)
    off = write_log(tmp_path / 'off.csv', [8, 7, 6] * 10, [0.4] * 20 + [0.7] * 10)  # the last third diverges
    assert gpu_report.compare_curves(close, ref)['tracks']
    bad = gpu_report.compare_curves(off, ref)
    assert not bad['tracks'] and math.isclose(bad['max_relative_gap'], 0.75)


def test_the_report_fails_on_a_failed_step(tmp_path, capsys):
    (tmp_path / 'steps.jsonl').write_text('{"step": "tests", "rc": 1, "seconds": 3}\n')
    ref = write_log(tmp_path / 'ref.csv', [8] * 30, [0.4] * 30)
    out = tmp_path / 'report.json'
    assert gpu_report.main(['--work', str(tmp_path), '--run', str(ref), '--reference', str(ref), '--out', str(out)]) == 1
    report = json.loads(out.read_text())
    assert report['curves']['tracks'] and report['steps'][0]['rc'] == 1
    assert 'tests' in capsys.readouterr().out
