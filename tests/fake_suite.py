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

    def cases(self, profile: str, device: str, backend: str) -> list[CaseSpec]:
        return [CaseSpec.make(self.NAME, "toy", b, device) for b in BEHAVIOURS]

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
