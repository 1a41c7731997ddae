"""Data-parallel strategies, each on PyTorch's own path where one exists.

A strategy wraps the model for the forward pass and hooks the two points of a step where
communication happens: after backward (before the optimizer step) and after the step.

- sync: DistributedDataParallel, gradients all-reduced every step in buckets overlapped with
  backward; sync_bf16 and sync_powersgd add DDP's bf16-compression and PowerSGD comm hooks.
- local_sgd: independent steps, parameters averaged every H steps by
  torch.distributed.algorithms.model_averaging's PeriodicModelAverager.
- diloco (Douillard et al., 2023): the inner AdamW runs H local steps, then the averaged
  pseudo-gradient (outer params - local params) takes an outer Nesterov SGD step (lr 0.7,
  momentum 0.9). torchft 0.2.0 installs from PyPI, but its DiLoCo needs a torchft Manager and
  lighthouse server for fault-tolerant replica groups; this is the same algorithm without them.
- async_stale: each step's gradients are all-reduced with async_op=True and applied one step
  later, so the all-reduce overlaps the next forward and backward: one-step-stale SGD.
- nocomm: independent replicas, no communication: the upper bound on throughput.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

__all__ = ["STRATEGIES", "Strategy", "make_strategy"]


@dataclass(frozen=True)
class StrategyInfo:
    name: str
    periodic: bool  # takes sync_every (H)
    note: str


STRATEGIES = {s.name: s for s in (
    StrategyInfo("nocomm", False, "independent replicas, no communication (throughput upper bound)"),
    StrategyInfo("sync", False, "DDP: bucketed gradient all-reduce every step, overlapped with backward"),
    StrategyInfo("sync_bf16", False, "DDP with the bf16_compress_hook (gradients sent in bf16)"),
    StrategyInfo("sync_powersgd", False, "DDP with the PowerSGD hook (rank 1, error feedback, from step 2; "
                                         "one bucket on Gloo)"),
    StrategyInfo("local_sgd", True, "local AdamW steps, parameters averaged every H steps (PeriodicModelAverager)"),
    StrategyInfo("diloco", True, "inner AdamW for H steps, outer Nesterov SGD (lr 0.7, m 0.9) on the averaged "
                                 "pseudo-gradient"),
    StrategyInfo("async_stale", False, "gradient all-reduce with async_op=True, applied one step later"),
)}


class Strategy:
    """No communication; the base of the others."""

    def __init__(self, model: nn.Module, sync_every: int, device: str) -> None:
        self.model, self.sync_every, self.device = model, sync_every, device

    def forward_module(self) -> nn.Module:
        return self.model

    def before_step(self) -> bool:
        """After backward; False skips this step's optimizer update."""
        return True

    def after_step(self, step: int) -> None:
        """After the optimizer step `step` (0-based)."""

    def finish(self) -> None:
        """Bring the replicas to the model that would be deployed (the final sync, if any)."""

    def comm_figures(self) -> dict:
        """Time in collectives per step and the part not hidden behind compute, where the strategy's
        own machinery measures them (DDP); empty otherwise."""
        return {}


class DDPSync(Strategy):
    def __init__(self, model: nn.Module, sync_every: int, device: str, hook: str = "") -> None:
        super().__init__(model, sync_every, device)
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [torch.device(device).index] if device.startswith("cuda") else None
        kwargs = {}
        if hook == "powersgd" and dist.get_backend() == "gloo":
            # One bucket: PowerSGD's chained collectives from several buckets' callbacks hung on Gloo here.
            kwargs["bucket_cap_mb"] = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20 + 1
        self.ddp = DDP(model, device_ids=ids, gradient_as_bucket_view=True, **kwargs)
        # DDP's runtime stats (its Reducer times backward compute and the buckets' communication: CUDA
        # events on GPU, the host clock on CPU) on every step, not the first ten and every 100th.
        self.ddp._set_ddp_runtime_logging_sample_rate(1)
        if hook == "bf16":
            from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

            self.ddp.register_comm_hook(None, default_hooks.bf16_compress_hook)
        elif hook == "powersgd":
            from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook

            state = powerSGD_hook.PowerSGDState(process_group=None, matrix_approximation_rank=1,
                                                start_powerSGD_iter=2)
            self.ddp.register_comm_hook(state, powerSGD_hook.powerSGD_hook)

    def forward_module(self) -> nn.Module:
        return self.ddp

    def comm_figures(self) -> dict:
        """From DDP's runtime stats, averaged over its steps: the backward's communication (first bucket
        launched to last bucket done), the part of it overlapped with the backward's compute, and the
        rest, exposed: the time the step waits on communication once its gradients are computed."""
        data = self.ddp._get_ddp_logging_data()
        comm, overlap = data.get("avg_backward_comm_time"), data.get("avg_backward_compute_comm_overlap_time")
        if not isinstance(comm, int) or not isinstance(overlap, int) or comm <= 0:
            return {}
        comm_s, overlap_s = comm / 1e9, min(max(overlap, 0), comm) / 1e9
        return {"comm_s_per_step": comm_s, "comm_overlapped_s_per_step": overlap_s,
                "exposed_comm_measured_s": comm_s - overlap_s,
                "comm_measured_by": "DDP runtime stats (Reducer timers: avg_backward_comm_time less "
                                    "avg_backward_compute_comm_overlap_time), every step"}


