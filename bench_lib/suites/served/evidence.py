"""Which kernels a served model spends its time in: `torch.profiler` over a few calls.

Stored with every case, so a technique slower than its baseline carries the evidence of why
(e.g. `aten::_int_mm` on a CPU without VNNI) next to its figure. On CUDA it also gives the
kernel time per call: a case whose kernels fill a small part of its latency is host-bound,
and its figure follows the host's launch speed, not the technique (such figures move between
runs far more than their kernel times do: docs/validation/h100-between-runs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

__all__ = ["OpEvidence", "op_evidence"]


@dataclass(frozen=True)
class OpEvidence:
    top_ops: list[dict[str, Any]]
    kernel_s_per_call: float | None  # summed device kernel time; None where there is no device clock


def op_evidence(fn: Callable[[], object], device: str, calls: int = 3, top: int = 12) -> OpEvidence:
    """The `top` ops by self time (device time on CUDA, CPU time otherwise), per call, over `calls` calls: a
    dozen names every kernel of a compiled decode step's layer, so a step can be split into its parts."""
    cuda = device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(calls):
            fn()
        if cuda:
            torch.cuda.synchronize()
    events = prof.key_averages()
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    # Device time is attributed both to a kernel and to the op that launched it: the total counts
    # kernels alone (as the profiler's own table does), CPU time counts every op's self time.
    counted = [e for e in events if e.device_type == DeviceType.CUDA
               and not getattr(e, "is_user_annotation", False)] if cuda else events
    total_us = sum(getattr(e, key) for e in counted)
    ranked = sorted(events, key=lambda e: getattr(e, key), reverse=True)
    ops = [{"op": e.key[:120], "self_us_per_call": round(getattr(e, key) / calls, 2),
            "share": round(getattr(e, key) / (total_us or 1.0), 4), "count_per_call": e.count / calls}
           for e in ranked[:top] if getattr(e, key) > 0]
    return OpEvidence(ops, total_us / calls / 1e6 if cuda else None)
