"""pytest integration: `pytest benchmarks/ -k int8` measures the same cases as `effbench run`
and writes the same result files; pytest-benchmark's own table, --benchmark-json and
--benchmark-compare see the same raw samples.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench_lib.execution.session import PlannedCase, RunSession, format_result_line, plan
from bench_lib.results.case import CaseResult

__all__ = ["measure_planned"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("effbench")
    group.addoption("--effbench-profile", default="quick", choices=("quick", "full"))
    group.addoption("--effbench-device", default="auto", choices=("auto", "cpu", "cuda"))
    group.addoption("--effbench-backend", default="all", choices=("gloo", "nccl", "all"))
    group.addoption("--effbench-out", default="results", help="results root (a new run directory goes under it)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "planned_case" not in metafunc.fixturenames:
        return
    opt = metafunc.config.getoption
    cases = plan([metafunc.module.SUITE], opt("--effbench-profile"), opt("--effbench-device"),
                 opt("--effbench-backend"))
    metafunc.parametrize("planned_case", cases, ids=[c.case.id for c in cases])


@pytest.fixture(scope="session")
def effbench_session(request: pytest.FixtureRequest) -> RunSession:
    opt = request.config.getoption
    session = RunSession.create(Path(opt("--effbench-out")), opt("--effbench-profile"),
                                {"suite": "pytest", "device": opt("--effbench-device"),
                                 "backend": opt("--effbench-backend"), "command": "pytest benchmarks/"})
    request.config._effbench_run_dir = session.run_dir
    return session


def _feed_pytest_benchmark(benchmark, result: CaseResult) -> None:
    """Hand our samples to pytest-benchmark's fixture (its private `_make_stats`), if it has one."""
    m = result.measurement
    if benchmark is None or m is None or not hasattr(benchmark, "_make_stats"):
        return
    benchmark.extra_info.update({"effbench_metrics": result.metrics})
    stats = benchmark._make_stats(m.number_per_sample)
    for sample in m.samples:
        stats.update(sample * m.number_per_sample)
    benchmark._mode = "effbench"


def measure_planned(planned: PlannedCase, session: RunSession, benchmark=None) -> CaseResult:
    """Run one case through the shared runner; pytest's outcome mirrors the stored one."""
    [result] = session.execute([planned])
    if result.status == "skipped":
        pytest.skip(result.reason)
    if result.status == "failed":
        pytest.fail(result.reason, pytrace=False)
    _feed_pytest_benchmark(benchmark, result)
    print(format_result_line(result))
    return result


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    run_dir = getattr(config, "_effbench_run_dir", None)
    if run_dir is not None:
        terminalreporter.write_line(f"effbench results: {run_dir}")
