"""Training runs that advance a stretch of steps at a time, so that several runs of one launch can take turns.

A run keeps its model, optimizer, strategy and data stream between its stretches, and its clock counts
only its own stretches. Before each stretch its batches are drawn on the host, as a step would draw
them, and copied to the device in one go; then the ranks start together (a barrier) and the clock runs
over steps that only read those batches.

On CUDA a step ends with a CUDA event, and the events are read when the stretch is done: there is no
per-step synchronize, so the host queues the next step while the GPU runs this one, as a bare training
loop does. Nothing is hidden by that: a step the host is late to launch leaves the GPU idle, and the
gap is in the events. On the CPU the host clock is the step's clock.

`BareRun` is the reference for the harness's overhead: the same model, optimizer and batches on one
replica per rank with none of the harness (no strategy hooks, no per-step clock, no loss logging),
timed from the start of a stretch to its end.
"""

from __future__ import annotations

import bisect
import itertools
import math
import time
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from bench_lib.measure import energy, memory
from bench_lib.suites.distributed.base import RankContext
from bench_lib.suites.distributed.pace import Pace, step_times
from bench_lib.suites.distributed.tasks import TrainTask

__all__ = ["HostClock", "CudaClock", "MemoryShare", "StrategyRun", "BareRun"]

WARMUP_STEPS = 3  # excluded from the timed steps (allocations, first DDP bucket rebuild)


class HostClock:
    """Ends of steps in seconds from `start`, on the host's clock (CPU work is done when its call returns)."""

    def start(self, steps: int) -> None:
        self._t0, self._ends = time.perf_counter(), []

    def mark(self) -> None:
        self._ends.append(time.perf_counter() - self._t0)

    def read(self) -> list[float]:
        return self._ends


class CudaClock:
    """Ends of steps in seconds from `start`, from CUDA events on the current stream, read (one
    synchronize) when the stretch is done."""

    def start(self, steps: int) -> None:
        """Made before the clock starts, the events cost the steps only their recording."""
        self._start = torch.cuda.Event(enable_timing=True)
        self._free = [torch.cuda.Event(enable_timing=True) for _ in range(steps)]
        self._events = []
        self._start.record()

    def mark(self) -> None:
        event = self._free.pop()
        event.record()
        self._events.append(event)

    def read(self) -> list[float]:
        self._events[-1].synchronize()
        return [self._start.elapsed_time(e) / 1e3 for e in self._events]


