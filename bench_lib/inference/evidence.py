"""Which kernels a served model spends its time in: `torch.profiler` over a few calls.

Stored with every case, so a technique slower than its baseline carries the evidence of why
(e.g. `aten::_int_mm` on a CPU without VNNI) next to its figure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

__all__ = ["top_ops"]


def top_ops(fn: Callable[[], object], device: str, calls: int = 3, top: int = 5) -> list[dict[str, Any]]:
    """The `top` ops by self time (device time on CUDA, CPU time otherwise), per call, over `calls` calls."""
    cuda = device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(calls):
            fn()
        if cuda:
            torch.cuda.synchronize()
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    events = sorted(prof.key_averages(), key=lambda e: getattr(e, key), reverse=True)
    total = sum(getattr(e, key) for e in events) or 1.0
    return [{"op": e.key[:120], "self_us_per_call": round(getattr(e, key) / calls, 2),
             "share": round(getattr(e, key) / total, 4), "count_per_call": e.count / calls}
            for e in events[:top] if getattr(e, key) > 0]
