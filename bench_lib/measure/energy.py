"""Energy of a stretch of work, from the hardware's cumulative energy counters.

On NVIDIA GPUs the counter is NVML's total energy (`nvmlDeviceGetTotalEnergyConsumption`,
millijoules since the driver loaded, Volta and newer): what the ml.energy Zeus monitor reads.
Polling instantaneous power instead misses most of a run on A100/H100 (a 2023 study saw about
25% of the runtime covered), and codecarbon's 15 s samples are longer than most cases. On CPUs
the counter is the kernel's RAPL package energy (`/sys/class/powercap`, microjoules, wrapping at
`max_energy_range_uj`, unwrapped here). Where neither exists the result says why: never a guess
from TDP.

The counter does not move continuously: NVML updates it about every 100 ms (20-100 ms by GPU
generation). A window's energy read as end minus start is then off by up to one update's worth
at each edge, 10% of a 2 s window. So a thread polls the counter every POLL_S and notes when
its value changes; the counter is exact at each change, and the sighting's clock is late by at
most POLL_S. The mean power is the energy between the first and the last change seen over the
time between them, and the window's energy is that power times the window: right for steady
work (a loop of identical calls, training steps), which is what is measured. With fewer than
MIN_UPDATES changes the figure carries a warning, with fewer than two it is not measured.

The counter covers the whole device (or CPU package), idle power and other processes on it
included: what the work costs to run there, not what its kernels alone draw.
"""

from __future__ import annotations

import glob
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "POLL_S",
    "MIN_UPDATES",
    "ENERGY_WINDOW_S",
    "Counter",
    "EnergyWindow",
    "window_from_sightings",
    "EnergyMeter",
    "run_for",
    "sum_over_devices",
    "energy_metrics",
    "counter_for",
    "NvmlCounter",
    "RaplCounter",
]

POLL_S = 0.005
# Below this many counter changes in a window, the power rests on a short span and is flagged.
MIN_UPDATES = 10
# An inference case's energy window: about 20 NVML updates at 100 ms, so the power rests on 95% of it.
ENERGY_WINDOW_S = 2.0
POWERCAP = "/sys/class/powercap"


class Counter(Protocol):
    """A cumulative energy counter in joules that only grows (a source that wraps unwraps itself)."""

    source: str

    def read_j(self) -> float: ...


@dataclass(frozen=True)
class EnergyWindow:
    """What a counter saw over one window of work."""

    joules: float
    seconds: float
    updates: int
    span_s: float  # the time between the first and the last change seen: what the power rests on
    source: str

    @property
    def power_w(self) -> float:
        return self.joules / self.seconds

    @property
    def warnings(self) -> tuple[str, ...]:
        if self.updates >= MIN_UPDATES:
            return ()
        return (f"only {self.updates} energy counter updates in the {self.seconds:.2f} s window: the mean power "
                f"rests on {self.span_s:.2f} s of it",)


def window_from_sightings(sightings: list[tuple[float, float]], start: float, end: float,
                          source: str) -> EnergyWindow | str:
    """The window [start, end]'s energy from (time, counter value) sightings in it, the first at `start`.

    Returns why it cannot be measured instead of an EnergyWindow when the counter changed fewer
    than twice (no interval between two updates to take the power from) or went backwards (a
    driver reload resets NVML's counter).
    """
    changes: list[tuple[float, float]] = []  # (time seen, energy since the first sighting)
    total = 0.0
    for (_, before), (t, value) in zip(sightings, sightings[1:], strict=False):
        step = value - before
        if step < 0:
            return f"the energy counter went backwards ({before:.3f} J to {value:.3f} J): was the driver reloaded?"
        if step > 0:
            total += step
            changes.append((t, total))
    if len(changes) < 2:
        return (f"the energy counter changed {len(changes)} times in the {end - start:.3f} s window: "
                "too short for its update interval")
    (t0, e0), (t1, e1) = changes[0], changes[-1]
    seconds = end - start
    return EnergyWindow((e1 - e0) / (t1 - t0) * seconds, seconds, len(changes), t1 - t0, source)


class EnergyMeter:
    """Polls `counter` from a thread between `start()` and `stop()` (or over a `with` block).

    The caller makes sure the work is finished when it stops the meter (synchronize CUDA).
    """

    def __init__(self, counter: Counter, poll_s: float = POLL_S, clock: Callable[[], float] = time.perf_counter):
        self.counter, self.poll_s, self.clock = counter, poll_s, clock
        self._sightings: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="energy-poll", daemon=True)
        self.result: EnergyWindow | str = "the energy meter was not stopped"

    def _sight(self) -> None:
        value = self.counter.read_j()
        if not self._sightings or value != self._sightings[-1][1]:
            self._sightings.append((self.clock(), value))

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_s):
            self._sight()

    def start(self) -> EnergyMeter:
        self._start = self.clock()
        self._sightings.append((self._start, self.counter.read_j()))
        self._thread.start()
        return self

    def stop(self) -> EnergyWindow | str:
        self._stop.set()
        self._thread.join()
        self._sight()
        self.result = window_from_sightings(self._sightings, self._start, self.clock(), self.counter.source)
        return self.result

    def __enter__(self) -> EnergyMeter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_for(fn: Callable[[], object], counter: Counter, window_s: float = ENERGY_WINDOW_S,
            sync: Callable[[], None] = lambda: None) -> tuple[int, EnergyWindow | str]:
    """Call fn back to back for at least window_s under an EnergyMeter: (calls, its result).

    A window of its own, apart from the timing loop: timing rounds (0.1 s) are shorter than one
    NVML update. `sync` waits for the device: before the window opens and before it closes.
    """
    sync()
    calls = 0
    with EnergyMeter(counter) as meter:
        started = time.perf_counter()
        while time.perf_counter() - started < window_s:
            fn()
            calls += 1
        sync()
    return calls, meter.result


