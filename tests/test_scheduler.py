import math

import pytest

from pretrain.config import get_config
from pretrain.scheduler import StepScheduler, get_scheduler, lr_at, mom_at

PEAK, TOTAL, WARMUP = 5e-4, 1_000_000, 10_000


@pytest.mark.parametrize('step, expected', [
    (0, 0.0),
    (5_000, PEAK * (1 - 5_000 / TOTAL) * 0.5),   # warmup and decay act at once
    (10_000, PEAK * (1 - 10_000 / TOTAL)),
    (500_000, PEAK * 0.5),
    (TOTAL, 0.0),
])
def test_original_linear(step, expected):
    assert math.isclose(lr_at(step, 'original_linear', PEAK, TOTAL, WARMUP), expected, abs_tol=1e-15)


@pytest.mark.parametrize('step, expected', [
    (0, 0.0), (5_000, PEAK / 2), (10_000, PEAK),
    (10_000 + (TOTAL - 10_000) // 2, PEAK / 2), (TOTAL, 0.0),
])
def test_separate_linear(step, expected):
    assert math.isclose(lr_at(step, 'separate_linear', PEAK, TOTAL, WARMUP), expected, rel_tol=1e-9, abs_tol=1e-15)


def test_one_cycle_is_fastais():
    assert math.isclose(lr_at(0, 'one_cycle', PEAK, TOTAL), PEAK / 25)
    assert math.isclose(lr_at(TOTAL // 4, 'one_cycle', PEAK, TOTAL), PEAK)
    assert math.isclose(lr_at(TOTAL, 'one_cycle', PEAK, TOTAL), PEAK / 1e5)
    assert math.isclose(mom_at(0, 'one_cycle', TOTAL), 0.95) and math.isclose(mom_at(TOTAL // 4, 'one_cycle', TOTAL), 0.85)
    assert mom_at(10, 'original_linear', TOTAL) is None


def test_adjusted_one_cycle_peaks_at_the_end_of_warmup():
    assert math.isclose(lr_at(0, 'adjusted_one_cycle', PEAK, TOTAL, WARMUP), PEAK / 1e5)
    assert math.isclose(lr_at(WARMUP, 'adjusted_one_cycle', PEAK, TOTAL, WARMUP), PEAK)
    assert lr_at(WARMUP // 2, 'adjusted_one_cycle', PEAK, TOTAL, WARMUP) < PEAK


@pytest.mark.parametrize('schedule', ['original_linear', 'separate_linear', 'one_cycle', 'adjusted_one_cycle'])
def test_get_scheduler_returns_a_callback_for_every_schedule(schedule):
    cb = get_scheduler(get_config('small', schedule=schedule))
    assert isinstance(cb, StepScheduler)
    assert (cb.schedule, cb.lr_max, cb.total_steps, cb.warmup_steps) == (schedule, 5e-4, TOTAL, WARMUP)


def test_unknown_schedule_raises():
    with pytest.raises(ValueError, match="unknown schedule 'cosine'"):
        StepScheduler('cosine', 1e-3, 10)
