"""A run: plan the cases, measure a launch group in one-shot processes (`execute`) or an interleaved
suite's cases in rounds over long-lived ones (`execute_interleaved`), store each result as soon as it exists.

Driven by `run.execute_plan`, for `effbench run` and `pytest benchmarks/` alike, so both write the same files.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench_lib.execution.interleaved import InterleavedRun
from bench_lib.execution.isolated import run_isolated
from bench_lib.platform import Platform, detect
from bench_lib.profiles import Interleave
from bench_lib.results import environment
from bench_lib.results.case import CaseResult, CaseSpec, Scalar
from bench_lib.results.store import RunWriter, new_run_dir, safe_label
from bench_lib.suites import get_suite, suite_names

if TYPE_CHECKING:  # the user-model spec's package imports torch: a command that lists or reports need not
    from bench_lib.workloads.user.spec import ModelSpec

__all__ = ["PlannedCase", "plan", "keyword_selector", "launch_groups", "RunSession", "format_result_line"]


@dataclass(frozen=True)
class PlannedCase:
    case: CaseSpec
    skip_reason: str | None = None


def keyword_selector(keyword: str | None) -> Callable[[CaseSpec], bool]:
    """pytest's `-k` semantics: identifiers are case-insensitive substrings of the case's names.

    Raises ValueError for a malformed expression.
    """
    if not keyword:
        return lambda case: True
    from _pytest.mark.expression import Expression

    try:
        expr = Expression.compile(keyword)
    except SyntaxError as e:
        raise ValueError(f"bad -k expression {keyword!r}: {e.msg} at column {e.offset}") from None

    def select(case: CaseSpec) -> bool:
        haystack = (case.name.lower(), f"test_{case.suite}")
        return expr.evaluate(lambda ident, **_: any(ident.lower() in h for h in haystack))

    return select


def _for_models(case: CaseSpec, model_params: Mapping[str, Scalar], batches: tuple[int, ...]) -> list[CaseSpec]:
    """A user's model's case with the run's options for such models: the params every process must see
    (`workloads.user.MODEL_PARAMS`: eval text, quality target), and one case per batch size asked for."""
    if case.param("model") is None:
        return [case]
    params = {**dict(case.params), **model_params}
    sizes = batches if batches and "batch" in params else (params.get("batch"),)
    return list(dict.fromkeys(CaseSpec.make(case.suite, case.workload, case.variant, case.device,
                                            **{k: v for k, v in {**params, "batch": b}.items() if v is not None})
                              for b in sizes))


def plan(suites: Iterable[str], profile: str, device: str, backend: str, keyword: str | None = None,
         platform: Platform | None = None, models: tuple[ModelSpec, ...] = (),
         model_params: Mapping[str, Scalar] | None = None, batches: tuple[int, ...] = ()) -> list[PlannedCase]:
    """Every selected case, with the reason this host would skip it (None: it runs). With `models`, the
    cases of those user's models only, each carrying `model_params` and, where it has a batch size, one
    case per size in `batches` (empty: the suite's own)."""
    platform = platform or detect()
    device = platform.resolve_device(device)
    select = keyword_selector(keyword)
    out = []
    for name in suites:
        suite = get_suite(name)
        for listed in suite.cases(profile, device, backend, models):
            for case in _for_models(listed, model_params or {}, batches):
                if select(case):
                    out.append(PlannedCase(case, suite.skip_reason(case, platform)))
    return out


def launch_groups(cases: list[PlannedCase]) -> list[list[PlannedCase]]:
    """Split the plan into runs of consecutive cases that share a worker process.

    A skipped case never starts a process; it joins whatever group it falls in.
    """
    groups: list[list[PlannedCase]] = []
    last_key = object()
    for planned in cases:
        key = (planned.case.suite, get_suite(planned.case.suite).launch_key(planned.case))
        if not groups or (key != last_key and not planned.skip_reason):
            groups.append([])
        if not planned.skip_reason:
            last_key = key
        groups[-1].append(planned)
    return groups



def expand_suites(suite: str) -> list[str]:
    return suite_names() if suite == "all" else [suite]


def _ms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "n/a"
    if seconds >= 1:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3f} ms"
    return f"{seconds * 1e6:.1f} us"


