"""The base of the served-model suites: a model built once per process and kept, timed in rounds and
visits, and measured once in a window of timing, memory, kernels and energy.

A served suite says how to build a case's model (`serve`) and what one call of it is (`timed_call`);
the rounds, the visits (`effbench run`'s interleaved turns), the kept-model cache, the measuring
window and the metrics every served case carries are defined here once.
"""

from __future__ import annotations

import os
from abc import abstractmethod
from collections.abc import Callable, Hashable
from dataclasses import asdict, dataclass

import torch

from bench_lib.measure import energy, memory
from bench_lib.measure.stats import Measurement
from bench_lib.measure.timers import MeasureConfig, blocked_autorange, interleaved_autorange, timer_for
from bench_lib.platform import device_kind
from bench_lib.profiles import ROUND, VISIT, measure_config
from bench_lib.results.case import CaseResult, CaseSpec
from bench_lib.suites.base import Suite
from bench_lib.suites.served.evidence import OpEvidence, op_evidence
from bench_lib.techniques.baselines import SERVED_BASELINES
from bench_lib.techniques.inference import TECHNIQUES

__all__ = ["Served", "Window", "ServedSuite", "measure_window", "sync", "use_all_cores"]


def sync(device: str) -> None:
    """Wait for the device's queued work (a no-op on CPU)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def use_all_cores() -> int:
    """Serve with a torch thread on every core this process may run on; returns how many."""
    threads = len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    return threads


@dataclass
class Served:
    """A case's model, built and ready to time (a suite adds what its calls and judgement need)."""

    threads: int  # torch threads it is served with
    started: float  # perf_counter when its build began: the case's wall time counts from there
    facts: dict  # what was measured once, when it was built (build times, sizes, rss_before_build_bytes, ...)


@dataclass(frozen=True)
class Window:
    """One measuring window of a served model: its timing, then what is read after it."""

    measurement: Measurement
    timer: str
    peak_rss_bytes: int
    cuda_peak: dict[str, int]
    evidence: OpEvidence
    energy: dict


def measure_window(fn: Callable[[], object], device: str, cfg: MeasureConfig, per_call: dict[str, int]) -> Window:
    """Time `fn` (`blocked_autorange`), then read the memory peaks, profile a few calls, and measure
    the energy per unit of work (`per_call`: unit -> count in one call) over a window of its own
    (`energy.run_for`): timing rounds are shorter than one update of a GPU's energy counter."""
    timer = timer_for(device)
    with torch.no_grad():
        memory.reset_cuda_peak(device)
        measurement = blocked_autorange(fn, timer, cfg)
        peak_rss = memory.peak_rss_bytes()
        cuda_peak = memory.cuda_peak(device)
        evidence = op_evidence(fn, device)
        counter = energy.counter_for(device)
        if isinstance(counter, str):
            used = energy.energy_metrics(counter, {})
        else:
            calls, result = energy.run_for(fn, counter, sync=lambda: sync(device))
            used = energy.energy_metrics(result, {unit: calls * n for unit, n in per_call.items()})
    return Window(measurement, timer.name, peak_rss, cuda_peak, evidence, used)


class ServedSuite(Suite):
    """A suite whose cases are served models: built once per process, kept, timed call by call."""

    INTERLEAVED = True

    def __init__(self) -> None:
        self._served: dict[Hashable, Served] = {}

    @abstractmethod
    def serve(self, case: CaseSpec, judge: bool) -> Served:
        """The case's model built and ready to time; with `judge`, what its quality is judged by."""

    @abstractmethod
    def timed_call(self, served: Served, case: CaseSpec) -> Callable[[], object]:
        """One call of the served model, as timed."""

    @abstractmethod
    def measure_served(self, served: Served, case: CaseSpec, cfg: MeasureConfig) -> CaseResult:
        """The case's full result: a window (`measure_window`) and the suite's own metrics."""

    def served_key(self, case: CaseSpec) -> Hashable:
        """The cases that share one built model (by default each case has its own)."""
        return case

    def baseline(self, device: str) -> str:
        """The variant this device's cases are measured against (`SERVED_BASELINES`)."""
        return SERVED_BASELINES[device_kind(device)]

    def baseline_of(self, case: CaseSpec) -> CaseSpec | None:
        """The device's baseline (fp32 on CPU, bf16 on GPU) with the case's other params (same workload, batch,
        and for decode mode, phase and prompt): everything but the technique's own params."""
        variant = self.baseline(case.device)
        if case.variant == variant:
            return None
        params = {k: v for k, v in case.params if k not in TECHNIQUES[case.variant].params}
        return CaseSpec.make(self.NAME, case.workload, variant, case.device, **params)

    def kept(self, case: CaseSpec, judge: bool = False) -> Served:
        """The served model, built once per process and kept for the rounds that follow."""
        key = self.served_key(case)
        if key not in self._served:
            self._served[key] = self.serve(case, judge)
        return self._served[key]

    def measure_round(self, case: CaseSpec, profile: str) -> CaseResult:
        """One timing round (`effbench run`'s interleaved rounds, `effbench ab`'s pairs)."""
        fn = self.timed_call(self.kept(case), case)
        timer = timer_for(case.device)
        with torch.no_grad():
            m = blocked_autorange(fn, timer, ROUND)
        return CaseResult(case, "ok", m, {"latency_median_s": m.median}, timer=timer.name,
                          measure_config=asdict(ROUND))

    def measure_visit(self, cases: list[CaseSpec], profile: str) -> list[CaseResult]:
        """A round of each case with their blocks (~10 ms) in turns of random order, so that a
        technique and its baseline meet the same machine states (a case's rounds move from one
        visit to the next by more than most speedups: docs/validation/rerun-validation)."""
        fns = [self.timed_call(self.kept(case), case) for case in cases]
        timer = timer_for(cases[0].device)
        with torch.no_grad():
            ms = interleaved_autorange(fns, timer, VISIT)
        return [CaseResult(case, "ok", m, {"latency_median_s": m.median}, timer=timer.name,
                           measure_config=asdict(VISIT)) for case, m in zip(cases, ms, strict=True)]

    def characterize(self, case: CaseSpec, profile: str) -> CaseResult:
        """Memory, quality and kernels of the kept model, timed for one round only: in an
        interleaved run the figure comes from the rounds of every process."""
        return self.measure_served(self.kept(case, judge=True), case, ROUND)

    def execute(self, case: CaseSpec, profile: str) -> CaseResult:
        return self.measure_served(self.kept(case, judge=True), case, measure_config(profile))

    def served_metrics(self, case: CaseSpec, served: Served, window: Window) -> dict:
        """The metrics every served case carries: memory it added, its top kernels, energy, and
        what it was measured against and with."""
        evidence, device = window.evidence, case.device
        return {
            # What the case itself holds (reference, served model, activations): comparable whether the
            # process measured one case or, in an interleaved run, kept earlier cases resident.
            "rss_added_bytes": window.peak_rss_bytes - served.facts["rss_before_build_bytes"],
            **window.cuda_peak,
            "top_ops": evidence.top_ops,
            "top_ops_clock": "device self time" if device_kind(device) == "cuda" else "CPU self time",
            **({} if evidence.kernel_s_per_call is None else {
                "gpu_kernel_s_per_call": evidence.kernel_s_per_call,
                "gpu_busy_fraction": evidence.kernel_s_per_call / window.measurement.median}),
            **window.energy,
            "baseline_variant": self.baseline(device),
            "torch_threads": served.threads,
            "technique_note": TECHNIQUES[case.variant].note,
        }
