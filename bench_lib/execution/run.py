"""Measure a plan the one way: what `effbench run` and `pytest benchmarks/` both call, so that the same
selection stores the same figures whichever way it was started.

Suite by suite, in the plan's order: an interleaved suite's cases in rounds over `plan.processes`
long-lived processes (`RunSession.execute_interleaved`), any other suite's cases launch group by
launch group in one-shot processes (`launch_groups`, `RunSession.execute`).
"""

from __future__ import annotations

from collections.abc import Callable

from bench_lib.execution.isolation import monitor_for, not_checked
from bench_lib.execution.run_peaks import measure_run_peaks
from bench_lib.execution.session import PlannedCase, RunSession, launch_groups
from bench_lib.profiles import Interleave
from bench_lib.results.case import CaseResult
from bench_lib.suites import get_suite

__all__ = ["by_suite", "plan_meta", "plan_steps", "execute_plan"]

OnResult = Callable[[CaseResult], None]
OnStep = Callable[[str, int], None]  # (what is being measured, steps done since the last call)


def by_suite(cases: list[PlannedCase]) -> list[tuple[str, list[PlannedCase]]]:
    """The plan's cases per suite, suites in order of first appearance."""
    out: dict[str, list[PlannedCase]] = {}
    for planned in cases:
        out.setdefault(planned.case.suite, []).append(planned)
    return list(out.items())


def plan_meta(plan: Interleave) -> dict:
    """How interleaved suites were spread, as the run's record keeps it."""
    return {"interleave": {"processes": plan.processes, "rounds_per_process": plan.rounds_per_process}}


def plan_steps(cases: list[PlannedCase], plan: Interleave) -> int:
    """How many steps `execute_plan` reports in all: one per case of a suite measured in one-shot
    processes; per case of an interleaved suite, one for it, one for its characterization and one per
    round of each of its processes (skipped cases: the first only)."""
    rounds = 1 + plan.processes * plan.rounds_per_process
    return sum(len(c) + rounds * sum(not p.skip_reason for p in c) if get_suite(name).INTERLEAVED else len(c)
               for name, c in by_suite(cases))


def execute_plan(session: RunSession, cases: list[PlannedCase], plan: Interleave,
                 on_result: OnResult = lambda result: None,
                 on_step: OnStep = lambda text, n: None) -> list[CaseResult]:
    """Measure (or skip) every planned case, storing each result in the session as it exists; `on_result`
    sees every final result once. A KeyboardInterrupt propagates after the finished results are stored.
    First the run's peaks are measured on the devices its cases use (`run_peaks`), and its GPUs are
    watched for other processes until it ends (`isolation`); both go into the run's environment."""
    runnable = [p.case for p in cases if not p.skip_reason]
    session.note_environment(peaks=measure_run_peaks(runnable))
    monitor = monitor_for([c.device for c in runnable])
    session.note_environment(device_isolation=monitor.record() if monitor else not_checked("no GPU among the run's "
                                                                                           "cases"))
    try:
        return _execute(session, cases, plan, on_result, on_step)
    finally:
        if monitor is not None:
            monitor.stop()
            session.note_environment(device_isolation=monitor.record())


def _execute(session: RunSession, cases: list[PlannedCase], plan: Interleave, on_result: OnResult,
             on_step: OnStep) -> list[CaseResult]:
    results: list[CaseResult] = []
    for name, suite_cases in by_suite(cases):
        if get_suite(name).INTERLEAVED:
            on_step(f"{name}: {plan.processes} processes", len(suite_cases))
            batch = session.execute_interleaved(suite_cases, plan, on_step)
            for result in batch:
                on_result(result)
            results += batch
            continue
        for group in launch_groups(suite_cases):
            on_step(group[0].case.id, 0)
            for result in session.execute(group):
                on_result(result)
                on_step(group[0].case.id, 1)
                results.append(result)
    return results
