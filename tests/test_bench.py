import json
import math

import pytest

from pretrain.tools.bench import main, run_bench


def test_bench_measures_the_real_step_on_cpu():
    r = run_bench('tiny', steps=4, warmup=1, vocab_size=3000, device='cpu')
    assert r['steps_per_s'] > 0 and math.isclose(r['ms_per_step'], 1000 / r['steps_per_s'])
    assert r['tokens_per_s'] == pytest.approx(r['steps_per_s'] * 32 * 64)
    assert r['flops_per_step'] > 1e8 and r['precision'] == 'fp32' and r['mfu'] is None


def test_bench_cli_static(capsys):
    assert main(['--size', 'tiny', '--steps', '3', '--warmup', '1', '--vocab_size', '3000', '--device', 'cpu',
                 '--static_shapes', 'true']) == 0
    out = capsys.readouterr().out
    assert 'static True' in out and 'steps/s' in out and 'RESULT {' in out


def test_compare_seed_runs_the_seed_step_of_this_repository_from_any_directory(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(['--size', 'tiny', '--steps', '2', '--warmup', '1', '--vocab_size', '3000', '--device', 'cpu',
                 '--compare-seed']) == 0
    out = capsys.readouterr().out
    r = json.loads(out.split('RESULT ')[-1])
    assert "seed's step: " in out and 'ours / seed = ' in out
    assert r['seed_steps_per_s'] > 0 and r['ratio_to_seed'] == pytest.approx(r['steps_per_s'] / r['seed_steps_per_s'])