@dataclass
class MemoryShare:
    """A run's own peak memory while the other runs' models stay resident in the same process.

    The others are idle during this run's stretches, so what the process holds beyond this run's own
    share at the start of a stretch stays put until its end: the peak over the stretch less that is
    this run's peak. `peak` adds what the process held before any run of the launch was built, so the
    figure reads as the peak of this run alone in the process.
    """

    cuda: bool
    before_runs: int
    own: int = 0
    own_peak: int = 0
    _others: int = 0

    def _current(self) -> int:
        return torch.cuda.memory_allocated() if self.cuda else memory.current_rss_bytes()

    def begin(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            memory.reset_peak_rss()
        self._others = self._current() - self.own

    def end(self) -> None:
        top = torch.cuda.max_memory_allocated() if self.cuda else memory.peak_rss_bytes()
        self.own_peak = max(self.own_peak, top - self._others)
        self.own = self._current() - self._others

    @property
    def peak(self) -> int:
        return self.before_runs + self.own_peak

    @property
    def kind(self) -> str:
        return "cuda_max_allocated" if self.cuda else "rss"


@dataclass
class _Run:
    """What every run shares: the task, its data stream (seeded by rank), the memory share and the clock
    that counts only this run's stretches (`ends`: when each mark fell, agreed over the ranks)."""

    task: TrainTask
    ctx: RankContext
    memory: MemoryShare
    planned: int
    steps: int = 0
    ends: list[float] = field(default_factory=list)
    bounds: list[int] = field(default_factory=list)  # steps done at the end of each stretch
    starts: list[float] = field(default_factory=list)  # when each stretch's clock started (unix seconds)
    seed: int = 0  # the initial weights and data order (convergence cases repeat a run over seeds)

    def __post_init__(self) -> None:
        self.counter = energy.counter_for(self.ctx.device)
        self.gen = torch.Generator().manual_seed(1000 + self.ctx.rank + 100_000 * self.seed)
        self.model = self.task.model(self.seed).to(self.ctx.device)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=self.task.lr, weight_decay=0.01,
                                     **({"fused": True} if self.ctx.is_cuda else {}))

    def energy_window(self, seconds: float) -> tuple[energy.EnergyWindow | str, int]:
        """(This rank's energy, steps) over one window of at least `seconds` of further steps at the run's
        timed pace, or why there is none. A timed stretch (a fraction of a second on a GPU) is shorter than the
        counter's ~100 ms update interval, so the energy has a window of its own, after every figure of the
        run is read (its steps train on, off the clock and out of the step count's figures)."""
        if isinstance(self.counter, str):
            return self.counter, 0
        per_step = self.pace(self.steps).per_step_s if self.steps > WARMUP_STEPS else 0.0
        steps = max(1, math.ceil(seconds / per_step)) if per_step > 0 else 1
        batches = self.task.batches(self.gen, steps, self.ctx.device)
        _start_together(self.ctx)
        meter = energy.EnergyMeter(self.counter).start()
        clock = HostClock()
        clock.start(steps)
        self._timed(batches, clock)
        if self.ctx.is_cuda:
            torch.cuda.synchronize()
        return meter.stop(), steps

    @property
    def clock_s(self) -> float:
        return self.ends[-1] if self.ends else 0.0

    def stretch(self, n: int) -> None:
        """Run the next n steps and append their group ends to `ends`."""
        self.memory.begin()
        batches = self.task.batches(self.gen, n, self.ctx.device)
        self._before_clock(batches)
        _start_together(self.ctx)
        clock = CudaClock() if self.ctx.is_cuda else HostClock()
        self.starts.append(time.time())
        clock.start(len(batches))
        self._timed(batches, clock)
        local = clock.read()
        del batches
        self.memory.end()
        agreed = torch.tensor(local, dtype=torch.float64, device=self.ctx.meta_device)
        dist.all_reduce(agreed, op=dist.ReduceOp.MAX)  # a step of the group ends when its last rank ends it
        offset = self.clock_s
        self.ends += [offset + t for t in agreed.cpu().tolist()]
        self.bounds.append(self.steps)

    def _before_clock(self, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Untimed work at the start of a stretch (the reference's warm-up)."""

    def _timed(self, batches: list[tuple[torch.Tensor, torch.Tensor]], clock: HostClock | CudaClock) -> None:
        raise NotImplementedError


class StrategyRun(_Run):
    """A strategy's run under the harness: a clock mark after every step, the loss logged every
    `log_every` steps (kept on the device until the run is read)."""

    def __init__(self, task: TrainTask, ctx: RankContext, memory_share: MemoryShare, planned: int,
                 variant: str, sync_every: int, log_every: int, seed: int = 0) -> None:
        from bench_lib.techniques.strategies import make_strategy

        super().__init__(task, ctx, memory_share, planned, seed=seed)
        self.strategy = make_strategy(variant, self.model, sync_every, ctx.device)
        self.forward = self.strategy.forward_module()
        self.log_every = log_every
        self.logged: list[tuple[int, torch.Tensor]] = []

    def _timed(self, batches: list[tuple[torch.Tensor, torch.Tensor]], clock: HostClock | CudaClock) -> None:
        for x, y in batches:
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.ctx.is_cuda):
                logits = self.forward(x)
            loss = self.task.loss(logits, y)
            loss.backward()
            if self.strategy.before_step():
                self.opt.step()
            self.strategy.after_step(self.steps)  # before zero_grad: the model averager skips parameters without grads
            self.opt.zero_grad(set_to_none=True)
            clock.mark()
            if self.steps % self.log_every == 0 or self.steps == self.planned - 1:
                self.logged.append((self.steps, loss.detach()))
            self.steps += 1

    def pace(self, timed_steps: int) -> Pace:
        """The first `timed_steps` steps after the warm-up steps."""
        return Pace.after_warmup(self.ends[:timed_steps], WARMUP_STEPS)

    def step_times(self, timed_steps: int) -> list[float]:
        """Each timed step's time; a stretch's first step is timed from the start of its stretch."""
        return step_times(self.ends[:timed_steps])[WARMUP_STEPS:]

    def stretch_paces(self, timed_steps: int) -> list[float]:
        """Seconds per step of each stretch within the timed steps (the first from the end of the warm-up)."""
        cuts = [b for b in self.bounds if b <= timed_steps]
        return [Pace.after_warmup(self.ends[:b], a).per_step_s for a, b in itertools.pairwise([WARMUP_STEPS, *cuts])]

    def step_stretches(self, timed_steps: int) -> list[int]:
        """The stretch (0, 1, ...) each of `step_times` fell in: the unit of the figure's interval."""
        return [bisect.bisect_right(self.bounds, i) for i in range(WARMUP_STEPS, timed_steps)]

    def stretch_starts(self, timed_steps: int) -> list[float]:
        """When each stretch of `stretch_paces` started."""
        return self.starts[:sum(b <= timed_steps for b in self.bounds)]

    def loss_curve(self) -> list[list[float]]:
        """[wall_s on this run's clock, step, rank-0 training loss] per logged step."""
        return [[self.ends[step], step, float(loss)] for step, loss in self.logged]


class BareRun(_Run):
    """The bare loop: warm-up steps before the first stretch's clock, then one mark per stretch."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.sizes: list[int] = []  # timed steps per stretch

    def _before_clock(self, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        if self.steps == 0:
            self._steps(batches[:WARMUP_STEPS])
            del batches[:WARMUP_STEPS]

    def _timed(self, batches: list[tuple[torch.Tensor, torch.Tensor]], clock: HostClock | CudaClock) -> None:
        self._steps(batches)
        clock.mark()
        self.sizes.append(len(batches))

    def _steps(self, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        for x, y in batches:
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.ctx.is_cuda):
                logits = self.model(x)
            self.task.loss(logits, y).backward()
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
        self.steps += len(batches)

    def pace(self, timed_steps: int) -> Pace:
        """Every stretch's steps (the reference is never extended), warm-up excluded."""
        return Pace(sum(self.sizes), self.clock_s)

    def stretch_paces(self, timed_steps: int) -> list[float]:
        """Seconds per step of each stretch (all of them timed)."""
        return [wall / n for wall, n in zip(step_times(self.ends), self.sizes, strict=True)]

    def step_times(self, timed_steps: int) -> list[float]:
        """Without a per-step clock, each stretch's seconds per step stand for its steps."""
        return self.stretch_paces(timed_steps)

    def step_stretches(self, timed_steps: int) -> list[int]:
        return list(range(len(self.sizes)))

    def stretch_starts(self, timed_steps: int) -> list[float]:
        return list(self.starts)


def _start_together(ctx: RankContext) -> None:
    """Every rank idle and past the barrier, so that the ranks' clocks start at the same moment."""
    if ctx.is_cuda:
        torch.cuda.synchronize()
    dist.barrier()
    if ctx.is_cuda:
        torch.cuda.synchronize()
