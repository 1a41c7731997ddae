"""Timers and the adaptive repeat loop.

`blocked_autorange` follows torch.utils.benchmark's method: first find a block size
(calls per sample) large enough that the timer's own overhead is negligible, then take
blocks until a minimum time and a minimum sample count are both reached. Each sample is
one block's time divided by its call count.

On CUDA the block is bracketed by CUDA events and the host waits on the end event, so
the sample is device time for the whole block; never host timers around async launches.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench_lib.measure.stats import Measurement

__all__ = ["MeasureConfig", "HostTimer", "CudaEventTimer", "timer_for", "blocked_autorange", "interleaved_autorange"]


@dataclass(frozen=True)
class MeasureConfig:
    """How long and how often to measure; recorded with every result."""

    warmup_s: float = 0.2
    min_run_time_s: float = 1.0
    max_run_time_s: float = 10.0
    min_samples: int = 10
    max_samples: int = 2000

    def __post_init__(self) -> None:
        if not (0 <= self.warmup_s and 0 < self.min_run_time_s <= self.max_run_time_s):
            raise ValueError(
                "need 0 <= warmup_s and 0 < min_run_time_s <= max_run_time_s, "
                f"got {self.warmup_s}, {self.min_run_time_s}, {self.max_run_time_s}"
            )
        if not (1 <= self.min_samples <= self.max_samples):
            raise ValueError(f"need 1 <= min_samples <= max_samples, got {self.min_samples}, {self.max_samples}")


class HostTimer:
    """Wall clock around a block of calls (CPU work only)."""

    name = "perf_counter"

    def time_block(self, fn: Callable[[], object], number: int) -> float:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        return time.perf_counter() - start


class CudaEventTimer:
    """CUDA events around a block of calls; the host waits on the end event only."""

    name = "cuda_event"

    def __init__(self) -> None:
        import torch

        self._torch = torch
        self._start = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)

    def time_block(self, fn: Callable[[], object], number: int) -> float:
        # Drain earlier work so that it does not land inside this block.
        self._torch.cuda.synchronize()
        self._start.record()
        for _ in range(number):
            fn()
        self._end.record()
        self._end.synchronize()
        return self._start.elapsed_time(self._end) / 1e3


def timer_for(device: str) -> HostTimer | CudaEventTimer:
    return CudaEventTimer() if device.startswith("cuda") else HostTimer()


def _block_size(fn: Callable[[], object], timer, cfg: MeasureConfig) -> int:
    """Smallest power of ten of calls whose block takes >= 1/1000 of min_run_time."""
    number = 1
    while True:
        taken = timer.time_block(fn, number)
        if taken >= cfg.min_run_time_s / 1000 or taken * 10 > cfg.min_run_time_s or number >= 10**6:
            return number
        number *= 10


# A block of interleaved_autorange lasts about this long: long enough that the cost of switching
# models (cold caches) is a small part of it, short enough that machine states (which move a round's
# time from one round to the next more than most changes to be judged) hit the functions of a turn alike.
INTERLEAVED_BLOCK_S = 0.01


def _warm(fn: Callable[[], object], cfg: MeasureConfig) -> None:
    deadline = time.perf_counter() + cfg.warmup_s
    fn()
    while time.perf_counter() < deadline:
        fn()


def blocked_autorange(
    fn: Callable[[], object],
    timer: HostTimer | CudaEventTimer,
    cfg: MeasureConfig,
) -> Measurement:
    """Warm up, then sample blocks until both min_run_time and min_samples are met."""
    _warm(fn, cfg)  # the first call may compile, allocate or load kernels: never a sample
    number = _block_size(fn, timer, cfg)
    samples: list[float] = []
    total = 0.0
    started = time.perf_counter()
    while len(samples) < cfg.max_samples:
        taken = timer.time_block(fn, number)
        samples.append(taken / number)
        total += taken
        enough = total >= cfg.min_run_time_s and len(samples) >= cfg.min_samples
        if enough or time.perf_counter() - started >= cfg.max_run_time_s:
            break
    return Measurement(samples=tuple(samples), number_per_sample=number)


def interleaved_autorange(
    fns: Sequence[Callable[[], object]],
    timer: HostTimer | CudaEventTimer,
    cfg: MeasureConfig,
    rng: random.Random | None = None,
) -> list[Measurement]:
    """Several functions measured in turns: each turn times one block of every function, in a new
    random order, until each has min_run_time and min_samples (google-benchmark's random
    interleaving, at the grain of a block). A ratio of two of the medians then compares them under
    the same machine states, which come and go faster than a round of one function lasts.
    """
    rng = rng or random.Random()
    for fn in fns:
        _warm(fn, cfg)
    numbers = []
    for fn in fns:
        pilot = timer.time_block(fn, 1)
        numbers.append(max(1, math.ceil(INTERLEAVED_BLOCK_S / max(pilot, 1e-9))))
    samples: list[list[float]] = [[] for _ in fns]
    totals = [0.0] * len(fns)
    started = time.perf_counter()
    order = list(range(len(fns)))
    while len(samples[0]) < cfg.max_samples:
        rng.shuffle(order)
        for i in order:
            taken = timer.time_block(fns[i], numbers[i])
            samples[i].append(taken / numbers[i])
            totals[i] += taken
        enough = all(t >= cfg.min_run_time_s and len(s) >= cfg.min_samples for t, s in zip(totals, samples,
                                                                                             strict=True))
        if enough or time.perf_counter() - started >= cfg.max_run_time_s * len(fns):
            break
    return [Measurement(tuple(s), number_per_sample=n) for s, n in zip(samples, numbers, strict=True)]
