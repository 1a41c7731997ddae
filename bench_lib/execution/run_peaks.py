"""The run's measured peaks: once per run, before its cases, on each device its cases use.

Each GPU is probed in a process of its own (`python -m bench_lib.measure.peaks`), for the dtypes the
run's cases compute in, so that the run's own process holds no CUDA context; the CPU in the run's
process. The peaks go into the run's environment (`environment.peaks`, schema `DevicePeaks`), where
the roofline of every case (`results/roofline.py`) finds them. EFFBENCH_PEAKS=off leaves them out
(tests of the engine's plumbing, which would otherwise pay a probe per run), and says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable

from bench_lib.measure.datasheet import DTYPES
from bench_lib.platform import detect, device_kind
from bench_lib.results.case import CaseSpec
from bench_lib.results.roofline import compute_dtype, peaks_key

__all__ = ["ROOFLINE_SUITES", "PEAKS_ENV", "run_devices", "measure_run_peaks"]

ROOFLINE_SUITES = ("inference", "decode", "training")  # the suites whose results carry a roofline
PEAKS_ENV = "EFFBENCH_PEAKS"
_TIMEOUT_S = 120.0


def run_devices(cases: Iterable[CaseSpec]) -> dict[str, list[str]]:
    """The devices (`roofline.peaks_key`) the cases use and, for each, the dtypes to probe: the
    baseline's and those the cases' techniques compute in, in the order `peaks.DTYPES` lists them."""
    wanted: dict[str, set[str]] = {}
    for case in cases:
        if case.suite not in ROOFLINE_SUITES:
            continue
        kind = device_kind(case.device)
        ranks = int(case.param("world_size", 1)) if kind == "cuda" else 1
        gpus = max(1, min(ranks, detect().cuda_devices)) if kind == "cuda" else 1
        for index in range(gpus):
            key = peaks_key(f"cuda:{index}" if kind == "cuda" else "cpu")
            wanted.setdefault(key, {DTYPES[kind][0]}).add(compute_dtype(case.variant, kind))
    return {key: [d for d in DTYPES[device_kind(key)] if d in dtypes] for key, dtypes in wanted.items()}


def _probe(device: str, dtypes: list[str]) -> dict:
    started = time.perf_counter()
    if device == "cpu":  # no context to keep out of the run's process, and no second torch import to pay
        from bench_lib.measure.peaks import measure_device

        peaks = measure_device(device, dtypes)
        peaks["wall_s"] = time.perf_counter() - started
        return peaks
    try:
        out = subprocess.run([sys.executable, "-m", "bench_lib.measure.peaks", device, *dtypes],
                             capture_output=True, text=True, timeout=_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return {"device": device, "error": f"peaks probe timed out after {_TIMEOUT_S:.0f} s"}
    if out.returncode != 0 or not out.stdout.strip():
        tail = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"device": device, "error": f"peaks probe exited with status {out.returncode}: {tail[0][:300]}"}
    peaks = json.loads(out.stdout.strip().splitlines()[-1])
    peaks["wall_s"] = time.perf_counter() - started  # the probe's process included: what the run paid
    return peaks


def measure_run_peaks(cases: Iterable[CaseSpec]) -> dict:
    """`environment.peaks` of the run: per device key, its measured and data-sheet peaks (or the error
    of its probe); empty where no case has a roofline."""
    devices = run_devices(cases)
    if not devices:
        return {}
    if os.environ.get(PEAKS_ENV, "").lower() == "off":
        return {key: {"device": key, "error": f"not measured: {PEAKS_ENV}=off"} for key in devices}
    return {key: _probe(key, dtypes) for key, dtypes in devices.items()}