class LocalSGD(Strategy):
    def __init__(self, model: nn.Module, sync_every: int, device: str) -> None:
        super().__init__(model, sync_every, device)
        from torch.distributed.algorithms.model_averaging.averagers import PeriodicModelAverager

        self.averager = PeriodicModelAverager(period=sync_every, warmup_steps=0)
        self.steps_since_average = 0

    def after_step(self, step: int) -> None:
        averages_now = self.averager.step % self.sync_every == 0  # its rule with warmup_steps=0
        self.averager.average_parameters(self.model.parameters())
        self.steps_since_average = 0 if averages_now else self.steps_since_average + 1

    def finish(self) -> None:
        if self.steps_since_average:
            from torch.distributed.algorithms.model_averaging.utils import average_parameters

            average_parameters(self.model.parameters(), dist.group.WORLD)


class DiLoCo(Strategy):
    OUTER_LR, OUTER_MOMENTUM = 0.7, 0.9

    def __init__(self, model: nn.Module, sync_every: int, device: str) -> None:
        super().__init__(model, sync_every, device)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.outer = [p.detach().clone().float() for p in self.params]
        self.outer_opt = torch.optim.SGD(self.outer, lr=self.OUTER_LR, momentum=self.OUTER_MOMENTUM, nesterov=True)
        self.local_steps = 0

    def _outer_step(self) -> None:
        pseudo = [o - p.detach().float() for o, p in zip(self.outer, self.params, strict=True)]
        flat = _flatten_dense_tensors(pseudo)
        dist.all_reduce(flat)
        flat /= dist.get_world_size()
        for o, g in zip(self.outer, _unflatten_dense_tensors(flat, pseudo), strict=True):
            o.grad = g
        self.outer_opt.step()
        with torch.no_grad():
            for o, p in zip(self.outer, self.params, strict=True):
                p.copy_(o)
        self.local_steps = 0

    def after_step(self, step: int) -> None:
        self.local_steps += 1
        if self.local_steps == self.sync_every:
            self._outer_step()

    def finish(self) -> None:
        if self.local_steps:
            self._outer_step()


class AsyncStale(Strategy):
    def __init__(self, model: nn.Module, sync_every: int, device: str) -> None:
        super().__init__(model, sync_every, device)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.pending: tuple[dist.Work, torch.Tensor] | None = None

    def before_step(self) -> bool:
        grads = [p.grad for p in self.params]
        flat = _flatten_dense_tensors(grads)
        flat /= dist.get_world_size()
        launched = (dist.all_reduce(flat, async_op=True), flat)
        previous, self.pending = self.pending, launched
        if previous is None:
            return False  # the first step has no averaged gradient yet
        work, averaged = previous
        work.wait()
        for p, g in zip(self.params, _unflatten_dense_tensors(averaged, grads), strict=True):
            p.grad.copy_(g)
        return True

    def finish(self) -> None:
        if self.pending is not None:
            self.pending[0].wait()  # the last gradients are dropped: their step never happens
            self.pending = None


def make_strategy(name: str, model: nn.Module, sync_every: int, device: str) -> Strategy:
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")
    if name.startswith("sync"):
        return DDPSync(model, sync_every, device, hook=name.partition("_")[2])
    return {"nocomm": Strategy, "local_sgd": LocalSGD, "diloco": DiLoCo, "async_stale": AsyncStale}[name](
        model, sync_every, device)
