"""The suites and the one interface they share.

A suite turns a profile and filters into CaseSpecs (in the parent, cheaply) and measures
one case (inside an isolated worker process). The runner knows nothing else about it.
"""

from __future__ import annotations

import importlib
import os
import random
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar

from bench_lib.measure.stats import Measurement
from bench_lib.platform import Platform
from bench_lib.results.case import CaseResult, CaseSpec, SkipCase

if TYPE_CHECKING:  # the user-model spec's package imports torch: a command that lists or reports need not
    from bench_lib.workloads.user.spec import ModelSpec

__all__ = ["Suite", "SUITES", "BACKENDS", "get_suite", "suite_names", "failure_text", "merge_launches"]

# name -> "module:Class"; imported lazily so that `effbench list` stays cheap.
SUITES: dict[str, str] = {
    "inference": "bench_lib.suites.inference.suite:InferenceSuite",
    "collectives": "bench_lib.suites.distributed.collectives:CollectivesSuite",
    "training": "bench_lib.suites.distributed.training:TrainingSuite",
    "decode": "bench_lib.suites.decode.suite:DecodeSuite",
}
BACKENDS = ("gloo", "nccl", "all")


class Suite(ABC):
    NAME: ClassVar[str]
    DEFAULT_TIMEOUT_S: ClassVar[float] = 600.0
    #: Whether `effbench run` measures this suite's cases in interleaved rounds over several
    #: long-lived processes (`execution/interleaved.py`); else one isolated worker per launch group.
    INTERLEAVED: ClassVar[bool] = False
    #: Otherwise, how many times a run launches each group (new processes, the cases in a new random
    #: order, `launch_order`) and pools the samples (`merge_launches`). Each launch's environment
    #: has EFFBENCH_LAUNCHES set to this and EFFBENCH_LAUNCH to its index (0, 1, ...), so that a suite
    #: may share its work out over the launches.
    LAUNCHES: ClassVar[int] = 1

    @abstractmethod
    def cases(self, profile: str, device: str, backend: str, models: tuple[ModelSpec, ...] = ()) -> list[CaseSpec]:
        """Every case this suite has for the profile, device (cpu or cuda) and backend filter; with `models`,
        the cases of those user's models only (`workloads.user`: each case's workload is the model's name and
        its params["model"] the spec as given)."""

    def skip_reason(self, case: CaseSpec, platform: Platform) -> str | None:
        """Why this host cannot run the case, known before running it; None if it can."""
        return platform.device_skip_reason(case.device)

    @abstractmethod
    def execute(self, case: CaseSpec, profile: str) -> CaseResult:
        """Measure one case; runs in its own process. Raise SkipCase for a runtime skip."""

    def timeout_s(self, case: CaseSpec, profile: str) -> float:
        return self.DEFAULT_TIMEOUT_S

    def measure_round(self, case: CaseSpec, profile: str) -> CaseResult:
        """One timing round of a case in a long-lived A/B server (`effbench ab`). Suites may keep
        what a round need not rebuild (a compiled model); the default measures the whole case."""
        return self.execute(case, profile)

    def measure_visit(self, cases: list[CaseSpec], profile: str) -> list[CaseResult]:
        """One visit of an interleaved run: a round of each case (a baseline and its techniques).
        Suites whose cases stay built interleave their timing at a fine grain; the default times
        one case after the other."""
        return [self.measure_round(case, profile) for case in cases]

    def characterize(self, case: CaseSpec, profile: str) -> CaseResult:
        """A case's metrics (memory, quality, evidence) in one of the interleaved run's processes;
        its timing need only be one round, since the run's figure comes from the rounds."""
        return self.execute(case, profile)

    def baseline_of(self, case: CaseSpec) -> CaseSpec | None:
        """The case this one's speedup is measured against in the same run (None: no baseline)."""
        return None

    def rescale_metrics(self, case: CaseSpec, metrics: dict, median: float, p90: float, p99: float) -> dict:
        """The metrics derived from the per-call time, recomputed from the interleaved rounds'
        median (and the p90/p99 of every call they timed)."""
        return {}

    def launch_order(self, cases: list[CaseSpec], rng: random.Random) -> list[CaseSpec]:
        """The order of one launch's cases where there are several launches: a new random one each."""
        return rng.sample(cases, len(cases))

    def merge_launches(self, launches: list[dict[CaseSpec, CaseResult]]) -> dict[CaseSpec, CaseResult]:
        """Each case's result from the launches so far (each maps case to result): by default samples
        pooled, each launch a process of the interval (`merge_launches`)."""
        return {case: merge_launches(self, [launch[case] for launch in launches]) for case in launches[0]}

    def launch_key(self, case: CaseSpec) -> Hashable:
        """Consecutive cases with equal keys share one worker process (e.g. a message-size sweep
        over one set of ranks). The default, the case itself, gives each case its own process."""
        return case

    def execute_group(self, cases: list[CaseSpec], profile: str) -> Iterator[CaseResult]:
        """Yield one result per case, in order; the worker stores each as soon as it is yielded."""
        for case in cases:
            started = time.perf_counter()
            try:
                yield self.execute(case, profile)
            except SkipCase as e:
                yield CaseResult.skipped(case, str(e) or "skipped")
            except Exception as e:  # noqa: BLE001 - any failure of a case becomes its failed result
                yield CaseResult.failed(case, failure_text(e), time.perf_counter() - started)

def merge_launches(suite: Suite, results: list[CaseResult]) -> CaseResult:
    """One case's results from separate launches as one: samples pooled, each launch a unit of
    the interval (`Measurement.unit_of_sample`); a launch that failed or skipped decides the outcome."""
    first = results[0]
    bad = next((r for r in results if r.status != "ok"), None)
    if bad is not None or len(results) == 1:
        if bad is not None and bad is not first and bad.status == "failed":
            return replace(bad, reason=f"launch {results.index(bad) + 1} of {len(results)}: {bad.reason}")
        return bad or first
    ms = [r.measurement for r in results]
    m = Measurement(tuple(x for mi in ms for x in mi.samples), first.measurement.number_per_sample,
                    first.measurement.unit, tuple(i for i, mi in enumerate(ms) for _ in mi.samples),
                    unit_kind="launch")
    metrics = {**first.metrics, **suite.rescale_metrics(first.case, first.metrics, m.median, m.p90, m.p99),
               "launches": {"count": len(results), "median_s": [mi.median for mi in ms],
                            "wall_s": [r.wall_s for r in results]}}
    return replace(first, measurement=m, metrics=metrics, wall_s=sum(r.wall_s for r in results))



def failure_text(exc: BaseException) -> str:
    """The error line first (what a table shows), then the traceback for the log."""
    head = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:500]
    return head + "\n" + traceback.format_exc()[-4000:]


def _registry() -> dict[str, str]:
    """Built-in suites plus any from EFFBENCH_SUITES="name=module:Class,..." (plugins, test fakes)."""
    extra = {}
    for item in filter(None, os.environ.get("EFFBENCH_SUITES", "").split(",")):
        name, _, target = item.partition("=")
        if ":" not in target:
            raise ValueError(f"EFFBENCH_SUITES entry {item!r} is not name=module:Class")
        extra[name.strip()] = target.strip()
    return {**SUITES, **extra}


def suite_names() -> list[str]:
    return list(_registry())


def get_suite(name: str) -> Suite:
    registry = _registry()
    try:
        target = registry[name]
    except KeyError:
        raise ValueError(f"unknown suite {name!r}; choose from {', '.join([*registry, 'all'])}") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)()
