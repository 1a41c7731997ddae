"""Interleaved, multi-process measurement: figures that a rerun reproduces.

A case measured once, in one process, in one stretch of time, carries that process's bias
and that minute's machine state, and an interval built from its samples covers neither: a rerun
of identical code lands outside it in most cases (docs/validation/rerun-validation, "Before"). So, as `effbench ab`
does for A/B jobs, a run measures every case in several long-lived processes (the ab
servers: each builds a case once and keeps it) and in short rounds (`ROUND`), interleaved
over the whole run in random order:

1. characterize: process 0 builds each case in turn and measures what is measured once
   (memory, quality against the reference, kernels, build and compile times);
2. rounds: blocks in which every (unit, process) gets one visit, in random order (`schedule.py`; a process
   builds a case, untimed, before its first round of it); a unit is a baseline and the
   techniques measured against it (same workload and batch); a visit is a round of each,
   their ~10 ms blocks in turns of random order (`Suite.measure_visit`), so that each
   technique's speedup comes from paired rounds that shared the process and the machine's
   states.

A case's figure is the median of its rounds, its interval treats the process as a random
effect and adds the run's machine-state spread, which every case shares (`Measurement.ci95`,
`stats.state_sd`); a speedup is the median of its paired ratios, its interval over processes
(pairs cancel the common state). Results are rewritten after every block, so an interruption keeps what was measured.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from bench_lib.execution.pool import REPO, Side, SideError, SideServer
from bench_lib.execution.schedule import MAX_FAILED_ROUNDS, Unit, fixed_blocks, run_blocks, units_of
from bench_lib.measure.paired import PairedRatio, paired_ratio
from bench_lib.measure.stats import Measurement, state_sd
from bench_lib.profiles import VISIT, Interleave
from bench_lib.results.case import CaseResult, CaseSpec
from bench_lib.suites import get_suite

__all__ = ["CaseRounds", "paired_speedup", "InterleavedRun"]


@dataclass
class CaseRounds:
    """One case's rounds: the round medians, the process of each, the visit it belonged to."""

    characterized: CaseResult
    samples: list[float] = field(default_factory=list)
    processes: list[int] = field(default_factory=list)
    visits: list[int] = field(default_factory=list)
    calls: list[int] = field(default_factory=list)
    per_call: list[float] = field(default_factory=list)  # every block sample of every round: the tails
    failures: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.characterized.status == "ok" and len(self.failures) < MAX_FAILED_ROUNDS

    def add(self, result: CaseResult, process: int, visit: int) -> None:
        if result.status != "ok":
            self.failures.append(f"process {process}: {result.reason.splitlines()[0]}")
            return
        m = result.measurement
        assert m is not None
        self.samples.append(m.median)
        self.processes.append(process)
        self.visits.append(visit)
        self.calls.append(m.n * m.number_per_sample)
        self.per_call.extend(m.samples)


def paired_speedup(case: CaseRounds, base: CaseRounds) -> PairedRatio | None:
    """Baseline time over technique time from rounds of the same visit (same process, back to
    back): the paired time ratios' estimate with the process as the unit, inverted. None where
    no round of the case shares a visit with one of its baseline."""
    by_visit = dict(zip(base.visits, base.samples, strict=True))
    pairs = [(s / by_visit[v], p) for s, p, v in zip(case.samples, case.processes, case.visits, strict=True)
             if v in by_visit]
    time_ratio = paired_ratio([r for r, _ in pairs], [p for _, p in pairs], "process")
    return None if time_ratio is None else time_ratio.inverse()