def sum_over_devices(windows: list[EnergyWindow], sharers: list[int]) -> EnergyWindow:
    """One window for the ranks of a distributed run: each rank's energy divided by the number of
    ranks that read the same counter (two ranks on one GPU both see all of its energy), summed.
    The window is the longest rank's; the updates and the span the fewest any rank saw."""
    devices = round(sum(1 / n for n in sharers))
    return EnergyWindow(sum(w.joules / n for w, n in zip(windows, sharers, strict=True)),
                        max(w.seconds for w in windows), min(w.updates for w in windows),
                        min(w.span_s for w in windows),
                        f"{windows[0].source}; summed over {devices} device(s) of {len(windows)} rank(s)")


def energy_metrics(result: EnergyWindow | str, work: dict[str, float]) -> dict:
    """Flat, JSON-safe metrics: joules per unit of work (`work`: unit -> count in the window),
    or `energy_not_measured` with the reason."""
    if isinstance(result, str):
        return {"energy_not_measured": result}
    return {
        **{f"energy_j_per_{unit}": result.joules / count for unit, count in work.items() if count},
        "power_mean_w": result.power_w,
        "energy_j": result.joules,
        "energy_window_s": result.seconds,
        "energy_counter_updates": result.updates,
        "energy_source": result.source,
        "energy_warnings": list(result.warnings),
    }


class NvmlCounter:
    """NVML's total energy counter of one GPU (64-bit millijoules: it never wraps in practice)."""

    def __init__(self, nvml: object, handle: object, label: str) -> None:
        self._read = lambda: nvml.nvmlDeviceGetTotalEnergyConsumption(handle)  # type: ignore[attr-defined]
        self.source = f"nvml total energy counter ({label}; whole GPU, idle power included)"

    def read_j(self) -> float:
        return self._read() / 1e3


class RaplCounter:
    """The sum of RAPL's package domains (one per socket), each unwrapped at its own range, so that
    the sum only grows: a domain wraps every hour or so at 100 W (`max_energy_range_uj`, about 262 kJ)."""

    def __init__(self, domains: list[str]) -> None:
        self._domains = domains
        self._range_uj = [_read_uj(os.path.join(d, "max_energy_range_uj")) for d in domains]
        self._last_uj = [_read_uj(os.path.join(d, "energy_uj")) for d in domains]
        self._total_uj = 0
        self.source = f"rapl ({', '.join(os.path.basename(d) for d in domains)}; CPU package, DRAM excluded)"

    def read_j(self) -> float:
        for i, d in enumerate(self._domains):
            now = _read_uj(os.path.join(d, "energy_uj"))
            self._total_uj += (now - self._last_uj[i]) % (self._range_uj[i] + 1)
            self._last_uj[i] = now
        return self._total_uj / 1e6


def _read_uj(path: str) -> int:
    with open(path) as f:
        return int(f.read())


def counter_for(device: str, powercap: str = POWERCAP) -> Counter | str:
    """The energy counter for `device` ("cuda", "cuda:1", "cpu"), or the reason there is none."""
    if device.startswith("cuda"):
        return _nvml_counter(int(device.partition(":")[2] or 0))
    return _rapl_counter(powercap)


def _nvml_counter(index: int) -> Counter | str:
    try:
        import pynvml
    except ImportError:
        return "nvidia-ml-py (pynvml) is not installed"
    try:
        import torch

        pynvml.nvmlInit()
        # NVML numbers GPUs in PCI order, CUDA fastest first and after CUDA_VISIBLE_DEVICES: match by UUID.
        uuid = f"GPU-{torch.cuda.get_device_properties(index).uuid}"
        handle = pynvml.nvmlDeviceGetHandleByUUID(uuid.encode())
        counter = NvmlCounter(pynvml, handle, f"cuda:{index}, {uuid}")
        counter.read_j()
    except pynvml.NVMLError as e:  # NOT_SUPPORTED before Volta, no driver, no such device
        return f"NVML energy counter unavailable for cuda:{index}: {e}"
    return counter


def _rapl_counter(powercap: str) -> Counter | str:
    if not os.path.isdir(powercap):
        return f"no RAPL: {powercap} does not exist on this machine (no powercap driver, or a VM)"
    domains = sorted(d for d in glob.glob(os.path.join(powercap, "intel-rapl:*"))
                     if d.count(":") == 1 and _name(d).startswith("package"))
    if not domains:
        return f"no RAPL package domain under {powercap}"
    try:
        counter = RaplCounter(domains)
        counter.read_j()
    except OSError as e:  # energy_uj has been readable by root only since CVE-2020-8694
        return f"RAPL energy not readable: {e}"
    return counter


def _name(domain: str) -> str:
    try:
        with open(os.path.join(domain, "name")) as f:
            return f.read().strip()
    except OSError:
        return ""
