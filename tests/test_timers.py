import random

import pytest

from bench_lib.measure.timers import INTERLEAVED_BLOCK_S, MeasureConfig, blocked_autorange, interleaved_autorange


class FakeTimer:
    """Each call 'takes' a fixed time; records the block sizes it was asked for."""

    name = "fake"

    def __init__(self, per_call: float):
        self.per_call, self.blocks = per_call, []

    def time_block(self, fn, number):
        for _ in range(number):
            fn()
        self.blocks.append(number)
        return self.per_call * number


def test_block_size_grows_until_timer_overhead_is_negligible():
    calls = []
    timer = FakeTimer(2e-7)
    cfg = MeasureConfig(warmup_s=0, min_run_time_s=0.01, max_run_time_s=5, min_samples=5)
    m = blocked_autorange(lambda: calls.append(1), timer, cfg)
    # 2e-7 s a call: a block needs >= 1e-5 s (min_run_time / 1000), so 100 calls.
    assert m.number_per_sample == 100
    assert m.median == pytest.approx(2e-7)
    assert m.n >= 5 and sum(timer.blocks[-m.n:]) * 2e-7 >= 0.01


def test_min_samples_holds_even_when_min_run_time_is_met():
    cfg = MeasureConfig(warmup_s=0, min_run_time_s=0.001, max_run_time_s=5, min_samples=25)
    m = blocked_autorange(lambda: None, FakeTimer(0.01), cfg)
    assert m.number_per_sample == 1 and m.n == 25


def test_max_samples_bounds_the_loop():
    cfg = MeasureConfig(warmup_s=0, min_run_time_s=1000, max_run_time_s=1000, min_samples=1, max_samples=7)
    assert blocked_autorange(lambda: None, FakeTimer(1e-3), cfg).n == 7


def test_first_call_is_warmup_not_a_sample():
    calls = []
    timer = FakeTimer(0.01)
    cfg = MeasureConfig(warmup_s=0, min_run_time_s=0.001, max_run_time_s=1, min_samples=3)
    blocked_autorange(lambda: calls.append(1), timer, cfg)
    # Every timed block is counted by the timer; exactly one call happened outside them.
    assert len(calls) == 1 + sum(timer.blocks)


def test_config_validates_itself():
    with pytest.raises(ValueError, match="min_run_time_s"):
        MeasureConfig(min_run_time_s=2, max_run_time_s=1)
    with pytest.raises(ValueError, match="min_samples"):
        MeasureConfig(min_samples=0)


class StateTimer:
    """Calls of named functions, each `cost[name]` x 0.1 ms; the machine's speed changes after
    every `hold` blocks (a state that comes and goes, slower than a turn of two blocks)."""

    name = "fake"

    def __init__(self, cost, hold=2):
        self.cost, self.hold, self.log, self.states = cost, hold, [], random.Random(3)
        self.speed = 1.0

    def time_block(self, fn, number):
        if len(self.log) % self.hold == 0:
            self.speed = self.states.choice((1.0, 1.5, 2.5))
        name = fn()
        self.log.append(name)
        return number * self.cost[name] * 1e-4 * self.speed


def test_interleaved_turns_compare_functions_under_the_same_states():
    timer = StateTimer({"a": 1.0, "b": 2.0})
    cfg = MeasureConfig(warmup_s=0, min_run_time_s=0.05, max_run_time_s=5, min_samples=5)
    a, b = interleaved_autorange([lambda: "a", lambda: "b"], timer, cfg, random.Random(0))
    assert a.n == b.n >= 5 and sum(a.samples) * a.number_per_sample >= 0.05
    assert a.number_per_sample * 1e-4 >= INTERLEAVED_BLOCK_S / 2.5  # blocks of about 10 ms, not single calls
    timed = timer.log[-2 * a.n:]
    turns = [tuple(timed[i:i + 2]) for i in range(0, len(timed), 2)]
    assert all(sorted(t) == ["a", "b"] for t in turns) and len(set(turns)) == 2  # both orders occur
    assert b.median / a.median == pytest.approx(2.0)  # the states cancel: each turn met one state
