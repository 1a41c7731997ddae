"""A suite whose cases misbehave on purpose: the runner must turn each into a result."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench_lib.measure.stats import Measurement
from bench_lib.results.case import CaseResult, CaseSpec, SkipCase
from bench_lib.suites import Suite

BEHAVIOURS = ("ok", "raise", "skip", "crash", "hang", "oom", "spawn_and_hang", "slow_ok")


class FakeSuite(Suite):
    NAME = "fake"

    def cases(self, profile: str, device: str, backend: str, models: tuple = ()) -> list[CaseSpec]:
        return [] if models else [CaseSpec.make(self.NAME, "toy", b, device) for b in BEHAVIOURS]

    def timeout_s(self, case: CaseSpec, profile: str) -> float:
        return float(os.environ.get("FAKE_TIMEOUT_S", "5"))

    def execute(self, case: CaseSpec, profile: str) -> CaseResult:
        pidfile = os.environ.get("FAKE_PIDFILE")
        if pidfile:
            with open(pidfile, "a") as f:
                f.write(f"{os.getpid()}\n")
        b = case.variant
        if b == "raise":
            raise MemoryError("CUDA out of memory (pretend)")
        if b == "skip":
            raise SkipCase("needs hardware this host lacks")
        if b == "crash":
            os.kill(os.getpid(), signal.SIGSEGV)
        if b == "oom":
            os.kill(os.getpid(), signal.SIGKILL)
        if b == "hang":
            time.sleep(3600)
        if b == "spawn_and_hang":
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
            if pidfile:
                Path(pidfile).open("a").write(f"{child.pid}\n")
            time.sleep(3600)
        if b == "slow_ok":
            time.sleep(float(os.environ.get("FAKE_SLOW_S", "2")))
        scale = float(os.environ.get("FAKE_SCALE", "1"))  # an A/B side that is slower (tests of `ab`)
        samples = tuple(scale * x for x in (1e-3, 1.1e-3, 0.9e-3, 1e-3, 1.05e-3, 0.95e-3))
        return CaseResult(case, "ok", Measurement(samples), {"answer": 42}, timer="fake")


class FakeRoundSuite(Suite):
    """An interleaved suite: a baseline, a technique twice as fast, a case whose rounds raise and
    one whose rounds hang. Every process carries a bias of its own (from its pid), shared by the
    cases it measures, as real processes do."""

    NAME = "rounds"
    INTERLEAVED = True
    VARIANTS = ("base", "fast", "broken", "hang")

    def cases(self, profile: str, device: str, backend: str, models: tuple = ()) -> list[CaseSpec]:
        return [] if models else [CaseSpec.make(self.NAME, "toy", v, device, batch=1) for v in self.VARIANTS]

    def timeout_s(self, case: CaseSpec, profile: str) -> float:
        return float(os.environ.get("FAKE_TIMEOUT_S", "3"))

    def baseline_of(self, case: CaseSpec) -> CaseSpec | None:
        return None if case.variant == "base" else CaseSpec.make(self.NAME, "toy", "base", case.device, batch=1)

    def rescale_metrics(self, case: CaseSpec, metrics: dict, median: float, p90: float, p99: float) -> dict:
        return {"latency_median_s": median}

    def execute(self, case: CaseSpec, profile: str) -> CaseResult:
        return CaseResult(case, "ok", Measurement((1.0, 1.0, 1.0)), {"answer": 42, "process": os.getpid()})

    def measure_round(self, case: CaseSpec, profile: str) -> CaseResult:
        if case.variant == "broken":
            raise RuntimeError("this round always fails")
        if case.variant == "hang":
            time.sleep(3600)
        bias = 1.0 + 0.3 * (os.getpid() % 3)
        per_call = bias * (0.5e-3 if case.variant == "fast" else 1e-3)
        return CaseResult(case, "ok", Measurement(tuple(per_call * f for f in (1.0, 1.02, 0.98, 1.01, 0.99))))
