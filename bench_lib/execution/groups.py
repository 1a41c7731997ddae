"""How a group of cases is measured inside one process: on launched ranks for a distributed suite, else by
the suite's own loop. The isolated worker and the measuring server both go through here, so that suites
never start processes themselves."""

from __future__ import annotations

from collections.abc import Iterator

from bench_lib.execution.launcher import run_cases
from bench_lib.results.case import CaseResult, CaseSpec
from bench_lib.suites import Suite
from bench_lib.suites.distributed.base import DistributedSuite

__all__ = ["measure_group", "measure_round"]


def measure_group(suite: Suite, cases: list[CaseSpec], profile: str) -> Iterator[CaseResult]:
    """One result per case, in order; a case's failure is its result, never an exception."""
    if isinstance(suite, DistributedSuite):
        world_size = int(cases[0].param("world_size"))
        yield from run_cases(cases, profile, world_size, suite.launch_timeouts(cases, profile))
    else:
        yield from suite.execute_group(cases, profile)


def measure_round(suite: Suite, case: CaseSpec, profile: str) -> CaseResult:
    """One round of a case in a long-lived server (`effbench ab`): the suite's kept models where it keeps them."""
    if isinstance(suite, DistributedSuite):
        return next(measure_group(suite, [case], profile))
    return suite.measure_round(case, profile)
