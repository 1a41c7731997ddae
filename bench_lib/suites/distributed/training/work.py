"""One training step's work on one rank, for the roofline and MFU of every strategy's result.

Model FLOPs per step come from the counter (`measure.flops`) over one step's forward, loss and backward
on a fresh copy of the task's model (its weights do not change the count) at the per-rank batch, in
the step's autocast: the FLOPs of the model, not of the strategy (DDP's all-reduce or PowerSGD's
compression are communication, not model FLOPs). The optimizer's elementwise update is left out, as
MFU conventionally does. MFU is the roofline's `flops_fraction_measured` / `flops_fraction_data_sheet`
(results/roofline.py): per device, since each rank computes its own batch.

Bytes per step: the weights read in the forward and again in the backward, and the gradients written
(3 x the weights' bytes), and the weighted layers' activations written in the forward and read in the
backward (2 x); the optimizer state is not counted. A lower bound of the traffic, not a trace.
"""

from __future__ import annotations

import torch

from bench_lib.measure.flops import count_call, not_counted, work
from bench_lib.results.roofline import compute_dtype
from bench_lib.suites.distributed.base import RankContext
from bench_lib.suites.distributed.tasks import TrainTask

__all__ = ["step_work"]


def step_work(task: TrainTask, ctx: RankContext) -> dict:
    """`metrics["work"]` of a training case (per step, per rank)."""
    dtype = compute_dtype("train", "cuda" if ctx.is_cuda else "cpu")
    model = task.model().to(ctx.device)
    x, y = task.sample(torch.Generator().manual_seed(0), ctx.device)

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=ctx.is_cuda):
            logits = model(x)
        task.loss(logits, y).backward()

    try:
        count = count_call(step, model)
    except Exception as e:  # noqa: BLE001 - a kernel the counter breaks on: the case keeps its other figures
        return {**not_counted(e, dtype), "per": "step"}
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    return work(count, dtype, {"weights_read_twice_and_gradients": 3 * weights,
                               "activations": 2 * count.activation_bytes}, per="step",
                note="forward and backward of one rank's batch")
