import os
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
DRIVER = REPO / 'tests' / 'ddp_driver.py'


def run(cmd, tmp):
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(REPO)}
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return torch.load(tmp / 'final.pt'), torch.load(tmp / 'init.pt')


def test_two_gloo_processes_match_one_process_with_the_global_batch(tmp_path):
    single, init = run([sys.executable, str(DRIVER), str(tmp_path / 'one')], tmp_path / 'one')
    double, init2 = run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                  str(DRIVER), str(tmp_path / 'two')], tmp_path / 'two')
    assert single.keys() == double.keys()
    moved = 0
    for k in single:
        assert torch.equal(init[k], init2[k]), k  # same starting point
        assert torch.allclose(single[k], double[k], atol=1e-6, rtol=1e-4), k
        moved += not torch.allclose(single[k], init[k], atol=1e-4)
    assert moved > 20  # two steps at lr 1e-2 moved most tensors well beyond the tolerance
