"""pytest integration: `pytest benchmarks/test_inference.py -k int8` measures the same cases as
`effbench run --suite inference -k int8`, through the same path (`execution.run.execute_plan`), and
writes the same result files; pytest-benchmark's own table, --benchmark-json and --benchmark-compare
see the same raw samples.

An interleaved suite's figures come from rounds over several processes, with every selected case
measured in turn (and each technique paired with its baseline), so a case cannot be measured on its
own when its test runs: the first test of a suite measures all of that suite's selected cases at once,
as `effbench run` does, and each test then reports its case's stored result (pass, skip or fail as
stored).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bench_lib.execution.run import execute_plan, plan_meta
from bench_lib.execution.session import PlannedCase, RunSession, format_result_line, plan
from bench_lib.profiles import Interleave, interleave_plan
from bench_lib.results.case import CaseResult, CaseSpec
from bench_lib.workloads.user.spec import ModelSpec, resolve_models

__all__ = ["PytestRun", "measure_planned"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("effbench")
    group.addoption("--effbench-profile", default="quick", choices=("quick", "full"))
    group.addoption("--effbench-device", default="auto", choices=("auto", "cpu", "cuda"))
    group.addoption("--effbench-backend", default="all", choices=("gloo", "nccl", "all"))
    group.addoption("--effbench-out", default="results", help="results root (a new run directory goes under it)")
    group.addoption("--effbench-processes", type=int, default=None, metavar="N",
                    help="processes that interleaved suites (inference) measure each case in, round by round "
                         "(default: the profile's, 3); as `effbench run --processes`")
    group.addoption("--effbench-model", action="append", default=[], metavar="SPEC",
                    help="your own model instead of the built-in ones (repeatable): hf:DIR or "
                         "py:package.module:factory; as `effbench run --model`")


def _models(config: pytest.Config) -> tuple[ModelSpec, ...]:
    """The `--effbench-model` specs, checked (as `effbench run --model`'s) before anything is collected."""
    try:
        return resolve_models(config.getoption("--effbench-model"))
    except ValueError as e:
        raise pytest.UsageError(str(e).replace("--model", "--effbench-model")) from None


def _interleave(config: pytest.Config) -> Interleave:
    try:
        return interleave_plan(config.getoption("--effbench-profile"), config.getoption("--effbench-processes"))
    except ValueError as e:
        raise pytest.UsageError(str(e).replace("--processes", "--effbench-processes")) from None


def pytest_configure(config: pytest.Config) -> None:
    _interleave(config)  # bad options stop pytest before it collects
    config._effbench_models = _models(config)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "planned_case" not in metafunc.fixturenames:
        return
    opt = metafunc.config.getoption
    cases = plan([metafunc.module.SUITE], opt("--effbench-profile"), opt("--effbench-device"),
                 opt("--effbench-backend"), models=metafunc.config._effbench_models)
    metafunc.parametrize("planned_case", cases, ids=[c.case.id for c in cases])


@dataclass
class PytestRun:
    """One run directory for the pytest session; each suite's selected cases are measured together
    the first time one of its tests asks (`result`)."""

    session: RunSession
    plan: Interleave
    selected: list[PlannedCase]  # the planned cases of the tests pytest kept (after -k and -m)
    results: dict[CaseSpec, CaseResult] = field(default_factory=dict)
    measured: set[str] = field(default_factory=set)  # suites already measured

    def result(self, planned: PlannedCase) -> CaseResult:
        suite = planned.case.suite
        if suite not in self.measured:
            self.measured.add(suite)
            cases = [p for p in self.selected if p.case.suite == suite]
            self.results.update((r.case, r) for r in execute_plan(self.session, cases, self.plan))
        if planned.case not in self.results:
            return CaseResult.failed(planned.case, f"not measured: the run of suite {suite} stopped before it")
        return self.results[planned.case]


def _selected(items: list[pytest.Item]) -> list[PlannedCase]:
    """The planned cases of the kept test items, in their order, once each."""
    out: dict[CaseSpec, PlannedCase] = {}
    for item in items:
        planned = getattr(item, "callspec", None) and item.callspec.params.get("planned_case")
        if isinstance(planned, PlannedCase):
            out.setdefault(planned.case, planned)
    return list(out.values())


@pytest.fixture(scope="session")
def effbench_session(request: pytest.FixtureRequest) -> PytestRun:
    opt = request.config.getoption
    interleave = _interleave(request.config)
    session = RunSession.create(Path(opt("--effbench-out")), opt("--effbench-profile"),
                                {"suite": "pytest", "device": opt("--effbench-device"),
                                 "backend": opt("--effbench-backend"), "command": "pytest benchmarks/",
                                 **plan_meta(interleave)})
    request.config._effbench_run_dir = session.run_dir
    return PytestRun(session, interleave, _selected(request.session.items))


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


def measure_planned(planned: PlannedCase, run: PytestRun, benchmark=None) -> CaseResult:
    """The case's result as `effbench run` measures it (its suite measured on first use); pytest's outcome
    mirrors the stored one."""
    result = run.result(planned)
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