class InterleavedRun:
    """Measures planned cases of one suite in `plan.processes` server processes; see the module doc."""

    def __init__(self, suite: str, cases: list[CaseSpec], profile: str, plan: Interleave,
                 store: Callable[[list[CaseResult]], None], progress: Callable[[str, int], None] = lambda t, n: None,
                 seed: int | None = None):
        self.suite = get_suite(suite)
        self.cases = cases
        self.profile = profile
        self.plan = plan
        self._store = store
        self._progress = progress
        self._rng = random.Random(seed)
        side = Side("run", "working tree", sys.executable, REPO, None)
        self.servers = [SideServer(side) for _ in range(plan.processes)]
        self.rounds: dict[CaseSpec, CaseRounds] = {}
        self._ready: dict[tuple[CaseSpec, int], bool] = {}  # (case, process): built and warmed there
        self.phase_s: dict[str, float] = {}  # wall time of each phase, for the run's record

    def _ask(self, process: int, case: CaseSpec, op: str = "round") -> CaseResult:
        try:
            return self.servers[process].measure(case, self.profile, self.suite.timeout_s(case, self.profile), op)
        except SideError as e:
            return CaseResult.failed(case, str(e))

    def run(self) -> list[CaseResult]:
        """Measure everything; on KeyboardInterrupt, store what was measured and re-raise."""
        try:
            for name, phase in (("characterize", self._characterize), ("rounds", self._interleave)):
                started = time.perf_counter()
                phase()
                self.phase_s[name] = time.perf_counter() - started
        finally:
            for server in self.servers:
                server.close()
            self._store(self.results())
        return self.results()

    def _characterize(self) -> None:
        for case in self.cases:
            self.rounds[case] = CaseRounds(self._ask(0, case, "characterize"))
            self._progress(case.id, 1)
            self._store(self.results())

    def _interleave(self) -> None:
        units = units_of([c for c, r in self.rounds.items() if r.active], self.suite.baseline_of)
        visits = 0

        def visit(entry: tuple[Unit, int]) -> None:
            nonlocal visits
            unit, process = entry
            ready = [case for case in unit.cases if self.rounds[case].active and self._warm(case, process)]
            if ready:
                for case, result in zip(ready, self._visit(process, ready), strict=True):
                    self.rounds[case].add(result, process, visits)
            visits += 1
            self._progress(unit.cases[0].id, len(unit.cases))

        run_blocks(self._rng, fixed_blocks(units, self.plan.processes, self.plan.rounds_per_process), visit,
                   on_block=lambda done: self._store(self.results()))

    def _visit(self, process: int, cases: list[CaseSpec]) -> list[CaseResult]:
        timeout = sum(self.suite.timeout_s(c, self.profile) for c in cases)
        try:
            return self.servers[process].measure_visit(cases, self.profile, timeout)
        except SideError as e:
            return [CaseResult.failed(c, str(e)) for c in cases]

    def _warm(self, case: CaseSpec, process: int) -> bool:
        """Whether the process has the case ready: before its first timed round of a case, a
        process builds it and runs one untimed round. Builds happen amid the rounds rather than
        in a phase of their own, so that the rounds spread over twice the time and sample more of
        the machine's slow states (which last seconds, and can be the largest term of a
        figure's variance)."""
        if (case, process) not in self._ready:
            result = self._ask(process, case)
            self._ready[(case, process)] = result.status == "ok"
            if result.status != "ok":
                self.rounds[case].failures.append(f"process {process}: {result.reason.splitlines()[0]}")
        return self._ready[(case, process)]

    def results(self) -> list[CaseResult]:
        state = self.state_sd()
        return [self._result(case, rounds, state) for case, rounds in self.rounds.items()]

    def state_sd(self) -> float:
        """The run's machine-state spread (`stats.state_sd`) over every case's rounds in visit order."""
        series = [(v, math.log(s / med)) for r in self.rounds.values() if r.samples
                  for med in [float(np.median(r.samples))] if med > 0
                  for s, v in zip(r.samples, r.visits, strict=True) if s > 0]
        return state_sd(series)

    def _result(self, case: CaseSpec, rounds: CaseRounds, state: float) -> CaseResult:
        first = rounds.characterized
        if first.status != "ok":
            return first
        if len(rounds.failures) >= MAX_FAILED_ROUNDS:
            return CaseResult.failed(case, "rounds failed: " + "; ".join(rounds.failures))
        if not rounds.samples:  # interrupted before its rounds: the characterization's round stands
            return first
        m = Measurement(tuple(rounds.samples), 1, first.measurement.unit if first.measurement else "s",
                        tuple(rounds.processes), state)
        tails = Measurement(tuple(rounds.per_call))
        metrics = {**first.metrics, **self.suite.rescale_metrics(case, first.metrics, m.median, tails.p90, tails.p99),
                   "interleaved": {"processes": self.plan.processes, "rounds": len(rounds.samples),
                                   "rounds_per_process": self.plan.rounds_per_process,
                                   "calls_per_round": rounds.calls, "visit_of_round": rounds.visits,
                                   "visit": asdict(VISIT), "failed_rounds": rounds.failures}}
        base = self.suite.baseline_of(case)
        if base in self.rounds and base != case and self.rounds[base].samples:
            speedup = paired_speedup(rounds, self.rounds[base])
            metrics.update(speedup.to_metrics() if speedup else {}, speedup_baseline=base.id)
        return replace(first, measurement=m, metrics=metrics)
