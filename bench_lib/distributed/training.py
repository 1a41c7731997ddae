"""The training suite: what each data-parallel strategy costs per step and buys in loss per second.

One launch runs every strategy of a backend on the same ranks, in order: `nocomm` first (its step
time is the compute-only baseline that exposed communication is measured against), then `sync`
(the loss it reaches is the target, and its wall time the budget for the equal-wall comparison),
then the others. Every strategy starts from the same weights and sees the same per-rank batches.
A strategy faster than sync keeps training until it has used sync's wall time (at most 4x the
steps), so `loss_at_equal_wall` compares what each buys in the same time.

Throughput, exposed communication and the equal-wall budget come from the wall clock of the timed
steps (pace.py says why not from the median step); the per-step distribution is stored beside it.
Losses are rank 0's training losses, smoothed by a trailing mean over LOSS_WINDOW logged points
before they are compared with the target; the held-out loss is measured once at the end.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from bench_lib.distributed.base import DistributedSuite, RankContext, backends_for, default_world_size
from bench_lib.distributed.pace import Pace, step_times
from bench_lib.platform import Platform, detect
from bench_lib.results.case import CaseResult, CaseSpec

__all__ = ["TrainingSuite", "SYNC_EVERY"]

SYNC_EVERY = {"quick": 8, "full": 16}
WARMUP_STEPS = 3  # excluded from the step-time samples (allocations, first DDP bucket rebuild)
LOSS_POINTS = 40  # about this many loss-curve points per run
LOSS_WINDOW = 8
MAX_EXTENSION = 3  # a strategy faster than sync may run up to (1 + this) x the profile's steps


@dataclass
class _Baselines:
    """What earlier strategies of the same workload in this launch established."""

    nocomm_step_s: float | None = None
    sync_wall_s: float | None = None
    target_loss: float | None = None
    notes: list[str] = field(default_factory=list)


def smoothed(curve: list[list[float]], window: int = LOSS_WINDOW) -> list[tuple[float, float]]:
    """(wall_s, trailing mean of the last `window` logged losses) per logged point."""
    out = []
    for i, (wall, _, _) in enumerate(curve):
        recent = [loss for _, _, loss in curve[max(0, i - window + 1):i + 1]]
        out.append((wall, sum(recent) / len(recent)))
    return out


def time_to(curve: list[tuple[float, float]], target: float) -> float | None:
    return next((wall for wall, loss in curve if loss <= target), None)


def loss_at(curve: list[tuple[float, float]], wall_s: float) -> float | None:
    """The smoothed loss at wall_s, or None if the run ended before it."""
    if not curve or curve[-1][0] < wall_s * 0.98:
        return None
    return [loss for wall, loss in curve if wall <= wall_s][-1]


def _warm_up(profile: str, ctx: RankContext, workload: str, steps: int = 2) -> None:
    """A few local steps of a throw-away model, so that one-time costs (CUDA context, library
    handles, kernel selection for these shapes) stay out of the first strategy's clock and curve."""
    import torch

    from bench_lib.distributed.tasks import task_for

    task, _ = task_for(profile, ctx.device, workload)
    model = task.model().to(ctx.device)
    opt = torch.optim.AdamW(model.parameters(), lr=task.lr, **({"fused": True} if ctx.is_cuda else {}))
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x, y = task.sample(gen, ctx.device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=ctx.is_cuda):
            loss = task.loss(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    if ctx.is_cuda:
        torch.cuda.synchronize()


class TrainingSuite(DistributedSuite):
    NAME = "training"

    def cases(self, profile: str, device: str, backend: str) -> list[CaseSpec]:
        from bench_lib.distributed.strategies import STRATEGIES
        from bench_lib.distributed.tasks import TASKS

        platform = detect()
        out = []
        for dist_backend, dev in backends_for(device, backend):
            world = default_world_size(dev, platform)
            for workload in TASKS[(profile, "cuda" if dev.startswith("cuda") else "cpu")]:
                for name, info in STRATEGIES.items():
                    extra = {"sync_every": SYNC_EVERY[profile]} if info.periodic else {}
                    out.append(CaseSpec.make(self.NAME, workload, name, dev, backend=dist_backend,
                                             world_size=world, **extra))
        return out

    def skip_reason(self, case: CaseSpec, platform: Platform) -> str | None:
        if case.variant == "sync_bf16" and self.backend_of(case) != "nccl":
            return ("DDP's bf16_compress_hook needs NCCL (torch refuses it on Gloo: 'BF16 all reduce communication "
                    "hook required CUDA 11+ and NCCL 2.10+')")
        return super().skip_reason(case, platform)

    def run_on_rank(self, cases: list[CaseSpec], profile: str, ctx: RankContext) -> Iterator[CaseResult]:
        baselines: dict[str, _Baselines] = {}
        for case in cases:
            if case.workload not in baselines:
                _warm_up(profile, ctx, case.workload)
            yield self._train(case, profile, ctx, baselines.setdefault(case.workload, _Baselines()))

    def _train(self, case: CaseSpec, profile: str, ctx: RankContext, base: _Baselines) -> CaseResult:
        import torch
        import torch.distributed as dist

        from bench_lib.distributed.strategies import STRATEGIES, make_strategy
        from bench_lib.distributed.tasks import task_for
        from bench_lib.measure import memory
        from bench_lib.measure.stats import Measurement

        started = time.perf_counter()
        task, min_steps = task_for(profile, ctx.device, case.workload)
        device, cuda = ctx.device, ctx.is_cuda
        sync_every = int(case.param("sync_every", 1))
        model = task.model().to(device)
        n_params = sum(p.numel() for p in model.parameters())
        strategy = make_strategy(case.variant, model, sync_every, device)
        opt = torch.optim.AdamW(model.parameters(), lr=task.lr, weight_decay=0.01, **({"fused": True} if cuda else {}))
        forward = strategy.forward_module()
        gen = torch.Generator().manual_seed(1000 + ctx.rank)
        log_every = max(1, min_steps // LOSS_POINTS)

        memory.reset_cuda_peak(device)
        memory.reset_peak_rss()
        dist.barrier()
        steps, ends, logged = min_steps, [], []
        t0 = time.perf_counter()
        step = 0
        while step < steps:
            x, y = task.sample(gen, device)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                logits = forward(x)
            loss = task.loss(logits, y)
            loss.backward()
            if strategy.before_step():
                opt.step()
            strategy.after_step(step)  # before zero_grad: the model averager skips parameters without grads
            opt.zero_grad(set_to_none=True)
            if cuda:
                torch.cuda.synchronize()
            ends.append(time.perf_counter() - t0)
            if step % log_every == 0 or step == steps - 1:
                logged.append((step, float(loss.item())))
            step += 1
            if step == min_steps and base.sync_wall_s and case.variant not in ("sync", "nocomm"):
                steps = self._extended_steps(min_steps, ends, base.sync_wall_s, ctx.meta_device)
        strategy.finish()
        evaluation = task.evaluate(model, device, autocast=cuda)

        agreed = torch.tensor(ends, dtype=torch.float64, device=ctx.meta_device)
        dist.all_reduce(agreed, op=dist.ReduceOp.MAX)  # each step ends when its last rank ends it
        ends = agreed.cpu().tolist()
        wall, pace = ends[-1], Pace.after_warmup(ends, WARMUP_STEPS)
        curve = [[ends[i], i, loss] for i, loss in logged]
        peak_kind = "cuda_max_allocated" if cuda else "rss"
        peak_local = memory.cuda_peak(device)["cuda_max_allocated_bytes"] if cuda else memory.peak_rss_bytes()
        peak = torch.tensor([peak_local], dtype=torch.int64, device=ctx.meta_device)
        dist.all_reduce(peak, op=dist.ReduceOp.MAX)

        m = Measurement(tuple(step_times(ends)[WARMUP_STEPS:]))
        smooth = smoothed(curve)
        if case.variant == "nocomm":
            base.nocomm_step_s = pace.per_step_s
        if case.variant == "sync":
            base.sync_wall_s, base.target_loss = wall, smooth[-1][1]
        samples_per_s = pace.rate(ctx.world_size * task.batch)
        at_sync_wall = loss_at(smooth, base.sync_wall_s) if base.sync_wall_s else None
        metrics = {
            "step_time_median_s": m.median,
            "step_time_p90_s": m.p90,
            "step_time_wall_s": pace.per_step_s,
            "timed_steps": pace.steps,
            "timed_wall_s": pace.wall_s,
            "samples_per_s": samples_per_s,
            "tokens_per_s": samples_per_s * task.tokens_per_sample if task.tokens_per_sample else None,
            "exposed_comm_s": pace.per_step_s - base.nocomm_step_s if base.nocomm_step_s is not None else None,
            "peak_memory_bytes": int(peak.item()),
            "peak_memory_kind": peak_kind + " per rank, max over ranks",
            "loss_curve": curve,
            **evaluation,
            "eval_accuracy_metric": "next-byte top-1" if task.tokens_per_sample else "top-1 class",
            "target_loss": base.target_loss,
            "time_to_target_s": time_to(smooth, base.target_loss) if base.target_loss is not None else None,
            "loss_at_equal_wall": at_sync_wall,
            "loss_gap_at_equal_wall": at_sync_wall - base.target_loss if at_sync_wall is not None else None,
            "equal_wall_s": base.sync_wall_s,
            "final_train_loss": smooth[-1][1],
            "train_wall_s": wall,
            "steps": steps,
            "world_size": ctx.world_size,
            "backend": ctx.backend,
            "global_batch": ctx.world_size * task.batch,
            "model_params": n_params,
            "sync_every": sync_every if STRATEGIES[case.variant].periodic else None,
            "strategy_note": STRATEGIES[case.variant].note,
            "loss_smoothing": f"trailing mean of {LOSS_WINDOW} logged rank-0 training losses",
            "autocast": "bf16" if cuda else None,
            "torch_threads": torch.get_num_threads(),
        }
        return CaseResult(case, "ok", m, metrics, timer="perf_counter" + ("+cuda_sync" if cuda else ""),
                          measure_config={"min_steps": min_steps, "warmup_steps": WARMUP_STEPS},
                          wall_s=time.perf_counter() - started)

    @staticmethod
    def _extended_steps(min_steps: int, ends: list[float], sync_wall: float, device: str) -> int:
        """Steps to reach sync's wall time at this strategy's wall-clock pace, agreed by all ranks (max)."""
        import torch
        import torch.distributed as dist

        wall, pace = ends[-1], Pace.after_warmup(ends, WARMUP_STEPS).per_step_s
        extra = max(0, math.ceil((sync_wall - wall) / pace * 1.05)) if wall < sync_wall else 0
        agreed = torch.tensor([min(extra, MAX_EXTENSION * min_steps)], dtype=torch.int64, device=device)
        dist.all_reduce(agreed, op=dist.ReduceOp.MAX)
        return min_steps + int(agreed.item())