def format_result_line(result: CaseResult) -> str:
    if result.status != "ok":
        return f"{result.status:7s} {result.case.id}: {result.reason.splitlines()[0]}"
    m = result.measurement
    lo, hi = m.ci95
    noise = f"  [{'; '.join(m.warnings)}]" if m.has_warnings else ""
    return (f"ok      {result.case.id}: median {_ms(m.median)} (95% CI {_ms(lo)} to {_ms(hi)}, "
            f"IQR {_ms(m.iqr)}, n={m.n}){noise}")


@dataclass
class RunSession:
    """The writers of one run directory; results are flushed to disk one by one."""

    run_dir: Path
    profile: str
    meta: dict

    def __post_init__(self) -> None:
        self._machine = environment.machine_info()
        self._commit = environment.commit_info()
        self._env = environment.capture()
        self._writers: dict[str, RunWriter] = {}

    @classmethod
    def create(cls, out_root: Path, profile: str, meta: dict) -> RunSession:
        label = safe_label(f"{meta.get('suite', 'run')}-{profile}-{meta.get('device', '')}")
        run_dir = new_run_dir(out_root, label)
        return cls(run_dir, profile, {**meta, "profile": profile, "run_id": run_dir.name})

    def writer(self, suite: str) -> RunWriter:
        if suite not in self._writers:
            self._writers[suite] = RunWriter(self.run_dir, suite, self.meta, self._machine, self._commit, self._env)
        return self._writers[suite]

    def note_environment(self, **fields: object) -> None:
        """Add run-level facts measured after the session began (the peaks, the device isolation) to
        the environment every suite file of the run carries, and rewrite the files written so far."""
        self._env.update(fields)
        for writer in self._writers.values():
            writer.flush()

    def record(self, result: CaseResult) -> None:
        self.writer(result.case.suite).add(result)

    def execute(self, group: list[PlannedCase]) -> list[CaseResult]:
        """Measure (or skip) a launch group of planned cases, store each result, and return them.

        A suite with LAUNCHES > 1 runs the group that many times, each launch (new processes) in
        its own random case order (`Suite.launch_order`), so that each case meets two process sets
        and two moments of the run; the suite merges the launches (`Suite.merge_launches`: by
        default each launch a process of the figure's interval).
        The first launch's results are stored as soon as they exist.
        """
        runnable = [p.case for p in group if not p.skip_reason]
        measured: dict[CaseSpec, CaseResult] = {}
        if runnable:
            suite = get_suite(runnable[0].suite)
            timeout = sum(suite.timeout_s(c, self.profile) for c in runnable)
            rng = random.Random()
            launches: list[dict[CaseSpec, CaseResult]] = []
            for launch in range(suite.LAUNCHES):
                order = suite.launch_order(runnable, rng) if suite.LAUNCHES > 1 else runnable
                env = {"EFFBENCH_LAUNCHES": str(suite.LAUNCHES), "EFFBENCH_LAUNCH": str(launch)}
                launches.append({r.case: r for r in run_isolated(order, self.profile, timeout, env)})
                measured = suite.merge_launches(launches)
                if len(launches) < suite.LAUNCHES:
                    self.writer(runnable[0].suite).put([measured[c] for c in runnable])  # in the plan's order
        results = [measured[p.case] if not p.skip_reason else CaseResult.skipped(p.case, p.skip_reason)
                   for p in group]
        self.writer(group[0].case.suite).put(results)
        return results

    def execute_interleaved(self, planned: list[PlannedCase], plan: Interleave,
                            progress: Callable[[str, int], None] = lambda text, n: None) -> list[CaseResult]:
        """Measure one suite's planned cases in interleaved rounds over several processes
        (`execution/interleaved.py`); skipped cases are stored at once, the rest after every block."""
        skipped = [CaseResult.skipped(p.case, p.skip_reason) for p in planned if p.skip_reason]
        runnable = [p.case for p in planned if not p.skip_reason]
        if skipped:
            self.writer(skipped[0].case.suite).put(skipped)
        if not runnable:
            return skipped
        run = InterleavedRun(runnable[0].suite, runnable, self.profile, plan,
                             store=self.writer(runnable[0].suite).put, progress=progress)
        self.meta.setdefault("interleaved_phases_s", {})[runnable[0].suite] = run.phase_s  # filled as it goes
        return skipped + run.run()

    @property
    def results(self) -> list[CaseResult]:
        return [r for w in self._writers.values() for r in w.results]
