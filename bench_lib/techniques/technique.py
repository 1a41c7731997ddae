"""What a technique is: at most two steps, both `(model, ctx) -> model`, and the dtype it serves in.

`prepare` runs in fp32 on the case's device (pruning, fine-tuning), then the suite casts the model to
the serving dtype, then `convert` runs (quantize, sparsify, lower), then the suite wraps it in
`torch.compile` on the devices in `compiled_on`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from bench_lib.results.case import CaseSpec
from bench_lib.workloads.base import Workload

__all__ = ["Context", "Step", "Technique", "serving_dtype", "linears", "chain"]


@dataclass(frozen=True)
class Context:
    """What a step may look at besides the model."""

    case: CaseSpec
    workload: Workload
    device: str
    dtype: torch.dtype
    batch: int

    def param(self, key: str) -> float:
        return float(self.case.param(key))


Step = Callable[[nn.Module, Context], nn.Module]


def chain(*steps: Step) -> Step:
    """One step that runs `steps` in order."""

    def step(model: nn.Module, ctx: Context) -> nn.Module:
        for one in steps:
            model = one(model, ctx)
        return model

    return step


@dataclass(frozen=True)
class Technique:
    name: str
    note: str
    devices: tuple[str, ...] = ("cpu", "cuda")
    prepare: Step | None = None
    convert: Step | None = None
    compiled_on: tuple[str, ...] = ()
    compile_mode: str | None = None  # torch.compile's mode where compiled; None: inductor's default
    dtype: str = "auto"  # auto: fp32 on CPU, bf16 on GPU (each device's baseline)
    params: dict[str, tuple] = field(default_factory=dict)
    min_capability: tuple[int, int] | None = None
    unsupported: str = ""  # set when no build of this stack can run it: the skip reason
    workload_needs: str = ""  # a method the workload must offer (e.g. remove_heads); else the case is skipped
    requires: str = ""  # a package effbench does not depend on (its import name); without it the case is skipped


def serving_dtype(technique: Technique, device: str) -> torch.dtype:
    if technique.dtype != "auto":
        return getattr(torch, technique.dtype)
    return torch.bfloat16 if device.startswith("cuda") else torch.float32


def linears(model: nn.Module, multiple_in: int = 1, multiple_out: int = 1) -> list[tuple[str, nn.Linear]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)
            and m.in_features % multiple_in == 0 and m.out_features % multiple_out == 0]
