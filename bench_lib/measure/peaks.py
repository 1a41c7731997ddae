"""The peaks a device reaches in this run: a streaming copy's bandwidth and a large dense GEMM per dtype.

Every figure of a run is put beside the machine's limit (`results/roofline.py`). The data sheet
(`datasheet.py`) gives the limit the device was sold with, where effbench knows the device; what this
machine reaches today, with this driver, clock and neighbours, is measured here once per run, on each
device the run uses, in a few seconds: a copy of a buffer far larger than the caches (bytes read +
bytes written over the time), and for each dtype a square matmul large enough to be compute bound
(2 n^3 over the time; int8 through `torch._int_mm`, fp8 through `torch._scaled_mm`). Each probe keeps
the fastest of its repeats: a peak is what the device can do, not its typical pace. GPU probes are
timed with CUDA events, CPU probes with perf_counter.

Run as `python -m bench_lib.measure.peaks DEVICE DTYPE...` it prints the device's peaks as one JSON
line: the run measures them in a process of its own, so that the run's own process never holds a
CUDA context that its workers would share the device with.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Callable

import torch

from bench_lib.measure.datasheet import DTYPES, data_sheet, not_known

__all__ = ["DTYPES", "PROBE_BUDGET_S", "device_name", "measure_device", "main"]

PROBE_BUDGET_S = 0.6  # per probe: each stops repeating after this long (at least 2 timed repeats)
# Sizes: a copy well past the last-level cache, a GEMM well past the point where it is compute bound.
_COPY_BYTES = {"cpu": 256 * 2**20, "cuda": 2 * 2**30}
_GEMM_N = {"cpu": 1536, "cuda": 8192}


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU ({platform.machine()}, {torch.get_num_threads()} torch threads)"


def _fastest(fn: Callable[[], object], device: str, budget_s: float) -> float:
    """The fastest of a few timed calls of `fn` (seconds), after one untimed call."""
    cuda = device.startswith("cuda")
    fn()
    if cuda:
        torch.cuda.synchronize(device)
    best, started, reps = float("inf"), time.perf_counter(), 0
    while reps < 2 or (time.perf_counter() - started < budget_s and reps < 50):
        if cuda:
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            fn()
            end.record()
            end.synchronize()
            best = min(best, begin.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        reps += 1
    return best


def copy_bandwidth(device: str, budget_s: float = PROBE_BUDGET_S) -> tuple[float, str]:
    """(bytes/s, how): a copy of a large buffer, its bytes read plus written over the fastest time."""
    size = _COPY_BYTES["cuda" if device.startswith("cuda") else "cpu"]
    src = torch.empty(size, dtype=torch.uint8, device=device).fill_(1)
    dst = torch.empty_like(src)
    seconds = _fastest(lambda: dst.copy_(src), device, budget_s)
    return 2 * size / seconds, f"copy of {size / 2**20:.0f} MiB (read + write), fastest repeat"


def _gemm(device: str, dtype: str, n: int) -> Callable[[], object]:
    """One n x n x n matmul of `dtype`, inputs made once."""
    def rand(dt: torch.dtype) -> torch.Tensor:
        return torch.randn(n, n, device=device).to(dt)

    if dtype == "int8":
        a = torch.randint(-64, 64, (n, n), dtype=torch.int8, device=device)
        b = torch.randint(-64, 64, (n, n), dtype=torch.int8, device=device).t()  # column-major, as cuBLAS likes
        return lambda: torch._int_mm(a, b)
    if dtype == "float8":
        a, b = rand(torch.float8_e4m3fn), rand(torch.float8_e4m3fn).t()  # _scaled_mm: b column-major
        one = torch.ones((), device=device)
        return lambda: torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
    a, b = rand(getattr(torch, dtype)), rand(getattr(torch, dtype))
    return lambda: a @ b


def gemm_peak(device: str, dtype: str, budget_s: float = PROBE_BUDGET_S) -> tuple[float, str]:
    """(FLOP/s, or OP/s for int8; how): a square dense matmul's 2 n^3 over its fastest time."""
    n = _GEMM_N["cuda" if device.startswith("cuda") else "cpu"]
    seconds = _fastest(_gemm(device, dtype, n), device, budget_s)
    kernel = {"int8": "torch._int_mm", "float8": "torch._scaled_mm (e4m3, bf16 out)"}.get(dtype, "matmul")
    return 2 * n ** 3 / seconds, f"{kernel} {n}x{n}x{n}, fastest repeat"


def measure_device(device: str, dtypes: list[str], budget_s: float = PROBE_BUDGET_S) -> dict:
    """The device's measured peaks beside its data sheet's ("not known" where it has none). A dtype
    the device or this torch cannot run is stored with the reason instead of a figure."""
    started = time.perf_counter()
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))  # events record on the current device's stream
    name = device_name(device)
    sheet = data_sheet(name) if device.startswith("cuda") else None
    bandwidth, how = copy_bandwidth(device, budget_s)
    out: dict = {
        "device": device, "name": name,
        "memory": {"measured_bytes_per_s": bandwidth, "method": how,
                   "data_sheet_bytes_per_s": sheet.bandwidth_bytes_per_s if sheet else None,
                   "data_sheet": sheet.source if sheet else not_known("bandwidth", name)},
        "compute": {},
    }
    for dtype in dtypes:
        row: dict = {"measured_ops_per_s": None, "method": None}
        try:
            row["measured_ops_per_s"], row["method"] = gemm_peak(device, dtype, budget_s)
        except (RuntimeError, NotImplementedError, AttributeError, TypeError) as e:
            row["method"] = f"not measured: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
        known = sheet.dense_ops_per_s.get(dtype) if sheet else None
        row.update(data_sheet_ops_per_s=known,
                   data_sheet=sheet.source if known else not_known(f"dense {dtype} peak", name))
        out["compute"][dtype] = row
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    out["probe_s"] = time.perf_counter() - started
    return out


def main(argv: list[str] | None = None) -> int:
    """`python -m bench_lib.measure.peaks DEVICE DTYPE...`: one JSON line of the device's peaks."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m bench_lib.measure.peaks DEVICE [DTYPE...]", file=sys.stderr)
        return 2
    print(json.dumps(measure_device(args[0], args[1:])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
